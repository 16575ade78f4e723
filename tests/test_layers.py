"""GeM and L2Norm (CosPlace's aggregation layers) against hand-computed values."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cosplace_xs.model.layers import GeM, L2Norm


def test_gem_p_is_a_learnable_parameter_initialised_to_3() -> None:
    gem = GeM()
    assert [name for name, _ in gem.named_parameters()] == ["p"]
    assert gem.p.shape == (1,) and gem.p.item() == 3.0 and gem.eps == 1e-6


def test_gem_with_p_1_is_average_pooling_of_the_clamped_input() -> None:
    x = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    gem = GeM(p=1.0)
    expected = F.adaptive_avg_pool2d(x.clamp(min=1e-6), 1)
    torch.testing.assert_close(gem(x), expected)
    assert gem(x).shape == (2, 3, 1, 1)


def test_gem_p_3_on_a_hand_made_map() -> None:
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[-1.0, 0.0], [2.0, 2.0]]]])  # (1, 2, 2, 2)
    out = GeM()(x).flatten()
    # channel 0: ((1 + 8 + 27 + 64) / 4)^(1/3) = 25^(1/3); channel 1: -1 and 0 clamp to eps: ((8 + 8) / 4)^(1/3)
    torch.testing.assert_close(out, torch.tensor([2.9240177, 1.5874011]))


def test_gem_gradient_reaches_p() -> None:
    gem = GeM()
    gem(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])).sum().backward()
    # d/dp (mean x^p)^(1/p) is not zero unless all values are equal
    assert gem.p.grad is not None and gem.p.grad.abs().item() > 1e-3


def test_gem_under_bf16_autocast_is_computed_in_float32() -> None:
    x = torch.rand(2, 8, 7, 7, generator=torch.Generator().manual_seed(1)) * 1e-3  # small, as after L2Norm
    gem = GeM()
    reference = gem(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = gem(x.bfloat16())
    assert low.dtype == torch.bfloat16
    # only the final rounding to bf16 (8 bits) remains, not the error of summing 49 cubes in bf16
    torch.testing.assert_close(low.float(), reference, rtol=2 ** -8, atol=0)


def test_l2norm_gives_unit_rows_in_the_same_direction() -> None:
    x = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
    torch.testing.assert_close(L2Norm(dim=1)(x), torch.tensor([[0.6, 0.8], [0.0, -1.0]]))


def test_l2norm_over_channels_of_a_feature_map() -> None:
    x = torch.randn(2, 5, 3, 3, generator=torch.Generator().manual_seed(2))
    norms = L2Norm(dim=1)(x).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(2, 3, 3))


def test_gem_repr_shows_the_learned_p() -> None:
    gem = GeM()
    with torch.no_grad():
        gem.p.fill_(2.5)
    assert repr(gem) == "GeM(p=2.5000, eps=1e-06)"
