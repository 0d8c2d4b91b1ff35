"""Batched augmentation on the training device: whole batches with a few tensor ops (no per-image
PIL work), from the run's generator, then normalisation.

The in-memory path augments images at rest (``search.views.at_rest``) here; so does the streaming
path for ``pad_crop`` and ``none``, whose workers send images at rest. For ``random_resized_crop``
and ``scale`` the streaming path's workers crop from the files, and only the flips and colour
shifts they drew are applied here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from search.views import (
    LIGHTING_EIGENVALUES,
    LIGHTING_EIGENVECTORS,
    LIGHTING_STD,
    RRC_RATIO,
    RRC_SCALE,
    SCALE_RANGE_AT_224,
)


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator, size: int | None = None) -> torch.Tensor:
    """Zero-pad each image by ``padding``, crop a ``size`` square (default: its own size) at a
    random offset, flip half.

    Works on uint8 or float batches of shape (B, C, H, W); labels are untouched, so they stay
    aligned by construction.
    """
    batch, channels, height, width = images.shape
    size = size or height
    device = images.device
    if padding > 0 or size != height:
        padded = F.pad(images, (padding, padding, padding, padding)) if padding else images
        offsets = torch.randint(0, height + 2 * padding - size + 1, (batch, 2), generator=generator, device=device)
        rows = (offsets[:, 0:1] + torch.arange(size, device=device))[:, None, :, None]
        cols = (offsets[:, 1:2] + torch.arange(size, device=device))[:, None, None, :]
        images = padded[torch.arange(batch, device=device)[:, None, None, None], torch.arange(channels, device=device)[None, :, None, None], rows, cols]
    if flip:
        images = flip_where(images, torch.rand(batch, generator=generator, device=device) < 0.5)
    return images


def flip_where(images: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """The batch with the images marked in ``flips`` mirrored left-right (a new tensor)."""
    return torch.where(flips[:, None, None, None], images.flip(3), images)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central square, its offsets rounded as torchvision's CenterCrop rounds them."""
    top, left = int(round((images.shape[-2] - size) / 2)), int(round((images.shape[-1] - size) / 2))
    return images[..., top : top + size, left : left + size]


def random_boxes(kind: str, batch: int, side: int, image_size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(B, 4) boxes (x1, y1, x2, y2) in a square image of ``side`` pixels: random-resized-crop's
    (torchvision's sampling: ten tries, then the whole image) or the paper's scale augmentation's."""
    if kind == "scale":
        low, high = (round(image_size * bound / 224) for bound in SCALE_RANGE_AT_224)
        shorter = torch.randint(low, high + 1, (batch,), generator=generator, device=device)
        width = height = image_size * side / shorter
    else:
        tries = 10
        area = side * side * (RRC_SCALE[0] + (RRC_SCALE[1] - RRC_SCALE[0]) * torch.rand(batch, tries, generator=generator, device=device))
        log_low, log_high = math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1])
        ratio = torch.exp(log_low + (log_high - log_low) * torch.rand(batch, tries, generator=generator, device=device))
        widths, heights = (area * ratio).sqrt().round(), (area / ratio).sqrt().round()
        fits = (widths <= side) & (heights <= side) & (widths > 0) & (heights > 0)
        first = fits.to(torch.int8).argmax(1, keepdim=True)
        fallback = torch.full((batch,), float(side), device=device)  # a square image: all of it
        width = torch.where(fits.any(1), widths.gather(1, first)[:, 0], fallback)
        height = torch.where(fits.any(1), heights.gather(1, first)[:, 0], fallback)
    left = torch.rand(batch, generator=generator, device=device) * (side - width)
    top = torch.rand(batch, generator=generator, device=device) * (side - height)
    return torch.stack([left, top, left + width, top + height], dim=1).float()


def crop_resize(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each image's box resized to ``size`` square, bilinear, as one batched op (roi_align), float."""
    from torchvision.ops import roi_align

    indexed = torch.cat([torch.arange(len(boxes), device=boxes.device, dtype=boxes.dtype)[:, None], boxes], dim=1)
    return roi_align(images.float(), indexed, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


def lighting_shifts(batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(B, 3) RGB shifts of the paper's colour augmentation, drawn on the device."""
    alpha = torch.randn(batch, 3, generator=generator, device=device) * LIGHTING_STD
    return (alpha * torch.tensor(LIGHTING_EIGENVALUES, device=device)) @ torch.tensor(LIGHTING_EIGENVECTORS, device=device).T


def augment_at_rest(images: torch.Tensor, recipe, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:  # recipe: search.recipes.Recipe
    """Training views of a batch of images at rest (uint8, square), and the colour shifts."""
    device = images.device
    if recipe.augment == "pad_crop":
        views = random_crop_flip(images, recipe.crop_padding, recipe.flip, generator, recipe.image_size)
    elif recipe.augment == "none":
        views = center_crop(images, recipe.image_size)
        if recipe.flip:
            views = flip_where(views, torch.rand(len(views), generator=generator, device=device) < 0.5)
    else:  # random_resized_crop or scale, from the image at rest
        boxes = random_boxes(recipe.augment, len(images), images.shape[-1], recipe.image_size, generator, device)
        views = crop_resize(images, boxes, recipe.image_size)
        if recipe.flip:
            views = flip_where(views, torch.rand(len(views), generator=generator, device=device) < 0.5)
    return views, lighting_shifts(len(images), generator, device) if recipe.lighting else None


def evaluation_crops(images: torch.Tensor, crop: int, count: int) -> torch.Tensor:
    """(count x B, C, crop, crop) views of a batch at rest, crop-major: the center crop, or the
    ten crops of the paper's comparisons (four corners and the center, each also flipped)."""
    if count == 1:
        return center_crop(images, crop)
    side = images.shape[-1]
    far = side - crop
    corners = [images[..., :crop, :crop], images[..., :crop, far:], images[..., far:, :crop], images[..., far:, far:], center_crop(images, crop)]
    return torch.cat(corners + [view.flip(3) for view in corners])


class Normalize:
    """uint8 (or float 0-255) batch -> float, standardised by the training split's per-channel
    mean and std, after an optional per-image RGB shift (colour augmentation, in [0, 1] units)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device, channels_last: bool) -> None:
        self.inverse_std = 1.0 / torch.tensor(std, device=device)
        self.scale = (1.0 / (255.0 * torch.tensor(std, device=device))).view(1, -1, 1, 1)
        self.shift = (torch.tensor(mean, device=device) / torch.tensor(std, device=device)).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
        # The layout is changed on the uint8 batch (a quarter of float's bytes), then the float
        # copy is scaled in place: one float pass instead of three (a CPU feeding itself notices).
        x = images.contiguous(memory_format=self.memory_format).to(torch.float32, copy=True)  # never the caller's tensor
        x.mul_(self.scale).sub_(self.shift)
        if shifts is not None:
            x.add_((shifts * self.inverse_std)[:, :, None, None])
        return x
