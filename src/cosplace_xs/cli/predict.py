"""`cosplace-xs predict`: geolocate photos (any JPEG or PNG) against a database folder or descriptor store.

Prints a table, writes predictions.json and one picture per photo (photo + top k), and with --map a map per
photo: a PNG in metres that needs no network, and an HTML map where positions have a lat/lon. Confidence: the
share of the top-k similarity (softmax of CosFace-scaled cosines) that lies within the positive threshold (the
checkpoint's, unless --positive-dist-threshold is given) of the best match. Photos named in the dataset format
also get their error in metres.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cosplace_xs.cli.inference_options import (
    add_inference_arguments,
    add_model_arguments,
    inference_options,
    read_model,
    scoring_given,
)
from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import ApproximateConfig, RerankConfig
from cosplace_xs.data.names import display_name
from cosplace_xs.errors import BadImageError, ConfigError
from cosplace_xs.options import COMMAND_LINE

if TYPE_CHECKING:  # the library is imported where it runs, so that --help answers without torch
    import numpy as np

    from cosplace_xs.predict import Match, Prediction

APPROXIMATE = "approximate_"
RERANK = "rerank_"
NAME_WIDTH = 48  # dataset-format names run past 100 characters: the table shows both ends


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="geolocate photos with a trained checkpoint",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="photos (or folders of photos)")
    add_model_arguments(parser)
    parser.add_argument("--database", type=Path, required=True, metavar="DB_DIR_OR_STORE",
                        help="a folder of database images named in the dataset format, or a descriptor store "
                             "(.npy/.json written by `cosplace-xs eval --save-descriptors`)")
    parser.add_argument("--k", type=int, default=5, help="database matches shown per photo (default: 5)")
    parser.add_argument("--map", action="store_true",
                        help="also write a map per photo: a PNG in metres (no network needed) and an HTML map")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output folder (default: ./predict-<date-time>)")
    add_inference_arguments(parser, scoring=("positive_dist_threshold",))
    add_group_arguments(parser.add_argument_group("approximate search"), ApproximateConfig, APPROXIMATE)
    add_group_arguments(parser.add_argument_group("re-ranking by geometric verification"), RerankConfig, RERANK)
    parser.set_defaults(run=run)


def photo_paths(items: list[Path]) -> list[Path]:
    """The photos given, folders expanded to the images they hold."""
    from cosplace_xs.data.images import special_file_kind
    from cosplace_xs.data.layout import list_images

    photos = []
    for item in items:
        if item.is_dir():
            photos += list_images(item, "photos")
        elif item.is_file():
            photos.append(item)
        elif item.exists():  # a FIFO would block the reader, a device never end
            raise BadImageError(f"{item}: {special_file_kind(item.stat().st_mode)}, not a regular file; give a "
                                "photo or a folder of photos")
        else:
            raise BadImageError(f"{item}: no such photo file or folder")
    return photos


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _short(name: str, width: int = NAME_WIDTH) -> str:
    return name if len(name) <= width else f"{name[:width // 2 - 2]}...{name[-(width - width // 2 - 1):]}"


def format_predictions(predictions: list[Prediction]) -> str:
    """One line per photo: predicted lat/lon, confidence, best descriptor distance, error when known, and the
    best match's inliers when re-ranked."""
    width = max(len("photo"), *(len(_short(display_name(p.query.name))) for p in predictions))
    reranked = any(p.matches[0].inliers is not None for p in predictions)
    lines = [f"{'photo':<{width}}  {'lat':>10}  {'lon':>11}  {'confidence':>10}  {'distance':>8}  {'error m':>8}"
             + (f"  {'inliers':>7}" if reranked else "")]
    for p in predictions:
        lat, lon = p.latlon if p.latlon is not None else (None, None)
        inliers = f"  {_number(p.matches[0].inliers, 0):>7}" if reranked else ""
        lines.append(f"{_short(display_name(p.query.name)):<{width}}  {_number(lat, 6):>10}  {_number(lon, 6):>11}  "
                     f"{p.confidence:>10.2f}  {p.matches[0].descriptor_distance:>8.3f}  {_number(p.error_m, 1):>8}"
                     f"{inliers}")
    return "\n".join(lines)


def _inliers(match: Match) -> str:
    """`, 57 inliers` for a match the re-ranking verified, else nothing."""
    return "" if match.inliers is None else f", {match.inliers} inliers"


