"""Checking a dataset, or a list of images, for every problem at once, before any training or evaluation.

Errors make a file (or folder) unusable: bad file name, unreadable, undecodable, damaged (libjpeg warns while
decoding it), above the pixel limit, a refused symbolic link, broken layout. Warnings do not stop training:
non-image files, FIFOs and other special files named as images (skipped), the same file name in two folders of one
image set, a `<folder>_images_paths.txt` that does not list every image of its folder, a well-known test set
whose counts differ from the published ones (a truncated download). Notes are harmless: an image whose extension
lies about its format, a well-known test set complete as published.

A dataset root is checked only in its image-set folders (train/, database/, queries/, at any depth), so the other
files a dataset folder holds (a contact sheet, a JSON description) are not reported; a folder without any of them
is checked as a plain folder of images.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from cosplace_xs.config import MAX_IMAGE_PIXELS, QUERIES_FOLDERS
from cosplace_xs.data.images import decode, read_image_file
from cosplace_xs.data.layout import SET_FOLDER_NAMES, find_test_set, walk_folder
from cosplace_xs.data.names import IMAGE_EXTENSIONS, display_name, parse_name
from cosplace_xs.data.paths_files import paths_file, read_paths_file
from cosplace_xs.data.published_sizes import compare_counts, published_set
from cosplace_xs.errors import BadFileNameError, BadImageError, DatasetLayoutError
from cosplace_xs.progress import tracked

log = logging.getLogger(__name__)

Problem = tuple[Path, str]
ERROR, WARNING, NOTE = "error", "warning", "note"
SIGNATURES = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png", b"GIF8": "gif"}
EXTENSION_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png"}


KINDS = {  # ScanReport field -> (title, severity)
    "bad_names": ("bad file name", ERROR),
    "unreadable": ("unreadable", ERROR),
    "undecodable": ("cannot be decoded", ERROR),
    "damaged": ("damaged image data", ERROR),
    "too_large": ("above the pixel limit", ERROR),
    "refused_links": ("symbolic link refused", ERROR),
    "layout": ("folder layout", ERROR),
    "non_images": ("not an image", WARNING),
    "special_files": ("not a regular file", WARNING),
    "duplicate_names": ("same file name in two folders", WARNING),
    "stale_paths_files": ("images list out of date", WARNING),
    "unlike_published": ("counts unlike the published set", WARNING),
    "wrong_extensions": ("extension does not match the format", NOTE),
    "as_published": ("counts as published", NOTE),
}
IMAGE_ERRORS = ("bad_names", "unreadable", "undecodable", "damaged", "too_large")  # kinds that are image files


@dataclass
class ScanReport:
    """Problems found, as (path, problem) lists by kind (see KINDS), and how many images were checked."""

    scanned: int = 0
    bad_names: list[Problem] = field(default_factory=list)
    unreadable: list[Problem] = field(default_factory=list)
    undecodable: list[Problem] = field(default_factory=list)
    damaged: list[Problem] = field(default_factory=list)
    too_large: list[Problem] = field(default_factory=list)
    refused_links: list[Problem] = field(default_factory=list)
    layout: list[Problem] = field(default_factory=list)
    non_images: list[Problem] = field(default_factory=list)
    special_files: list[Problem] = field(default_factory=list)
    duplicate_names: list[Problem] = field(default_factory=list)
    stale_paths_files: list[Problem] = field(default_factory=list)
    unlike_published: list[Problem] = field(default_factory=list)
    wrong_extensions: list[Problem] = field(default_factory=list)
    as_published: list[Problem] = field(default_factory=list)

    @staticmethod
    def kinds(severity: str | None = None) -> list[str]:
        return [kind for kind, (_, level) in KINDS.items() if severity in (None, level)]

    def _count(self, severity: str) -> int:
        return sum(len(getattr(self, kind)) for kind in self.kinds(severity))

    @property
    def num_errors(self) -> int:
        return self._count(ERROR)

    @property
    def num_warnings(self) -> int:
        return self._count(WARNING)

    @property
    def ok(self) -> bool:
        """True when no file or folder is unusable (warnings and notes allowed)."""
        return self.num_errors == 0

    def counts(self) -> dict[str, int]:
        return {kind: len(getattr(self, kind)) for kind in self.kinds()}

    def bad_paths(self) -> set[Path]:
        """The image files that training or evaluation cannot use."""
        return {path for kind in IMAGE_ERRORS for path, _ in getattr(self, kind)}

    def extend(self, other: ScanReport) -> None:
        self.scanned += other.scanned
        for kind in self.kinds():
            getattr(self, kind).extend(getattr(other, kind))

    def format(self, limit: int | None = None) -> str:
        """The report as text: a summary line, then each kind's problems (at most `limit` of each shown)."""
        notes = self._count(NOTE)
        lines = [f"checked {self.scanned} images: {self.num_errors} errors, {self.num_warnings} warnings, "
                 f"{notes} notes" + (" - no problem found" if self.num_errors + self.num_warnings + notes == 0 else "")]
        for kind, (title, severity) in KINDS.items():
            problems = getattr(self, kind)
            if not problems:
                continue
            lines.append(f"{severity.upper()} {title} ({len(problems)}):")
            shown = problems if limit is None else problems[:limit]
            lines += [f"  {display_name(path)}: {problem}" for path, problem in shown]
            if len(shown) < len(problems):
                lines.append(f"  ... and {len(problems) - len(shown)} more")
        return "\n".join(lines)


