"""Every dataset layout the VPR ecosystem ships gives `eval` the same Recall@N as our own layout.

One small test set (10 database images 50 m apart, 5 queries 3 m from one of them, 16 px) is written once, in
our layout as JPEG, and rearranged into each other layout; one tiny checkpoint scores them all.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import INFERENCE_FLAGS, encoded_index, run_main, the_error, write_test_set, write_tiny_checkpoint
from PIL import Image

from cosplace_xs.data.images import read_image
from cosplace_xs.data.names import parse_name

DATABASE = [(50.0 * i, 0.0) for i in range(10)]
QUERIES = [(3.0, 0.0), (103.0, 0.0), (197.0, 0.0), (303.0, 0.0), (447.0, 0.0)]  # 3 m from one, >= 47 m from others
RECALLS = ("R@1", "R@5", "R@10", "R@20")


def _copy_set(source: Path, target: Path, rename=lambda name: name, convert=None) -> Path:
    """`source/{database,queries}` copied to `target/{database,queries}`, names through `rename`."""
    for folder in ("database", "queries"):
        (target / folder).mkdir(parents=True)
        for image in sorted((source / folder).iterdir()):
            destination = target / folder / rename(image.name)
            if convert is None:
                shutil.copyfile(image, destination)
            else:
                convert(image, destination)
    return target


def _as_png(source: Path, target: Path) -> None:
    """The pixels the project decodes from `source`, losslessly as PNG."""
    Image.fromarray(read_image(source).permute(1, 2, 0).numpy()).save(target, format="PNG")


def _as_jpeg(source: Path, target: Path) -> None:
    """A JPEG of seeded noise for the image `source` encodes: a random network tells noise images apart far
    better than the flat colours, so no ranking hangs on the last bit of a descriptor."""
    noise = np.random.default_rng(encoded_index(source)).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(noise).save(target, format="JPEG", quality=95)


def _utm_only(name: str) -> str:
    parsed = parse_name(name)
    return f"@{parsed.utm_east:.2f}@{parsed.utm_north:.2f}@@@@@@@@@@@@@.jpg"


def _lat_lon_only(name: str) -> str:
    parsed = parse_name(name)
    return f"@@@@@{parsed.lat:.6f}@{parsed.lon:.6f}@@@@@@@@@.jpg"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/ours/test (JPEG, our layout) and every other layout under root/, a checkpoint in root/model/."""
    root = tmp_path_factory.mktemp("layouts")
    write_tiny_checkpoint(root / "model" / "best.pt")
    png = write_test_set(root / "png_source", DATABASE, QUERIES, size=16)
    sets = root / "sets"
    ours = _copy_set(png, sets / "ours" / "test", lambda name: name.replace(".png", ".jpg"), _as_jpeg)
    shutil.rmtree(png)
    _copy_set(ours, sets / "datasets" / "mini" / "images" / "test")
    _copy_set(ours, sets / "png" / "test", lambda name: name.replace(".jpg", ".png"), _as_png)
    _copy_set(ours, sets / "jpeg" / "test", lambda name: name.replace(".jpg", ".jpeg"))
    _copy_set(ours, sets / "utm_only" / "test", _utm_only)
    _copy_set(ours, sets / "lat_lon_only" / "test", _lat_lon_only)
    listed = _copy_set(ours, sets / "listed" / "test")
    for folder in ("database", "queries"):
        names = sorted(path.name for path in (listed / folder).iterdir())
        (listed / f"{folder}_images_paths.txt").write_text("".join(f"{name}\n" for name in names))
    # a far database image the list leaves out: read, it would change the database count
    shutil.copyfile(next((listed / "database").iterdir()), listed / "database" / "@0560000.00@4190000.00@.jpg")
    sfxl = sets / "sf_xl_like" / "test"
    shutil.copytree(ours / "database", sfxl / "database")
    shutil.copytree(ours / "queries", sfxl / "queries_v2")
    (sfxl / "queries_v1").mkdir()
    shutil.copyfile(next((ours / "queries").iterdir()), sfxl / "queries_v1" / "@0551000.00@4182000.00@.jpg")
    _copy_set(ours, root / "mine", lambda name: name)
    return root


def _eval(layouts: Path, capsys, out: str, *argv: str) -> dict[str, dict]:
    """`cosplace-xs eval ARGV` with the tiny checkpoint: its rows by test set name."""
    code, printed, err = run_main(["eval", "--checkpoint", str(layouts / "model"), "--out", str(layouts / out),
                                   *INFERENCE_FLAGS, *argv], capsys)
    assert code == 0, err
    (result,) = (layouts / out).glob("eval-*.json")
    rows = {row["test_set"]: row for row in json.loads(result.read_text())["results"]}
    table = printed.splitlines()
    assert [line.split()[0] for line in table[1:len(rows) + 1]] == list(rows)  # the table printed: a row a set
    return rows


def _scores(row: dict) -> tuple:
    return (*(row[name] for name in RECALLS), row["database"], row["queries"])


def test_every_layout_under_a_root_gives_the_recalls_of_our_layout(layouts: Path, capsys) -> None:
    rows = _eval(layouts, capsys, "root", "--datasets-root", str(layouts / "sets"), "--queries-folder",
                 "queries_v2")
    assert sorted(rows) == ["datasets/mini/images/test", "jpeg/test", "lat_lon_only/test", "listed/test",
                            "ours/test", "png/test", "sf_xl_like/test", "utm_only/test"]
    native = _scores(rows["ours/test"])
    assert native[2:] == (100.0, 100.0, 10, 5)  # R@10 and R@20: every query's positive is among 10
    assert {name: _scores(row) for name, row in rows.items()} == {name: native for name in rows}


def test_the_downloaders_root_two_folders_and_queries_v1_are_read(layouts: Path, capsys) -> None:
    native = _scores(_eval(layouts, capsys, "native", str(layouts / "sets" / "ours"))["ours"])
    rows = _eval(layouts, capsys, "others", str(layouts / "sets" / "datasets" / "mini"), "--database",
                 str(layouts / "mine" / "database"), "--queries", str(layouts / "mine" / "queries"))
    assert {name: _scores(row) for name, row in rows.items()} == {"mini": native, "mine": native}
    (row,) = _eval(layouts, capsys, "v1", str(layouts / "sets" / "sf_xl_like" / "test")).values()
    assert (row["test_set"], row["queries"]) == ("sf_xl_like/test", 1)  # queries_v1 by default, as the official code


def test_database_without_queries_is_refused_naming_both_flags(layouts: Path, capsys) -> None:
    code, _, err = run_main(["eval", "--checkpoint", str(layouts / "model"), "--database",
                             str(layouts / "mine" / "database"), *INFERENCE_FLAGS], capsys)
    assert (code, the_error(err)) == (2, "error: option --database needs --queries too: the database and the "
                                         "queries folder of one test set")
