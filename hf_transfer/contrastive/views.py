"""Two views of every sample, made in the collator: SimCLR image augmentations, SimCSE dropout, or pairs.

Every collator here returns one flat batch of 2B rows, `view 1` of all B samples first, then `view 2`
in the same order, plus `labels` (B,) when asked. One forward pass of 2B rows is cheaper than two of B,
and the trainer splits the embeddings back with `chunk(2)`.

- Images (`ContrastiveImageCollator`): two independent SimCLR augmentations per image (random resized
  crop, flip, colour jitter, grayscale, blur), normalised with the backbone's image-processor statistics:
  batched with kornia (`BatchedSimCLRAugmentation`, the default: per-image draws on the whole batch) or
  per image with torchvision.transforms.v2 (`SimCLRAugmentation`).
- Text, `dropout` views (`ContrastiveTextCollator`): the tokenized batch twice. The encoder runs in
  train mode, so dropout draws two different masks: SimCSE's only augmentation.
- Text, `pair` views: the text column and the pair column, tokenized and padded together.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch

from ..constants import Modality
from ..errors import DataError
from ..images import to_rgb
from ..modalities import MODALITIES
from .augmentations import BatchedSimCLRAugmentation, SimCLRAugmentation, image_processor_stats, images_to_tensor

__all__ = [
    "ContrastiveImageCollator",
    "ContrastiveTextCollator",
    "create_contrastive_collator",
    "create_image_views_collator",
    "create_text_views_collator",
]

logger = logging.getLogger(__name__)


def _labels(features: list[dict], label_column: str) -> torch.Tensor:
    if label_column not in features[0]:
        raise DataError(
            f"The contrastive loss needs labels but the batch has no '{label_column}' column (columns: "
            f"{sorted(features[0])}). Give the data a label column, or use --contrastive_loss ntxent."
        )
    return torch.tensor([int(f[label_column]) for f in features], dtype=torch.long)  # (B,)


class ContrastiveImageCollator:
    """PIL images -> `pixel_values` (2B, 3, H, W): two independent augmentations of each, view 1 first.

    Args:
        augmentation: a `BatchedSimCLRAugmentation` (applied to the whole batch at once) or a per-image
            `SimCLRAugmentation` (any callable PIL image -> tensor (3, H, W)).
        image_column: the column with PIL images.
        return_labels: add `labels` (B,) from `label_column` (SupCon).
    """

    def __init__(
        self,
        augmentation: Any,
        image_column: str = "image",
        label_column: str = "label",
        return_labels: bool = False,
    ):
        self.augmentation = augmentation
        self.image_column = image_column
        self.label_column = label_column
        self.return_labels = return_labels

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        images = [f[self.image_column] for f in features]
        if getattr(self.augmentation, "batched", False):
            pixels = images_to_tensor(images, self.augmentation.size)  # (B, 3, S, S)
            views = self.augmentation(torch.cat([pixels, pixels]))  # (2B, 3, S, S), independent draws
        else:
            rgb = [to_rgb(image) for image in images]
            first, second = [self.augmentation(image) for image in rgb], [self.augmentation(image) for image in rgb]
            views = torch.stack(first + second)  # (2B, 3, H, W)
        batch = {"pixel_values": views}
        if self.return_labels:
            batch["labels"] = _labels(features, self.label_column)
        return batch


class ContrastiveTextCollator:
    """Texts -> tokenized (2B, T) batch: the same texts twice (`dropout`) or text then pair column (`pair`).

    Tokenization happens here, per batch, so a pair column needs no preprocessing pass and `dropout`
    views tokenize each text once.

    Args:
        tokenizer: the backbone's tokenizer.
        views: `dropout` (SimCSE) or `pair`.
        max_seq_length: tokens per text after truncation.
        text_column, pair_column, label_column: column names in the dataset rows.
        return_labels: add `labels` (B,) (SupCon).
    """

    def __init__(
        self,
        tokenizer: Any,
        views: Literal["dropout", "pair"] = "dropout",
        max_seq_length: int = 128,
        text_column: str = "text",
        pair_column: str = "positive",
        label_column: str = "label",
        return_labels: bool = False,
    ):
        self.tokenizer = tokenizer
        self.views = views
        self.max_seq_length = max_seq_length
        self.text_column = text_column
        self.pair_column = pair_column
        self.label_column = label_column
        self.return_labels = return_labels

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="pt")
        )

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        texts = [f[self.text_column] for f in features]
        if self.views == "dropout":
            batch = {k: v.repeat(2, *([1] * (v.ndim - 1))) for k, v in self._tokenize(texts).items()}  # (2B, T)
        else:
            if self.pair_column not in features[0]:
                raise DataError(
                    f"--views pair needs the column '{self.pair_column}' in every row (columns: {sorted(features[0])})."
                )
            batch = self._tokenize(texts + [f[self.pair_column] for f in features])  # (2B, T)
        if self.return_labels:
            batch["labels"] = _labels(features, self.label_column)
        return batch


def create_contrastive_collator(processor: Any, modality: Modality, args: Any):
    """The collator for `ContrastiveArguments` `args` and a backbone's processor."""
    views = args.resolve_views(modality)
    return MODALITIES.get(modality).contrastive_collator(processor, views, args)


def create_image_views_collator(processor: Any, views: str, args: Any) -> ContrastiveImageCollator:
    """Two SimCLR augmentations of each image, normalised with the image processor's statistics (`views` is
    `augment`)."""
    side, mean, std = image_processor_stats(processor)
    cls = BatchedSimCLRAugmentation if args.augmentation_backend == "batched" else SimCLRAugmentation
    augmentation = cls(
        args.image_size or side,
        mean=mean,
        std=std,
        crop_min_scale=args.crop_min_scale,
        color_jitter_strength=args.color_jitter_strength,
        grayscale_probability=args.grayscale_probability,
        blur_probability=args.blur_probability,
        horizontal_flip=args.horizontal_flip,
    )
    logger.info("SimCLR views: %s", augmentation)
    return ContrastiveImageCollator(augmentation, return_labels=args.needs_labels)


def create_text_views_collator(processor: Any, views: str, args: Any) -> ContrastiveTextCollator:
    """The tokenized text twice (`dropout`, SimCSE) or the text and its `--pair_column` (`pair`)."""
    return ContrastiveTextCollator(
        processor, views=views, max_seq_length=args.max_seq_length, return_labels=args.needs_labels
    )