def _without_name(message: str, path: Path) -> str:
    """Drop the leading `path: ` or `name: ` of an error message: the report prints the path itself."""
    return message.removeprefix(f"{path}: ").removeprefix(f"{path.name}: ").removeprefix(f"{display_name(path.name)}: ")


def _read_problem(path: Path, max_pixels: int) -> tuple[str, str] | None:
    """(kind, problem) of one image file, or None if it decodes; `wrong_extensions` for a harmless mismatch."""
    try:
        data = read_image_file(path)
        decode(path, data, max_pixels)
    except PermissionError:
        return "unreadable", "permission denied; make it readable (chmod a+r) or remove it"
    except FileNotFoundError:
        if path.is_symlink():
            return "unreadable", f"broken symbolic link to {os.readlink(path)}; fix or remove the link"
        return "unreadable", "no such file (removed during the check?)"
    except OSError as error:
        return "unreadable", f"cannot be read ({error.strerror or error})"
    except BadImageError as error:
        message = _without_name(str(error), path)
        kind = "too_large" if "above the limit of" in message else "undecodable"
        return kind, message
    head = data[:16]
    found = next((name for signature, name in SIGNATURES.items() if head.startswith(signature)), None)
    if found is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        found = "webp"
    expected = EXTENSION_FORMATS.get(path.suffix.lower())
    if found is not None and found != expected:
        return "wrong_extensions", f"a {found.upper()} file named {path.suffix}; it decodes fine, but rename it"
    return None


def _check_file(path: Path, max_pixels: int) -> tuple[str, str] | None:
    """`_read_problem` of one file, in a worker process whose stderr is captured meanwhile: libjpeg only prints
    its warnings there ("Corrupt JPEG data: ...", "Premature end of JPEG file") and decodes the damaged data."""
    with tempfile.TemporaryFile() as capture, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Python's warnings would land in the capture too
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            found = _read_problem(path, max_pixels)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        printed = "; ".join(line.strip() for line in capture.read().decode(errors="replace").splitlines()
                            if line.strip())
    if printed and (found is None or found[0] == "wrong_extensions"):
        return "damaged", f"the decoder warns: {printed}; the file is damaged: re-download or remove it"
    return found


def _duplicate_names(paths: list[Path]) -> list[Problem]:
    first: dict[str, Path] = {}
    duplicates = []
    for path in paths:
        if path.name in first:
            duplicates.append((path, f"same file name, so the same metadata, as {first[path.name]}"))
        else:
            first[path.name] = path
    return duplicates


def scan_images(paths: Iterable[Path], require_heading: bool = False, progress: bool = True,
                workers: int | None = None, desc: str = "checking images",
                max_pixels: int = MAX_IMAGE_PIXELS) -> ScanReport:
    """Check the names and the decoding of image files (decoding in worker processes, with a progress bar);
    images above `max_pixels` pixels are unusable."""
    paths = [Path(p) for p in paths]
    report = ScanReport(scanned=len(paths))
    for path in paths:
        try:
            parse_name(path, require_heading=require_heading)
        except BadFileNameError as error:
            report.bad_names.append((path, _without_name(str(error), path)))
    report.duplicate_names = _duplicate_names(paths)
    if not paths:
        return report
    workers = min(workers or min(8, os.cpu_count() or 1), len(paths))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(partial(_check_file, max_pixels=max_pixels), paths, chunksize=8)
        for path, found in zip(paths, tracked(results, len(paths), desc, "img", enabled=progress), strict=True):
            if found is not None:
                getattr(report, found[0]).append((path, found[1]))
    log.info("checked %d images: %d errors, %d warnings", report.scanned, report.num_errors, report.num_warnings)
    return report


