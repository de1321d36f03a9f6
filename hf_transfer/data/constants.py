"""Names the data loader recognises: column names it auto-detects, file formats it reads, split names it maps.

Plain values only, so argument dataclasses can use them in their help texts.
"""

from __future__ import annotations

from typing import Any

from ..registry import list_builtin_datasets

__all__ = [
    "BUILTIN_DATASETS",
    "DERIVED_DATASETS",
    "TEXT_COLUMN_CANDIDATES",
    "IMAGE_COLUMN_CANDIDATES",
    "LABEL_COLUMN_CANDIDATES",
    "FILE_BUILDERS",
    "SPLIT_ALIASES",
    "SPLIT_ORDER",
]

# The built-in offline sets `--dataset_name` takes (hf_transfer.registry): shipped ones, and ones derived from them.
BUILTIN_DATASETS: tuple[str, ...] = list_builtin_datasets(derived=False)
DERIVED_DATASETS: tuple[str, ...] = list_builtin_datasets(derived=True)

# Auto-detection: the first name found (case-insensitive) wins.
# A column of word lists (`tokens`, `words`) is the input of token classification.
TEXT_COLUMN_CANDIDATES = (
    "text",
    "sentence",
    "review",
    "content",
    "document",
    "tweet",
    "comment",
    "body",
    "tokens",
    "words",
)

IMAGE_COLUMN_CANDIDATES = ("image", "img", "pixel_values", "picture", "photo", "image_path")

LABEL_COLUMN_CANDIDATES = (
    "label",
    "labels",
    "sentiment",
    "category",
    "class",
    "target",
    "rating",
    "fine_label",
    "topic",
    "tags",
    "ner_tags",
)

# file suffix -> (packaged builder, extra load_dataset kwargs)
FILE_BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"sep": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
    ".conll": ("conll", {}),  # word<TAB>tag lines, blank lines between sentences (hf_transfer.data.conll)
}

SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}

SPLIT_ORDER = ("train", "validation", "test")
