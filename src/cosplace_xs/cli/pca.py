"""`cosplace-xs pca`: reduce a checkpoint's descriptors from D to K dimensions by PCA, folded into the model.

For each --dim K, the PCA is fitted (exact, scikit-learn) on the descriptors of the test set's database images
or of the dataset's train/ images, and a checkpoint pca-K.pt is written whose model ends with that projection
and an L2 norm: eval and predict read it as any checkpoint, with descriptors of size K. The test set is scored
at every K and without PCA: a table, pca-<date-time>.csv and a plot of Recall@N against K.
"""

from __future__ import annotations

import argparse
import csv
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from cosplace_xs.cli.inference_options import (
    add_checkpoint_argument,
    add_inference_arguments,
    inference_options,
    scoring_given,
)
from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import PCAConfig
from cosplace_xs.options import COMMAND_LINE

PCA = "pca_"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pca", help="reduce a checkpoint's descriptors to K dimensions (R@N against K)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_argument(parser, required=True)
    parser.add_argument("--dataset", type=Path, required=True, metavar="DIR",
                        help="a dataset root holding test/ (and train/ for --fit-on train), or a test set folder")
    add_group_arguments(parser.add_argument_group("PCA"), PCAConfig, PCA)
    add_inference_arguments(parser)
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="folder of the reduced checkpoints and results (default: the checkpoint's folder)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from cosplace_xs.checkpoints import resolve_checkpoint, write_checkpoint
    from cosplace_xs.cli.eval import format_table
    from cosplace_xs.data.layout import discover_dataset, list_images, require_train_dir
    from cosplace_xs.data.test_set import load_test_set
    from cosplace_xs.evaluation.descriptors import extract_descriptors
    from cosplace_xs.evaluation.inference import Inference, eval_image_size, scoring_options
    from cosplace_xs.evaluation.model_loading import place_model, read_trained_model
    from cosplace_xs.evaluation.pca import check_dims, fit_pca, pca_checkpoint, project
    from cosplace_xs.evaluation.recall import recall_at_n
    from cosplace_xs.evaluation.retrieval import knn
    from cosplace_xs.evaluation.test_methods import query_reading, rank
    from cosplace_xs.training.run_files import require_writable
    from cosplace_xs.visualize.pca_curve import plot_recall_against_dim

    options = PCAConfig.build(given_values(args, PCA), COMMAND_LINE)
    inference_config, given = inference_options(args), scoring_given(args)
    checkpoint = resolve_checkpoint(args.checkpoint)
    out = args.out or checkpoint.parent
    require_writable(out, "--out" if args.out else "--out (default: the checkpoint's folder)")
    model, config = read_trained_model(checkpoint)
    inference = Inference.resolve(inference_config, eval_image_size(config, inference_config),
                                  progress=not args.no_progress)
    model = place_model(model, config, inference.device, inference_config.compile)
    scoring = scoring_options(config, given)
    test_set = load_test_set(args.dataset, scoring.positive_dist_threshold, queries_folder=scoring.queries_folder)
    fit_paths = (list(test_set.database_paths) if options.fit_on == "database"
                 else list_images(require_train_dir(discover_dataset(args.dataset)), "training images"))
    generator = np.random.default_rng(options.seed)
    sample = np.sort(generator.choice(len(fit_paths), size=min(options.max_images, len(fit_paths)), replace=False))
    check_dims(options.dims, config.model.fc_output_dim, len(sample))  # before any image is read

    database = extract_descriptors(model, test_set.database_paths, inference, f"{test_set.name} database")
    query_inference, views = query_reading(scoring.test_method, inference)
    queries = extract_descriptors(model, test_set.queries_paths, query_inference, f"{test_set.name} queries",
                                  views=views)
    fit_on = (database[sample] if options.fit_on == "database"
              else extract_descriptors(model, [fit_paths[i] for i in sample], inference, "training images"))

    def recalls(database_descriptors: np.ndarray, query_descriptors: np.ndarray) -> dict[str, float]:
        _, predictions = rank(query_descriptors, partial(knn, database_descriptors), max(scoring.recall_values),
                              scoring.test_method, scoring.majority_weight)
        found = recall_at_n(predictions, test_set.positives, scoring.recall_values)
        return {f"R@{n}": round(value, 2) for n, value in found.items()}

    full_dim = config.model.fc_output_dim
    rows: list[dict[str, Any]] = [{"dim": full_dim, **recalls(database, queries), "explained_variance": 1.0,
                                   "checkpoint": str(checkpoint)}]
    for dim in sorted(set(options.dims)):
        start = time.perf_counter()
        pca = fit_pca(fit_on, dim, options.whiten)
        path = out / f"pca-{dim}{'-whitened' if options.whiten else ''}.pt"
        write_checkpoint(pca_checkpoint(model, config, pca, options.whiten), path)
        rows.append({"dim": dim, **recalls(project(database, pca), project(queries, pca)),
                     "explained_variance": round(float(pca.explained.sum()), 4), "checkpoint": str(path),
                     "seconds": round(time.perf_counter() - start, 2)})
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    csv_path, plot_path = out / f"pca-{stamp}.csv", out / f"pca-{stamp}.png"
    with csv_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    plot_recall_against_dim([{key: value for key, value in row.items() if key == "dim" or key.startswith("R@")}
                             for row in rows], full_dim, plot_path,
                            f"{test_set.name}: PCA fitted on {len(sample)} {options.fit_on} images")
    print(format_table(rows))
    print(f"results: {csv_path} and {plot_path}")
    return 0
