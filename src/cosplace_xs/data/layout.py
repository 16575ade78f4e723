"""Dataset folders as users have them: `<root>/train`, `<root>/{val,test}/{database,queries}`, the VPR dataset
downloader's `datasets/<name>/images/{train,val,test}/{database,queries}`, or any two folders.

A file `<folder>_images_paths.txt` beside an image folder is read instead of walking the folder (see
`data/paths_files.py`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cosplace_xs.config import QUERIES_FOLDERS
from cosplace_xs.data.images import special_file_kind
from cosplace_xs.data.names import IMAGE_EXTENSIONS
from cosplace_xs.data.paths_files import paths_file, read_paths_file, write_image_list
from cosplace_xs.errors import DatasetLayoutError

log = logging.getLogger(__name__)

QUERY_FOLDER_NAMES = ("queries", "queries_v1")  # read by default, in this order; queries_v2 when asked for
SET_FOLDER_NAMES = ("train", "database", *QUERIES_FOLDERS)  # each holds one set of images
DOWNLOADER_FOLDER = "images"  # the VPR dataset downloader's datasets/<name>/images/<split>/
MAX_SEARCH_DEPTH = 6  # folders below a datasets root looked into for test sets


@dataclass(frozen=True)
class TestSetPaths:
    """A retrieval test set: a database folder and a queries folder."""

    name: str
    database_dir: Path
    queries_dir: Path


@dataclass(frozen=True)
class DatasetPaths:
    """The folders of a dataset root; any of them may be absent."""

    root: Path
    train_dir: Path | None
    val: TestSetPaths | None
    test: TestSetPaths | None


Problem = tuple[Path, str]


@dataclass
class Listing:
    """What a folder holds, as every command reads it: images, other files, and what was refused or skipped."""

    images: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)  # files with another extension
    folders: list[Path] = field(default_factory=list)
    refused_links: list[Problem] = field(default_factory=list)  # (link, why)
    special_files: list[Problem] = field(default_factory=list)  # FIFOs, sockets, devices named as images
    unreadable: list[Problem] = field(default_factory=list)  # folders that cannot be listed


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _link_problem(link: Path, folder: Path, real_folder: str) -> str | None:
    """Why a symbolic link met while reading `folder` is refused, or None: only links to files inside it are
    followed, as a link to anywhere else could make test images training images (and a folder link inside it
    would list its images twice)."""
    target = os.path.realpath(link)
    if not os.path.lexists(target) or not os.path.exists(link):
        return None  # a broken link: reported as an unreadable image, not as a leak
    if os.path.isdir(link):
        where = "inside it, whose images are read anyway" if _is_within(target, real_folder) else "outside it"
        return (f"symbolic link to the folder {target}, {where}; only links to single files inside {folder} are "
                "followed: copy or move the images into the folder, or remove the link")
    if not _is_within(target, real_folder):
        return (f"symbolic link to {target}, outside {folder} (it could leak another set's images into this "
                "one); copy the file in or remove the link")
    return None


def is_image_name(path: Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS, case_sensitive: bool = False) -> bool:
    """Whether the file's ending is one of `extensions` (compared case-insensitively unless `case_sensitive`:
    the official code's glob("*.jpg") skips photo.JPG)."""
    if case_sensitive:
        return path.suffix in extensions
    return path.suffix.lower() in {extension.lower() for extension in extensions}


