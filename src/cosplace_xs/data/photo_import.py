"""People's own photos as a dataset: geotagged photos linked (or copied) under dataset-format names.

Positions come from a CSV (`path,lat,lon[,heading]`) or the photos' EXIF GPS tags, UTM from lat/lon with
`utm`. The result is a test set (`OUT/database`, `OUT/queries`) or a training set (`OUT/train`, and
`OUT/val/{database,queries}`), split by a seeded fraction of the photos or by a second folder of queries.
Source files are never moved or changed; photos without a position and files that are no readable image are
listed, in the summary and in `OUT/unplaced.txt` and `OUT/skipped.txt`.
"""

from __future__ import annotations

import csv
import errno
import logging
import math
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import utm
from PIL import Image

from cosplace_xs.atomic_files import replacing, write_text_atomic
from cosplace_xs.config import PhotoImportConfig
from cosplace_xs.data.exif import Position, read_photo_position
from cosplace_xs.data.layout import walk_folder
from cosplace_xs.data.names import ImageName, display_name, format_name
from cosplace_xs.errors import ConfigError, DatasetLayoutError, RunFolderError
from cosplace_xs.options import flag_of
from cosplace_xs.progress import tracked

log = logging.getLogger(__name__)

UNPLACED = "unplaced.txt"
SKIPPED = "skipped.txt"
NOTE_LENGTH = 80  # characters of the source name kept in the note field: file names stay under 255 bytes
# os.link fails with these where the files cannot share an inode: another file system, no hard links, too many
LINK_IMPOSSIBLE = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP}


@dataclass(frozen=True)
class Placed:
    """A photo with a position, and the dataset-format name it gets."""

    source: Path
    position: Position


@dataclass
class Located:
    """The photos of a folder: those with a position, those without (and why), and files skipped (and why)."""

    placed: list[Placed] = field(default_factory=list)
    unplaced: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


@dataclass
class ImportReport:
    """What `import_photos` did, folder by folder."""

    out: Path
    imported: int = 0  # photos placed from the sources (val/database only links the training photos again)
    written: dict[str, int] = field(default_factory=dict)  # dataset folder (relative to out) -> photos
    unplaced: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    copied_across_file_systems: int = 0
    copy: bool = False

    def summary(self, limit: int = 10) -> str:
        """The end-of-import summary: imported, without position, skipped, each listed (up to `limit`)."""
        how = "copied" if self.copy else "hard-linked"
        lines = [f"imported {self.imported} photo(s) into {self.out} ({how}): "
                 + ", ".join(f"{folder}: {count}" for folder, count in self.written.items())]
        if self.copied_across_file_systems:
            lines.append(f"  {self.copied_across_file_systems} of them copied instead: a hard link cannot cross "
                         "file systems")
        for files, what, listing in ((self.unplaced, "without a position", UNPLACED),
                                     (self.skipped, "skipped", SKIPPED)):
            lines.append(f"{len(files)} file(s) {what}" + (f" (all listed in {self.out / listing})" if files else ""))
            lines += [f"  {display_name(path)}: {why}" for path, why in files[:limit]]
            if len(files) > limit:
                lines.append(f"  ... and {len(files) - limit} more")
        return "\n".join(lines)


def _number(text: str, what: str, low: float, high: float, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{where}: {what} {text!r} is not a number") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{where}: {what} {text!r} is outside [{low:g}, {high:g}] degrees")
    return value


