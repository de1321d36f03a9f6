"""Numeric targets (`--task regression`): which task a label column holds, and one float per row, checked.

Under `--task auto` a label column is read as class names unless it can only mean something else: lists are
multi-label, numbers of a typed column (json, parquet) or text that is all numbers in the dot format (`3.25`), not all
whole, are a regression target (with a warning saying so); whole numbers stay classes. Text cells holding
`--label_separator` (`sports,politics`, but also `Smith, John` or a decimal comma `1,5`) could be several labels or
one name: that stops the run, asking for `--task multi_label` or `--task single_label`. Text targets are read in the
dot format only, and every target must be finite in float32, the type training uses.
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetDict, List, Value

from ..constants import DEFAULT_LABEL_SEPARATOR
from ..errors import DataError
from .columns import dot_number, is_text, null_rows, rows_text
from .multi_labels import holds_label_lists, separated_label_rows

__all__ = ["resolve_task", "encode_targets", "target_summary"]

logger = logging.getLogger(__name__)

_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d+,\d+\s*")  # `1,5`: a number in the decimal-comma format
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_number_list(feature) -> bool:
    """A list column of floats: several regression targets per row (integer lists are multi-label class ids)."""
    inner = getattr(feature, "feature", None)
    return holds_label_lists(feature) and isinstance(inner, Value) and pa.types.is_floating(inner.pa_type)


def _is_numeric(feature) -> bool:
    return isinstance(feature, Value) and (
        pa.types.is_integer(feature.pa_type) or pa.types.is_floating(feature.pa_type)
    )


def resolve_task(
    splits: DatasetDict,
    requested: str,
    separator: str = DEFAULT_LABEL_SEPARATOR,
    description: str = "the data",
) -> str:
    """`token_classification` when the input is word lists (`tokens`); else `requested`, or for `auto` (see the module
    docstring): `multi_label` for label lists, `regression` for numbers that are not all whole, else `single_label`;
    text cells holding `separator` stop the run (`DataError`), since only the user knows what they are."""
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
    train = splits["train"]
    feature = train.features["label"]
    if _is_number_list(feature):  # [0.3, 1.2] per row: several targets
        return "regression"
    if holds_label_lists(feature):
        return "multi_label"
    if is_text(feature):
        cells = train.with_format("arrow")["label"].to_pylist()
        commas = [i for i, v in enumerate(cells) if v is not None and _DECIMAL_COMMA.fullmatch(v)]
        if commas and all(v is None or dot_number(v) is not None or _DECIMAL_COMMA.fullmatch(v) for v in cells):
            raise DataError(
                f"The labels of {description} look like numbers with a decimal comma ({_cells_text(cells, commas)}), "
                "which are not read as numbers: write them with a dot (1.5) for a numeric target, pass --task "
                "single_label if they are class names, or --task multi_label if they are several labels per row."
            )
        separated = separated_label_rows(train, separator)
        if len(separated):
            flag = "" if separator == DEFAULT_LABEL_SEPARATOR else f" --label_separator '{separator}'"
            raise DataError(
                f"The labels of {description} have cells holding '{separator}' ({_cells_text(cells, separated)}): pass "
                f"--task multi_label{flag} if they are several labels per row, or --task single_label if "
                f"'{separator}' is part of class names."
            )
        values = [v for v in cells if v is not None]
        numbers = [dot_number(v) for v in values]
        if values and all(n is not None for n in numbers) and not all(n.is_integer() for n in numbers):
            return _auto_regression(description, values)
    elif isinstance(feature, Value) and pa.types.is_floating(feature.pa_type):
        values = np.asarray(train.with_format("arrow")["label"].to_numpy(zero_copy_only=False), dtype=float)
        finite = values[np.isfinite(values)]
        if len(finite) and not np.all(finite == np.floor(finite)):
            return _auto_regression(description, finite.tolist())
    return "single_label"


def _auto_regression(description: str, values: list) -> str:
    shown = ", ".join(str(v) for v in values[:3])
    logger.warning(
        "--task auto: reading the labels of %s as a regression target (numbers such as %s, not all whole). Pass "
        "--task single_label if they are class names.",
        description,
        shown,
    )
    return "regression"


def _cells_text(cells: list, rows) -> str:
    """`row 0: 'Smith, John', row 3: 'Doe, Jane'`: the first three of `rows`, for a message."""
    return ", ".join(f"row {i}: {cells[i]!r}" for i in list(rows)[:3])


def encode_targets(splits: DatasetDict, description: str) -> DatasetDict:
    """Every split's `label` as one float32 per row; a label that is not a number, is missing, or is not finite in
    float32 stops the run."""
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
        missing = null_rows(ds.with_format("arrow")["label"])
        if not _is_numeric(feature) and not is_text(feature):
            raise DataError(
                f"Split '{split}' of {description}: --task regression needs one number per row, but the label column "
                f"holds {feature}. Pass --label_column with a numeric column, or drop --task regression."
            )
        if len(missing):
            raise DataError(
                f"Split '{split}' has {len(missing)} rows with no target (empty or NaN; {rows_text(missing)}, 0-based, "
                "header not counted). Drop or fill those rows."
            )
        if is_text(feature):
            ds = _text_targets(ds, split, description)
        values = np.asarray(ds.with_format("arrow")["label"].to_numpy(zero_copy_only=False), dtype=float)
        _check_float32(split, values[:, None])
        out[split] = ds if ds.features["label"] == Value("float32") else ds.cast_column("label", Value("float32"))
    values = np.asarray(out["train"].with_format("arrow")["label"].to_numpy(zero_copy_only=False), dtype=float)
    if len(values) < 2 or float(values.std()) == 0.0:
        raise DataError(
            f"The train targets of {description} are all {values[0] if len(values) else 'missing'}: a regression needs "
            "targets that vary. Check --label_column."
        )
    return DatasetDict(out)


def _parse_targets(batch: dict[str, list]) -> dict[str, list]:
    return {"label": [dot_number(v) for v in batch["label"]]}


def _text_targets(ds: Dataset, split: str, description: str) -> Dataset:
    """A text column of numbers (a csv's cells) as float64, read in the dot format only: `1,5` is an error, never
    1.5 or 15."""
    values = ds.with_format("arrow")["label"].to_pylist()
    bad = [i for i, v in enumerate(values) if dot_number(v) is None]
    if bad:
        shown = ", ".join(repr(values[i]) for i in bad[:3])
        comma = any(_DECIMAL_COMMA.fullmatch(values[i]) for i in bad)
        raise DataError(
            f"Split '{split}' of {description}: --task regression needs one number per row, but the label column "
            f"holds text (e.g. {rows_text(np.asarray(bad[:10]))}: {shown}). "
            + ("Numbers are read with a decimal point: write 1.5, not 1,5. " if comma else "")
            + "Pass --label_column with a numeric column, or drop --task regression."
        )
    features = ds.features.copy()
    features["label"] = Value("float64")
    return ds.map(_parse_targets, batched=True, features=features, desc=f"Reading {split} targets")


def _check_float32(split: str, values: np.ndarray) -> None:
    """Targets train in float32: one beyond its range (1e39) is infinite there, and NaN / inf are no targets."""
    bad = ~np.isfinite(values) | (np.abs(values) > _FLOAT32_MAX)
    rows = np.flatnonzero(bad.any(axis=1))
    if len(rows):
        shown = ", ".join(f"row {i}: {values[i][bad[i]][0]:g}" for i in rows[:3])
        raise DataError(
            f"Split '{split}' has {len(rows)} rows with a target that is infinite or beyond float32's range "
            f"(±{_FLOAT32_MAX:.3g}, the type training uses): {shown}. Fix or rescale them (e.g. a log, another unit)."
        )


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
        _check_float32(split, np.asarray(rows, dtype=float))
        out[split] = ds.remove_columns("label").add_column("label", rows, feature=feature)
    stds = np.asarray(out["train"]["label"], dtype=float).std(0)
    if len(out["train"]) < 2 or (stds == 0).any():
        raise DataError(
            f"Target(s) {np.flatnonzero(stds == 0).tolist()} of the train split of {description} never vary: a "
            "regression needs targets that vary. Drop them."
        )
    return DatasetDict(out)


def target_summary(splits: DatasetDict) -> str:
    """`mean 2.31, std 0.84, range 0.10..5.00` of train's targets, for the log (all targets together)."""
    values = np.asarray(splits["train"]["label"], dtype=float)
    return f"mean {values.mean():.4g}, std {values.std():.4g}, range {values.min():.4g}..{values.max():.4g}"
