"""SimCLR image augmentations (random resized crop, flip, colour jitter, grayscale, blur), normalised with the
backbone's image-processor statistics: batched with kornia (`BatchedSimCLRAugmentation`, per-image draws on the whole
batch) or per image with torchvision.transforms.v2 (`SimCLRAugmentation`)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..images import to_rgb

__all__ = ["SimCLRAugmentation", "BatchedSimCLRAugmentation", "images_to_tensor", "image_processor_stats"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)

_IMAGENET_STD = (0.229, 0.224, 0.225)


def _size_of(size: Any) -> Optional[int]:
    """Square side from a processor `size` (dict or SizeDict: height/width or shortest_edge, or an int)."""
    if size is None:
        return None
    if isinstance(size, int):
        return size
    for key in ("height", "shortest_edge", "width"):
        value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
        if value:
            return int(value)
    return None


def image_processor_stats(processor: Any) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """(side, mean, std) of an image processor: transformers' `size`/`image_mean`, or timm's `data_config`."""
    data_config = getattr(processor, "data_config", None)
    if isinstance(data_config, dict) and "mean" in data_config:
        side = int(data_config["input_size"][-1])
        return side, tuple(data_config["mean"]), tuple(data_config["std"])
    side = _size_of(getattr(processor, "crop_size", None)) or _size_of(getattr(processor, "size", None)) or 224
    mean = tuple(getattr(processor, "image_mean", None) or _IMAGENET_MEAN)
    std = tuple(getattr(processor, "image_std", None) or _IMAGENET_STD)
    if getattr(processor, "do_normalize", True) is False:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return side, mean, std


class SimCLRAugmentation:
    """SimCLR's augmentation, one independent random draw per call (Chen et al. 2020, appendix A).

    Random resized crop (area `crop_min_scale`..1) -> horizontal flip -> colour jitter (0.8s brightness,
    contrast, saturation, 0.2s hue) with probability 0.8 -> grayscale with `grayscale_probability` ->
    Gaussian blur (kernel ~10% of the side, sigma 0.1-2) with `blur_probability` -> float tensor,
    normalised with `mean` / `std`. Built on `torchvision.transforms.v2`.

    Example:
        >>> augment = SimCLRAugmentation(32, mean=(0.5,) * 3, std=(0.5,) * 3)
        >>> augment(PIL.Image.new("RGB", (28, 28))).shape
        torch.Size([3, 32, 32])
    """

    def __init__(
        self,
        size: int,
        mean: Sequence[float] = _IMAGENET_MEAN,
        std: Sequence[float] = _IMAGENET_STD,
        crop_min_scale: float = 0.2,
        color_jitter_strength: float = 0.5,
        grayscale_probability: float = 0.2,
        blur_probability: float = 0.0,
        horizontal_flip: bool = True,
    ):
        try:
            from torchvision.transforms import v2
        except ImportError as err:
            raise ImportError(
                'SimCLR image augmentations need torchvision: pip install "hf-transfer-toolkit[vision]".'
            ) from err
        s = color_jitter_strength
        steps: list[Any] = [v2.ToImage(), v2.RandomResizedCrop(size, scale=(crop_min_scale, 1.0), antialias=True)]
        if horizontal_flip:
            steps.append(v2.RandomHorizontalFlip())
        if s > 0:
            steps.append(v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, min(0.2 * s, 0.5))], p=0.8))
        if grayscale_probability > 0:
            steps.append(v2.RandomGrayscale(p=grayscale_probability))
        if blur_probability > 0:
            kernel = max(3, int(0.1 * size) // 2 * 2 + 1)  # odd, ~10% of the side
            steps.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_probability))
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        self.size = size
        self.transform = v2.Compose(steps)

    def __call__(self, image: Any) -> torch.Tensor:
        return self.transform(image)  # (3, size, size)

    def __repr__(self) -> str:
        return f"SimCLRAugmentation({self.transform})"


class BatchedSimCLRAugmentation:
    """SimCLR's augmentation for a whole (N, 3, H, W) batch at once, with kornia: a fresh draw per image.

    torchvision's transforms draw one set of random parameters per call, so a batched call would give every
    image the same crop; per-image calls cost more than a small model's training step on a CPU. kornia's
    augmentations draw parameters per image and run on the batch (and on the batch's device). The steps and
    defaults are those of `SimCLRAugmentation`: random resized crop -> horizontal flip -> colour jitter (0.8s
    brightness, contrast, saturation, 0.2s hue) with probability 0.8 -> grayscale -> Gaussian blur -> normalise.

    Example:
        >>> augment = BatchedSimCLRAugmentation(32, mean=(0.5,) * 3, std=(0.5,) * 3)
        >>> augment(torch.rand(8, 3, 28, 28)).shape
        torch.Size([8, 3, 32, 32])
    """

    batched = True

    def __init__(
        self,
        size: int,
        mean: Sequence[float] = _IMAGENET_MEAN,
        std: Sequence[float] = _IMAGENET_STD,
        crop_min_scale: float = 0.2,
        color_jitter_strength: float = 0.5,
        grayscale_probability: float = 0.2,
        blur_probability: float = 0.0,
        horizontal_flip: bool = True,
    ):
        try:
            import kornia.augmentation as K
        except ImportError as err:
            raise ImportError(
                'Batched SimCLR augmentations need kornia: pip install "hf-transfer-toolkit[vision]", or pass '
                "--augmentation_backend torchvision."
            ) from err
        s = color_jitter_strength
        steps: list[Any] = [K.RandomResizedCrop((size, size), scale=(crop_min_scale, 1.0))]
        if horizontal_flip:
            steps.append(K.RandomHorizontalFlip())
        if s > 0:
            steps.append(K.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, min(0.2 * s, 0.5), p=0.8))
        if grayscale_probability > 0:
            steps.append(K.RandomGrayscale(p=grayscale_probability))
        if blur_probability > 0:
            kernel = max(3, int(0.1 * size) // 2 * 2 + 1)  # odd, ~10% of the side
            steps.append(K.RandomGaussianBlur((kernel, kernel), sigma=(0.1, 2.0), p=blur_probability))
        steps.append(K.Normalize(mean=torch.tensor(mean), std=torch.tensor(std)))
        self.size = size
        self.transform = K.AugmentationSequential(*steps)

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels: (N, 3, H, W) floats in [0, 1] -> (N, 3, size, size), normalised."""
        return self.transform(pixels.float())

    def __repr__(self) -> str:
        return f"BatchedSimCLRAugmentation({self.transform})"


def images_to_tensor(images: list[Any], side: int) -> torch.Tensor:
    """PIL images -> (N, 3, side, side) floats in [0, 1]; images of another size are resized (antialiased) first."""
    out = []
    for image in images:
        pixels = torch.from_numpy(np.asarray(to_rgb(image), dtype=np.uint8).copy()).permute(2, 0, 1)  # (3, h, w)
        pixels = pixels.float().div_(255.0)
        if pixels.shape[1:] != (side, side):
            pixels = F.interpolate(
                pixels[None], size=(side, side), mode="bilinear", antialias=True, align_corners=False
            )[0]
        out.append(pixels)
    return torch.stack(out)
