"""Labels: one `ClassLabel`, built from train, shared by every split; names and ids checked on the way.

A label is a class name as written: `1`, `01` and `1.0` in a csv are three strings, and two labels that are one number
written differently (or one name in two letter cases) stop the run rather than be merged or split behind the user's
back. Integer ids of a typed column (json, parquet) are named by their digits, so they meet the same names in a csv.
"""

from __future__ import annotations

import logging
import math
import re
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, DatasetDict, Value

from ..errors import DataError
from .columns import dot_number, is_text, null_rows, rows_text

__all__ = ["encode_labels", "classlabel_ids"]

logger = logging.getLogger(__name__)

_INTEGER_NAME = re.compile(r"-?(?:0|[1-9]\d*)")  # how an integer id is written: no leading zeros, no decimal point


def _remap_labels(batch: dict[str, list], mapping: dict) -> dict[str, list]:
    return {"label": [mapping[value] for value in batch["label"]]}


def _label_name(value) -> str:
    """A label's class name: text as written; an integer id of a typed column (or a whole float, a bool) as digits."""
    return value if isinstance(value, str) else str(int(value))


def _name_order(name: str) -> tuple:
    """Integer ids first, in numeric order (id k stays class k), then the other names in text order."""
    return (0, int(name), "") if _INTEGER_NAME.fullmatch(name) else (1, 0, name)


def _fractional_error(split: str, fractional: list, rows: np.ndarray) -> DataError:
    return DataError(
        f"Split '{split}' has non-integer labels [{', '.join(str(v) for v in fractional[:10])}] ({rows_text(rows)}). "
        "Labels must be class names or integer ids: round them or map them to classes, pass --task regression "
        "(finetune) for a numeric target, or pass the right --label_column."
    )


def _plain_label_values(ds: Dataset, split: str) -> list:
    """Distinct labels of a non-ClassLabel column, after rejecting missing and fractional values."""
    feature = ds.features["label"]
    if not isinstance(feature, Value) or not (
        pa.types.is_integer(feature.pa_type)
        or pa.types.is_floating(feature.pa_type)
        or pa.types.is_string(feature.pa_type)
        or pa.types.is_large_string(feature.pa_type)
        or pa.types.is_boolean(feature.pa_type)
    ):
        raise DataError(
            f"The label column in split '{split}' has type {feature}; hf_transfer needs one class per row, "
            "as a name or an integer id. Several labels per row are --task multi_label, a number per row is --task "
            "regression (recipes/finetune.py); or pass the right --label_column."
        )
    array = ds.with_format("arrow")["label"]
    missing = null_rows(array)
    if len(missing):
        raise DataError(
            f"Split '{split}' has {len(missing)} rows with no label ({rows_text(missing)}, 0-based, header "
            "not counted). Drop or label those rows, or pass the right --label_column."
        )
    values = pc.unique(array).to_pylist()
    if pa.types.is_floating(feature.pa_type):
        fractional = sorted(v for v in values if not float(v).is_integer())
        if fractional:
            numbers = array.to_numpy()
            raise _fractional_error(split, fractional, np.flatnonzero(numbers != np.floor(numbers)))
    elif _is_string_label(ds):  # text that is all numbers, some not whole: a numeric target, not class names
        numbers = [dot_number(v) for v in values]
        if all(n is not None for n in numbers):
            fractional = sorted(v for v, n in zip(values, numbers) if not n.is_integer())
            if fractional:
                rows = pc.is_in(array, value_set=pa.array(fractional, type=array.type))
                raise _fractional_error(split, fractional, np.flatnonzero(rows.to_numpy(zero_copy_only=False)))
    return values


def classlabel_ids(ds: Dataset) -> np.ndarray:
    return np.asarray(ds.with_format("arrow")["label"].to_numpy(zero_copy_only=False))


def _is_string_label(ds: Dataset) -> bool:
    return is_text(ds.features["label"])


def _strip_labels(batch: dict[str, list]) -> dict[str, list]:
    return {"label": [v.strip() if isinstance(v, str) else v for v in batch["label"]]}


def _normalize_label_names(splits: DatasetDict, description: str) -> DatasetDict:
    """Label names without surrounding whitespace (`' pos'`, `'pos '` and `'pos'` are one class), and a stop when
    two names differ only in letter case: merging them or not is the data's decision, not ours."""
    out = {}
    for split, ds in splits.items():
        if _is_string_label(ds):
            values = [v for v in pc.unique(ds.with_format("arrow")["label"]).to_pylist() if isinstance(v, str)]
            padded = sorted(repr(v) for v in values if v != v.strip())
            if padded:
                logger.warning(
                    "Split '%s' of %s: stripped surrounding whitespace from labels %s.",
                    split,
                    description,
                    ", ".join(padded[:5]),
                )
                ds = ds.map(_strip_labels, batched=True, desc=f"Stripping {split} labels")
        out[split] = ds
    names = {
        v
        for ds in out.values()
        if _is_string_label(ds)
        for v in pc.unique(ds.with_format("arrow")["label"]).to_pylist()
        if isinstance(v, str)
    }
    by_case: dict[str, list[str]] = {}
    for name in sorted(names):
        by_case.setdefault(name.casefold(), []).append(name)
    clashes = [group for group in by_case.values() if len(group) > 1]
    if clashes:
        raise DataError(
            f"Labels {_groups_text(clashes)} of {description} differ only in letter case. Make them one label in the "
            "data, or rename one if they are different classes."
        )
    by_number: dict[Decimal, list[str]] = {}
    for name in sorted({name for ds in out.values() for name in _names_in(ds)}):
        if dot_number(name) is not None:
            by_number.setdefault(Decimal(name.strip()), []).append(name)
    twins = [group for group in by_number.values() if len(group) > 1]
    if twins:
        raise DataError(
            f"Labels {_groups_text(twins)} of {description} are one number written in different ways; labels are "
            "read as written, so they would be different classes. Write each class one way in every file, or rename "
            "one if they are different classes."
        )
    return DatasetDict(out)