def _maps(prediction: Prediction, database_utm: np.ndarray, stem: Path) -> None:
    """`stem.png`, a map in metres that needs no network, and `stem.html`, an interactive one (lat/lon known)."""
    from cosplace_xs.visualize.metre_map import save_metre_map
    from cosplace_xs.visualize.result_map import save_result_map

    labels = [f"#{m.rank} descriptor distance {m.descriptor_distance:.3f}{_inliers(m)}"
              + ("" if m.error_m is None else f", {m.error_m:.0f} m from the true position")
              for m in prediction.matches]
    title = display_name(prediction.query.name)
    save_metre_map(stem.with_name(stem.name + "_map.png"), prediction.utm, prediction.confidence,
                   [m.utm for m in prediction.matches], [f"#{m.rank} ({m.descriptor_distance:.3f})"
                                                         for m in prediction.matches],
                   database_utm, prediction.true_utm, title=title)
    if prediction.latlon is not None:
        save_result_map(stem.with_name(stem.name + "_map.html"), prediction.latlon,
                        [m.latlon for m in prediction.matches], labels, prediction.true_latlon, title=title)


def picture_title(prediction: Prediction) -> str:
    """The photo's name and where it was predicted: lat/lon when known, UTM always."""
    east, north = prediction.utm
    latlon = "lat/lon unknown" if prediction.latlon is None else \
        f"lat/lon {prediction.latlon[0]:.6f}, {prediction.latlon[1]:.6f}"
    itself = "" if prediction.in_database is None else " - this photo is itself in the database"
    return f"{display_name(prediction.query.name)}: UTM {east:.1f} E, {north:.1f} N, {latlon}{itself}"


def picture_notes(prediction: Prediction) -> dict[str, object]:
    """Second caption lines: the confidence under the photo; under each match its descriptor distance and where it
    lies from the prediction (so a photo without a geotag still shows where each match is)."""
    east, north = prediction.utm
    return {"query_note": f"confidence {prediction.confidence:.2f}",
            "match_notes": [f"d {m.descriptor_distance:.3f}{_inliers(m)}, {m.utm[0] - east:+.0f} E "
                            f"{m.utm[1] - north:+.0f} N m"
                            for m in prediction.matches]}


def warnings(predictions: list[Prediction], mapped: bool) -> list[str]:
    """Lines for the photos whose match is the photo itself, and for those whose lat/lon is unknown."""
    lines = [f"warning: photo {display_name(p.query.name)} is itself in the database (as {display_name(p.in_database)}"
             "): its match at distance 0 says nothing of the model" for p in predictions if p.in_database is not None]
    unknown = sum(p.latlon is None for p in predictions)
    if unknown:
        photos = f"{unknown} photo{'' if unknown == 1 else 's'}{', so no HTML map' if mapped else ''}"
        lines.append(f"lat/lon unknown for {photos}: the name of the best match gives no lat/lon, nor a UTM zone "
                     "and position that convert to one; predictions.json gives positions in UTM")
    return lines


def run(args: argparse.Namespace) -> int:
    from cosplace_xs.evaluation.inference import Inference, eval_image_size, scoring_options
    from cosplace_xs.evaluation.model_loading import place_model
    from cosplace_xs.predict import open_database, predict
    from cosplace_xs.visualize.predictions import save_retrieval_picture

    options, given = inference_options(args), scoring_given(args)
    approximate = ApproximateConfig.build(given_values(args, APPROXIMATE), COMMAND_LINE)
    rerank = RerankConfig.build(given_values(args, RERANK), COMMAND_LINE)
    if args.k < 1:
        raise ConfigError(f"option --k={args.k} is out of range: >= 1")
    photos = photo_paths(args.images)
    reranker = None
    if rerank.k is not None:  # its matcher built before the model runs: a learned one may be missing
        from cosplace_xs.evaluation.rerank import Reranker

        reranker = Reranker(rerank, options.max_image_pixels, not args.no_progress)
    model, config = read_model(args)
    inference = Inference.resolve(options, eval_image_size(config, options), progress=not args.no_progress)
    model = place_model(model, config, inference.device, options.compile)
    radius = scoring_options(config, given).positive_dist_threshold
    database = open_database(args.database, model, config, inference)
    predictions = predict(model, photos, database, args.k, inference, cosface_scale=config.loss.scale, radius=radius,
                          approximate=approximate if approximate.kind is not None else None, reranker=reranker)
    out = args.out or Path(f"predict-{datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    print(format_predictions(predictions))
    for index, prediction in enumerate(predictions):
        stem = f"{index:03d}-{display_name(prediction.query.stem)[:60]}"
        save_retrieval_picture(prediction.query, [m.path for m in prediction.matches],
                               [m.error_m for m in prediction.matches], out / f"{stem}.png",
                               radius, title=picture_title(prediction), **picture_notes(prediction))
        if args.map:
            _maps(prediction, database.utm, out / stem)
    (out / "predictions.json").write_text(json.dumps([p.to_dict() for p in predictions], indent=2) + "\n")
    for line in warnings(predictions, args.map):
        print(line)
    print(f"predictions.json, pictures{' and maps' if args.map else ''} in {out}")
    return 0