def _image_set(path: Path, root: Path) -> Path:
    """The folder of the image set a file belongs to: its nearest train/database/queries ancestor, or root."""
    for parent in path.parents:
        if parent.name in SET_FOLDER_NAMES or parent == root:
            return parent
    return root


def _layout_problems(folders: list[Path], sets: dict[Path, list[Path]]) -> list[Problem]:
    problems = []
    for folder in folders:
        has_queries = any((folder.parent / name).is_dir() for name in QUERIES_FOLDERS)
        if folder.name == "database" and not has_queries:
            problems.append((folder.parent, "has database/ but no queries/ folder; a test set needs both"))
        if folder.name in QUERIES_FOLDERS and not (folder.parent / "database").is_dir():
            problems.append((folder.parent, f"has {folder.name}/ but no database/ folder; a test set needs both"))
        if folder.name in SET_FOLDER_NAMES and folder not in sets:
            problems.append((folder, f"holds no image ({', '.join(IMAGE_EXTENSIONS)})"))
    return problems


def _stale_paths_files(sets: dict[Path, list[Path]]) -> tuple[list[Problem], list[Problem]]:
    """(stale lists, unreadable lists): each image set's `<folder>_images_paths.txt` compared with its images."""
    stale, broken = [], []
    for set_dir, images in sets.items():
        listing = paths_file(set_dir)
        if not listing.is_file():
            continue
        try:
            listed = set(read_paths_file(set_dir))
        except DatasetLayoutError as error:
            broken.append((listing, str(error).removeprefix(f"{listing}: ")))
            continue
        unlisted = [image for image in images if image not in listed]
        if unlisted:
            stale.append((listing, f"does not list {len(unlisted)} of the {len(images)} images of {set_dir} (e.g. "
                                   f"{unlisted[0].relative_to(set_dir).as_posix()}), which evaluation then skips; "
                                   "write it again with --write-paths-files"))
    return stale, broken


def _published_counts(folders: list[Path], sets: dict[Path, list[Path]]) -> tuple[list[Problem], list[Problem]]:
    """(sets whose counts differ from the published ones, sets complete as published)."""
    unlike, alike = [], []
    for folder in folders:
        known = published_set(folder)
        if known is None or not (folder / "database").is_dir():
            continue
        try:
            paths = find_test_set(folder)
        except DatasetLayoutError:
            continue  # reported as a layout problem
        same, sentence = compare_counts(known, len(sets.get(paths.queries_dir, [])),
                                        len(sets.get(paths.database_dir, [])))
        (alike if same else unlike).append((folder, sentence))
    return unlike, alike


def scan_folder(folder: str | Path, progress: bool = True, workers: int | None = None,
                max_pixels: int = MAX_IMAGE_PIXELS) -> ScanReport:
    """Check a dataset root (train/, val/, test/, or any nesting of them) or any folder of images.

    In a dataset root only the image-set folders are checked (see the module's docstring). Images under a folder
    named `train` must carry a heading in their names; duplicate names are looked for within each image set
    (train, each database, each queries folder).
    """
    folder = Path(folder).absolute()
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder}: folder not found; give a dataset root or a folder of images")
    listing = walk_folder(folder)
    is_dataset = any(path.name in SET_FOLDER_NAMES for path in listing.folders if path != folder)

    def in_a_set(path: Path) -> bool:
        return not is_dataset or _image_set(path, folder) != folder

    sets: dict[Path, list[Path]] = {}
    for image in filter(in_a_set, listing.images):
        sets.setdefault(_image_set(image, folder), []).append(image)
    report = ScanReport()
    for set_dir, images in sets.items():
        report.extend(scan_images(images, require_heading=set_dir.name == "train", progress=progress,
                                  workers=workers, desc=f"checking {set_dir}", max_pixels=max_pixels))
    report.non_images = [(path, f"not an image ({path.suffix or 'no extension'}); ignored")
                         for path in listing.others if in_a_set(path)]
    report.special_files = [(path, problem) for path, problem in listing.special_files if in_a_set(path)]
    report.refused_links = listing.refused_links
    report.unreadable.extend(listing.unreadable)
    report.layout = _layout_problems(listing.folders, sets)
    report.stale_paths_files, broken_lists = _stale_paths_files(sets)
    report.layout += broken_lists
    report.unlike_published, report.as_published = _published_counts(listing.folders, sets)
    if not sets:
        report.layout.append((folder, f"holds no image ({', '.join(IMAGE_EXTENSIONS)}) at any depth"))
    return report
