"""The published sizes of the well-known test sets, and how a folder's path names one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosplace_xs.data.published_sizes import PUBLISHED_SETS, compare_counts, published_set


@pytest.mark.parametrize(("folder", "name"), [
    ("data/sf_xs/test", "SF-XS test"),
    ("datasets/SF-XS/images/test", "SF-XS test"),
    ("data/sf_xs/val", None),  # SF-XS val is not among the published sizes
    ("datasets/tokyo_xs/images/test", "Tokyo-XS test"),
    ("datasets/pitts30k/images/test", "Pitts30k test"),
    ("datasets/pitts30k/images/val", None),
    ("datasets/msls/images/val", "MSLS val"),
    ("datasets/tokyo247/images/test", "Tokyo 24/7 test"),
    ("datasets/Tokyo-24-7/images/test", "Tokyo 24/7 test"),
    ("datasets/sf_xl/images/test", None),
    ("test", None),
])
def test_a_test_set_folder_is_known_by_the_names_in_its_path(folder: str, name: str | None) -> None:
    known = published_set(Path("/home/me") / folder)
    assert (known.name if known else None) == name


def test_the_tokyo_xs_of_a_synthetic_city_is_not_taken_for_the_real_one(tmp_path: Path) -> None:
    """A city `synth` wrote keeps its small stand-in for Tokyo-XS under tokyo_xs/test: no truncated download."""
    test_dir = tmp_path / "city" / "tokyo_xs" / "test"
    test_dir.mkdir(parents=True)
    assert published_set(test_dir).name == "Tokyo-XS test"
    (tmp_path / "city" / "city.json").write_text("{}")
    assert published_set(test_dir) is None


def test_the_published_sizes_are_those_of_the_papers() -> None:
    assert {known.name: (known.queries, known.database) for known in PUBLISHED_SETS} == {
        "SF-XS test": (1_000, 27_191), "Tokyo-XS test": (315, 12_771), "Pitts30k test": (6_816, 10_000),
        "MSLS val": (740, 18_871), "Tokyo 24/7 test": (315, 75_984)}


def test_counts_are_as_published_truncated_or_more() -> None:
    (sf_xs, *_) = PUBLISHED_SETS
    assert compare_counts(sf_xs, 1_000, 27_191) == (True, "SF-XS test: 1,000 queries and 27,191 database images, "
                                                          "as published")
    same, sentence = compare_counts(sf_xs, 1_000, 27_000)
    assert (same, sentence.endswith("this copy 1,000 queries and 27,000 database images: the download looks "
                                    "truncated; download it again (or unpack it again) and check once more")) == (
        False, True)
    assert compare_counts(sf_xs, 1_001, 27_191)[1].endswith(": more than published; other images were added to "
                                                            "it, or this is another dataset named like it")
