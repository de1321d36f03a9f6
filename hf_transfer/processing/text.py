"""Text as model inputs: how many tokens a model reads, tokenization of `text` (cached `Dataset.map`, so the result's
fingerprint also identifies the tokenization), dynamic padding, and the tokenizer's description for cache keys."""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Optional

import torch
from datasets import Dataset, DatasetDict
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from .labels import multi_hot

__all__ = [
    "model_max_length",
    "cap_max_seq_length",
    "preprocess_text",
    "create_padding_collator",
    "describe_tokenization",
]

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


def preprocess_text(
    dataset: DatasetDict | Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    num_labels: Optional[int],
    max_seq_length: int,
    desc_prefix: str = "",
    augmentation: Any = None,
) -> DatasetDict | Dataset:
    """`text` tokenized once (truncated to `max_seq_length`); multi-label lists become 0/1 `labels` rows. Text is
    never augmented: `augmentation` is accepted for the modality-independent call and not used."""
    return dataset.map(
        _tokenize_fn(tokenizer, max_seq_length, num_labels),
        batched=True,
        remove_columns=["text"] if num_labels is None else ["text", "label"],
        desc=f"{desc_prefix}Tokenizing",
    )


def create_padding_collator(tokenizer: PreTrainedTokenizerBase) -> DataCollatorWithPadding:
    """Rows padded to the longest in the batch; `label` becomes `labels`."""
    return DataCollatorWithPadding(tokenizer)


def describe_tokenization(tokenizer: Any, max_seq_length: Optional[int]) -> str:
    """The tokenizer and the length limit, as a stable text for cache keys."""
    return json.dumps(
        {
            "tokenizer": type(tokenizer).__name__,
            "vocab_size": getattr(tokenizer, "vocab_size", None),
            "name": getattr(tokenizer, "name_or_path", None),
            "max_seq_length": max_seq_length,
            "do_lower_case": getattr(tokenizer, "do_lower_case", None),
        },
        sort_keys=True,
    )
