"""Batch augmentation: each op against torchvision or a hand-made result, switches, randomness, devices."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from cosplace_xs.augment import (
    BatchAugmentation,
    color,
    denormalize,
    describe,
    geometry,
    normalize,
    sample_params,
    training_read_size,
)
from cosplace_xs.augment.pipeline import IMAGENET_MEAN, IMAGENET_STD
from cosplace_xs.config import AugmentConfig, TrainConfig
from cosplace_xs.errors import ConfigError

# every op off, on the batched path (one warp, the fixed jitter order) unless a test asks for the official one
NOTHING = AugmentConfig(color_jitter=False, random_resized_crop=False, rotation=False, cutout=False,
                        crop_method="warp", jitter_order="fixed")


def _only(**switches: object) -> AugmentConfig:
    return dataclasses.replace(NOTHING, **switches)


def _images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=generator)


def _smooth(size: int) -> torch.Tensor:
    """A float image without high frequencies, so that two bilinear samplers agree closely."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack((x, y, 0.5 + 0.4 * torch.sin(6 * x + 3 * y)))


def _neutral(batch: int, size: int, output_size: int):
    return sample_params(NOTHING, batch, size, size, output_size, torch.Generator().manual_seed(0))


# --- colour jitter against torchvision, per-sample factors ---------------------------------------------

@pytest.mark.parametrize(("ours", "theirs", "factors", "tolerance"), [
    (color.adjust_brightness, TF.adjust_brightness, (0.2, 1.0, 1.8), 1e-5),
    (color.adjust_contrast, TF.adjust_contrast, (0.0, 0.7, 1.3), 1e-5),
    (color.adjust_saturation, TF.adjust_saturation, (0.3, 1.0, 1.7), 1e-5),
    (color.adjust_hue, TF.adjust_hue, (-0.5, -0.15, 0.3), 1e-4),
])
def test_colour_ops_match_torchvision_per_image(ours, theirs, factors, tolerance):
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    images[:, :, :4] = 0.5  # grey pixels: hue and saturation undefined there
    images[:, 0, 4:6] = 1.0  # pure-ish reds and ties between channels
    expected = torch.stack([theirs(image, factor) for image, factor in zip(images, factors, strict=True)])
    result = ours(images.clone(), torch.tensor(factors))
    assert (result - expected).abs().max() < tolerance


def test_jitter_factors_follow_colorjitter_ranges():
    config = AugmentConfig(brightness=0.8, contrast=0.3, saturation=1.5, hue=0.2)
    params = sample_params(config, 2000, 32, 32, 32, torch.Generator().manual_seed(0))
    for values, low, high in ((params.brightness, 0.2, 1.8), (params.contrast, 0.7, 1.3),
                              (params.saturation, 0.0, 2.5), (params.hue, -0.2, 0.2)):
        assert low <= values.min() < low + 0.01 and high - 0.01 < values.max() <= high


def test_jitter_through_the_pipeline_scales_brightness_per_image():
    config = _only(color_jitter=True, brightness=0.5, contrast=0.0, saturation=0.0, hue=0.0)
    images = torch.full((4, 3, 8, 8), 0.4)
    params = sample_params(config, 4, 8, 8, 8, torch.Generator().manual_seed(3))
    output = denormalize(BatchAugmentation(config, 8).apply_params(images, params))
    expected = (0.4 * params.brightness).view(4, 1, 1, 1).expand(4, 3, 8, 8)
    assert torch.allclose(output, expected, atol=1e-5)
    assert len(set(params.brightness.tolist())) == 4


