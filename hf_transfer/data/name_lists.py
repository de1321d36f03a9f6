"""Rows that hold lists of names (a row's labels for multi-label, its words' tags for NER) as `List(ClassLabel)` ids of
one class set built from train; a name train never saw is one DataError naming the rows that hold it."""

from __future__ import annotations

import numpy as np
from datasets import ClassLabel, DatasetDict, List

from ..errors import DataError
from .columns import rows_text

__all__ = ["encode_name_lists"]


def encode_name_lists(
    splits: DatasetDict, names: dict[str, list[list[str]]], class_label: ClassLabel, what: str, as_set: bool = False
) -> DatasetDict:
    """Each split's `label` replaced by the ids of `names[split]` (per row; `as_set`: sorted, without repeats)."""
    known = set(class_label.names)
    out = {}
    for split, ds in splits.items():
        unseen = sorted({name for row in names[split] for name in row} - known)
        if unseen:
            rows = np.flatnonzero([bool(set(row) & set(unseen)) for row in names[split]])
            raise DataError(
                f"Split '{split}' has {what} never seen in train: {unseen[:20]} ({rows_text(rows)}). Add examples of "
                f"them to train, or drop those rows from '{split}'."
            )
        ids = [[class_label.str2int(name) for name in row] for row in names[split]]
        if as_set:
            ids = [sorted(set(row)) for row in ids]
        out[split] = ds.remove_columns("label").add_column("label", ids, feature=List(class_label))
    return DatasetDict(out)
