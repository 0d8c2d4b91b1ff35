"""Batched augmentation on the training device: pad + random crop and horizontal flip for a whole
batch with a few tensor ops (no per-image PIL work), then normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad each image by ``padding``, crop back to its size at a random offset, flip half.

    Works on uint8 or float batches of shape (B, C, H, W); labels are untouched, so they stay
    aligned by construction.
    """
    batch, channels, height, width = images.shape
    device = images.device
    if padding > 0:
        padded = F.pad(images, (padding, padding, padding, padding))
        offsets = torch.randint(0, 2 * padding + 1, (batch, 2), generator=generator, device=device)
        rows = (offsets[:, 0:1] + torch.arange(height, device=device))[:, None, :, None]
        cols = (offsets[:, 1:2] + torch.arange(width, device=device))[:, None, None, :]
        images = padded[torch.arange(batch, device=device)[:, None, None, None], torch.arange(channels, device=device)[None, :, None, None], rows, cols]
    if flip:
        flipped = torch.rand(batch, generator=generator, device=device) < 0.5
        images = torch.where(flipped[:, None, None, None], images.flip(3), images)
    return images


class Normalize:
    """uint8 batch -> float, standardised by the training split's per-channel mean and std."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device, channels_last: bool) -> None:
        self.scale = (1.0 / (255.0 * torch.tensor(std, device=device))).view(1, -1, 1, 1)
        self.shift = (torch.tensor(mean, device=device) / torch.tensor(std, device=device)).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32) * self.scale - self.shift
        return x.contiguous(memory_format=self.memory_format)