def _groups_text(groups: list[list[str]]) -> str:
    """`'Pos' and 'pos'; '1' and '01'`: the first three groups of clashing names, for a message."""
    return "; ".join(" and ".join(repr(n) for n in group) for group in groups[:3])


def _names_in(ds: Dataset) -> set[str]:
    """The class names a plain label column would give (`_label_name`), before any check; none for a `ClassLabel`,
    whose names its source chose."""
    feature = ds.features["label"]
    if not isinstance(feature, Value):
        return set()
    values = [v for v in pc.unique(ds.with_format("arrow")["label"]).to_pylist() if v is not None]
    if _is_string_label(ds):
        return {v for v in values if isinstance(v, str)}
    if pa.types.is_integer(feature.pa_type) or pa.types.is_boolean(feature.pa_type):
        return {_label_name(v) for v in values}
    if pa.types.is_floating(feature.pa_type):
        return {_label_name(v) for v in values if math.isfinite(v) and float(v).is_integer()}
    return set()


def encode_labels(splits: DatasetDict, description: str) -> DatasetDict:
    """Give every split the same `ClassLabel`, built from train, and reject labels train never saw."""
    splits = _normalize_label_names(splits, description)
    train_feature = splits["train"].features["label"]
    if isinstance(train_feature, ClassLabel):
        class_label = ClassLabel(names=list(train_feature.names))
    else:
        names = {_label_name(v) for v in _plain_label_values(splits["train"], "train")}
        class_label = ClassLabel(names=sorted(names, key=_name_order))

    out = {}
    for split, ds in splits.items():
        feature = ds.features["label"]
        new_features = ds.features.copy()
        new_features["label"] = class_label
        if isinstance(feature, ClassLabel):
            ids = classlabel_ids(ds)
            unlabelled = np.flatnonzero(ids < 0)
            if len(unlabelled) == len(ds) and split != "train":
                logger.warning("Dropping split '%s' of %s: it has no labels (all -1).", split, description)
                continue
            if len(unlabelled):
                raise DataError(
                    f"Split '{split}' has {len(unlabelled)} rows with no label (-1; {rows_text(unlabelled)}). "
                    "Drop or label those rows."
                )
            if list(feature.names) == class_label.names:
                out[split] = ds if feature == class_label else ds.cast_column("label", class_label)
                continue
            unknown = sorted(set(feature.names) - set(class_label.names))
            present = {feature.names[i] for i in np.unique(ids)}
            unseen = sorted(present & set(unknown))
            if unseen:
                raise _unseen_error(split, unseen)
            mapping = {i: class_label.str2int(n) for i, n in enumerate(feature.names) if n in class_label.names}
        else:
            values = _plain_label_values(ds, split)
            if isinstance(train_feature, ClassLabel) and not all(isinstance(v, str) for v in values):
                mapping = {v: int(v) for v in values if 0 <= v < class_label.num_classes}  # ids of train's classes
                unseen = sorted(v for v in values if v not in mapping)
            else:  # by name: a csv's `1` meets a parquet's integer 1 of another split
                known = set(class_label.names)
                mapping = {v: class_label.str2int(_label_name(v)) for v in values if _label_name(v) in known}
                unseen = sorted({_label_name(v) for v in values if v not in mapping}, key=_name_order)
            if unseen:
                raise _unseen_error(split, unseen)
        out[split] = ds.map(
            _remap_labels,
            batched=True,
            fn_kwargs={"mapping": mapping},
            features=new_features,
            desc=f"Encoding {split} labels",
        )

    train_ids = set(np.unique(classlabel_ids(out["train"])).tolist())
    if len(train_ids) < 2:
        present = [class_label.int2str(i) for i in sorted(train_ids)]
        raise DataError(
            f"Split 'train' of {description} has {len(train_ids)} class(es) {present}; a classifier needs at "
            "least 2. Add examples of other classes, or pass the right --label_column."
        )
    for split, ds in out.items():
        unseen_ids = sorted(set(np.unique(classlabel_ids(ds)).tolist()) - train_ids)
        if unseen_ids:
            raise _unseen_error(split, [class_label.int2str(i) for i in unseen_ids])
    return DatasetDict(out)


def _unseen_error(split: str, labels: list) -> DataError:
    return DataError(
        f"Split '{split}' has labels never seen in train: {labels[:20]}. Add examples of them to train, "
        f"or drop those rows from '{split}'."
    )
