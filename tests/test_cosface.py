"""CosFace (large margin cosine) logits against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cosplace_xs.model.cosface import CosFace


def hand_made(m: float = 0.4) -> CosFace:
    """2 classes in 2-D: W rows (1, 0) and (0, 2) normalise to the axes."""
    cosface = CosFace(2, 2, s=30.0, m=m)
    with torch.no_grad():
        cosface.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    return cosface


def test_weight_is_out_by_in_and_xavier_uniform() -> None:
    cosface = CosFace(64, 200, generator=torch.Generator().manual_seed(0))
    bound = math.sqrt(6 / (64 + 200))
    assert cosface.weight.shape == (200, 64)
    assert cosface.weight.abs().max() <= bound and cosface.weight.abs().max() > 0.95 * bound
    # uniform on [-b, b] has standard deviation b / sqrt(3)
    assert abs(cosface.weight.std().item() - bound / math.sqrt(3)) < 0.01 * bound


def test_seeded_generator_gives_the_same_weights() -> None:
    first = CosFace(8, 5, generator=torch.Generator().manual_seed(7)).weight
    second = CosFace(8, 5, generator=torch.Generator().manual_seed(7)).weight
    assert torch.equal(first, second)


def test_two_classes_by_hand() -> None:
    # x1 = (3, 4) -> (0.6, 0.8): cosines (0.6, 0.8); x2 = (-1, 1) -> cosines (-1/sqrt2, 1/sqrt2)
    x = torch.tensor([[3.0, 4.0], [3.0, 4.0], [-1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    logits = hand_made()(x, labels)
    expected = torch.tensor([
        [30 * (0.6 - 0.4), 30 * 0.8],  # [6, 24]: the margin lowers the true class only
        [30 * 0.6, 30 * (0.8 - 0.4)],  # [18, 12]
        [-30 / math.sqrt(2), 30 * (1 / math.sqrt(2) - 0.4)],  # [-21.2132, 9.2132]
    ])
    torch.testing.assert_close(logits, expected)
    # cross-entropy of the first sample: log(e^6 + e^24) - 6 = 18 + log(1 + e^-18)
    loss = F.cross_entropy(logits[:1], labels[:1])
    assert loss.item() == pytest.approx(18 + math.log1p(math.exp(-18)), rel=1e-6)


def test_without_margin_logits_are_s_times_the_cosine() -> None:
    generator = torch.Generator().manual_seed(1)
    cosface = CosFace(16, 10, s=30.0, m=0.0, generator=generator)
    x = torch.randn(4, 16, generator=generator)
    labels = torch.tensor([0, 3, 3, 9])
    expected = 30 * F.cosine_similarity(x[:, None, :], cosface.weight[None, :, :], dim=2)
    torch.testing.assert_close(cosface(x, labels), expected)
    torch.testing.assert_close(cosface.cosine(x), expected / 30)


def test_cosine_ignores_the_scale_of_x_and_w() -> None:
    cosface = hand_made()
    torch.testing.assert_close(cosface.cosine(torch.tensor([[30.0, 40.0]])), torch.tensor([[0.6, 0.8]]))


def test_gradient_reaches_w_and_x() -> None:
    cosface = hand_made()
    x = torch.tensor([[3.0, 4.0], [-1.0, 1.0]], requires_grad=True)
    F.cross_entropy(cosface(x, torch.tensor([0, 1])), torch.tensor([0, 1])).backward()
    assert x.grad is not None and cosface.weight.grad is not None
    assert x.grad.abs().sum() > 0 and cosface.weight.grad.abs().sum() > 0
    # the loss pulls x1 = (0.6, 0.8) towards class 0 (the x axis): its first coordinate's gradient is negative
    assert x.grad[0, 0] < 0


def test_logits_stay_float32_under_bf16_autocast() -> None:
    generator = torch.Generator().manual_seed(2)
    cosface = CosFace(32, 6, generator=generator)
    x = torch.randn(3, 32, generator=generator)
    labels = torch.tensor([1, 2, 5])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = cosface(x.bfloat16(), labels)
    assert low.dtype == torch.float32
    # only the bf16 rounding of x remains (relative 2^-8 of the cosine), not that of the matrix product
    torch.testing.assert_close(low, cosface(x.bfloat16().float(), labels), rtol=1e-5, atol=1e-5)
