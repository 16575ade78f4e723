"""An HTML map of one geolocated photo: its true position when known, the prediction, the top-k.

The file is self-contained: Leaflet (vendored under `leaflet/`, BSD-2 licence beside it) and the drawing script
(`place_map.js`, shared with the page of `cosplace-xs serve`) are inlined, so it opens without network. Map tiles
load when the browser is online; offline, the background stays blank and the database positions, when given,
trace the streets.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cosplace_xs.atomic_files import write_text_atomic

LatLon = tuple[float, float]
LEAFLET_DIR = Path(__file__).with_name("leaflet")  # leaflet.js, leaflet.css, images/ of Leaflet 1.9.4
PLACE_MAP_JS = Path(__file__).with_name("place_map.js")
PAGE_STYLE = ("html,body{height:100%;margin:0;font-family:sans-serif}h4{margin:0;padding:6px 8px;height:20px;"
              "overflow:hidden;white-space:nowrap;text-overflow:ellipsis}#map{position:absolute;top:32px;bottom:0;"
              "left:0;right:0;background:#f4f4f0}.rank-label{background:none;border:none;box-shadow:none;"
              "color:#fff;font-weight:bold;padding:0}")


def script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element: no `<`, `>` or `&` that HTML would read."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def map_page(data: dict[str, Any], title: str) -> str:
    """A whole HTML page drawing `data` (see place_map.js) with Leaflet inlined."""
    leaflet_css = (LEAFLET_DIR / "leaflet.css").read_text()
    leaflet_js = (LEAFLET_DIR / "leaflet.js").read_text()
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>\n"
            f"<style>{leaflet_css}</style>\n<style>{PAGE_STYLE}</style></head>\n"
            f"<body><h4>{html.escape(title)}</h4><div id=\"map\"></div>\n"
            f"<script>{leaflet_js}</script>\n<script>{PLACE_MAP_JS.read_text()}</script>\n"
            f"<script>drawPlaceMap(document.getElementById(\"map\"), {script_json(data)});</script>\n"
            "</body></html>\n")


def save_result_map(path: Path, predicted: LatLon, matches: Sequence[LatLon | None], labels: Sequence[str],
                    true_position: LatLon | None = None, title: str = "",
                    database: Sequence[LatLon] = ()) -> Path:
    """Markers for the true position (green), the prediction (red) and each match (blue, numbered, labelled with
    `labels`; those without a lat/lon left out), a line from the truth to the prediction, the `database`
    positions as grey dots, the view fitted to the markers."""
    assert len(matches) == len(labels), "one label per match"
    data = {
        "crs": "latlon",
        "database": [list(point) for point in database],
        "matches": [{"at": list(position), "rank": rank, "label": label}
                    for rank, (position, label) in enumerate(zip(matches, labels, strict=True), start=1)
                    if position is not None],
        "prediction": {"at": list(predicted), "label": f"prediction {predicted[0]:.6f}, {predicted[1]:.6f}"},
        "truth": None if true_position is None else {
            "at": list(true_position), "label": f"true position {true_position[0]:.6f}, {true_position[1]:.6f}"},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, map_page(data, title))
    return path
