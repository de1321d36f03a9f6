"""Numeric targets (`--task regression`): which task a label column holds, and one float per row, checked.

Under `--task auto` a label column is a regression target when it holds numbers that are not all whole (whole
numbers, such as ratings or ids, stay classes unless the user says otherwise), and multi-label when it holds lists
or text cells joined by `--label_separator` (`hf_transfer.data.multi_labels`).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pyarrow as pa
from datasets import ClassLabel, DatasetDict, List, Value

from ..constants import DEFAULT_LABEL_SEPARATOR
from ..errors import DataError
from .columns import null_rows, rows_text
from .multi_labels import holds_label_lists, holds_separated_labels

__all__ = ["resolve_task", "encode_targets", "target_summary"]

logger = logging.getLogger(__name__)


def _is_number_list(feature) -> bool:
    """A list column of floats: several regression targets per row (integer lists are multi-label class ids)."""
    inner = getattr(feature, "feature", None)
    return holds_label_lists(feature) and isinstance(inner, Value) and pa.types.is_floating(inner.pa_type)


def _is_numeric(feature) -> bool:
    return isinstance(feature, Value) and (
        pa.types.is_integer(feature.pa_type) or pa.types.is_floating(feature.pa_type)
    )


def resolve_task(splits: DatasetDict, requested: str, separator: str = DEFAULT_LABEL_SEPARATOR) -> str:
    """`token_classification` when the input is word lists (`tokens`); else `requested`, or for `auto`: `multi_label`
    when train's labels are lists or `separator`-joined names, `regression` when they are numbers that are not all
    whole, else `single_label`."""
    if "tokens" in splits["train"].column_names:  # words of sentences (hf_transfer.data.columns): a tag per word
        if requested not in ("auto", "token_classification"):
            raise DataError(
                f"The input column holds lists of words, which is token classification (a tag per word), not "
                f"--task {requested}. Drop --task or pass --task token_classification; or pass --text_column with a "
                "column of plain strings."
            )
        return "token_classification"
    if requested != "auto":
        return requested
    feature = splits["train"].features["label"]
    if _is_number_list(feature):  # [0.3, 1.2] per row: several targets
        return "regression"
    if holds_label_lists(feature):
        return "multi_label"
    if holds_separated_labels(splits["train"], separator):
        logger.info(
            "The label column has cells joined by '%s': reading it as multi-label (pass --task single_label if the "
            "separator is part of class names, or --label_separator to change it).",
            separator,
        )
        return "multi_label"
    if isinstance(feature, Value) and pa.types.is_floating(feature.pa_type):
        values = np.asarray(splits["train"].with_format("arrow")["label"].to_numpy(zero_copy_only=False), dtype=float)
        finite = values[np.isfinite(values)]
        if len(finite) and not np.all(finite == np.floor(finite)):
            return "regression"
    return "single_label"


def encode_targets(splits: DatasetDict, description: str) -> DatasetDict:
    """Every split's `label` as one float32 per row; a label that is not a number, or is missing, stops the run."""
    out = {}
    if _is_number_list(splits["train"].features["label"]) or holds_label_lists(splits["train"].features["label"]):
        return _encode_target_lists(splits, description)
    for split, ds in splits.items():
        feature = ds.features["label"]
        if isinstance(feature, ClassLabel):
            raise DataError(
                f"The label column of {description} holds classes ({', '.join(feature.names[:5])}), not numbers: "
                "--task regression needs one number per row. Drop --task regression, or pick a numeric --label_column."
            )
        if not _is_numeric(feature):
            shown = _first_non_numbers(ds)
            raise DataError(
                f"Split '{split}' of {description}: --task regression needs one number per row, but the label column "
                f"holds {feature}{shown}. Pass --label_column with a numeric column, or drop --task regression."
            )
        missing = null_rows(ds.with_format("arrow")["label"])
        if len(missing):
            raise DataError(
                f"Split '{split}' has {len(missing)} rows with no target (empty or NaN; {rows_text(missing)}, 0-based, "
                "header not counted). Drop or fill those rows."
            )
        values = np.asarray(ds.with_format("arrow")["label"].to_numpy(zero_copy_only=False), dtype=float)
        infinite = np.flatnonzero(~np.isfinite(values))
        if len(infinite):
            raise DataError(f"Split '{split}' has infinite targets ({rows_text(infinite)}). Fix those rows.")
        out[split] = ds if feature == Value("float32") else ds.cast_column("label", Value("float32"))
    values = np.asarray(out["train"].with_format("arrow")["label"].to_numpy(zero_copy_only=False), dtype=float)
    if len(values) < 2 or float(values.std()) == 0.0:
        raise DataError(
            f"The train targets of {description} are all {values[0] if len(values) else 'missing'}: a regression needs "
            "targets that vary. Check --label_column."
        )
    return DatasetDict(out)


def _encode_target_lists(splits: DatasetDict, description: str) -> DatasetDict:
    """Several targets per row: a list of K numbers in every row of every split, as `List(float32, length=K)`."""
    out = {}
    size = None
    for split, ds in splits.items():
        values = ds.with_format("arrow")["label"].to_pylist()
        if not all(row is None or all(isinstance(v, (int, float)) or v is None for v in row) for row in values):
            raise DataError(
                f"Split '{split}' of {description}: --task regression needs numbers, but the label column holds lists "
                "of labels; that is --task multi_label (or pick a numeric --label_column)."
            )
        missing = np.flatnonzero([row is None or any(v is None or not math.isfinite(v) for v in row) for row in values])
        if len(missing):
            raise DataError(
                f"Split '{split}' has {len(missing)} rows with a missing, NaN or infinite target ({rows_text(missing)}, "
                "0-based). Drop or fill those rows."
            )
        lengths = np.asarray([len(row) for row in values])
        size = size if size is not None else int(lengths[0])
        ragged = np.flatnonzero(lengths != size)
        if len(ragged) or size == 0:
            raise DataError(
                f"Split '{split}' of {description}: every row needs the same number of targets ({size} in the first row "
                f"of train), but {rows_text(ragged)} differ. Give every row all its targets."
            )
        feature = List(Value("float32"), length=size)
        rows = [[float(v) for v in row] for row in values]
        out[split] = ds.remove_columns("label").add_column("label", rows, feature=feature)
    stds = np.asarray(out["train"]["label"], dtype=float).std(0)
    if len(out["train"]) < 2 or (stds == 0).any():
        raise DataError(
            f"Target(s) {np.flatnonzero(stds == 0).tolist()} of the train split of {description} never vary: a "
            "regression needs targets that vary. Drop them."
        )
    return DatasetDict(out)


def _first_non_numbers(ds) -> str:
    """` (e.g. rows 0, 2: 'abc', 'n/a')` for a column of strings, so the user sees what is not a number."""
    array = ds.with_format("arrow")["label"]
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return ""
    values = array.to_pylist()
    bad = [i for i, v in enumerate(values) if v is not None and not _parses(v)]
    return f" (e.g. {rows_text(np.asarray(bad[:10]))}: {', '.join(repr(values[i]) for i in bad[:3])})" if bad else ""


def _parses(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def target_summary(splits: DatasetDict) -> str:
    """`mean 2.31, std 0.84, range 0.10..5.00` of train's targets, for the log (all targets together)."""
    values = np.asarray(splits["train"]["label"], dtype=float)
    return f"mean {values.mean():.4g}, std {values.std():.4g}, range {values.min():.4g}..{values.max():.4g}"
