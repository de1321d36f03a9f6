"""The weak and strong views of an unlabelled row for FixMatch.

Images: the weak view is a mild random-resized crop and a flip, the strong view adds timm's RandAugment and random
erasing (FixMatch's RandAugment + Cutout), both built by `hf_transfer.augmentation` around the model's own processor.
Text: the weak view is the text as it is, read by the model in train mode (its dropout is the perturbation, as in
UDA's and SimCSE's use of dropout noise); the strong view masks a share of its tokens with the tokenizer's mask token,
or, for a tokenizer without one, hides them from attention (token dropout).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from datasets import Dataset
from torch.utils.data import Dataset as TorchDataset

from ..images import to_rgb

__all__ = ["PoolRows", "TokenMasking", "two_view_image_transform", "image_views"]

POOL_ROW = "pool_row"  # each unlabelled row's position in the pool (per-class threshold state is kept per row)
STRONG_PREFIX = "strong_"  # the strong view's inputs in a batch: `strong_pixel_values`


class TokenMasking:
    """The strong view of a text batch: each non-special, non-padding token masked with probability `probability`.

    Args:
        tokenizer: the run's tokenizer: its mask token replaces tokens; without one, masked tokens get attention 0.
        probability: the share of tokens masked.
        generator: the random source (seeded by the trainer).
    """

    def __init__(self, tokenizer: Any, probability: float, generator: Optional[torch.Generator] = None) -> None:
        self.mask_id = getattr(tokenizer, "mask_token_id", None)
        self.special_ids = torch.tensor(sorted(set(getattr(tokenizer, "all_special_ids", []) or [])), dtype=torch.long)
        self.probability = probability
        self.generator = generator

    @property
    def description(self) -> str:
        how = "the mask token" if self.mask_id is not None else "attention 0 (token dropout: no mask token)"
        return f"{self.probability:g} of the tokens replaced by {how}"

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        input_ids = batch["input_ids"]
        attention = batch.get("attention_mask", torch.ones_like(input_ids))
        draws = torch.rand(input_ids.shape, generator=self.generator).to(input_ids.device)
        maskable = attention.bool() & ~torch.isin(input_ids, self.special_ids.to(input_ids.device))
        masked = maskable & (draws < self.probability)
        out = dict(batch)
        if self.mask_id is not None:
            out["input_ids"] = input_ids.masked_fill(masked, self.mask_id)
        else:
            out["attention_mask"] = attention.masked_fill(masked, 0)
        return out


def image_views(processor: Any) -> tuple[Any, Any]:
    """The weak and the strong `ImageAugmentation` for `processor`'s inputs."""
    from ..augmentation import AugmentationArguments, create_image_augmentation

    weak = AugmentationArguments(augmentation="basic", crop_scale=[0.8, 1.0], color_jitter=0.0)
    strong = AugmentationArguments(augmentation="randaugment", crop_scale=[0.8, 1.0])
    return create_image_augmentation(weak, "basic", processor), create_image_augmentation(
        strong, "randaugment", processor
    )


def two_view_image_transform(processor: Any, weak: Any, strong: Any) -> Callable[[dict], dict]:
    """A `with_transform` giving each image row its weak (`pixel_values`) and strong (`strong_pixel_values`) view."""

    def views(images: list, augmentation: Any) -> torch.Tensor:
        pixels = processor([augmentation.augment_image(image) for image in images], return_tensors="pt")
        return augmentation.augment_pixels(pixels["pixel_values"])  # (B, 3, H, W)

    def transform(batch: dict) -> dict:
        images = [to_rgb(image) for image in batch["image"]]
        return {"pixel_values": list(views(images, weak)), f"{STRONG_PREFIX}pixel_values": list(views(images, strong))}

    return transform


class PoolRows(TorchDataset):
    """The pool's rows with their position (`pool_row`), collated by the run's collator (labels dropped: a pool row
    has none), the strong view's tensors stacked beside."""

    def __init__(self, rows: Dataset, collator: Callable[[list[dict]], dict]) -> None:
        self.rows = rows
        self.collator = collator

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return {**self.rows[index], POOL_ROW: index}

    def collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        positions = torch.tensor([item.pop(POOL_ROW) for item in items])
        strong = {
            key: torch.stack([torch.as_tensor(item.pop(key)) for item in items])
            for key in list(items[0])
            if key.startswith(STRONG_PREFIX)
        }
        for item in items:
            item.pop("label", None)
            item.pop("labels", None)
        batch = self.collator(items)
        batch.pop("labels", None)
        return {**batch, **strong, POOL_ROW: positions}


def pool_views(
    rows: Dataset, tokenized: Optional[Dataset], processor: Any, augmentable: bool, mask_probability: float, seed: int
) -> tuple[Dataset, Optional[Callable[[dict], dict]], str]:
    """What FixMatch reads of the pool: `(dataset, strong_view, description)`. Images (`augmentable` modality): the
    raw `rows` with both views made on read, no batch-level strong view; text: the `tokenized` rows and
    `TokenMasking`."""
    if augmentable:
        weak, strong = image_views(processor)
        transform = two_view_image_transform(processor, weak, strong)
        return rows.with_transform(transform), None, f"weak: {weak.description}; strong: {strong.description}"
    masking = TokenMasking(processor, mask_probability, torch.Generator().manual_seed(seed))
    return tokenized, masking, f"weak: the text as is, dropout on; strong: {masking.description}"
