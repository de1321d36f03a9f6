"""The image training transform: timm's augmentations around the model's own image processor.

timm's `create_transform(is_training=True, separate=True)` returns three stages: the crop and flips (PIL), the
policy or colour jitter (PIL), and tensor conversion + normalisation + random erasing. The first two run here as
timm builds them; the third is replaced by the model's image processor, so every backbone (a timm wrapper, ViT,
ConvNeXt, CLIP...) gets the resizing, channel order and normalisation it was trained with, exactly as at evaluation;
random erasing then runs on the processed tensor, as timm runs it after normalising.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from PIL import Image, ImageOps

from .arguments import AugmentationArguments

__all__ = ["ImageAugmentation", "create_image_augmentation", "processor_input_size"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)


def processor_input_size(image_processor: Any) -> tuple[int, int]:
    """The (height, width) the processor gives the model, read from its output (every processor has its own way
    of declaring it: `size`, `crop_size`, `shortest_edge` with `crop_pct`, a timm `pretrained_cfg`)."""
    pixel_values = image_processor(Image.new("RGB", (97, 89)), return_tensors="pt")["pixel_values"]
    height, width = pixel_values.shape[-2:]
    return int(height), int(width)


def _processor_mean(image_processor: Any) -> tuple[float, ...]:
    """The processor's normalisation mean (the fill colour of RandAugment's geometric ops)."""
    data_config = getattr(image_processor, "data_config", None)  # TimmWrapperImageProcessor
    mean = (data_config or {}).get("mean") or getattr(image_processor, "image_mean", None)
    return tuple(mean) if mean is not None and len(mean) == 3 else _IMAGENET_MEAN


def _posterize_keeps_zero_bits() -> None:
    """timm's RandAugment and AutoAugment posterize to 0 bits at their top magnitudes (`PosterizeIncreasing` at level
    10, `Posterize` at level 0): all bits dropped, a black image, as Pillow used to return. Pillow 13 rejects
    fewer than 1 bit with a ValueError, which stopped training at a random step. timm's ops get that black image
    back; with a Pillow that still accepts 0 bits nothing changes."""
    try:
        ImageOps.posterize(Image.new("L", (1, 1)), 0)
        return
    except ValueError:
        pass
    from timm.data import auto_augment

    original = auto_augment.posterize
    if getattr(original, "keeps_zero_bits", False):
        return

    def posterize(img: Image.Image, bits_to_keep: int, **kwargs: Any) -> Image.Image:
        return Image.new(img.mode, img.size) if bits_to_keep < 1 else original(img, bits_to_keep, **kwargs)

    posterize.keeps_zero_bits = True
    for name, op in list(auto_augment.NAME_TO_OP.items()):
        if op is original:
            auto_augment.NAME_TO_OP[name] = posterize
    auto_augment.posterize = posterize


class ImageAugmentation:
    """A training augmentation in two stages around the image processor: `augment_image` on each PIL image before
    it, `augment_pixels` on the processed batch after it (see the module docstring).

    Args:
        image_transform: PIL image -> PIL image (crop, flips, policy).
        pixel_transform: a (B, C, H, W) tensor -> the same, erased in place; None for no erasing.
        description: what it does, for the log and the model card.
    """

    def __init__(
        self,
        image_transform: Callable[[Image.Image], Image.Image],
        pixel_transform: Optional[Callable[[torch.Tensor], torch.Tensor]],
        description: str,
    ):
        self.image_transform = image_transform
        self.pixel_transform = pixel_transform
        self.description = description

    def augment_image(self, image: Image.Image) -> Image.Image:
        return self.image_transform(image)

    def augment_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return pixel_values if self.pixel_transform is None else self.pixel_transform(pixel_values)

    def __repr__(self) -> str:
        return f"ImageAugmentation({self.description})"


def create_image_augmentation(
    args: AugmentationArguments, preset: str, image_processor: Any
) -> Optional[ImageAugmentation]:
    """The training augmentation of `preset` (`AugmentationArguments.resolve_augmentation`) for a model whose
    inputs `image_processor` makes; None for `none` (training reads the evaluation transform)."""
    if preset == "none":
        return None
    from timm.data import create_transform
    from timm.data.random_erasing import RandomErasing
    from torchvision import transforms

    size = processor_input_size(image_processor)
    policy = args.policy(preset)
    _posterize_keeps_zero_bits()
    trivial = policy == "trivialaugment"  # torchvision's, in the place timm puts its policies
    primary, secondary, _ = create_transform(
        input_size=(3, *size),
        is_training=True,
        separate=True,
        scale=tuple(args.crop_scale) if args.crop_scale else None,
        ratio=tuple(args.crop_ratio) if args.crop_ratio else None,
        hflip=args.hflip,
        vflip=args.vflip,
        color_jitter=args.color_jitter if args.color_jitter and not policy else None,
        auto_augment=None if trivial else policy,
        interpolation="bicubic",
        mean=_processor_mean(image_processor),
    )
    if trivial:
        fill = [round(255 * m) for m in _processor_mean(image_processor)]
        secondary = transforms.TrivialAugmentWide(interpolation=transforms.InterpolationMode.BICUBIC, fill=fill)
    erasing = args.erasing_probability(preset)
    pixel_transform = RandomErasing(erasing, mode="pixel", device="cpu") if erasing > 0 else None
    scale = args.crop_scale or (0.08, 1.0)
    parts = [f"random-resized crop to {size[0]}x{size[1]} (area {scale[0]:g}-{scale[1]:g})"]
    parts += [f"hflip {args.hflip:g}"] if args.hflip else []
    parts += [f"vflip {args.vflip:g}"] if args.vflip else []
    parts += [policy] if policy else ([f"colour jitter {args.color_jitter:g}"] if args.color_jitter else [])
    parts += [f"random erasing {erasing:g}"] if erasing else []
    return ImageAugmentation(
        transforms.Compose([primary, secondary]), pixel_transform, f"{preset}: " + ", ".join(parts)
    )
