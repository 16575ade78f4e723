"""The web app of `serve`: predictions for uploads equal `predict`'s, refused uploads and requests get a 4xx JSON
answer naming the problem, nothing is written outside the upload folder, concurrent requests are answered right,
and the database descriptors are extracted once."""

from __future__ import annotations

import json
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from helpers import write_test_set, write_tiny_checkpoint

from cosplace_xs.config import InferenceConfig, ServeConfig
from cosplace_xs.predict import Predictor, cached_store_path
from cosplace_xs.web.app import create_app
from cosplace_xs.web.failures import score_queries

DATABASE = [(0.0, 0.0), (30.0, 0.0), (60.0, 0.0), (90.0, 0.0), (0.0, 40.0), (30.0, 40.0)]
QUERIES = [(2.0, 0.0), (61.0, 3.0)]
K = 3


@dataclass
class Served:
    root: Path
    predictor: Predictor
    uploads: Path
    client: TestClient
    queries: list[Path]


def open_predictor(root: Path) -> Predictor:
    return Predictor.open(root / "run.pt", root / "set" / "database", InferenceConfig(device="cpu", num_workers=0),
                          {}, K, progress=False, cache_dir=root / "cache")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve")
    write_tiny_checkpoint(root / "run.pt")
    write_test_set(root / "set", DATABASE, QUERIES, size=32)
    predictor = open_predictor(root)
    queries = sorted((root / "set" / "queries").iterdir())
    scored = score_queries(predictor, "set", queries, (1, 2))
    (root / "uploads").mkdir()
    app = create_app(predictor, ServeConfig(k=K, max_upload_mb=0.05, max_photos=4), scored, upload_dir=root / "uploads")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Served(root, predictor, root / "uploads", client, queries)


def expected(served: Served, *photos: Path) -> list[dict]:
    """What `predict` writes to predictions.json for `photos` (one batch), under the photos' own names."""
    predictions = served.predictor(list(photos))
    return json.loads(json.dumps([replace(p, query=Path(p.query.name)).to_dict() for p in predictions]))


def post(client: TestClient | httpx.Client, *files: tuple[str, bytes]) -> httpx.Response:
    return client.post("/api/predict", files=[("photos", (name, data, "application/octet-stream"))
                                              for name, data in files])


