"""PCA folded into a model (evaluation/pca.py): scikit-learn's transform + L2 from the checkpoint, the limits on K,
and `cosplace-xs pca` with `eval` of what it writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import INFERENCE_FLAGS, run_main, write_test_set, write_tiny_checkpoint
from PIL import Image
from sklearn.decomposition import PCA

from cosplace_xs.checkpoints import write_checkpoint
from cosplace_xs.config import RunConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.evaluation.model_loading import read_trained_model
from cosplace_xs.evaluation.pca import check_dims, fit_pca, pca_checkpoint, project


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor, np.ndarray]:
    """A D = 32 checkpoint, 24 random 32 x 32 images and their descriptors."""
    path = tmp_path_factory.mktemp("pca") / "best.pt"
    model = write_tiny_checkpoint(path).eval()
    images = torch.rand(24, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        return path, images, model(images).numpy()


@pytest.mark.parametrize("whiten", [False, True])
def test_the_reduced_checkpoint_gives_sklearns_transform_normalised(tiny_model, tmp_path: Path, whiten: bool) -> None:
    path, images, descriptors = tiny_model
    model, config = read_trained_model(path)
    write_checkpoint(pca_checkpoint(model, config, fit_pca(descriptors, 8, whiten), whiten), tmp_path / "pca.pt")
    reduced_model, reduced_config = read_trained_model(tmp_path / "pca.pt")
    reduced_model.eval()
    with torch.inference_mode():
        reduced = reduced_model(images).numpy()
    expected = PCA(n_components=8, whiten=whiten, svd_solver="full").fit_transform(descriptors.astype(np.float64))
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(reduced, expected, atol=1e-5)
    np.testing.assert_allclose(project(descriptors, fit_pca(descriptors, 8, whiten)), expected, atol=1e-5)
    assert (reduced_config.model.pca_dim, reduced_config.model.pca_whiten) == (8, whiten)
    assert reduced_config.model.fc_output_dim == 32 and reduced_model.fc_output_dim == 8
    with pytest.raises(ConfigError, match="already ends with a PCA to 8 dimensions"):
        pca_checkpoint(reduced_model, reduced_config, fit_pca(reduced, 4), False)


def test_k_above_the_descriptor_size_or_the_descriptors_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        check_dims((16, 64), 32, 1000)
    assert str(error.value) == "option --dim=64 is larger than the model's descriptor size 32: give K <= 32"
    with pytest.raises(ConfigError) as error:
        fit_pca(np.zeros((10, 32), dtype=np.float32), 10)
    assert str(error.value) == ("option --dim=10 needs at least 11 descriptors to fit; 10 were given: lower it, or "
                                "fit on more images (--fit-on, --max-images)")
    check_dims((9,), 32, 10)  # 10 points span 9 directions


def test_pca_command_writes_checkpoints_that_eval_reads(tmp_path: Path, capsys) -> None:
    street = write_test_set(tmp_path / "street", [(30.0 * i, 0.0) for i in range(12)],
                            [(30.0 * i + 2, 0.0) for i in range(4)])
    generator = np.random.default_rng(0)
    for path in sorted(street.glob("*/*.png")):  # textured images, so that descriptors differ
        Image.fromarray(generator.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    write_tiny_checkpoint(tmp_path / "run" / "best.pt")
    out = tmp_path / "pca"
    code, printed, err = run_main(["pca", "--checkpoint", str(tmp_path / "run"), "--dataset", str(street), "--dim",
                                   "8", "4", "--out", str(out), "--recall-values", "1", "2", *INFERENCE_FLAGS], capsys)
    assert code == 0, err
    (table,) = out.glob("pca-*.csv")
    with table.open() as file:
        rows = list(csv.DictReader(file))
    assert [row["dim"] for row in rows] == ["32", "4", "8"]
    assert [Path(row["checkpoint"]).name for row in rows[1:]] == ["pca-4.pt", "pca-8.pt"]
    assert 0 < float(rows[1]["explained_variance"]) < float(rows[2]["explained_variance"]) <= 1
    assert len(list(out.glob("pca-*.png"))) == 1 and "R@1" in printed.splitlines()[0]
    assert RunConfig.from_dict(torch.load(out / "pca-8.pt", weights_only=True)["config"]).model.pca_dim == 8

    code, _, err = run_main(["eval", str(street), "--checkpoint", str(out / "pca-8.pt"), "--out", str(tmp_path),
                             "--recall-values", "1", "2", *INFERENCE_FLAGS], capsys)
    assert code == 0, err
    (result,) = json.loads(next(tmp_path.glob("eval-*.json")).read_text())["results"]
    assert (result["R@1"], result["R@2"]) == (float(rows[2]["R@1"]), float(rows[2]["R@2"]))

    code, _, err = run_main(["pca", "--checkpoint", str(tmp_path / "run"), "--dataset", str(street), "--dim", "12",
                             "--out", str(out), *INFERENCE_FLAGS], capsys)
    assert code == 2 and err.strip() == ("error: option --dim=12 needs at least 13 descriptors to fit; 12 were "
                                         "given: lower it, or fit on more images (--fit-on, --max-images)")
