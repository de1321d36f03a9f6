"""Disjoint class splits for meta-learning: which classes meta-train, meta-validate and meta-test, and which rows
of each class each split may draw from."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
from datasets import Dataset

from ..errors import ConfigError, DataError

__all__ = ["META_SPLITS", "ClassSplits", "default_class_split", "split_classes", "split_meta_rows", "label_array"]

logger = logging.getLogger(__name__)

META_SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class ClassSplits:
    """Disjoint class ids for meta-train / meta-validation / meta-test (validation may be empty)."""

    train: tuple[int, ...]
    validation: tuple[int, ...]
    test: tuple[int, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for split in META_SPLITS:
            for c in getattr(self, split):
                if c in seen:
                    raise ConfigError(
                        f"Class '{self.names[c]}' is in both the meta-{seen[c]} and the meta-{split} classes; "
                        "each class may be in one split only."
                    )
                seen[c] = split

    def names_of(self, split: str) -> list[str]:
        return [self.names[c] for c in getattr(self, split)]


def _class_ids(names: Sequence[str], wanted: Optional[Sequence[str]], flag: str) -> tuple[int, ...]:
    if not wanted:
        return ()
    index = {name: i for i, name in enumerate(names)}
    unknown = [w for w in wanted if w not in index]
    if unknown:
        raise DataError(f"{flag} names unknown classes {unknown}; the data's classes are {list(names)}.")
    return tuple(index[w] for w in wanted)


def default_class_split(num_classes: int, n_way: int) -> tuple[int, int, int]:
    """(train, validation, test) class counts: meta-test max(n_way, C // 4) classes, meta-validation as many when
    meta-train keeps at least n_way classes (else none: held-out rows of the meta-train classes), the rest
    meta-train. 10 classes at 5-way: 5 / 0 / 5."""
    held = max(n_way, num_classes // 4)
    validation = held if num_classes - 2 * held >= n_way else 0
    return num_classes - held - validation, validation, held


def split_classes(
    label_names: Sequence[str],
    n_way: int,
    *,
    train: Optional[Sequence[str]] = None,
    validation: Optional[Sequence[str]] = None,
    test: Optional[Sequence[str]] = None,
    sizes: Optional[Sequence[int]] = None,
    seed: int = 0,
) -> ClassSplits:
    """Disjoint meta-train / meta-validation / meta-test classes, by name or by a seeded random split.

    With names, the classes named are used and the others left out. Otherwise `sizes` (train, validation,
    test) classes are drawn in a seeded order; by default `default_class_split`.
    Meta-train and meta-test need at least `n_way` classes; meta-validation either as many or none.
    """
    names = tuple(str(n) for n in label_names)
    num_classes = len(names)
    if train or validation or test:
        ids = {
            "train": _class_ids(names, train, "--meta_train_classes"),
            "validation": _class_ids(names, validation, "--meta_validation_classes"),
            "test": _class_ids(names, test, "--meta_test_classes"),
        }
    else:
        if sizes is None:
            sizes = default_class_split(num_classes, n_way)
        if sum(sizes) > num_classes:
            raise ConfigError(
                f"--class_split {list(sizes)} needs {sum(sizes)} classes but the data has {num_classes}; "
                "pass smaller sizes (e.g. --class_split TRAIN 0 TEST to meta-validate on held-out rows)."
            )
        order = np.random.default_rng(seed).permutation(num_classes).tolist()
        a, b, c = sizes
        ids = {
            "train": tuple(sorted(order[:a])),
            "validation": tuple(sorted(order[a : a + b])),
            "test": tuple(sorted(order[a + b : a + b + c])),
        }
    splits = ClassSplits(ids["train"], ids["validation"], ids["test"], names)
    for split in ("train", "test"):
        if len(getattr(splits, split)) < n_way:
            raise ConfigError(
                f"The meta-{split} split has {len(getattr(splits, split))} classes {splits.names_of(split)} but "
                f"--n_way is {n_way}: lower --n_way or give that split more classes (--class_split or "
                f"--meta_{split}_classes; the data has {num_classes} classes)."
            )
    if 0 < len(splits.validation) < n_way:
        raise ConfigError(
            f"The meta-validation split has {len(splits.validation)} classes {splits.names_of('validation')} but "
            f"--n_way is {n_way}: give it at least {n_way} classes, or none (then held-out rows of the meta-train "
            "classes are used)."
        )
    logger.info(
        "Class splits: meta-train %s, meta-validation %s, meta-test %s",
        splits.names_of("train"),
        splits.names_of("validation") or "(held-out rows of the meta-train classes)",
        splits.names_of("test"),
    )
    return splits


def label_array(labels: Union[Dataset, Sequence[int], np.ndarray], label_column: str = "label") -> np.ndarray:
    if isinstance(labels, Dataset):
        if label_column not in labels.column_names:
            raise DataError(
                f"The data set has no label column '{label_column}' (columns: {labels.column_names}); "
                "pass label_column=... or load it with hf_transfer.data.load_transfer_dataset."
            )
        column = labels.with_format("arrow")[label_column]  # no decoding, no transform
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.asarray(labels, dtype=np.int64)


def split_meta_rows(
    labels: Union[Dataset, Sequence[int], np.ndarray],
    splits: ClassSplits,
    validation_fraction: float = 0.2,
    max_samples_per_class: Optional[int] = None,
    seed: int = 0,
    label_column: str = "label",
) -> dict[str, np.ndarray]:
    """Row indices of each meta-split. Rows follow their class; with no validation classes, a seeded
    `validation_fraction` of every meta-train class's rows is held out for meta-validation instead."""
    y = label_array(labels, label_column)
    rng = np.random.default_rng([seed, 1])
    rows: dict[str, list[np.ndarray]] = {s: [] for s in META_SPLITS}
    for split in META_SPLITS:
        for c in getattr(splits, split):
            members = np.flatnonzero(y == c)
            if max_samples_per_class is not None and len(members) > max_samples_per_class:
                members = np.sort(rng.choice(members, max_samples_per_class, replace=False))
            if split == "train" and not splits.validation:
                held = rng.permutation(members)
                n_val = int(round(validation_fraction * len(members)))
                rows["validation"].append(np.sort(held[:n_val]))
                members = np.sort(held[n_val:])
            rows[split].append(members)
    return {s: np.concatenate(r) if r else np.zeros(0, dtype=np.int64) for s, r in rows.items()}
