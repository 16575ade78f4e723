"""A check that found no problem is remembered: the same files are not decoded again at the next start; a changed
file, other options or a problem make the next start check them again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import image_file_name, write_image

from cosplace_xs.data import scan_cache
from cosplace_xs.data.scan import scan_images
from cosplace_xs.training import setup


@pytest.fixture
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    return [write_image(tmp_path / "train" / image_file_name(10.0 * i, 20.0, 90.0)) for i in range(3)]


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of images of each real check that `checked_images` runs."""
    counted: list[int] = []

    def counting(paths: list[Path], **options: object) -> object:
        counted.append(len(paths))
        return scan_images(paths, **options)

    monkeypatch.setattr(setup, "scan_images", counting)
    return counted


def _check(paths: list[Path], require_heading: bool = True, max_pixels: int = 10**6):
    return setup.checked_images(paths, "checking", False, max_pixels, require_heading=require_heading)


def test_the_key_follows_the_files_and_the_options(images: list[Path]) -> None:
    key = scan_cache.scan_key(images, True, 100)
    assert key == scan_cache.scan_key(list(images), True, 100)
    assert len({key, scan_cache.scan_key(images, False, 100), scan_cache.scan_key(images, True, 101),
                scan_cache.scan_key(images[:2], True, 100)}) == 4
    stat = images[0].stat()
    os.utime(images[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert scan_cache.scan_key(images, True, 100) != key
    assert scan_cache.scan_key([*images, images[0].with_name("missing.jpg")], True, 100) is None


def test_files_checked_clean_are_not_decoded_again_until_one_changes(images: list[Path], scans: list[int]) -> None:
    first = _check(images)
    second = _check(images)
    assert scans == [3]  # the second start read no image
    assert (first.scanned, first.num_errors, second.scanned, second.num_errors) == (3, 0, 3, 0)
    _check(images, require_heading=False)  # other options: checked again
    write_image(images[1], size=40)  # another image under the same name
    _check(images)
    assert scans == [3, 3, 3]


def test_files_with_a_problem_are_checked_at_every_start(images: list[Path], scans: list[int]) -> None:
    images[2].write_bytes(b"not an image")
    assert _check(images).num_errors == 1
    assert _check(images).num_errors == 1
    assert scans == [3, 3]


def test_the_check_runs_without_deterministic_algorithms_and_restores_them(images: list[Path],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU run turns them on before the check; its forked workers inherited them and hung on 224 px images."""
    import torch

    seen: list[bool] = []

    def recording(paths: list[Path], **options: object) -> object:
        seen.append(torch.are_deterministic_algorithms_enabled())
        return scan_images(paths, **options)

    monkeypatch.setattr(setup, "scan_images", recording)
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        _check(images)
        assert seen == [False]
        assert (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) \
            == (True, True)
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
