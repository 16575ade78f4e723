"""Optimizers of the paper's Table 3 and the per-group classifier optimizer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cosplace_xs.config import OptimConfig
from cosplace_xs.training.optim import build_classifier_optimizer, build_model_optimizer, move_classifier


def _model() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    return model


@pytest.mark.parametrize(
    ("name", "cls", "extra"),
    [("adam", torch.optim.Adam, {}), ("adamw", torch.optim.AdamW, {}),
     ("asgd", torch.optim.ASGD, {"lambd": 0.5}), ("sgd", torch.optim.SGD, {"momentum": 0.9})],
)
def test_each_optimizer_gets_its_hyperparameters_and_only_trainable_params(name, cls, extra) -> None:
    model = _model()
    optimizer = build_model_optimizer(model.parameters(),
                                      OptimConfig(optimizer=name, lr=1e-3, weight_decay=1e-3, asgd_lambda=0.5))
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 1e-3 and group["weight_decay"] == 1e-3
    for key, value in extra.items():
        assert group[key] == value
    assert {id(p) for p in group["params"]} == {id(p) for p in model[1].parameters()}
    loss = model(torch.ones(1, 4)).sum()
    loss.backward()
    before = model[1].weight.clone()
    optimizer.step()
    assert not torch.equal(before, model[1].weight)


def test_classifier_optimizer_is_adam_at_classifiers_lr_and_survives_moves() -> None:
    classifier = nn.Linear(3, 5)
    optimizer = build_classifier_optimizer(classifier, OptimConfig(classifiers_lr=0.01,
                                                                   classifiers_weight_decay=1e-4))
    assert type(optimizer) is torch.optim.Adam
    assert optimizer.param_groups[0]["lr"] == 0.01 and optimizer.param_groups[0]["weight_decay"] == 1e-4
    classifier(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    moment = optimizer.state[classifier.weight]["exp_avg"].clone()
    move_classifier(classifier, optimizer, torch.device("cpu"))
    assert torch.equal(optimizer.state[classifier.weight]["exp_avg"], moment)
    optimizer.step()  # still bound to the same parameters after the move


@pytest.mark.parametrize(("name", "extra"), [("adam", {}), ("adamw", {}), ("sgd", {"momentum": 0.9})])
def test_fused_kernels_take_the_same_steps_as_the_per_operation_ones(name, extra) -> None:
    torch.manual_seed(0)
    fused_model, plain_model = _model(), _model()
    plain_model.load_state_dict(fused_model.state_dict())
    config = OptimConfig(optimizer=name, lr=1e-2, weight_decay=1e-2)
    fused = build_model_optimizer(fused_model.parameters(), config)
    assert fused.param_groups[0]["fused"] is True
    plain_cls = type(fused)
    plain = plain_cls([p for p in plain_model.parameters() if p.requires_grad], lr=1e-2, weight_decay=1e-2,
                      foreach=False, **extra)
    inputs = torch.randn(8, 4)
    for _ in range(3):
        for model, optimizer in ((fused_model, fused), (plain_model, plain)):
            optimizer.zero_grad()
            model(inputs).square().sum().backward()
            optimizer.step()
    for a, b in zip(fused_model.parameters(), plain_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert build_classifier_optimizer(nn.Linear(3, 5), config).param_groups[0]["fused"] is True
