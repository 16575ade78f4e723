/* The page of `cosplace-xs serve`: uploads photos to /api/predict and shows each answer (map, top-k, confidence,
 * truth); with a test set, lists its queries as hits or misses at N. Everything it loads comes from the app. */
"use strict";

let db = null;  // /api/database: paths, positions, k, radius, limits, test set
const indexOfPath = new Map();

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "className") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const metres = (value) => `${value.toFixed(1)} m`;
const utmText = (utm) => `UTM ${utm[0].toFixed(1)} E, ${utm[1].toFixed(1)} N`;
const latlonText = (latlon) => latlon ? `lat/lon ${latlon[0].toFixed(6)}, ${latlon[1].toFixed(6)}` : "lat/lon unknown";
const baseName = (path) => path.split("/").pop();

function mapPosition(utm, latlon) {
  if (db.crs === "latlon") return latlon;
  return [utm[1], utm[0]];
}

function placeMapData(prediction) {
  const database = db.crs === "latlon" ? db.latlon : db.utm.map((utm) => [utm[1], utm[0]]);
  const matches = prediction.matches.map((m) => ({
    at: mapPosition(m.utm, m.latlon), rank: m.rank,
    label: `#${m.rank} descriptor distance ${m.descriptor_distance.toFixed(3)}` +
           (m.error_m === null ? "" : `, ${m.error_m.toFixed(0)} m from the true position`),
  })).filter((m) => m.at);
  const truth = prediction.true_utm && mapPosition(prediction.true_utm, prediction.true_latlon);
  return {
    crs: db.crs, database, matches,
    prediction: {at: mapPosition(prediction.utm, prediction.latlon),
                 label: `prediction: ${utmText(prediction.utm)}, confidence ${prediction.confidence.toFixed(2)}`},
    truth: truth ? {at: truth, label: `true position: ${utmText(prediction.true_utm)}`} : null,
  };
}

function verdict(prediction) {
  if (prediction.error_m === null) {
    return element("span", {className: "verdict"}, "true position unknown (the file name carries none)");
  }
  const right = prediction.error_m <= db.radius;
  return element("span", {className: `verdict ${right ? "right" : "wrong"}`},
                 `${right ? "right" : "wrong"} at ${db.radius} m: ${metres(prediction.error_m)} off`);
}

function matchTile(match, prediction) {
  const index = indexOfPath.get(match.path);
  const kind = match.error_m === null ? "" : (match.error_m <= db.radius ? " right" : " wrong");
  const offset = `${(match.utm[0] - prediction.utm[0]).toFixed(0)} E ${(match.utm[1] - prediction.utm[1]).toFixed(0)} N m`;
  return element("figure", {className: `match${kind}`, "data-rank": String(match.rank)},
    element("img", {src: `/api/thumbnail/${index}`, alt: `match ${match.rank}: ${baseName(match.path)}`,
                    title: baseName(match.path)}),
    element("figcaption", {},
            `#${match.rank} d ${match.descriptor_distance.toFixed(3)}`, element("br"), utmText(match.utm),
            element("br"), match.error_m === null ? `${offset} from the prediction` : `${metres(match.error_m)} off`));
}

function showPrediction(prediction, file) {
  const mapBox = element("div", {className: "map"});
  const facts = element("div", {className: "facts"},
    element("div", {}, `prediction: ${utmText(prediction.utm)}, ${latlonText(prediction.latlon)}`),
    element("div", {}, `confidence ${prediction.confidence.toFixed(2)}`),
    element("div", {}, verdict(prediction)));
  if (prediction.in_database) {
    facts.append(element("div", {className: "error"},
                         "this photo is itself in the database: its match at distance 0 says nothing of the model"));
  }
  const card = element("article", {className: "result"},
    element("div", {className: "photo"}, element("img", {src: URL.createObjectURL(file), alt: file.name})),
    element("div", {}, element("h2", {}, prediction.query), facts, mapBox,
            element("div", {className: "matches"}, ...prediction.matches.map((m) => matchTile(m, prediction)))));
  document.getElementById("results").prepend(card);
  drawPlaceMap(mapBox, placeMapData(prediction));
}

async function upload(files) {
  const status = document.getElementById("status");
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("photos", file, file.name);
  status.className = "";
  status.textContent = `geolocating ${files.length} photo${files.length > 1 ? "s" : ""}...`;
  const started = performance.now();
  try {
    const response = await fetch("/api/predict", {method: "POST", body: form});
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    [...answer].reverse().forEach((prediction, i) => showPrediction(prediction, files[files.length - 1 - i]));
    status.textContent = `${answer.length} photo${answer.length > 1 ? "s" : ""} geolocated in ` +
                         `${((performance.now() - started) / 1000).toFixed(2)} s`;
  } catch (error) {
    status.className = "error";
    status.textContent = `error: ${error.message}`;
  }
}

async function showQueries() {
  const n = document.getElementById("filter-n").value;
  const outcome = document.getElementById("filter-outcome").value;
  const response = await fetch(`/api/queries?n=${n}&outcome=${outcome}`);
  const answer = await response.json();
  const list = document.getElementById("query-list");
  list.replaceChildren();
  if (!response.ok) { list.append(element("p", {className: "error"}, answer.error)); return; }
  document.getElementById("query-summary").textContent =
    `${answer.test_set}: Recall@${answer.n} ${answer.recall.toFixed(1)}%, ${answer.queries.length} of ${answer.total} shown`;
  for (const row of answer.queries) {
    const p = row.prediction;
    list.append(element("div", {className: `query-row ${row.hit ? "hit" : "miss"}`},
      element("figure", {className: "query"},
              element("img", {src: `/api/query_image/${row.index}`, alt: baseName(p.query)}),
              element("figcaption", {}, `${row.hit ? "hit" : "miss"} at ${answer.n}: `, verdict(p))),
      element("div", {className: "matches"}, ...p.matches.slice(0, db.k).map((m) => matchTile(m, p)))));
  }
}

function showView(name) {
  for (const view of ["photos", "queries"]) {
    document.getElementById(`${view}-view`).hidden = view !== name;
    document.getElementById(`tab-${view}`).classList.toggle("active", view === name);
  }
  if (name === "queries") showQueries();
}

async function start() {
  db = await (await fetch("/api/database")).json();
  db.paths.forEach((path, index) => indexOfPath.set(path, index));
  document.getElementById("database-info").textContent =
    `database: ${db.count} images, top ${db.k} shown, right within ${db.radius} m` +
    (db.crs === "metres" ? " (positions in UTM metres)" : "");
  const input = document.getElementById("photo-input");
  input.addEventListener("change", () => { upload([...input.files]); input.value = ""; });
  const zone = document.getElementById("drop-zone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    upload([...event.dataTransfer.files]);
  });
  document.getElementById("tab-photos").addEventListener("click", () => showView("photos"));
  if (db.test_set) {
    const tab = document.getElementById("tab-queries");
    tab.hidden = false;
    tab.addEventListener("click", () => showView("queries"));
    const select = document.getElementById("filter-n");
    for (const n of db.recall_values) select.append(element("option", {value: String(n)}, String(n)));
    select.addEventListener("change", showQueries);
    document.getElementById("filter-outcome").addEventListener("change", showQueries);
  }
  document.body.dataset.ready = "true";
}

start();
