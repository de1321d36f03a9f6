"""Turn canonical `text` / `tokens` / `image` + `label` datasets into model inputs, one way for every strategy.

The modality's entry (`hf_transfer.modalities`) names how: `text.py` tokenizes text once with `Dataset.map`,
`word_windows.py` tokenizes the words of token classification (long sentences in windows), `image_transforms.py`
decodes and resizes images on the fly; `labels.py` holds what every modality does to labels. This module checks that
the data fits the model and hands the split to the entry.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from datasets import Dataset, DatasetDict

from ..constants import Modality
from ..errors import DataError
from ..modalities import MODALITIES
from ..tasks import TASKS
from .image_transforms import set_image_size
from .labels import IGNORED_LABEL, multi_hot, multi_label_count
from .text import cap_max_seq_length, model_max_length
from .word_windows import TokenClassificationCollator, sentence_windows, window_counts

__all__ = [
    "preprocess_dataset",
    "create_collator",
    "sample_inputs",
    "describe_preprocessing",
    "set_image_size",
    "model_max_length",
    "cap_max_seq_length",
    "multi_hot",
    "IGNORED_LABEL",
    "sentence_windows",
    "window_counts",
]


def preprocess_dataset(
    dataset: DatasetDict | Dataset,
    processor: Any,
    modality: Modality,
    max_seq_length: int = 128,
    desc_prefix: str = "",
    augmentation: Any = None,
) -> DatasetDict | Dataset:
    """Tokenize text (cached `map`) or attach an on-the-fly image transform, keeping `label` (multi-label lists
    become 0/1 rows, `multi_hot`). `augmentation` (an `hf_transfer.augmentation.ImageAugmentation`) makes it a
    training transform: for the training split of fine-tuning only, never for evaluation or probe features."""
    entry = MODALITIES.get(modality)
    columns = dataset.column_names
    columns = next(iter(columns.values())) if isinstance(columns, dict) else columns
    words = entry.words_column is not None and entry.words_column in columns
    needed = entry.words_column if words else entry.input_column
    if needed not in columns:
        other = " or ".join(name for name in MODALITIES if name != modality)
        raise DataError(
            f"The model is a {modality} model but the data has no `{needed}` column (columns: {columns}); "
            f"it looks like {other} data. Pick a {modality} dataset or a {other} model."
        )
    if words:  # token classification: words with a tag each
        return entry.preprocess_words(
            dataset, processor, columns=columns, max_seq_length=max_seq_length, desc_prefix=desc_prefix
        )
    return entry.preprocess(
        dataset,
        processor,
        num_labels=multi_label_count(dataset),
        max_seq_length=max_seq_length,
        desc_prefix=desc_prefix,
        augmentation=augmentation,
    )


def create_collator(
    processor: Any, modality: Modality, task: str = "single_label"
) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
    """Dynamic padding for text (tag rows padded with `IGNORED_LABEL` for token classification); stacking of
    `pixel_values` for images. Both turn `label` into `labels`."""
    if TASKS.get(task).per_token:
        return TokenClassificationCollator(processor, label_pad_token_id=IGNORED_LABEL)
    return MODALITIES.get(modality).create_collator(processor)


def sample_inputs(
    dataset: Dataset, collate_fn: Callable, device: Optional[torch.device | str] = None
) -> dict[str, torch.Tensor]:
    """The first row of `dataset` as one collated model input without labels: for checks that run the model once."""
    batch = collate_fn([dataset[0]])
    batch.pop("labels", None)
    return {k: v.to(device) if device is not None else v for k, v in batch.items()}


def describe_preprocessing(processor: Any, modality: Modality, max_seq_length: Optional[int]) -> str:
    """A stable text describing the preprocessing, for cache keys."""
    return MODALITIES.get(modality).describe_preprocessing(processor, max_seq_length)
