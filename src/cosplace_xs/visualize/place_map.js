/* One geolocated photo on a Leaflet map: the database positions (they trace the streets), the numbered matches,
 * the prediction and, when known, the true position, with a scale bar. Shared by the web page of `serve` and the
 * map files of `predict --map`.
 *
 * data = {crs: "latlon" | "metres", database: [[a, b], ...], matches: [{at: [a, b], rank, label}],
 *         prediction: {at, label}, truth: {at, label} | null}
 * where [a, b] is [lat, lon] for "latlon" and [north, east] (UTM metres) for "metres". With "latlon" the
 * usual map tiles load when the browser is online; without network, or in metres, the background stays blank
 * and the database positions alone draw the streets.
 */
"use strict";

function drawPlaceMap(element, data) {
  const metres = data.crs === "metres";
  // in metres the map works on offsets from one point: raw UTM northings (4e6) would cost precision at high zoom
  const origin = metres ? (data.database[0] || data.prediction.at) : [0, 0];
  const at = (point) => [point[0] - origin[0], point[1] - origin[1]];
  const map = L.map(element, metres ? {crs: L.CRS.Simple, minZoom: -12, maxZoom: 6, zoomSnap: 0.25}
                                    : {maxZoom: 19, zoomSnap: 0.25});
  if (!metres) {
    L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                {maxZoom: 19, attribution: "&copy; OpenStreetMap contributors"}).addTo(map);
  }
  L.control.scale({imperial: false, maxWidth: 160}).addTo(map);
  const streets = L.canvas({padding: 0.5});
  for (const point of data.database) {
    L.circleMarker(at(point), {renderer: streets, radius: 2, stroke: false, fillColor: "#8a8a8a", fillOpacity: 0.8,
                               interactive: false}).addTo(map);
  }
  const shown = [at(data.prediction.at)];
  for (const match of [...data.matches].reverse()) {  // the best match drawn last, on top
    L.circleMarker(at(match.at), {radius: 7, color: "#1f4fa8", weight: 2, fillColor: "#2860c8", fillOpacity: 0.75,
                                  className: "marker-match"})
      .bindPopup(match.label).addTo(map)
      .bindTooltip(String(match.rank), {permanent: true, direction: "center", className: "rank-label"});
    shown.push(at(match.at));
  }
  if (data.truth) {
    L.polyline([at(data.truth.at), at(data.prediction.at)], {color: "#444", weight: 2, dashArray: "6",
                                                             className: "marker-error-line"}).addTo(map);
    L.circleMarker(at(data.truth.at), {radius: 9, color: "#106b21", weight: 3, fillColor: "#2fb344",
                                       fillOpacity: 0.9, className: "marker-truth"})
      .bindTooltip(data.truth.label).addTo(map);
    shown.push(at(data.truth.at));
  }
  L.circleMarker(at(data.prediction.at), {radius: 10, color: "#8b0000", weight: 3, fillColor: "#e03131",
                                          fillOpacity: 0.6, className: "marker-prediction"})
    .bindTooltip(data.prediction.label).addTo(map);
  // the view: the prediction, its matches and the truth, with at least 60 m around them
  const bounds = L.latLngBounds(shown);
  const pad = metres ? 30 : 0.0003;
  map.fitBounds(bounds.pad(0.15).extend([bounds.getSouth() - pad, bounds.getWest() - pad])
                                 .extend([bounds.getNorth() + pad, bounds.getEast() + pad]));
  return map;
}
