"""`--compile`: the compiled model computes what the eager one does, in training and in extraction."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import on_cpu, run_command

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.cli import eval as eval_command
from cosplace_xs.config import ModelConfig, RunConfig
from cosplace_xs.data.layout import list_images
from cosplace_xs.errors import ConfigError
from cosplace_xs.evaluation.descriptors import extract_descriptors
from cosplace_xs.evaluation.model_loading import load_trained_model
from cosplace_xs.model.compilation import compile_in_place
from cosplace_xs.model.cosface import CosFace
from cosplace_xs.model.network import build_model
from cosplace_xs.training.loop import train

CPU = torch.device("cpu")


def test_a_compiled_training_step_gives_the_eager_loss_and_gradients() -> None:
    torch.manual_seed(0)
    eager = build_model(ModelConfig(fc_output_dim=8, pretrained="none")).to(memory_format=torch.channels_last)
    compiled = copy.deepcopy(eager)
    compiled.compile()
    classifier = CosFace(8, 5)
    images = torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([0, 1, 2, 3])
    losses = []
    for model in (eager, compiled):
        model.train()
        loss = F.cross_entropy(classifier(model(images), labels), labels)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5)
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        if a.grad is not None:  # fused kernels sum in another order: equal to float32 rounding of the largest
            assert (b.grad - a.grad).abs().max() <= 1e-4 * a.grad.abs().max(), name
    for (name, a), b in zip(eager.named_buffers(), compiled.buffers(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)  # BatchNorm running statistics


def test_a_compiled_run_writes_plain_checkpoints_and_extracts_the_eager_descriptors(
        tiny_city: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    config = RunConfig().replace({
        "train.dataset": str(tiny_city), "train.image_size": 32, "train.batch_size": 4, "train.epochs": 1,
        "train.iterations_per_epoch": 2, "train.num_workers": 0, "train.validate": False, "train.compile": True,
        "train.checkpoint_every": 0, "split.min_images_per_class": 2, "split.groups_num": 1,
        "model.pretrained": "none", "model.fc_output_dim": 8,
    })
    train(config, tmp_path / "run", progress=False)
    state = ckpt.read_checkpoint(tmp_path / "run" / ckpt.LAST)
    assert state["config"]["train"]["compile"] is True
    assert set(state["model"]) == set(build_model(config.model).state_dict())  # no `_orig_mod.` prefixes

    paths = list_images(tiny_city / "test" / "database", "test database")[:6]
    eager, _ = load_trained_model(tmp_path / "run", CPU)
    compiled, _ = load_trained_model(tmp_path / "run", CPU, compiled=True)
    # one batch shape throughout (6 divides the 120 database images and the 30 queries): compiled once, not again
    # with dynamic shapes for a last smaller batch
    batch = 6
    expected = extract_descriptors(eager, paths, on_cpu(32, batch))
    got = extract_descriptors(compiled, paths, on_cpu(32, batch))
    torch.testing.assert_close(torch.from_numpy(got), torch.from_numpy(expected), rtol=1e-4, atol=1e-5)

    recalls = []
    for extra in ([], ["--compile"]):
        out = tmp_path / f"eval{len(extra)}"
        assert run_command(eval_command, ["eval", "--checkpoint", str(tmp_path / "run"), str(tiny_city / "test"),
                                          "--out", str(out), "--device", "cpu", "--batch-size", str(batch),
                                          "--no-progress", *extra]) == 0
        (row,) = json.loads(next(out.glob("eval-*.json")).read_text())["results"]
        recalls.append({key: value for key, value in row.items() if key.startswith("R@")})
    one_query = 100 / row["queries"]  # descriptors equal to float32 rounding may swap a near tie, nothing more
    assert recalls[0].keys() == recalls[1].keys()
    assert all(abs(recalls[0][key] - recalls[1][key]) <= one_query + 0.01 for key in recalls[0])


def test_compiling_on_the_cpu_without_a_cpp_compiler_is_refused_before_any_work(monkeypatch) -> None:
    monkeypatch.setenv("CXX", "no-such-compiler-x9")
    model = build_model(ModelConfig(fc_output_dim=8, pretrained="none"))
    with pytest.raises(ConfigError, match=r"option --compile needs a C\+\+ compiler.*'no-such-compiler-x9'"):
        compile_in_place(model, CPU)
    assert not hasattr(model, "_compiled_call_impl") or model._compiled_call_impl is None
