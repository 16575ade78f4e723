"""Checking a dataset, or a list of images, for every problem at once, before any training or evaluation.

Errors make a file (or folder) unusable: bad file name, unreadable, undecodable, broken layout.
Warnings do not stop training: non-image files, the same file name in two folders of one image set,
symbolic link loops. Notes are harmless: an image whose extension lies about its format.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from cosplace_xs.data.images import image_problem
from cosplace_xs.data.layout import QUERY_FOLDER_NAMES
from cosplace_xs.data.names import IMAGE_EXTENSIONS, display_name, parse_name
from cosplace_xs.errors import BadFileNameError, DatasetLayoutError

log = logging.getLogger(__name__)

Problem = tuple[Path, str]
ERROR, WARNING, NOTE = "error", "warning", "note"
SET_FOLDER_NAMES = ("train", "database", *QUERY_FOLDER_NAMES)  # each holds one set of images
SIGNATURES = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png", b"GIF8": "gif"}
EXTENSION_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png"}


KINDS = {  # ScanReport field -> (title, severity)
    "bad_names": ("bad file name", ERROR),
    "unreadable": ("unreadable", ERROR),
    "undecodable": ("cannot be decoded", ERROR),
    "layout": ("folder layout", ERROR),
    "non_images": ("not an image", WARNING),
    "duplicate_names": ("same file name in two folders", WARNING),
    "symlink_loops": ("symbolic link loop", WARNING),
    "wrong_extensions": ("extension does not match the format", NOTE),
}


@dataclass
class ScanReport:
    """Problems found, as (path, problem) lists by kind (see KINDS), and how many images were checked."""

    scanned: int = 0
    bad_names: list[Problem] = field(default_factory=list)
    unreadable: list[Problem] = field(default_factory=list)
    undecodable: list[Problem] = field(default_factory=list)
    layout: list[Problem] = field(default_factory=list)
    non_images: list[Problem] = field(default_factory=list)
    duplicate_names: list[Problem] = field(default_factory=list)
    symlink_loops: list[Problem] = field(default_factory=list)
    wrong_extensions: list[Problem] = field(default_factory=list)

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
        return {path for kind in ("bad_names", "unreadable", "undecodable") for path, _ in getattr(self, kind)}

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


def _read_problem(path: Path) -> tuple[str, str] | None:
    """(kind, problem) of one image file, or None if it decodes; `wrong_extensions` for a harmless mismatch."""
    try:
        with path.open("rb") as file:
            head = file.read(16)
    except PermissionError:
        return "unreadable", "permission denied; make it readable (chmod a+r) or remove it"
    except FileNotFoundError:
        if path.is_symlink():
            return "unreadable", f"broken symbolic link to {os.readlink(path)}; fix or remove the link"
        return "unreadable", "no such file (removed during the check?)"
    except OSError as error:
        return "unreadable", f"cannot be read ({error.strerror})"
    if not head:
        return "undecodable", "empty file (0 bytes); re-download it or remove it"
    problem = image_problem(path)
    if problem is not None:
        return "undecodable", _without_name(problem, path)
    found = next((name for signature, name in SIGNATURES.items() if head.startswith(signature)), None)
    if found is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        found = "webp"
    expected = EXTENSION_FORMATS.get(path.suffix.lower())
    if found is not None and found != expected:
        return "wrong_extensions", f"a {found.upper()} file named {path.suffix}; it decodes fine, but rename it"
    return None


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
                workers: int | None = None, desc: str = "checking images") -> ScanReport:
    """Check the names and the decoding of image files (decoding in a thread pool, with a progress bar)."""
    paths = [Path(p) for p in paths]
    report = ScanReport(scanned=len(paths))
    for path in paths:
        try:
            parse_name(path, require_heading=require_heading)
        except BadFileNameError as error:
            report.bad_names.append((path, _without_name(str(error), path)))
    report.duplicate_names = _duplicate_names(paths)
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        results = pool.map(_read_problem, paths)
        for path, found in zip(paths, tqdm(results, total=len(paths), desc=desc, unit="img", disable=not progress),
                               strict=True):
            if found is not None:
                getattr(report, found[0]).append((path, found[1]))
    log.info("checked %d images: %d errors, %d warnings", report.scanned, report.num_errors, report.num_warnings)
    return report


@dataclass
class _Walk:
    images: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    loops: list[Problem] = field(default_factory=list)
    unreadable: list[Problem] = field(default_factory=list)


def _walk(folder: Path) -> _Walk:
    """Every file and folder under `folder`, following symlinked folders once each, as `layout` does."""
    walk, seen = _Walk(), set()

    def unreadable(error: OSError) -> None:
        walk.unreadable.append((Path(error.filename), f"folder cannot be read ({error.strerror})"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            walk.loops.append((Path(dirpath), f"leads to {real}, already visited (a link loop or a second link to "
                                              "one folder); not followed again"))
            dirnames[:] = []
            continue
        seen.add(real)
        walk.folders.append(Path(dirpath))
        for name in filenames:
            path = Path(dirpath) / name
            (walk.images if path.suffix.lower() in IMAGE_EXTENSIONS else walk.others).append(path)
    walk.images.sort(key=lambda p: p.as_posix())
    walk.others.sort(key=lambda p: p.as_posix())
    return walk


def _image_set(path: Path, root: Path) -> Path:
    """The folder of the image set an image belongs to: its nearest train/database/queries ancestor, or root."""
    for parent in path.parents:
        if parent.name in SET_FOLDER_NAMES or parent == root:
            return parent
    return root


def _layout_problems(folders: list[Path], sets: dict[Path, list[Path]]) -> list[Problem]:
    problems = []
    for folder in folders:
        has_queries = any((folder.parent / name).is_dir() for name in QUERY_FOLDER_NAMES)
        if folder.name == "database" and not has_queries:
            problems.append((folder.parent, "has database/ but no queries/ folder; a test set needs both"))
        if folder.name in QUERY_FOLDER_NAMES and not (folder.parent / "database").is_dir():
            problems.append((folder.parent, f"has {folder.name}/ but no database/ folder; a test set needs both"))
        if folder.name in SET_FOLDER_NAMES and folder not in sets:
            problems.append((folder, f"holds no image ({', '.join(IMAGE_EXTENSIONS)})"))
    return problems


def scan_folder(folder: str | Path, progress: bool = True, workers: int | None = None) -> ScanReport:
    """Check a dataset root (train/, val/, test/, or any nesting of them) or any folder of images.

    Images under a folder named `train` must carry a heading in their names; duplicate names are looked
    for within each image set (train, each database, each queries folder).
    """
    folder = Path(folder).absolute()
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder}: folder not found; give a dataset root or a folder of images")
    walk = _walk(folder)
    sets: dict[Path, list[Path]] = {}
    for image in walk.images:
        sets.setdefault(_image_set(image, folder), []).append(image)
    report = ScanReport()
    for set_dir, images in sets.items():
        report.extend(scan_images(images, require_heading=set_dir.name == "train", progress=progress,
                                  workers=workers, desc=f"checking {set_dir}"))
    report.non_images = [(path, f"not an image ({path.suffix or 'no extension'}); ignored") for path in walk.others]
    report.symlink_loops = walk.loops
    report.unreadable.extend(walk.unreadable)
    report.layout = _layout_problems(walk.folders, sets)
    if not walk.images:
        report.layout.append((folder, f"holds no image ({', '.join(IMAGE_EXTENSIONS)}) at any depth"))
    return report
