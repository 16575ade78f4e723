"""The page of `serve` in a real headless browser (Debian's chromium driven by Playwright), with the network cut:
a synthetic query uploaded, its answer drawn (prediction, matches, truth, the top-k thumbnails); and the map file
of `predict --map` drawn without network."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from helpers import write_test_set, write_tiny_checkpoint

from cosplace_xs.config import InferenceConfig, ServeConfig
from cosplace_xs.predict import Predictor
from cosplace_xs.visualize.result_map import save_result_map
from cosplace_xs.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
K = 3

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -e '.[dev]'")
if not CHROMIUM.is_file():
    pytest.skip("no browser: /usr/bin/chromium is missing and scripts/setup.sh could not install it (apt-get install "
                "chromium needs root)", allow_module_level=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app on a free port of 127.0.0.1, and the query folder of its test set."""
    root = tmp_path_factory.mktemp("serve_browser")
    write_tiny_checkpoint(root / "run.pt")
    write_test_set(root / "set", [(0.0, 0.0), (30.0, 0.0), (60.0, 0.0), (0.0, 40.0), (30.0, 40.0)], [(2.0, 0.0)],
                   size=32)
    predictor = Predictor.open(root / "run.pt", root / "set" / "database",
                               InferenceConfig(device="cpu", num_workers=0), {}, K, progress=False)
    server = uvicorn.Server(uvicorn.Config(create_app(predictor, ServeConfig(k=K)), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.02)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", root / "set" / "queries"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def offline_page(browser: object, allowed: str):
    """A page whose requests fail unless they go to `allowed` (the network cut), and the URLs it tried."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    tried: list[str] = []

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith(allowed) or url.startswith(("data:", "blob:")):
            request_route.continue_()
        else:
            tried.append(url)
            request_route.abort()

    page.route("**/*", route)
    return page, tried


def test_uploaded_query_is_drawn_offline(browser: object, site: tuple[str, Path], tmp_path: Path) -> None:
    url, queries = site
    page, tried = offline_page(browser, url)
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    page.set_input_files("#photo-input", str(next(queries.iterdir())))
    page.wait_for_selector(".result path.marker-prediction", state="attached", timeout=20_000)
    page.wait_for_function("[...document.querySelectorAll('.result .match img')].every(i => i.naturalWidth > 0)")
    assert page.locator(".result path.marker-prediction").count() == 1
    assert page.locator(".result path.marker-truth").count() == 1
    assert page.locator(".result path.marker-match").count() == K
    assert page.locator(".result .match img").count() == K
    assert page.locator(".result .leaflet-control-scale-line").count() == 1
    assert page.locator(".result .verdict").inner_text().endswith(" m off")
    assert page.locator("#status").inner_text().startswith("1 photo geolocated in ")
    page.screenshot(path=tmp_path / "serve_page.png", full_page=True)
    assert (tmp_path / "serve_page.png").stat().st_size > 10_000
    assert all(tile.startswith("https://tile.openstreetmap.org/") for tile in tried)  # only tiles left the app
    page.close()


def test_map_file_draws_without_network(browser: object, tmp_path: Path) -> None:
    path = save_result_map(tmp_path / "map.html", (37.775123, -122.418456), [(37.775123, -122.418456),
                           (37.776001, -122.419002)], ["#1", "#2"], true_position=(37.775900, -122.417700),
                           title="photo.png", database=[(37.7751, -122.4184), (37.7752, -122.4186)])
    page, tried = offline_page(browser, path.as_uri())
    page.goto(path.as_uri())
    page.wait_for_selector("path.marker-prediction", state="attached")
    assert page.locator("path.marker-match").count() == 2
    assert page.locator("path.marker-truth").count() == 1
    assert page.locator(".leaflet-control-scale-line").count() == 1
    assert all(tile.startswith("https://tile.openstreetmap.org/") for tile in tried)
    page.close()