def read_positions_csv(path: Path, folder: Path) -> dict[Path, Position]:
    """Positions by photo from a CSV of `path,lat,lon[,heading]` rows, paths relative to `folder`; a first row
    whose latitude is no number is a header. ConfigError naming the file and line of a bad row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"{path}: the positions CSV cannot be read ({error})") from None
    positions: dict[Path, Position] = {}
    for line, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        where = f"{path}, line {line}"
        if line == 1 and len(cells) >= 2:
            try:
                float(cells[1])
            except ValueError:
                continue  # a header row
        if len(cells) not in (3, 4):
            raise ConfigError(f"{where}: expected path,lat,lon or path,lat,lon,heading; got {len(cells)} field(s)")
        lat = _number(cells[1], "latitude", -90, 90, where)
        lon = _number(cells[2], "longitude", -180, 180, where)
        heading = _number(cells[3], "heading", 0, 360, where) if len(cells) == 4 and cells[3] else None
        key = Path(os.path.normpath(folder / cells[0]))
        if key in positions:
            raise ConfigError(f"{where}: {cells[0]} has a position on an earlier line already; keep one")
        positions[key] = Position(lat, lon, heading)
    return positions


def locate_photos(folder: Path, positions: dict[Path, Position], progress: bool = True,
                  besides: Path | None = None) -> Located:
    """Every file under `folder` (but those under `besides`, read on their own) sorted into photos with a
    position (the CSV's, else EXIF GPS), photos without one, and files skipped (not an image, unreadable).
    Reads image headers only."""
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder}: folder of photos not found")
    listing = walk_folder(folder)
    if besides is not None:
        inside = os.path.realpath(besides)
        for paths in (listing.images, listing.others):
            paths[:] = [path for path in paths if os.path.commonpath([os.path.realpath(path), inside]) != inside]
    located = Located(skipped=[(path, "not a .jpg, .jpeg or .png image") for path in listing.others])
    located.skipped += listing.refused_links + listing.special_files + listing.unreadable
    images = listing.images
    for path in tracked(images, len(images), f"reading {folder.name}", "photos", progress):
        try:
            from_exif, why = read_photo_position(path)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            located.skipped.append((path, f"unreadable ({error})"))
            continue
        position = positions.pop(Path(os.path.normpath(path)), None) or from_exif
        if position is None:
            located.unplaced.append((path, f"{why}, and no row in the positions CSV"))
        else:
            located.placed.append(Placed(path, position))
    located.skipped.sort(key=lambda item: item[0].as_posix())
    return located


def draw_queries(count: int, fraction: float, seed: int) -> set[int]:
    """Indices of round(fraction * count) photos (at least 1, at most count - 1), drawn with `seed`."""
    if count < 2:
        raise DatasetLayoutError(f"{count} photo(s) with a position: splitting them into database and queries "
                                 "(--queries-fraction) needs at least 2")
    size = min(count - 1, max(1, math.floor(fraction * count + 0.5)))
    return set(np.random.default_rng(seed).permutation(count)[:size].tolist())


def dataset_name(photo: Placed, taken: set[str]) -> str:
    """The photo's name in the dataset format, with its source name as the note (made distinct from `taken`)."""
    east, north, zone, letter = utm.from_latlon(photo.position.lat, photo.position.lon)
    stem = display_name(photo.source.stem).replace("@", "_")[:NOTE_LENGTH]
    for number in range(1, len(taken) + 2):
        note = stem if number == 1 else f"{stem}~{number}"
        name = format_name(ImageName("", float(east), float(north), int(zone), str(letter), photo.position.lat,
                                     photo.position.lon, "", "", photo.position.heading, None, None, None, "", note),
                           photo.source.suffix.lower())
        if name not in taken:
            taken.add(name)
            return name
    raise AssertionError("a free name exists among len(taken) + 1 candidates")


def place_file(source: Path, target: Path, copy: bool) -> bool:
    """Link (or copy) `source` to `target`, never changing `source`; True when a link had to become a copy."""
    how = "copied" if copy else "linked"
    try:
        if not copy:
            try:
                os.link(source, target)
                return False
            except OSError as error:
                if error.errno not in LINK_IMPOSSIBLE:
                    raise
            how = "copied (a hard link was impossible)"
        with source.open("rb") as reader, replacing(target, "wb") as writer:
            shutil.copyfileobj(reader, writer)
        shutil.copystat(source, target)
    except OSError as error:  # no permission, a full disk, a source gone meanwhile: the sources stay untouched
        raise RunFolderError(f"{display_name(source)} could not be {how} to {target} ({error.strerror}); the "
                             "photos placed so far stay where they are: free space or fix the permissions, then "
                             "import again into a new, empty folder") from None
    return not copy


def _utm_range(photos: Iterable[Placed], unplaced: list[tuple[Path, str]]) -> list[Placed]:
    """The photos that UTM covers (latitude -80 to 84); the others join `unplaced`."""
    kept = []
    for photo in photos:
        if -80 <= photo.position.lat <= 84:
            kept.append(photo)
        else:
            unplaced.append((photo.source, f"latitude {photo.position.lat:.5f} is outside UTM's -80 to 84 degrees"))
    return kept


def import_photos(source: Path, out: Path, config: PhotoImportConfig, progress: bool = True) -> ImportReport:
    """Turn the photos under `source` (and `config.queries`) into a dataset folder `out` (new or empty)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunFolderError(f"{out}: already exists and is not an empty folder; photos are never written over, "
                             "give a new output folder")
    positions = read_positions_csv(Path(config.positions), source) if config.positions else {}
    located = locate_photos(source, positions, progress, Path(config.queries) if config.queries else None)
    queries = None
    if config.queries is not None:
        query_positions = (read_positions_csv(Path(config.queries_positions), Path(config.queries))
                           if config.queries_positions else {})
        queries = locate_photos(Path(config.queries), query_positions, progress)
        located.unplaced += queries.unplaced
        located.skipped += queries.skipped
    for path in positions:
        log.warning("%s: in the positions CSV but not an image under %s; row ignored", display_name(path), source)
    report = ImportReport(out, unplaced=located.unplaced, skipped=located.skipped, copy=config.copy)
    database = _utm_range(located.placed, report.unplaced)
    query_photos = _utm_range(queries.placed, report.unplaced) if queries is not None else []
    if config.use_as == "train":
        for photo in [photo for photo in database if photo.position.heading is None]:
            database.remove(photo)
            report.unplaced.append((photo.source, f"no heading (training needs one: EXIF GPSImgDirection or the "
                                                  f"heading column of {flag_of(PhotoImportConfig, 'positions')})"))
    if config.queries_fraction is not None:
        chosen = draw_queries(len(database), config.queries_fraction, config.seed)
        query_photos = [photo for index, photo in enumerate(database) if index in chosen]
        database = [photo for index, photo in enumerate(database) if index not in chosen]
    if not database:
        raise DatasetLayoutError(f"{source}: no photo with a position to import\n" + report.summary())
    if config.queries is not None and not query_photos:
        raise DatasetLayoutError(f"{config.queries}: no query photo with a position to import\n" + report.summary())
    train = config.use_as == "train"
    folders: list[tuple[str, list[Placed]]] = [("train" if train else "database", database)]
    if query_photos:
        folders.append(("val/queries" if train else "queries", query_photos))
    _write(out, folders, config.copy, report, progress)
    if train and query_photos:  # validation searches the queries among the training photos: links inside out
        (out / "val" / "database").mkdir()
        for path in sorted((out / "train").iterdir()):
            place_file(path, out / "val" / "database" / path.name, copy=False)
        report.written["val/database"] = len(database)
    return report


def _write(out: Path, folders: list[tuple[str, list[Placed]]], copy: bool, report: ImportReport,
           progress: bool) -> None:
    """Place every folder's photos under distinct dataset names, and write the listings."""
    taken: set[str] = set()
    for folder, photos in folders:
        (out / folder).mkdir(parents=True)
        for photo in tracked(photos, len(photos), f"writing {folder}", "photos", progress):
            report.copied_across_file_systems += place_file(photo.source, out / folder / dataset_name(photo, taken),
                                                            copy)
        report.imported += len(photos)
        report.written[folder] = len(photos)
    for files, listing in ((report.unplaced, UNPLACED), (report.skipped, SKIPPED)):
        if files:
            write_text_atomic(out / listing, "".join(f"{display_name(path)}\t{why}\n" for path, why in files))
