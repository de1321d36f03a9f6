"""Turn canonical `text` / `image` + `label` datasets into model inputs, one way for every strategy.

Text is tokenized once with `Dataset.map` (cached by `datasets`, so the fingerprint of the result
also identifies the tokenization). Images are decoded and resized on the fly with `with_transform`,
because storing 224x224 float tensors for a whole data set would not fit on disk; the image
processor's settings therefore enter the feature-cache key explicitly (`describe_preprocessing`).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Literal, Optional

import torch
from datasets import ClassLabel, Dataset, DatasetDict
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, PreTrainedTokenizerBase

from .errors import DataError
from .images import to_rgb

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
]

Modality = Literal["text", "vision"]

logger = logging.getLogger(__name__)

_UNBOUNDED = 10**6  # tokenizers without a limit report int(1e30)


def model_max_length(model: torch.nn.Module, tokenizer: Any = None) -> Optional[int]:
    """The most tokens `model` can read: its absolute position table (less RoBERTa-style offsets, found from the
    table's `padding_idx`), else the tokenizer's `model_max_length`, else `config.max_position_embeddings`;
    None when nothing bounds it (relative or rotary positions without a declared limit)."""
    limits = []
    for name, module in model.named_modules():
        if name.endswith("position_embeddings") and isinstance(module, torch.nn.Embedding):
            offset = module.padding_idx + 1 if module.padding_idx is not None else 0
            limits.append(module.num_embeddings - offset)
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < _UNBOUNDED:
        limits.append(tokenizer_limit)
    if not limits:
        declared = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if isinstance(declared, int) and declared > 0:
            limits.append(declared)
    return min(limits) if limits else None


def cap_max_seq_length(max_seq_length: int, model: torch.nn.Module, tokenizer: Any = None) -> int:
    """`--max_seq_length`, lowered with a warning to what the model can read (beyond it a long text fails inside
    the model's embeddings, possibly only at evaluation after the whole training)."""
    limit = model_max_length(model, tokenizer)
    if limit is not None and max_seq_length > limit:
        logger.warning(
            "--max_seq_length %d is more than %s reads (%d tokens); using %d.",
            max_seq_length,
            type(model).__name__,
            limit,
            limit,
        )
        return limit
    return max_seq_length


def multi_hot(label_ids: list[list[int]], num_labels: int) -> list[list[float]]:
    """Label id lists as 0/1 rows of `num_labels` floats: the targets of a multi-label head (BCE)."""
    rows = []
    for ids in label_ids:
        row = [0.0] * num_labels
        for i in ids:
            row[i] = 1.0
        rows.append(row)
    return rows


def _multi_label_count(dataset: DatasetDict | Dataset) -> Optional[int]:
    """The number of labels when `label` is a multi-label list (`List(ClassLabel)`), else None."""
    features = next(iter(dataset.values())).features if isinstance(dataset, DatasetDict) else dataset.features
    inner = getattr(features.get("label"), "feature", None)
    return inner.num_classes if isinstance(inner, ClassLabel) else None


def _tokenize_fn(
    tokenizer: PreTrainedTokenizerBase, max_seq_length: int, num_labels: Optional[int]
) -> Callable[[dict], dict]:
    def tokenize(batch: dict) -> dict:
        out = tokenizer(batch["text"], truncation=True, max_length=max_seq_length)
        if num_labels is not None and "label" in batch:
            # As `labels`: a column that keeps its name keeps its type (the ClassLabel list), whatever map returns.
            out["labels"] = multi_hot(batch["label"], num_labels)
        return out

    return tokenize


# Label of the sub-tokens a word-level tag is not given to (special tokens, a word's later pieces): the index
# cross-entropy ignores, and what DataCollatorForTokenClassification pads labels with.
IGNORED_LABEL = -100


def _tokenize_words_fn(tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> Callable[[dict], dict]:
    """Tokenize pre-split words and give each word's tag to its first sub-token (the rest and special tokens get
    `IGNORED_LABEL`), as transformers' run_ner does; words cut off by `max_seq_length` are not scored."""
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(
            f"Token classification aligns tags to words through a fast tokenizer's word_ids(); {type(tokenizer).__name__} "
            "is a slow one. Use a model that ships tokenizer.json (a fast tokenizer)."
        )

    def tokenize(batch: dict) -> dict:
        out = tokenizer(batch["tokens"], truncation=True, max_length=max_seq_length, is_split_into_words=True)
        if "label" in batch:
            out["labels"] = [
                [IGNORED_LABEL if w is None or w == previous else tags[w] for w, previous in zip(words, [None, *words])]
                for words, tags in ((out.word_ids(i), tags) for i, tags in enumerate(batch["label"]))
            ]
        return out

    return tokenize


def _image_transform(
    image_processor: Any, num_labels: Optional[int], augmentation: Any = None
) -> Callable[[dict], dict]:
    def transform(batch: dict) -> dict:
        images = [to_rgb(image) for image in batch["image"]]
        if augmentation is not None:
            images = [augmentation.augment_image(image) for image in images]
        pixel_values = image_processor(images, return_tensors="pt")["pixel_values"]  # (B, 3, H, W)
        if augmentation is not None:
            pixel_values = augmentation.augment_pixels(pixel_values)
        out = {"pixel_values": list(pixel_values)}
        if "label" in batch:
            out["label"] = batch["label"] if num_labels is None else multi_hot(batch["label"], num_labels)
        return out

    return transform


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
    columns = dataset.column_names
    columns = next(iter(columns.values())) if isinstance(columns, dict) else columns
    needed = "text" if modality == "text" else "image"
    if needed == "text" and "tokens" in columns:
        needed = "tokens"
    if needed not in columns:
        other = "vision" if modality == "text" else "text"
        raise DataError(
            f"The model is a {modality} model but the data has no `{needed}` column (columns: {columns}); "
            f"it looks like {other} data. Pick a {modality} dataset or a {other} model."
        )
    num_labels = _multi_label_count(dataset)
    if modality == "text" and "tokens" in columns:  # token classification: words with a tag each
        return dataset.map(
            _tokenize_words_fn(processor, max_seq_length),
            batched=True,
            remove_columns=[c for c in ("tokens", "label") if c in columns],
            desc=f"{desc_prefix}Tokenizing words",
        )
    if modality == "text":
        return dataset.map(
            _tokenize_fn(processor, max_seq_length, num_labels),
            batched=True,
            remove_columns=["text"] if num_labels is None else ["text", "label"],
            desc=f"{desc_prefix}Tokenizing",
        )
    return dataset.with_transform(_image_transform(processor, num_labels, augmentation))


def create_collator(
    processor: Any, modality: Modality, task: str = "single_label"
) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
    """Dynamic padding for text (tag rows padded with `IGNORED_LABEL` for token classification); stacking of
    `pixel_values` for images. Both turn `label` into `labels`."""
    if task == "token_classification":
        return DataCollatorForTokenClassification(processor, label_pad_token_id=IGNORED_LABEL)
    if modality == "text":
        return DataCollatorWithPadding(processor)

    def collate_images(features: list[dict]) -> dict[str, torch.Tensor]:
        batch = {"pixel_values": torch.stack([torch.as_tensor(f["pixel_values"]) for f in features])}
        if "label" in features[0]:
            labels = [f["label"] for f in features]
            # A regression target (hf_transfer.data.targets) or a multi-label 0/1 row is float, a class id long.
            is_float = isinstance(labels[0], (float, list))
            batch["labels"] = torch.tensor(labels, dtype=torch.float32 if is_float else torch.long)
        return batch

    return collate_images


def sample_inputs(
    dataset: Dataset, collate_fn: Callable, device: Optional[torch.device | str] = None
) -> dict[str, torch.Tensor]:
    """The first row of `dataset` as one collated model input without labels: for checks that run the model once."""
    batch = collate_fn([dataset[0]])
    batch.pop("labels", None)
    return {k: v.to(device) if device is not None else v for k, v in batch.items()}


def describe_preprocessing(processor: Any, modality: Modality, max_seq_length: Optional[int]) -> str:
    """A stable text describing the preprocessing, for cache keys."""
    if modality == "text":
        return json.dumps(
            {
                "tokenizer": type(processor).__name__,
                "vocab_size": getattr(processor, "vocab_size", None),
                "name": getattr(processor, "name_or_path", None),
                "max_seq_length": max_seq_length,
                "do_lower_case": getattr(processor, "do_lower_case", None),
            },
            sort_keys=True,
        )
    return processor.to_json_string()


def set_image_size(processor: Any, model: Any, image_size: int) -> Any:
    """Make the image processor resize inputs to `image_size` x `image_size`; returns the processor to use.

    Small images (Fashion-MNIST is 28x28) gain little from the 224x224 of ImageNet backbones and cost
    up to 16x more compute. timm wrappers keep their preprocessing in the model config
    (`pretrained_cfg`), so it is changed there and saved with the model; other processors keep `size`.
    """
    if getattr(model.config, "model_type", None) == "timm_wrapper":
        from transformers import TimmWrapperImageProcessor

        cfg = dict(model.config.pretrained_cfg)
        cfg.update(input_size=[3, image_size, image_size], crop_pct=1.0)
        model.config.pretrained_cfg = cfg
        return TimmWrapperImageProcessor(pretrained_cfg=cfg, architecture=model.config.architecture)
    size = getattr(processor, "size", None)
    if isinstance(size, dict) and "shortest_edge" in size:
        processor.size = {"shortest_edge": image_size}
    else:
        processor.size = {"height": image_size, "width": image_size}
    if getattr(processor, "crop_size", None) is not None:
        processor.crop_size = {"height": image_size, "width": image_size}
    return processor
