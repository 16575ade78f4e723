"""Uploaded photos: refused unless each is an image of acceptable size, then written into a temporary folder.

Nothing of an upload's name reaches the file system but its last component (so `../../x.jpg` becomes `x.jpg`),
which keeps the dataset-format names that carry a photo's true position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cosplace_xs.config import ServeConfig
from cosplace_xs.data.images import check_pixels, decode
from cosplace_xs.errors import BadImageError, CosplaceError
from cosplace_xs.options import flag_of

MAX_NAME_BYTES = 200  # file systems allow 255 bytes a name; dataset-format names run to about 150


class UploadError(CosplaceError):
    """An upload the page cannot use: `status` is the HTTP status to answer, the message says why and what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name the browser gave and a stream of its bytes."""

    name: str
    stream: BinaryIO


def safe_name(name: str, index: int) -> str:
    """The last component of an uploaded file name, or `photo-<index>` where it is empty, odd or too long."""
    last = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if last in ("", ".", "..") or "\0" in last or len(last.encode()) > MAX_NAME_BYTES:
        return f"photo-{index}"
    return last


def read_checked(upload: Upload, max_bytes: int, max_pixels: int) -> bytes:
    """The bytes of an uploaded photo, or UploadError: empty, above `max_bytes`, above `max_pixels` (read from
    the header: a decompression bomb is never decoded), or not an image."""
    data = upload.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadError(413, f"{upload.name}: larger than {max_bytes / 1e6:g} MB, the largest photo this page "
                                 f"accepts; downscale it, or restart serve with a larger "
                                 f"{flag_of(ServeConfig, 'max_upload_mb')}")
    if not data:
        raise UploadError(400, f"{upload.name}: empty file (0 bytes); choose the photo again")
    try:
        check_pixels(upload.name, data, max_pixels)
    except BadImageError as error:
        raise UploadError(413, str(error)) from None
    try:
        decode(upload.name, data, max_pixels)
    except BadImageError:
        raise UploadError(415, f"{upload.name}: not an image this page can read; upload a JPEG or PNG "
                                 "photo") from None
    return data


def save_uploads(uploads: list[Upload], folder: Path, limits: ServeConfig, max_pixels: int) -> list[Path]:
    """Check every upload, then write each into its own sub-folder of `folder` (two photos may share a name)."""
    if not uploads:
        raise UploadError(400, "no photo in the request; send one or more files in the form field `photos`")
    if len(uploads) > limits.max_photos:
        raise UploadError(413, f"{len(uploads)} photos in one upload, above the limit of {limits.max_photos}; "
                                 f"send fewer, or restart serve with a larger {flag_of(ServeConfig, 'max_photos')}")
    max_bytes = int(limits.max_upload_mb * 1e6)
    contents = [read_checked(upload, max_bytes, max_pixels) for upload in uploads]
    paths = []
    for index, (upload, data) in enumerate(zip(uploads, contents, strict=True)):
        path = folder / str(index) / safe_name(upload.name, index)
        path.parent.mkdir()
        path.write_bytes(data)
        paths.append(path)
    return paths