def walk_folder(folder: str | Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
                case_sensitive: bool = False) -> Listing:
    """Every image (a file ending in one of `extensions`) and other file under `folder`, sorted by path: the one
    listing every command reads.

    Symbolic links are refused unless they lead to a file inside `folder`; FIFOs, sockets and devices named as
    images are skipped (reading one would wait forever)."""
    folder = Path(folder)
    real_folder = os.path.realpath(folder)
    listing = Listing()

    def unreadable(error: OSError) -> None:
        listing.unreadable.append((Path(error.filename), f"folder cannot be read ({error.strerror})"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable):
        directory = Path(dirpath)
        listing.folders.append(directory)
        dirnames.sort()
        for name in [name for name in dirnames if (directory / name).is_symlink()]:
            dirnames.remove(name)  # os.walk does not enter it; the link is refused below
            listing.refused_links.append((directory / name, _link_problem(directory / name, folder, real_folder)
                                          or "symbolic link to a folder; not followed"))
        for name in filenames:
            path = directory / name
            problem = _link_problem(path, folder, real_folder) if path.is_symlink() else None
            if problem is not None:
                listing.refused_links.append((path, problem))
            elif not is_image_name(path, extensions, case_sensitive):
                listing.others.append(path)
            elif (kind := _special_kind(path)) is not None:
                listing.special_files.append((path, f"{kind}, not an image file; skipped"))
            else:
                listing.images.append(path)
    for paths in (listing.images, listing.others):
        paths.sort(key=lambda p: p.as_posix())
    return listing


def _special_kind(path: Path) -> str | None:
    try:
        return special_file_kind(path.stat().st_mode)
    except OSError:
        return None  # missing or broken: its reading reports it


def refuse_links(listing: Listing, folder: Path, what: str) -> None:
    """DatasetLayoutError naming every refused symbolic link of a listing, if there is one."""
    if listing.refused_links:
        shown = "\n".join(f"  {link}: {problem}" for link, problem in listing.refused_links)
        raise DatasetLayoutError(f"{folder}: {len(listing.refused_links)} symbolic link(s) refused while reading "
                                 f"the {what}:\n{shown}")


def list_images(folder: str | Path, what: str = "images", extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
                case_sensitive: bool = False) -> list[Path]:
    """The images (ending in one of `extensions`: .jpg, .jpeg, .png by default, any depth) under `folder`,
    sorted by path; those listed in its `paths_file` where there is one (see `read_paths_file`).

    Raises DatasetLayoutError if the folder is missing, holds no image or a symbolic link that is refused
    (see `walk_folder`); warns about other files and skips FIFOs, sockets and devices, naming them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder}: folder of {what} not found; expected a folder of .jpg images")
    if paths_file(folder).is_file():
        listed = read_paths_file(folder, what)
        images = [path for path in listed if is_image_name(path, extensions, case_sensitive)]
        if len(images) < len(listed):
            log.warning("%s: ignored %d listed files that are not images (%s)", paths_file(folder),
                        len(listed) - len(images), ", ".join(extensions))
        if images:
            return images
        raise DatasetLayoutError(f"{paths_file(folder)}: lists no image ({', '.join(extensions)}); expected the "
                                 f"{what} of {folder}")
    listing = walk_folder(folder, extensions, case_sensitive)
    refuse_links(listing, folder, what)
    others = listing.others
    if others:
        shown = ", ".join(p.name for p in others[:5])
        log.warning("%s: ignored %d non-image files (%s%s)", folder, len(others), shown,
                    ", ..." if len(others) > 5 else "")
    for path, problem in listing.special_files:
        log.warning("%s: %s", path, problem)
    for path, problem in listing.unreadable:
        log.warning("%s: %s; its images are not listed", path, problem)
    if not listing.images:
        case = ", case-sensitive" if case_sensitive else ""
        raise DatasetLayoutError(
            f"{folder}: holds no image ({', '.join(extensions)}{case}); expected the {what} of the dataset"
        )
    return listing.images


def write_paths_file(folder: Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> tuple[Path, int]:
    """List the images under `folder`, walked (see `walk_folder`), in its `paths_file`; (the file, the number of
    images)."""
    listing = walk_folder(folder, extensions)
    refuse_links(listing, folder, "images")
    return write_image_list(folder, listing.images), len(listing.images)


def image_set_folders(root: Path) -> list[Path]:
    """The image-set folders (train/, database/, queries*/) under `root`, sorted, without looking into them; just
    `root` when it holds none (a plain folder of images)."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        found += [Path(dirpath) / name for name in dirnames if name in SET_FOLDER_NAMES]
        dirnames[:] = [name for name in dirnames if name not in SET_FOLDER_NAMES
                       and not (Path(dirpath) / name).is_symlink()]
    return found or [Path(root)]


def _queries_dir(folder: Path, queries_folder: str | None) -> Path | None:
    names = (queries_folder, *(name for name in QUERY_FOLDER_NAMES if name != queries_folder))
    for name in names if queries_folder else QUERY_FOLDER_NAMES:
        if (folder / name).is_dir():
            return folder / name
    return None


def find_test_set(path: str | Path, split: str = "test", queries_folder: str | None = None) -> TestSetPaths:
    """Resolve a test set given as `<set>/{database,queries}` or as a dataset root holding `<split>/`.

    The queries are `queries_folder` where the set has it (SF-XL's test set has queries_v1 and queries_v2; the
    official code tests on queries_v1), else `queries`, else `queries_v1`: a set with only `queries/` (Tokyo-XS)
    is still read."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetLayoutError(f"{path}: test set folder not found")
    for folder in (path, path / split, path / DOWNLOADER_FOLDER / split):
        queries = _queries_dir(folder, queries_folder)
        if (folder / "database").is_dir() and queries is not None:
            dataset = path.parent.parent if path.parent.name == DOWNLOADER_FOLDER else path.parent
            name = path.name if folder != path else f"{dataset.name}/{path.name}"
            return TestSetPaths(name=name.strip("/"), database_dir=folder / "database", queries_dir=queries)
    raise DatasetLayoutError(
        f"{path}: not a test set; expected the folders {path}/database and {path}/queries "
        f"(or {path}/{split}/database and {path}/{split}/queries)"
    )


def folders_as_test_set(database_dir: Path, queries_dir: Path) -> TestSetPaths:
    """A test set given as two folders, named after their common parent (or both folders' names)."""
    for folder, what, flag in ((database_dir, "database images", "--database"),
                               (queries_dir, "query images", "--queries")):
        if not folder.is_dir():
            raise DatasetLayoutError(f"{folder}: folder of {what} not found ({flag})")
    parents = {database_dir.absolute().parent, queries_dir.absolute().parent}
    name = parents.pop().name if len(parents) == 1 else f"{database_dir.name}+{queries_dir.name}"
    return TestSetPaths(name=name, database_dir=database_dir, queries_dir=queries_dir)


def find_test_sets(root: Path, queries_folder: str | None = None) -> list[TestSetPaths]:
    """Every test set (a folder holding database/ and a queries folder, see `find_test_set`) under `root`, in
    our layout or the downloader's, named by its path below `root` and sorted by it. Image-set folders are not
    looked into, so a database of millions of files costs nothing here."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: datasets folder not found")
    found = []

    def visit(folder: Path, depth: int) -> None:
        queries = _queries_dir(folder, queries_folder)
        if (folder / "database").is_dir() and queries is not None:
            name = folder.relative_to(root).as_posix()
            found.append(TestSetPaths(root.name if name == "." else name, folder / "database", queries))
            return
        if depth == MAX_SEARCH_DEPTH:
            return
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            log.warning("%s: folder cannot be read (%s); not searched for test sets", folder, error.strerror)
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and entry.name not in SET_FOLDER_NAMES:
                visit(Path(entry.path), depth + 1)

    visit(root, 0)
    if not found:
        raise DatasetLayoutError(f"{root}: no test set found under it (a folder holding database/ and queries/, "
                                 f"as DIR/test/ or datasets/NAME/{DOWNLOADER_FOLDER}/test/)")
    return sorted(found, key=lambda paths: paths.name)


def discover_dataset(root: str | Path) -> DatasetPaths:
    """Find the train, val and test folders of a dataset root (e.g. `sf_xs/`)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: dataset folder not found")
    train = root / "train"
    sets = {}
    for split in ("val", "test"):
        try:
            sets[split] = find_test_set(root / split) if (root / split).is_dir() else None
        except DatasetLayoutError:
            log.warning("%s/%s: present but without database/ and queries/; ignored", root, split)
            sets[split] = None
    paths = DatasetPaths(root=root, train_dir=train if train.is_dir() else None, **sets)
    if paths.train_dir is None and paths.val is None and paths.test is None:
        raise DatasetLayoutError(
            f"{root}: no train/, val/ or test/ folder; expected {root}/train/**.jpg and "
            f"{root}/{{val,test}}/{{database,queries}}/**.jpg"
        )
    return paths


def require_train_dir(paths: DatasetPaths) -> Path:
    """The train folder of a dataset, or an error saying where it was looked for."""
    if paths.train_dir is None:
        raise DatasetLayoutError(f"{paths.root}: no train/ folder; training needs {paths.root}/train/**.jpg")
    return paths.train_dir
