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
