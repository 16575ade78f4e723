"""`cosplace-xs serve`: a local web page to drop photos on and see where they were taken, and to browse a test
set's hits and misses.

The database descriptors are extracted once and kept in a descriptor store under $COSPLACE_XS_CACHE/descriptors
(else ~/.cache/cosplace-xs/descriptors), read back at the next start with the same checkpoint and images. The page
needs no network: its scripts, styles and map library come from the app; map tiles load when the browser is
online, and offline the database positions trace the streets on a blank background. `POST /api/predict` (form
field `photos`) answers with what `predict` writes to predictions.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cosplace_xs.cli.inference_options import (
    add_checkpoint_argument,
    add_inference_arguments,
    inference_options,
    scoring_given,
)
from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import RECALL_VALUES, ServeConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import COMMAND_LINE

SERVE = "serve_"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="a local web page: drop photos, see where they were taken",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_argument(parser, required=True)
    parser.add_argument("--database", type=Path, metavar="DB_DIR_OR_STORE",
                        help="a folder of database images named in the dataset format, or a descriptor store "
                             "(default: the database of --test-set)")
    parser.add_argument("--test-set", type=Path, metavar="DIR",
                        help="a test set (DIR/database and DIR/queries): also list its queries as hits or misses "
                             "at N, each with its top matches")
    add_group_arguments(parser, ServeConfig, SERVE)
    add_inference_arguments(parser, scoring=("positive_dist_threshold", "recall_values"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from cosplace_xs.data.layout import find_test_set, list_images
    from cosplace_xs.predict import Predictor, default_store_cache
    from cosplace_xs.web.app import create_app
    from cosplace_xs.web.failures import score_queries

    options, scoring = inference_options(args), scoring_given(args)
    limits = ServeConfig.build(given_values(args, SERVE), COMMAND_LINE)
    test_set = None if args.test_set is None else find_test_set(args.test_set)
    database = args.database or (test_set.database_dir if test_set is not None else None)
    if database is None:
        raise ConfigError("serve needs a database: give --database DB_DIR_OR_STORE, or --test-set DIR whose "
                          "database it then uses")
    predictor = Predictor.open(args.checkpoint, database, options, scoring, limits.k, progress=not args.no_progress,
                               cache_dir=default_store_cache())
    queries = None
    if test_set is not None:
        paths = list_images(test_set.queries_dir, "queries")
        queries = score_queries(predictor, test_set.name, paths, tuple(scoring.get("recall_values", RECALL_VALUES)))
        print(f"{test_set.name}: {len(paths)} queries, Recall@1 {queries.recall(queries.recall_values[0]):.1f}%")
    app = create_app(predictor, limits, queries)
    print(f"database: {len(predictor.database)} images; the page: http://{limits.host}:{limits.port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=limits.host, port=limits.port, log_level="warning")
    return 0