def test_random_jitter_order_applies_each_images_own_order_as_torchvision_would():
    """Per image, the four ops run in the drawn order (torchvision's ColorJitter draws one per call); the fixed
    order draws exactly the parameters it drew before the option existed."""
    config = _only(color_jitter=True, brightness=0.8, contrast=0.7, saturation=0.7, hue=0.4, jitter_order="random")
    images = torch.rand(24, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    params = sample_params(config, 24, 8, 8, 8, torch.Generator().manual_seed(5))
    orders = params.jitter_orders
    assert orders.shape == (24, 4) and torch.equal(orders.sort(dim=1).values, torch.arange(4).expand(24, 4))
    assert len({tuple(order) for order in orders.tolist()}) > 6  # several orders in one batch
    output = denormalize(BatchAugmentation(config, 8).apply_params(images.clone(), params))
    theirs = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    factors = (params.brightness, params.contrast, params.saturation, params.hue)
    for index, image in enumerate(images):
        for op in orders[index].tolist():
            image = theirs[op](image, float(factors[op][index]))
        assert (output[index] - image).abs().max() < 1e-4, index
    fixed = dataclasses.replace(config, jitter_order="fixed")
    before = sample_params(fixed, 24, 8, 8, 8, torch.Generator().manual_seed(5))
    assert before.jitter_orders is None and torch.equal(before.brightness, params.brightness)
    assert torch.equal(before.boxes, params.boxes) and before.noise_seed == params.noise_seed


# --- switches --------------------------------------------------------------------------------------------

def test_everything_off_is_resize_then_normalize():
    images = _images(2, 64)
    output = BatchAugmentation(NOTHING, 32)(images, torch.Generator().manual_seed(0))
    resized = TF.to_dtype(TF.resize(images, [32, 32], antialias=True), torch.float32, scale=True)
    expected = TF.normalize(resized, list(IMAGENET_MEAN), list(IMAGENET_STD))
    assert (output - expected).abs().max() < 1e-5
    floats = images.float() / 255  # float input: resized as floats, nothing rounded
    float_output = BatchAugmentation(NOTHING, 32)(floats, torch.Generator().manual_seed(0))
    assert (denormalize(float_output) - TF.resize(floats, [32, 32], antialias=True)).abs().max() < 1e-5
    same_size = BatchAugmentation(NOTHING, 64)(images, torch.Generator().manual_seed(0))
    assert torch.equal(same_size, normalize(images))


def test_full_crop_on_a_square_image_is_the_resize():
    # scale (1, 1): every candidate fails (ratio != 1) or is the whole image; the fallback is the whole image
    images = _images(3, 64)
    config = _only(random_resized_crop=True, crop_scale_min=1.0, crop_scale_max=1.0)
    for size in (32, 64):
        output = denormalize(BatchAugmentation(config, size)(images, torch.Generator().manual_seed(0)))
        resized = TF.resize(images, [size, size], antialias=True).float() / 255
        assert (output - resized).abs().max() < 1e-5
    boxes = geometry.sample_crop_boxes(torch.rand(5, 22), 64, 64, (1.0, 1.0), ratio=(1.0, 1.0))
    assert boxes.tolist() == [[0.0, 0.0, 64.0, 64.0]] * 5


def test_flips_mirror_the_chosen_images():
    images = _images(2, 16)
    config = _only(horizontal_flip=True, vertical_flip=True)
    params = dataclasses.replace(_neutral(2, 16, 16), horizontal_flip=torch.tensor([True, False]),
                                 vertical_flip=torch.tensor([True, True]))
    output = BatchAugmentation(config, 16).apply_params(images, params)
    assert torch.equal(output[0], normalize(images[0].flip(-1).flip(-2)))
    assert torch.equal(output[1], normalize(images[1].flip(-2)))


def test_flips_drawn_with_probability_one_half():
    params = sample_params(_only(horizontal_flip=True), 1000, 8, 8, 8, torch.Generator().manual_seed(0))
    assert 400 < int(params.horizontal_flip.sum()) < 600
    assert not params.vertical_flip.any()


def test_cutout_zeroes_exactly_a_square_on_the_chosen_images():
    images = torch.randint(10, 250, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    config = _only(cutout=True, cutout_size=5)
    params = dataclasses.replace(_neutral(2, 32, 32), cutout=torch.tensor([True, False]),
                                 cutout_top=torch.tensor([3, 0]), cutout_left=torch.tensor([27, 0]))
    output = denormalize(BatchAugmentation(config, 32).apply_params(images, params))
    expected = images.float() / 255
    expected[0, :, 3:8, 27:32] = 0
    assert (output - expected).abs().max() < 1e-5
    assert int((output[0] < 1e-6).all(dim=0).sum()) == 25


def test_cutout_squares_stay_inside_and_follow_p():
    config = AugmentConfig(cutout=True, cutout_size=16, cutout_p=0.3)
    params = sample_params(config, 2000, 40, 40, 40, torch.Generator().manual_seed(0))
    for corner in (params.cutout_top, params.cutout_left):
        assert corner.min() == 0 and corner.max() == 40 - 16
    assert 500 < int(params.cutout.sum()) < 700


def test_cutout_larger_than_the_images_is_refused():
    with pytest.raises(ConfigError, match="--cutout-size"):
        BatchAugmentation(AugmentConfig(cutout=True, cutout_size=40), 32)


@pytest.mark.parametrize("angle", [7.0, -10.0])
def test_rotation_matches_torchvision_rotate_away_from_borders(angle):
    image = _smooth(48)
    params = dataclasses.replace(_neutral(1, 48, 48), angles=torch.tensor([angle], dtype=torch.float64))
    output = denormalize(BatchAugmentation(_only(rotation=True), 48).apply_params(image.unsqueeze(0), params))
    expected = TF.rotate(image, angle, interpolation=TF.InterpolationMode.BILINEAR)
    assert (output[0] - expected)[:, 8:40, 8:40].abs().max() < 1e-5
    assert output[0, :, 0, 0].abs().max() < 1e-6  # rotated-in corner is black


def test_crop_box_warp_matches_torchvision_resized_crop_inside():
    image = _smooth(60)[:, :40]
    box = torch.tensor([[5.0, 7.0, 20.0, 30.0]])
    output = geometry.warp(image.unsqueeze(0), geometry.warp_matrices(box, torch.zeros(1), 40, 60), 48)
    expected = TF.resized_crop(image, 5, 7, 20, 30, [48, 48], antialias=False)
    # torchvision clamps at the crop's edge, the warp reads the true neighbours: compare inside the border
    assert (output[0] - expected)[:, 1:-1, 1:-1].abs().max() < 1e-5


def test_crop_sampler_takes_the_first_valid_candidate():
    uniforms = torch.zeros(1, 22, dtype=torch.float64)
    uniforms[0, 0], uniforms[0, 10] = 1.0, 1.0  # candidate 0: whole area at ratio 4/3 -> 115 px wide, invalid
    uniforms[0, 1], uniforms[0, 11] = 0.0, 0.5  # candidate 1: a quarter of the area, ratio 1 -> 50 x 50
    uniforms[0, 20:] = 0.5  # top = floor(0.5 * 51)
    boxes = geometry.sample_crop_boxes(uniforms, 100, 100, (0.25, 1.0))
    assert boxes.tolist() == [[25.0, 25.0, 50.0, 50.0]]


def test_crop_sampler_falls_back_to_the_centre_crop():
    # a 4:1 panorama at full scale: every candidate is taller than the image
    boxes = geometry.sample_crop_boxes(torch.rand(3, 22), 100, 400, (1.0, 1.0))
    assert boxes.tolist() == [[0.0, 133.0, 100.0, 133.0]] * 3


def test_crop_boxes_respect_scale_and_ratio():
    boxes = geometry.sample_crop_boxes(torch.rand(500, 22, generator=torch.Generator().manual_seed(0)),
                                       64, 64, (0.5, 1.0))
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 64).all() and (left + w <= 64).all()
    assert ((w * h) / 64**2 > 0.47).all()
    assert (w / h > 0.7).all() and (w / h < 1.43).all()


def test_gaussian_noise_has_the_requested_spread():
    config = _only(gaussian_noise=True, noise_std=0.05)
    images = torch.full((2, 3, 64, 64), 0.5)
    output = denormalize(BatchAugmentation(config, 64)(images, torch.Generator().manual_seed(0)))
    assert abs(float((output - 0.5).std()) - 0.05) < 0.003
    assert not torch.equal(output[0], output[1])


def test_large_inputs_are_shrunk_before_the_warp():
    assert geometry.shrink_for_warp(torch.zeros(1, 3, 512, 768), 317).shape[-2:] == (317, 476)
    assert geometry.shrink_for_warp(torch.zeros(1, 3, 200, 200), 317).shape[-2:] == (200, 200)


# --- randomness, shapes, devices ----------------------------------------------------------------------

def test_same_generator_state_same_output_and_samples_differ():
    augmentation = BatchAugmentation(AugmentConfig(gaussian_noise=True, horizontal_flip=True), 32)
    images = _images(1, 48).expand(6, -1, -1, -1)
    first = augmentation(images, torch.Generator().manual_seed(5))
    assert torch.equal(first, augmentation(images, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, augmentation(images, torch.Generator().manual_seed(6)))
    for i in range(6):
        for j in range(i + 1, 6):
            assert (first[i] - first[j]).abs().max() > 0.1


def test_an_images_parameters_do_not_depend_on_batch_size():
    small = sample_params(AugmentConfig(), 2, 64, 64, 32, torch.Generator().manual_seed(0))
    large = sample_params(AugmentConfig(), 5, 64, 64, 32, torch.Generator().manual_seed(0))
    assert torch.equal(small.boxes, large.boxes[:2]) and torch.equal(small.angles, large.angles[:2])


def test_switching_one_op_off_keeps_the_others_parameters():
    on = sample_params(AugmentConfig(), 4, 64, 64, 32, torch.Generator().manual_seed(0))
    off = sample_params(AugmentConfig(color_jitter=False), 4, 64, 64, 32, torch.Generator().manual_seed(0))
    assert torch.equal(on.boxes, off.boxes) and torch.equal(off.brightness, torch.ones(4))


def test_output_shape_dtype_and_input_untouched():
    augmentation = BatchAugmentation(AugmentConfig(), 24)
    floats = torch.rand(3, 3, 40, 30)
    copy = floats.clone()
    for images in (_images(3, 40), floats):
        output = augmentation(images, torch.Generator().manual_seed(0))
        assert output.shape == (3, 3, 24, 24) and output.dtype == torch.float32 and output.device == images.device
    assert torch.equal(floats, copy)


def test_normalize_hand_values():
    white = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    expected = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    assert torch.allclose(normalize(white)[0, :, 0, 0], expected)
    assert torch.allclose(denormalize(normalize(white)), torch.ones(1, 3, 2, 2))


def test_describe_lists_active_ops():
    assert describe(NOTHING) == "no augmentation"
    assert describe(AugmentConfig()) == "ColorJitter(b=0.8, c=0.3, s=0.7, h=0, random order), " \
                                        "RandomResizedCrop(scale=0.5-1)"
    assert describe(AugmentConfig(rotation=True, cutout=True, jitter_order="fixed")) == (
        "ColorJitter(b=0.8, c=0.3, s=0.7, h=0), RandomResizedCrop(scale=0.5-1), Rotation(±10°), Cutout(16px, p=0.5)")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_the_same_parameters():
    augmentation = BatchAugmentation(AugmentConfig(hue=0.1, horizontal_flip=True), 32)
    images = _images(4, 64)
    on_cpu = augmentation(images, torch.Generator().manual_seed(0))
    on_cuda = augmentation(images.cuda(), torch.Generator().manual_seed(0))
    assert on_cuda.device.type == "cuda"
    assert (on_cuda.cpu() - on_cpu).abs().max() < 1e-3
    assert math.isfinite(float(on_cuda.sum()))


def test_resized_crop_is_torchvisions_antialiased_resized_crop() -> None:
    images = _images(3, 48).float().div(255)
    boxes = torch.tensor([[0, 0, 48, 48], [5, 7, 30, 20], [10, 2, 24, 40]], dtype=torch.float64)
    got = geometry.resized_crops(images, boxes, 16)
    for image, (top, left, h, w), crop in zip(images, boxes.long().tolist(), got, strict=True):
        assert torch.equal(crop, TF.resized_crop(image, top, left, h, w, [16, 16], antialias=True))


def test_resized_crop_averages_where_the_warp_samples() -> None:
    # a 1-pixel checkerboard shrunk 2:1: the antialiased crop gives its mean, 0.5, inside the border
    board = ((torch.arange(8).view(1, 8) + torch.arange(8).view(8, 1)) % 2).float().expand(1, 3, 8, 8)
    crop = geometry.resized_crops(board, torch.tensor([[0.0, 0.0, 8.0, 8.0]]), 4)
    assert torch.equal(crop[0, :, 1:3, 1:3], torch.full((3, 2, 2), 0.5))


def test_the_official_crop_method_jitters_the_whole_image_then_crops() -> None:
    config = _only(color_jitter=True, brightness=0.5, contrast=0.5, saturation=0.0, hue=0.0,
                   random_resized_crop=True, crop_method="resized_crop")
    images = _images(2, 40, seed=3)
    params = sample_params(config, 2, 40, 40, 24, torch.Generator().manual_seed(1))
    got = BatchAugmentation(config, 24).apply_params(images, params)
    for index, image in enumerate(images.float().div(255)):
        expected = TF.adjust_contrast(TF.adjust_brightness(image, float(params.brightness[index])),
                                      float(params.contrast[index]))
        top, left, h, w = params.boxes[index].long().tolist()
        expected = normalize(TF.resized_crop(expected, top, left, h, w, [24, 24], antialias=True))
        torch.testing.assert_close(got[index], expected, atol=2e-6, rtol=0)


def test_crop_source_side_by_hand():
    # the smallest crop: area 0.5 of the image at aspect 3/4, so its narrow side is sqrt(0.5 * 3/4) = 0.6124 of it
    assert geometry.crop_source_side(64, 0.5) == 105  # 64 / 0.6124 = 104.5
    assert geometry.crop_source_side(224, 0.5) == 366  # 365.8
    assert geometry.crop_source_side(64, 1.0) == 74  # 64 / sqrt(3/4) = 73.9
    assert 104 * math.sqrt(0.5 * 3 / 4) < 64 <= 105 * math.sqrt(0.5 * 3 / 4)


def test_every_crop_of_an_image_read_at_the_crop_source_side_spans_the_training_size():
    side = geometry.crop_source_side(32, 0.5)
    params = sample_params(AugmentConfig(), 4000, side, side, 32, torch.Generator().manual_seed(0))
    heights, widths = params.boxes[:, 2], params.boxes[:, 3]
    assert min(heights.min(), widths.min()) >= 32 - 1  # whole pixels: a box rounds its sides
    assert heights.min() < 36 and widths.min() < 36  # and the bound is tight, not generous


def test_training_images_are_read_for_the_crop_as_stored_or_at_the_training_size():
    augment = AugmentConfig()
    assert training_read_size(TrainConfig(image_size=64), augment) == 105
    assert training_read_size(TrainConfig(image_size=64, resize_before_crop=False), augment) is None
    assert training_read_size(TrainConfig(image_size=64), AugmentConfig(random_resized_crop=False)) == 64
    assert training_read_size(TrainConfig(image_size=64), AugmentConfig(crop_scale_min=0.25)) == 148  # 64 / 0.433
