"""What a network sees of an image file: the one place that opens, decodes, crops and resizes one.

Both data paths call these functions, so they agree pixel for pixel where they can:

- the **image at rest** (``at_rest``): the shorter side resized to ``size``, then the central
  square, as AlexNet prepared its images. The in-memory path stores it; evaluation crops from it
  (one center crop, or the paper's 10 crops: corners, center and their flips).
- a **training crop** (``training_crop``): a box of the *original* image (random-resized-crop or
  the paper's scale augmentation, ``crop_box``) resized to the training size. The streaming path
  takes it from the file; JPEGs are decoded at a reduced size when the box allows (Pillow's
  ``draft``: the DCT scaled by 1/2, 1/4 or 1/8, several times faster than a full decode), else
  whole by torchvision's decoder, and the box is resized by torch's antialiased uint8 kernel.

A sample's random choices (box, flip, colour) come from ``sample_rng(seed, epoch, index)``: the
same image in the same epoch of the same run gets the same crop in any worker, on any machine, and
after any resume.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

AUGMENTATIONS = ("pad_crop", "random_resized_crop", "scale", "none")

# random-resized-crop as torchvision samples it (Szegedy et al. 2015): area 8-100%, aspect 3/4-4/3.
RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3 / 4, 4 / 3)
# He et al. 2016, section 3.4: the shorter side resized at random in [256, 480], a random 224
# crop; at another training size the range scales with it (64 px: [73, 137]).
SCALE_RANGE_AT_224 = (256, 480)
# "Standard colour augmentation" (Krizhevsky et al. 2012): RGB shifted along the principal
# components of ImageNet's pixels, alpha ~ N(0, 0.1); the eigen-decomposition fb.resnet.torch uses.
LIGHTING_STD = 0.1
LIGHTING_EIGENVALUES = (0.2175, 0.0188, 0.0045)
LIGHTING_EIGENVECTORS = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


class ImageError(ValueError):
    """An image file that cannot be decoded; the message names it."""


def _open(path: str | Path):  # -> PIL.Image.Image
    """The file decoded whole, as RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as handle:
            return _rgb(handle)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise undecodable(path, error) from None


def _rgb(handle):  # PIL.ImageFile.ImageFile -> PIL.Image.Image
    """An opened file decoded, as RGB. Most JPEGs decode to RGB already: convert would copy the
    whole picture (a sixth of a 500x375 decode's time) to change nothing."""
    handle.load()
    return handle if handle.mode == "RGB" else handle.convert("RGB")


def _draft(handle, wanted: tuple[int, int]) -> float:  # (PIL JpegImageFile, ...) -> factor
    """Set an opened JPEG to decode at the smallest DCT scale whose picture still covers
    ``wanted`` (Pillow's draft; nothing is decoded yet); the factor from its pixels to the file's,
    1.0 when no scale could be dropped."""
    width = handle.size[0]
    drafted = handle.draft("RGB", wanted)
    # The DCT scale 1/s, exactly: the decoded sides are rounded up (ceil(side / s)), so their ratio
    # to the file's sides is not the scale, and a box reaching the far edge scaled by it would
    # overshoot the decoded image.
    return width / drafted[1][2] if drafted is not None else 1.0


def _crop_source(path: str | Path, want: Callable[[int, int], tuple[int, int]]) -> tuple[torch.Tensor, float]:
    """The file as uint8 (3, H, W) channels last, decoded for a training crop, and the factor from
    its pixels to the file's. ``want(width, height)`` is the smallest picture that still spans the
    crop: a JPEG it lets shrink is decoded at a reduced DCT scale (Pillow's draft, several times
    faster); one that must be decoded whole goes to torchvision's decoder (libjpeg-turbo straight
    into a tensor: a fifth faster than Pillow's decode and copy); other formats go to Pillow."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as handle:  # the header: format and size
            factor = _draft(handle, want(*handle.size)) if handle.format == "JPEG" else 1.0
            if handle.format == "JPEG" and factor == 1.0:  # no DCT scale to drop: decoded whole
                whole = decode_jpeg_or_none(torch.frombuffer(bytearray(data), dtype=torch.uint8), torch.device("cpu"))
                if whole is not None:
                    return whole, 1.0
            return _to_tensor(_rgb(handle)), factor
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise undecodable(path, error) from None


def decode_jpegs(encoded: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """JPEG bytes (uint8, 1-D, on the host) -> RGB uint8 pictures (3, H, W) on ``device``, in one
    call (batched nvJPEG on CUDA)."""
    import warnings

    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image decoders for TorchCodec's (torchcodec 0.16, torch
        # >= 2.11), which is not in ResBench's stack nor on the GPU machines yet: until it is,
        # torchvision's binding of libjpeg-turbo and nvJPEG is the one at hand.
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)


def decode_jpeg_or_none(data: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    """One JPEG decoded by torchvision, or None where its decoder refuses the file (a PNG named
    .jpg, a truncated file): Pillow then decodes it, or names what is wrong with it."""
    try:
        return decode_jpegs([data], device)[0]
    except RuntimeError:
        return None


def undecodable(path: str | Path, error: Exception) -> ImageError:
    """One line naming the file and the decoder's first words on it."""
    return ImageError(f"cannot decode image {path}: {str(error).splitlines()[0][:120]}")


