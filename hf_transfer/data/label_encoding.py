"""How each task's labels are encoded and summarised: one function pair per task, all of one signature, named by
the task's entry (`Task.encode_labels`, `Task.summarize_labels`) so `load_transfer_dataset` never branches on it."""

from __future__ import annotations

from datasets import DatasetDict

from ..errors import DataError
from .labels import encode_labels
from .multi_labels import encode_multi_labels, multi_label_summary
from .targets import encode_targets, target_summary
from .token_tags import encode_token_tags, tag_summary

__all__ = [
    "encode_classes",
    "encode_class_lists",
    "encode_numbers",
    "encode_word_tags",
    "classes_summary",
    "class_lists_summary",
    "numbers_summary",
    "word_tags_summary",
]


def encode_classes(splits: DatasetDict, description: str, label_separator: str) -> DatasetDict:
    """One class per row: a `ClassLabel` of the names as written."""
    return encode_labels(splits, description)


def encode_class_lists(splits: DatasetDict, description: str, label_separator: str) -> DatasetDict:
    """Any number of classes per row: a `List(ClassLabel)` (lists, or names joined by `label_separator`)."""
    return encode_multi_labels(splits, description, label_separator)


def encode_numbers(splits: DatasetDict, description: str, label_separator: str) -> DatasetDict:
    """A number per row (or a fixed-length list of them): float32 targets, checked finite."""
    return encode_targets(splits, description)


def encode_word_tags(splits: DatasetDict, description: str, label_separator: str) -> DatasetDict:
    """A tag per word of a `tokens` column: a `List(ClassLabel)` of IOB tags."""
    if "tokens" not in splits["train"].column_names:
        raise DataError(
            f"--task token_classification needs a list of words per row and one tag per word; {description} "
            "has a text column of plain strings. Pass --text_column with a column of word lists, or a .conll file."
        )
    return encode_token_tags(splits, description)


def classes_summary(splits: DatasetDict) -> str:
    label = splits["train"].features["label"]
    return f"{label.num_classes} classes ({', '.join(label.names[:10])})"


def class_lists_summary(splits: DatasetDict) -> str:
    return f"multi-label, {multi_label_summary(splits)}"


def numbers_summary(splits: DatasetDict) -> str:
    return f"regression target {target_summary(splits)}"


def word_tags_summary(splits: DatasetDict) -> str:
    return f"token classification, {tag_summary(splits)}"