def png_header(width: int, height: int) -> bytes:
    """The first bytes of a PNG that declares width x height pixels (a decompression bomb when large)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + header
            + struct.pack(">I", zlib.crc32(b"IHDR" + header)))


def test_upload_is_answered_as_predict_answers(served: Served) -> None:
    photo = served.queries[0]
    response = post(served.client, (photo.name, photo.read_bytes()))
    assert response.status_code == 200
    answer = response.json()
    assert answer == expected(served, photo)
    assert answer[0]["query"] == photo.name
    assert [m["rank"] for m in answer[0]["matches"]] == [1, 2, 3]
    assert answer[0]["true_utm"] == [551_002.0, 4_182_000.0]  # read from the uploaded name
    assert list(served.uploads.iterdir()) == []  # the upload's folder went with its request


def test_several_photos_in_one_upload_keep_their_order(served: Served) -> None:
    photos = [served.queries[1], served.queries[0]]
    response = post(served.client, *((p.name, p.read_bytes()) for p in photos))
    assert response.status_code == 200
    assert response.json() == expected(served, *photos)


def test_a_name_with_folders_is_stored_by_its_last_part(served: Served) -> None:
    photo = served.queries[0]
    response = post(served.client, ("../../" + photo.name, photo.read_bytes()))
    assert response.status_code == 200
    assert response.json() == expected(served, photo)
    assert not (served.root / photo.name).exists() and list(served.uploads.iterdir()) == []


@pytest.mark.parametrize(("name", "data", "status", "message"), [
    ("notes.jpg", b"hello, not a photo", 415, "notes.jpg: not an image this page can read; upload a JPEG or PNG "
                                              "photo"),
    ("empty.png", b"", 400, "empty.png: empty file (0 bytes); choose the photo again"),
    ("big.png", png_header(64, 64) + bytes(60_000), 413,
     "big.png: larger than 0.05 MB, the largest photo this page accepts; downscale it, or restart serve with a "
     "larger --max-upload-mb"),
    ("bomb.png", png_header(100_000, 100_000), 413,
     "bomb.png: 100000 x 100000 pixels (10000.0 megapixels), above the limit of 40 megapixels (a decompression "
     "bomb or a huge image); downscale it, remove it, or raise --max-image-pixels"),
])
def test_refused_upload_says_why(served: Served, name: str, data: bytes, status: int, message: str) -> None:
    response = post(served.client, (served.queries[0].name, served.queries[0].read_bytes()), (name, data))
    assert (response.status_code, response.json()) == (status, {"error": message})
    assert list(served.uploads.iterdir()) == []


def test_too_many_photos_and_too_large_a_body_are_refused(served: Served) -> None:
    photo = served.queries[0]
    response = post(served.client, *[(photo.name, photo.read_bytes())] * 5)
    assert (response.status_code, response.json()) == (413, {"error": "5 photos in one upload, above the limit of 4; "
                                                                      "send fewer, or restart serve with a larger "
                                                                      "--max-photos"})
    response = post(served.client, ("huge.jpg", bytes(1_300_000)))
    assert (response.status_code, response.json()) == (413, {"error": "request of 1.3 MB, above this page's limit "
                                                                      "of 4 photos of 0.05 MB"})


def test_malformed_requests_get_a_json_4xx(served: Served) -> None:
    response = served.client.post("/api/predict", json={"photos": "x"})
    assert response.status_code == 422 and response.json()["error"].startswith("malformed request (body.photos")
    response = served.client.get("/api/queries", params={"n": "many"})
    assert response.status_code == 422 and response.json()["error"].startswith("malformed request (query.n")
    assert served.client.get("/api/queries", params={"n": 7}).json() == {
        "error": "n=7: choose one of the N of Recall@N, [1, 2]"}


@pytest.mark.parametrize("url", ["/api/thumbnail/..%2F..%2Frun.pt", "/api/thumbnail/-1", "/api/thumbnail/6",
                                 "/static/..%2F..%2Frun.pt", "/static/../../../pyproject.toml",
                                 "/leaflet/%2E%2E/result_map.py"])
def test_no_file_but_the_database_images_and_the_page_is_served(served: Served, url: str) -> None:
    response = served.client.get(url)
    assert 400 <= response.status_code < 500 and "error" in response.json()


def test_thumbnail_is_the_database_image_of_that_index(served: Served) -> None:
    database = served.predictor.database.paths
    assert served.client.get("/api/thumbnail/4").content == database[4].read_bytes()
    assert served.client.get("/api/thumbnail/6").json() == {"error": "no database image #6: there are 6, numbered 0 "
                                                                     "to 5"}


def test_failure_browser_splits_queries_into_hits_and_misses(served: Served) -> None:
    answers = {outcome: served.client.get("/api/queries", params={"n": 2, "outcome": outcome}).json()
               for outcome in ("all", "hit", "miss")}
    rows = answers["all"]["queries"]
    assert [row["index"] for row in rows] == [0, 1] and answers["all"]["total"] == 2
    for row in rows:  # right at 2: one of the first two matches within 25 m of the truth
        assert row["hit"] == any(m["error_m"] <= 25.0 for m in row["prediction"]["matches"][:2])
    assert [r["index"] for r in answers["hit"]["queries"]] == [r["index"] for r in rows if r["hit"]]
    assert [r["index"] for r in answers["miss"]["queries"]] == [r["index"] for r in rows if not r["hit"]]
    assert answers["all"]["recall"] == 50.0 * sum(row["hit"] for row in rows)


def test_database_descriptors_are_extracted_once(served: Served) -> None:
    store = served.predictor.database
    cached = cached_store_path(served.root / "cache", served.root / "set" / "database", list(store.paths),
                               store.signature)
    assert store.source == cached
    again = open_predictor(served.root)
    assert again.database.source == cached and (again.database.descriptors == store.descriptors).all()


def test_twenty_concurrent_requests_are_all_answered_right(served: Served) -> None:
    answers = {photo: expected(served, photo) for photo in served.queries}
    config = uvicorn.Config(served.client.app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        photos = [served.queries[i % 2] for i in range(20)]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client, ThreadPoolExecutor(20) as pool:
            responses = list(pool.map(lambda p: post(client, (p.name, p.read_bytes())), photos))
    finally:
        server.should_exit = True
        thread.join(10)
    assert [r.status_code for r in responses] == [200] * 20
    assert [r.json() for r in responses] == [answers[photo] for photo in photos]