def jpeg_header(path: str | Path) -> tuple[bytes, tuple[int, int]] | None:
    """(the file's bytes, its (width, height)) if it is a JPEG, read once and not decoded (for a
    decoder elsewhere); None for another format."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as handle:  # the header only
            return (data, handle.size) if handle.format == "JPEG" else None
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise undecodable(path, error) from None


def _to_tensor(image) -> torch.Tensor:
    """PIL RGB -> uint8 (3, H, W) laid out channels last, as decoded (H, W, C in memory): batches
    are stacked so (``search.stream.collate``), the layout the model trains in."""
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)


def at_rest(path: str | Path, size: int) -> torch.Tensor:
    """The shorter side resized to ``size`` (bicubic), then the central ``size`` x ``size`` square."""
    from PIL import Image

    image = _open(path)
    width, height = image.size
    if (width, height) != (size, size):
        # Sizes and offsets rounded as torchvision's Resize(size) and CenterCrop round them, so
        # the transform a saved model carries (zoo.inference) sees what evaluation saw.
        short, long = min(width, height), max(width, height)
        resized = (size, int(size * long / short)) if width == short else (int(size * long / short), size)
        image = image.resize(resized, Image.Resampling.BICUBIC)
        left, top = int(round((resized[0] - size) / 2)), int(round((resized[1] - size) / 2))
        image = image.crop((left, top, left + size, top + size))
    return _to_tensor(image)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream of one sample in one epoch of one run."""
    return np.random.default_rng([seed, epoch, index])


def crop_box(kind: str, width: int, height: int, image_size: int, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """(left, top, box width, box height) in the original image's pixels."""
    if kind == "random_resized_crop":
        area = width * height
        for _ in range(10):  # torchvision's rejection sampling, then its fallback
            target = area * rng.uniform(*RRC_SCALE)
            ratio = math.exp(rng.uniform(math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1])))
            box_w, box_h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
            if 0 < box_w <= width and 0 < box_h <= height:
                return float(rng.integers(0, width - box_w + 1)), float(rng.integers(0, height - box_h + 1)), float(box_w), float(box_h)
        ratio = width / height
        box_w, box_h = (width, round(width / RRC_RATIO[1])) if ratio > RRC_RATIO[1] else (round(height * RRC_RATIO[0]), height) if ratio < RRC_RATIO[0] else (width, height)
        return (width - box_w) / 2, (height - box_h) / 2, float(box_w), float(box_h)
    if kind == "scale":
        low, high = (round(image_size * bound / 224) for bound in SCALE_RANGE_AT_224)
        shorter = rng.integers(low, high + 1)  # the shorter side after the random resize
        side = image_size * min(width, height) / shorter  # the crop, back in original pixels
        return float(rng.uniform(0, width - side)), float(rng.uniform(0, height - side)), side, side
    raise ValueError(f"augmentation {kind!r} takes no crop box; valid: random_resized_crop, scale")


def training_crop(path: str | Path, image_size: int, box_of: Callable[[int, int], tuple[float, float, float, float]]) -> torch.Tensor:
    """The box ``box_of(width, height)`` of the original image (left, top, width, height in its
    pixels), resized to ``image_size`` square (bilinear, antialiased), as uint8 (3, S, S) laid out
    channels last.

    The resize is torch's uint8 kernel (``interpolate(antialias=True)`` on a channels-last image),
    which Pillow's BILINEAR matches within a few levels at two to three times its speed: at 224 px
    Pillow's resize cost as much as the decode itself (benchmarks/data_stream.py)."""
    chosen: list[tuple[int, int, tuple[float, float, float, float]]] = []

    def want(width: int, height: int) -> tuple[int, int]:  # decode at the smallest scale where the box still spans image_size pixels
        box = box_of(width, height)
        chosen.append((width, height, box))
        return math.ceil(width * image_size / box[2]), math.ceil(height * image_size / box[3])

    picture, scale = _crop_source(path, want)
    height, width = picture.shape[1:]
    if not chosen:  # not a JPEG: decoded whole, the box chosen now
        chosen.append((width, height, box_of(width, height)))
    _, _, (left, top, box_w, box_h) = chosen[0]
    factor = 1 / scale
    # The box in whole pixels of the decoded image: a reduced decode (or the scale augmentation)
    # puts its edges between pixels, and rounding moves them by at most half a decoded pixel,
    # under half an output pixel (the box spans at least image_size decoded pixels when reduced).
    x1, y1 = min(width - 1, round(left * factor)), min(height - 1, round(top * factor))
    x2, y2 = max(x1 + 1, min(width, round((left + box_w) * factor))), max(y1 + 1, min(height, round((top + box_h) * factor)))
    region = picture[None, :, y1:y2, x1:x2].contiguous(memory_format=torch.channels_last)  # the box only: the resize's fast path
    resized = torch.nn.functional.interpolate(region, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return resized[0]  # channels last, as the region was


def lighting_shift(rng: np.random.Generator) -> tuple[float, float, float]:
    """The RGB shift (in [0, 1] pixel units) of one image's colour augmentation."""
    alpha = rng.normal(0.0, LIGHTING_STD, 3) * np.array(LIGHTING_EIGENVALUES)
    return tuple(float(v) for v in np.array(LIGHTING_EIGENVECTORS) @ alpha)  # type: ignore[return-value]
