"""An HTML map (folium) of one geolocated photo: its true position when known, the prediction, the top-k.

Writing the file needs no network; the map tiles load when the file is opened in a browser.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import folium

LatLon = tuple[float, float]


def save_result_map(path: Path, predicted: LatLon, matches: Sequence[LatLon | None], labels: Sequence[str],
                    true_position: LatLon | None = None, title: str = "") -> Path:
    """Markers for the true position (green), the prediction (red) and each match (blue circles labelled with
    `labels`), a line from the truth to the prediction, the view fitted to all of them."""
    assert len(matches) == len(labels), "one label per match"
    view = folium.Map(location=predicted, zoom_start=17, tiles="OpenStreetMap", control_scale=True)
    if title:
        view.get_root().html.add_child(folium.Element(f"<h4 style='margin:4px'>{html.escape(title)}</h4>"))
    points = [predicted]
    for position, label in zip(matches, labels, strict=True):
        if position is not None:
            folium.CircleMarker(position, radius=6, color="#2860c8", fill=True, fill_opacity=0.7,
                                tooltip=label).add_to(view)
            points.append(position)
    folium.Marker(predicted, tooltip=f"prediction {predicted[0]:.6f}, {predicted[1]:.6f}",
                  icon=folium.Icon(color="red", icon="screenshot")).add_to(view)
    if true_position is not None:
        folium.Marker(true_position, tooltip=f"true position {true_position[0]:.6f}, {true_position[1]:.6f}",
                      icon=folium.Icon(color="green", icon="ok")).add_to(view)
        folium.PolyLine([true_position, predicted], color="#444444", weight=2, dash_array="6").add_to(view)
        points.append(true_position)
    if len(points) > 1:
        view.fit_bounds([[min(p[0] for p in points), min(p[1] for p in points)],
                         [max(p[0] for p in points), max(p[1] for p in points)]], max_zoom=18)
    path.parent.mkdir(parents=True, exist_ok=True)
    view.save(str(path))
    return path
