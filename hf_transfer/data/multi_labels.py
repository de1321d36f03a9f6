"""Several labels per row (`--task multi_label`): which columns hold them, and one `List(ClassLabel)` for every split.

A row's labels come as a list (`["sports", "politics"]`, or integer ids) or as one string joined by
`--label_separator` (`"sports,politics"`); the second is read as several labels only under `--task multi_label` (a
comma is as likely part of a name, `Smith, John`, or a decimal comma, `1,5`: `hf_transfer.data.targets`). Either way the canonical `label` is a list of class ids of one
`ClassLabel` built from train, possibly empty: a row with none of the labels is a valid row, written `[]` in a list
column and as an empty cell in a text column (csv cannot tell an empty string from a missing one). A missing list
(`null` in json), names train never saw, and train sets with fewer than two labels stop the run with the rows named.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetDict, List, Sequence, Value

from ..errors import DataError
from .columns import is_text, rows_text
from .name_lists import encode_name_lists

__all__ = ["holds_label_lists", "separated_label_rows", "encode_multi_labels", "multi_label_summary"]

logger = logging.getLogger(__name__)


def holds_label_lists(feature: Any) -> bool:
    """Whether a column's feature is a list (of names, ids or a `ClassLabel`): the shape of multi-label data."""
    return isinstance(feature, (List, Sequence)) or (isinstance(feature, Value) and pa.types.is_list(feature.pa_type))


def separated_label_rows(ds: Dataset, separator: str) -> np.ndarray:
    """The rows of a string label column whose cell holds `separator` (`"sports,politics"`; none for other columns)."""
    if not is_text(ds.features["label"]):
        return np.zeros(0, dtype=np.int64)
    values = ds.with_format("arrow")["label"].to_pylist()
    return np.flatnonzero([isinstance(v, str) and separator in v for v in values])


def _row_labels(ds: Dataset, split: str, separator: str) -> list[list[str]]:
    """Each row's labels as names (stripped, empty pieces dropped), or a DataError naming rows that have none."""
    feature = ds.features["label"]
    values = ds.with_format("arrow")["label"].to_pylist()
    if is_text(feature):
        return [[piece.strip() for piece in v.split(separator) if piece.strip()] if v else [] for v in values]
    missing = np.flatnonzero([v is None for v in values])
    if len(missing):
        raise DataError(
            f"Split '{split}' has {len(missing)} rows with no label cell ({rows_text(missing)}, 0-based, header not "
            "counted). A row with none of the labels is an empty list []; fill or drop those rows."
        )
    if not holds_label_lists(feature):
        raise DataError(
            f"The label column of split '{split}' holds {feature}: --task multi_label needs a list of labels per row, "
            f"or names joined by '{separator}' (--label_separator). Pass the right --label_column."
        )
    inner = getattr(feature, "feature", None)
    names = inner.names if isinstance(inner, ClassLabel) else None
    rows = []
    for i, labels in enumerate(values):
        if any(label is None or isinstance(label, (float, bool, dict, list)) for label in labels):
            raise DataError(
                f"Row {i} of split '{split}' has a label list {labels!r}: each label must be a name or an integer id."
            )
        rows.append([names[label] if names is not None else str(label).strip() for label in labels])
    return rows


def encode_multi_labels(splits: DatasetDict, description: str, separator: str) -> DatasetDict:
    """Give every split a `List(ClassLabel)` label built from train's names, and reject names train never saw."""
    labels = {split: _row_labels(ds, split, separator) for split, ds in splits.items()}
    names = sorted({name for row in labels["train"] for name in row})
    if len(names) < 2:
        raise DataError(
            f"The train split of {description} has {len(names)} distinct label(s) {names}; a multi-label classifier "
            "needs at least 2. Check --label_column and --label_separator."
        )
    return encode_name_lists(splits, labels, ClassLabel(names=names), "labels", as_set=True)


def multi_label_summary(splits: DatasetDict) -> str:
    """`10 labels (person 12%, ...); 1.4 labels per row, 38% of rows have none`, of train, for the log."""
    train = splits["train"]
    names = train.features["label"].feature.names
    counts = np.zeros(len(names), dtype=np.int64)
    sizes = []
    for row in train["label"]:
        counts[row] += 1
        sizes.append(len(row))
    sizes = np.asarray(sizes)
    shares = ", ".join(f"{names[i]} {100 * counts[i] / len(train):.0f}%" for i in np.argsort(-counts)[:10])
    return (
        f"{len(names)} labels ({shares}); {sizes.mean():.2f} labels per row, {100 * (sizes == 0).mean():.0f}% of rows "
        "have none"
    )
