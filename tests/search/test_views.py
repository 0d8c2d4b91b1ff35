"""What a network sees of an image file: images at rest, training crops, per-sample random streams,
the device-side augmentations of the in-memory path and evaluation's crops."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from search.augment import Normalize, augment_at_rest, evaluation_crops, random_boxes
from search.recipes import resolve_recipe
from search.views import ImageError, at_rest, crop_box, lighting_shift, sample_rng, training_crop


def write(path: Path, width: int, height: int, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    return path


def test_an_image_at_rest_is_the_central_square_of_its_shorter_side_resized(tmp_path: Path) -> None:
    wide = write(tmp_path / "wide.png", 120, 60)
    image = at_rest(wide, 30)
    assert image.shape == (3, 30, 30) and image.dtype == torch.uint8
    # The same as resizing the whole image (60x30) and cutting its middle 30 columns.
    expected = torch.from_numpy(np.array(Image.open(wide).resize((60, 30), Image.Resampling.BICUBIC))).permute(2, 0, 1)[:, :, 15:45]
    assert torch.equal(image, expected)
    square = write(tmp_path / "square.png", 32, 32)
    assert torch.equal(at_rest(square, 32), torch.from_numpy(np.array(Image.open(square))).permute(2, 0, 1)), "an image at its rest size is untouched"


def test_a_sample_draws_the_same_crop_in_any_process_and_another_in_the_next_epoch() -> None:
    first = crop_box("random_resized_crop", 500, 375, 224, sample_rng(7, 3, 41))
    assert first == crop_box("random_resized_crop", 500, 375, 224, sample_rng(7, 3, 41))
    assert first != crop_box("random_resized_crop", 500, 375, 224, sample_rng(7, 4, 41))
    assert first != crop_box("random_resized_crop", 500, 375, 224, sample_rng(8, 3, 41))


def test_random_resized_crop_and_scale_boxes_follow_their_papers() -> None:
    for index in range(300):
        left, top, width, height = crop_box("random_resized_crop", 500, 375, 224, sample_rng(0, 1, index))
        assert 0 <= left and left + width <= 500 and 0 <= top and top + height <= 375
        assert 0.08 * 500 * 375 * 0.97 <= width * height <= 500 * 375
        assert 3 / 4 * 0.9 <= width / height <= 4 / 3 * 1.1
        left, top, width, height = crop_box("scale", 500, 375, 224, sample_rng(0, 1, index))
        assert width == height and 0 <= left <= 500 - width and 0 <= top <= 375 - height
        # the shorter side resized to s in [256, 480], a 224 crop: the box is 224/s of it
        assert 375 * 224 / 480 - 1e-6 <= width <= 375 * 224 / 256 + 1e-6
    with pytest.raises(ValueError, match="valid: random_resized_crop, scale"):
        crop_box("pad_crop", 500, 375, 224, sample_rng(0, 1, 0))


def test_a_training_crop_decoded_at_reduced_size_matches_the_full_decode(tmp_path: Path) -> None:
    # A smooth photo-like JPEG: the DCT-scaled decode and the full one agree up to JPEG's blur.
    rows, cols = np.mgrid[0:480, 0:640]
    pixels = np.stack([(rows / 480 * 255), (cols / 640 * 255), ((rows + cols) / 1120 * 255)], axis=2).astype(np.uint8)
    path = tmp_path / "smooth.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    box = (40.0, 30.0, 480.0, 400.0)
    crop = training_crop(path, 64, lambda width, height: box)
    with Image.open(path) as image:
        full = torch.from_numpy(np.array(image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR, box=(40, 30, 520, 430)))).permute(2, 0, 1)
    assert crop.shape == (3, 64, 64) and crop.dtype == torch.uint8
    assert (crop.float() - full.float()).abs().mean() < 2.0
    with Image.open(path) as image:  # and the reduced decode really is smaller (1/4 here)
        image.draft("RGB", (math.ceil(640 * 64 / 480), math.ceil(480 * 64 / 400)))
        assert image.size[0] < 640


def test_a_reduced_decode_of_odd_sides_crops_a_box_reaching_its_far_edges(tmp_path: Path) -> None:
    # 159x136 decoded at 1/2 is 80x68 (sides rounded up): a box to the bottom edge, scaled by
    # 80/159 instead of the scale, overshot the decoded image and failed in Pillow.
    rows, cols = np.mgrid[0:136, 0:159]
    path = tmp_path / "odd.jpg"
    Image.fromarray(np.stack([rows * 255 // 136, cols * 255 // 159, (rows + cols) * 255 // 295], axis=2).astype(np.uint8)).save(path, quality=95)
    box = (4.0, 1.0, 155.0, 135.0)
    crop = training_crop(path, 48, lambda width, height: box)
    with Image.open(path) as image:
        full = torch.from_numpy(np.array(image.convert("RGB").resize((48, 48), Image.Resampling.BILINEAR, box=(4, 1, 159, 136)))).permute(2, 0, 1)
    assert (crop.float() - full.float()).abs().mean() < 2.0


def test_a_training_crop_of_a_whole_decode_matches_pillows_decode_and_resize_in_every_format(tmp_path: Path) -> None:
    # A box this small for its size leaves no DCT scale to drop: the JPEG is decoded whole, by
    # torchvision's decoder (CMYK, which it refuses, and PNG by Pillow), and resized by torch's
    # antialiased bilinear kernel. Pillow's decode and BILINEAR resize are the reference.
    rows, cols = np.mgrid[0:120, 0:160]
    pixels = np.stack([rows * 2, cols, (rows + cols) // 2], axis=2).astype(np.uint8)
    box = (20.0, 10.0, 100.0, 80.0)
    for name, mode in (("rgb.jpg", "RGB"), ("gray.jpg", "L"), ("cmyk.jpg", "CMYK"), ("rgb.png", "RGB")):
        path = tmp_path / name
        Image.fromarray(pixels).convert(mode).save(path, quality=95)
        crop = training_crop(path, 96, lambda width, height: box)
        with Image.open(path) as image:
            reference = np.array(image.convert("RGB").resize((96, 96), Image.Resampling.BILINEAR, box=(20, 10, 120, 90)))
        assert crop.shape == (3, 96, 96) and crop.dtype == torch.uint8 and crop[None].is_contiguous(memory_format=torch.channels_last)
        assert (crop.permute(1, 2, 0).float() - torch.from_numpy(reference).float()).abs().mean() < 1.5, name


def test_an_undecodable_file_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(ImageError, match="cannot decode image .*broken.jpg"):
        at_rest(broken, 32)


def test_memory_path_boxes_lie_in_the_image_and_keep_their_ranges() -> None:
    generator = torch.Generator().manual_seed(0)
    boxes = random_boxes("random_resized_crop", 4000, 256, 224, generator, torch.device("cpu"))
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 256 + 1e-3).all()
    assert ((widths * heights) >= 0.08 * 256 * 256 * 0.97).all()
    assert ((widths / heights) >= 0.74).all() and ((widths / heights) <= 1.35).all()
    scale = random_boxes("scale", 4000, 256, 224, generator, torch.device("cpu"))
    sides = scale[:, 2] - scale[:, 0]
    assert torch.allclose(sides, scale[:, 3] - scale[:, 1]) and sides.min() >= 224 * 256 / 480 - 1e-3 and sides.max() <= 224 + 1e-3


def test_in_memory_augmentations_give_training_views_at_the_training_size() -> None:
    images = torch.randint(0, 256, (8, 3, 73, 73), dtype=torch.uint8)
    for augment in ("pad_crop", "random_resized_crop", "scale", "none"):
        recipe = resolve_recipe("smoke", {"augment": augment, "image_size": 64, "eval_resize": 73, "eval_crop": 64, "crop_padding": 4, "lighting": True})
        views, shifts = augment_at_rest(images, recipe, torch.Generator().manual_seed(0))
        assert views.shape == (8, 3, 64, 64) and shifts is not None and shifts.shape == (8, 3)
    none = resolve_recipe("smoke", {"augment": "none", "flip": False, "image_size": 64, "eval_resize": 73, "eval_crop": 64})
    views, shifts = augment_at_rest(images, none, torch.Generator().manual_seed(0))
    assert torch.equal(views, images[:, :, 4:68, 4:68]) and shifts is None


def test_colour_augmentation_shifts_rgb_along_imagenets_principal_components() -> None:
    shifts = torch.tensor([lighting_shift(sample_rng(0, 1, i)) for i in range(2000)])
    assert shifts.abs().mean() > 0.005 and shifts.abs().max() < 0.2  # alpha ~ N(0, 0.1) x eigenvalues
    normalize = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"), channels_last=False)
    images = torch.full((2, 3, 4, 4), 128, dtype=torch.uint8)
    shift = torch.tensor([[0.1, 0.0, -0.1], [0.0, 0.0, 0.0]])
    assert torch.allclose(normalize(images, shift) - normalize(images), (shift / 0.25)[:, :, None, None].expand(2, 3, 4, 4))


def test_ten_crops_are_the_corners_the_center_and_their_flips() -> None:
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    crops = evaluation_crops(images, 4, 10).view(10, 2, 3, 4, 4)
    assert torch.equal(crops[0], images[..., :4, :4]) and torch.equal(crops[3], images[..., 2:, 2:])
    assert torch.equal(crops[4], images[..., 1:5, 1:5])
    assert torch.equal(crops[5:], crops[:5].flip(-1))
    assert torch.equal(evaluation_crops(images, 4, 1), images[..., 1:5, 1:5])
