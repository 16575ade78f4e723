"""ArcFace and SphereFace logits against hand-computed values, and the --loss option that picks them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cosplace_xs.config import LOSS_DEFAULTS, LOSS_NAMES, LossConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.model.cosface import CosFace
from cosplace_xs.model.margins import MARGINS, ArcFace, SphereFace, margin_classifier

# x1 = (3, 4) -> (0.6, 0.8), x2 = (-1, 1); W rows (1, 0) and (0, 2) normalise to the axes, so the cosines are
# (0.6, 0.8) for x1 and (-1/sqrt2, 1/sqrt2) for x2; x3 = (-1, 0) is opposite class 0: theta = pi
X = torch.tensor([[3.0, 4.0], [3.0, 4.0], [-1.0, 1.0], [-1.0, 0.0]])
LABELS = torch.tensor([0, 1, 1, 0])


def hand_made(cls: type[CosFace], s: float, m: float) -> CosFace:
    classifier = cls(2, 2, s=s, m=m)
    with torch.no_grad():
        classifier.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    return classifier


def test_arcface_adds_m_to_the_true_class_angle() -> None:
    logits = hand_made(ArcFace, s=64.0, m=0.5)(X, LABELS)
    r = 1 / math.sqrt(2)
    expected = torch.tensor([
        # cos(acos 0.6 + 0.5) = 0.6 cos 0.5 - 0.8 sin 0.5 = 0.143010...
        [64 * (0.6 * math.cos(0.5) - 0.8 * math.sin(0.5)), 64 * 0.8],
        [64 * 0.6, 64 * (0.8 * math.cos(0.5) - 0.6 * math.sin(0.5))],  # cos(acos 0.8 + 0.5) = 0.414411...
        [64 * -r, 64 * math.cos(math.pi / 4 + 0.5)],
        # theta = pi: theta + m passes pi, so the logit continues linearly: cos(pi) - 0.5 sin 0.5
        [64 * (-1 - 0.5 * math.sin(0.5)), 0.0],
    ])
    torch.testing.assert_close(logits, expected)
    assert logits[0, 0].item() == pytest.approx(64 * 0.1430100, rel=1e-5)


def test_arcface_without_margin_is_s_times_the_cosine() -> None:
    arcface = hand_made(ArcFace, s=30.0, m=0.0)
    torch.testing.assert_close(arcface(X, LABELS), 30 * arcface.cosine(X))


def test_sphereface_multiplies_the_true_class_angle_by_m() -> None:
    logits = hand_made(SphereFace, s=30.0, m=1.5)(X, LABELS)
    theta1, theta2 = math.acos(0.6), math.acos(0.8)
    # 1.5 theta < pi for both: k = 0, psi = cos(1.5 theta)
    # x2 against class 1: theta = pi/4, 1.5 theta = 3 pi / 8 < pi: psi = cos(3 pi / 8)
    # x3 against class 0: theta = pi, 1.5 pi in [pi, 2 pi): k = 1, psi = -cos(1.5 pi) - 2 = -2
    expected = torch.tensor([
        [30 * math.cos(1.5 * theta1), 30 * 0.8],
        [30 * 0.6, 30 * math.cos(1.5 * theta2)],
        [30 * -1 / math.sqrt(2), 30 * math.cos(3 * math.pi / 8)],
        [30 * -2.0, 0.0],
    ])
    torch.testing.assert_close(logits, expected)


def test_sphereface_psi_decreases_across_the_k_boundaries() -> None:
    sphereface = SphereFace(2, 1, s=1.0, m=4.0)  # the original paper's m = 4
    with torch.no_grad():
        sphereface.weight.copy_(torch.tensor([[1.0, 0.0]]))
    angles = torch.linspace(0, math.pi, 181)
    x = torch.stack([angles.cos(), angles.sin()], dim=1)
    psi = sphereface(x, torch.zeros(181, dtype=torch.long))[:, 0]
    assert psi[0].item() == pytest.approx(1.0) and psi[-1].item() == pytest.approx(-7.0, abs=1e-4)  # -cos 4pi - 6
    assert bool((psi[1:] < psi[:-1]).all())


def test_sphereface_gradient_is_that_of_the_scaled_cosine() -> None:
    """opensphere's detachment: the margin shifts the logit, the gradient is that of s * cos theta_y."""
    x = X[:3].clone().requires_grad_(True)
    sphere, plain = hand_made(SphereFace, 30.0, 1.5), hand_made(CosFace, 30.0, 0.0)
    grad = torch.autograd.grad(sphere(x, LABELS[:3]).gather(1, LABELS[:3, None]).sum(), x)[0]
    expected = torch.autograd.grad(plain(x, LABELS[:3]).gather(1, LABELS[:3, None]).sum(), x)[0]
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("cls", [ArcFace, SphereFace])
def test_gradients_are_finite_when_x_is_parallel_to_its_class(cls) -> None:
    classifier = hand_made(cls, 30.0, LOSS_DEFAULTS[cls.__name__.lower()][1])
    x = torch.tensor([[2.0, 0.0], [0.0, 5.0]], requires_grad=True)
    F.cross_entropy(classifier(x, torch.tensor([0, 1])), torch.tensor([0, 1])).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(classifier.weight.grad).all()


def test_the_registry_and_the_option_schema_list_the_same_losses() -> None:
    assert tuple(MARGINS) == LOSS_NAMES == ("cosface", "arcface", "sphereface")


@pytest.mark.parametrize(("values", "cls", "s", "m"), [
    ({}, CosFace, 30.0, 0.4),  # CosPlace's cosface_loss.py
    ({"loss": "arcface"}, ArcFace, 64.0, 0.5),  # the ArcFace paper, insightface
    ({"loss": "sphereface"}, SphereFace, 30.0, 1.5),  # opensphere
    ({"loss": "arcface", "s": 32, "m": 0.3}, ArcFace, 32.0, 0.3),
])
def test_each_loss_has_its_own_defaults_unless_set(values, cls, s, m) -> None:
    classifier = margin_classifier(LossConfig.build(values, None), 8, 3)
    assert type(classifier) is cls and (classifier.s, classifier.m) == (s, m)


@pytest.mark.parametrize(("values", "shown"), [
    ({"m": 1.0}, "--loss/--margin=cosface,1.0"),
    ({"loss": "arcface", "m": 1.6}, "--loss/--margin=arcface,1.6"),
    ({"loss": "sphereface", "m": 0.5}, "--loss/--margin=sphereface,0.5"),
])
def test_a_margin_outside_the_loss_range_is_refused_naming_both_options(values, shown) -> None:
    with pytest.raises(ConfigError) as error:
        LossConfig.build(values, "command line")
    assert str(error.value) == (f"option {shown} is out of range: [0, 1) for cosface, [0, pi/2) radians for "
                                "arcface, >= 1 for sphereface")
