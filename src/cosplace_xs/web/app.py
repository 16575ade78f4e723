"""The FastAPI application of `cosplace-xs serve`.

Routes: `/` the page; `POST /api/predict` the photos of a multipart form field `photos`, answered with the list
`predict` writes to predictions.json (the same `Prediction.to_dict`); `/api/database` the database positions;
`/api/thumbnail/{i}` database image i (by index, never by path); with a test set, `/api/queries` and
`/api/query_image/{i}`. Every error is a JSON object `{"error": ...}` with a 4xx status (5xx only for a fault
of the server itself), never a traceback page.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from cosplace_xs.config import ServeConfig
from cosplace_xs.errors import CosplaceError
from cosplace_xs.predict import Predictor
from cosplace_xs.visualize.result_map import LEAFLET_DIR, PLACE_MAP_JS
from cosplace_xs.web.failures import ScoredQueries
from cosplace_xs.web.uploads import Upload, UploadError, save_uploads

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
FORM_OVERHEAD = 1 << 20  # bytes of a multipart body beyond its files: boundaries, headers, names


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def database_summary(predictor: Predictor, limits: ServeConfig, queries: ScoredQueries | None) -> dict[str, Any]:
    """What the page needs to draw maps and label its controls: database paths and positions (lat/lon where
    every image has one, else UTM metres), k, the radius, the upload limits, the test set's N values."""
    store = predictor.database
    known = not np.isnan(store.latlon).any()
    return {"count": len(store), "paths": [str(path) for path in store.paths], "crs": "latlon" if known else "metres",
            "utm": store.utm.tolist(), "latlon": store.latlon.tolist() if known else None, "k": predictor.k,
            "radius": predictor.radius, "max_upload_mb": limits.max_upload_mb, "max_photos": limits.max_photos,
            "test_set": None if queries is None else queries.name,
            "recall_values": [] if queries is None else list(queries.recall_values)}


def create_app(predictor: Predictor, limits: ServeConfig, queries: ScoredQueries | None = None,
               upload_dir: Path | None = None) -> FastAPI:
    """The application, serving `predictor`'s database and, with `queries`, the failure browser. Uploads live in
    a temporary folder under `upload_dir` (default: the system's) for the time of their request."""
    app = FastAPI(title="cosplace-xs", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/leaflet", StaticFiles(directory=LEAFLET_DIR), name="leaflet")
    summary = database_summary(predictor, limits, queries)
    max_body = limits.max_photos * int(limits.max_upload_mb * 1e6) + FORM_OVERHEAD

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        return _error(422, f"malformed request ({problems})")

    @app.exception_handler(Exception)
    async def fault(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return _error(500, f"the server failed on this request ({type(error).__name__}); see its log")

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        """Refuse a body above the upload limits before reading it (when it declares its length)."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_body:
            return _error(413, f"request of {int(length) / 1e6:.1f} MB, above this page's limit of "
                               f"{limits.max_photos} photos of {limits.max_upload_mb:g} MB")
        return await call_next(request)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/place_map.js", include_in_schema=False)
    def place_map() -> FileResponse:
        return FileResponse(PLACE_MAP_JS, media_type="text/javascript")

    @app.get("/api/database")
    def database() -> dict[str, Any]:
        return summary

    @app.get("/api/thumbnail/{index}")
    def thumbnail(index: int) -> FileResponse:
        return _indexed_file(predictor.database.paths, index, "database image")

    @app.post("/api/predict")
    def predict_photos(photos: Annotated[list[UploadFile], File()]) -> JSONResponse:
        uploads = [Upload(photo.filename or "", photo.file) for photo in photos]
        with tempfile.TemporaryDirectory(prefix="cosplace-xs-upload-", dir=upload_dir) as folder:
            try:
                paths = save_uploads(uploads, Path(folder), limits, predictor.inference.max_pixels)
                predictions = predictor(paths)
            except UploadError as error:
                return _error(error.status, str(error))
            except CosplaceError as error:  # e.g. an image whose header reads but whose pixels do not
                return _error(422, str(error).replace(folder + "/", ""))
        named = [dataclasses.replace(prediction, query=Path(path.name))
                 for prediction, path in zip(predictions, paths, strict=True)]
        return JSONResponse([prediction.to_dict() for prediction in named])

    if queries is not None:
        @app.get("/api/queries")
        def test_queries(n: Annotated[int, Query(ge=1)] = 1,
                         outcome: Literal["all", "hit", "miss"] = "all") -> dict[str, Any]:
            if n not in queries.recall_values:
                raise HTTPException(422, f"n={n}: choose one of the N of Recall@N, {list(queries.recall_values)}")
            rows = [{"index": index, "hit": queries.hit(index, n), "prediction": prediction.to_dict()}
                    for index, prediction in enumerate(queries.predictions)]
            shown = [row for row in rows if outcome == "all" or row["hit"] == (outcome == "hit")]
            return {"test_set": queries.name, "n": n, "recall": queries.recall(n), "total": len(rows),
                    "queries": shown}

        @app.get("/api/query_image/{index}")
        def query_image(index: int) -> FileResponse:
            return _indexed_file(queries.paths, index, "query")

    return app


def _indexed_file(paths: tuple[Path, ...], index: int, what: str) -> FileResponse:
    if not 0 <= index < len(paths):
        raise HTTPException(404, f"no {what} #{index}: there are {len(paths)}, numbered 0 to {len(paths) - 1}")
    return FileResponse(paths[index])
