"""Splits: the canonical names, seeded hold-outs and subsets, stratified by class when the labels are classes."""

from __future__ import annotations

import json
import logging
import math
from typing import Optional

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict

from ..errors import DataError
from .constants import SPLIT_ALIASES, SPLIT_ORDER
from .labels import classlabel_ids

__all__ = [
    "SOURCE_ROW",
    "canonical_split_names",
    "carve_split",
    "per_class_subset",
    "read_train_rows",
    "select_train_rows",
    "subsample",
]

SOURCE_ROW = "__source_row__"  # a row's position in the source's train split, kept through the hold-outs

logger = logging.getLogger(__name__)


def canonical_split_names(splits: DatasetDict, description: str) -> DatasetDict:
    out = {}
    for name, ds in splits.items():
        canonical = SPLIT_ALIASES.get(str(name).lower())
        if canonical is None or canonical in out:
            logger.info("Dropping split '%s' of %s: only train / validation / test are used.", name, description)
            continue
        out[canonical] = ds
    if "train" not in out:
        raise DataError(
            f"{description} has no train split (splits: {list(splits)}). Pick a data set with a 'train' split, "
            "or pass your data with --train_file."
        )
    return DatasetDict(out)


def carve_split(splits: DatasetDict, target: str, fraction: float, seed: int, description: str) -> DatasetDict:
    """Hold out a seeded `target` split from train: stratified (every class keeps its share) for classes, a plain
    seeded draw for numeric targets and label lists (multi-label)."""
    train = splits["train"]
    if not isinstance(train.features["label"], ClassLabel):
        if math.ceil(fraction * len(train)) < 1 or len(train) - math.ceil(fraction * len(train)) < 2:
            raise DataError(
                f"Cannot carve a {target} split out of train of {description}: {fraction} of {len(train)} rows "
                "leaves too few rows on one side. Add more data, or pass --validation_file."
            )
        parts = train.train_test_split(test_size=fraction, seed=seed)
        return _with_split(splits, parts["train"], target, parts["test"])
    class_label = train.features["label"]
    counts = np.bincount(classlabel_ids(train), minlength=class_label.num_classes)
    fix = "pass --validation_file / --validation_dir, or add more data" if target == "validation" else "add more data"
    rare = [(class_label.int2str(i), int(c)) for i, c in enumerate(counts) if 0 < c < 2]
    if rare:
        name, count = rare[0]
        raise DataError(
            f"Cannot carve a stratified {target} split out of train of {description}: class '{name}' has only "
            f"{count} example(s) (at least 2 needed). Add more examples of '{name}', or {fix}."
        )
    n_classes, n_rows = int((counts > 0).sum()), len(train)
    n_held = math.ceil(fraction * n_rows)
    if n_held < n_classes or n_rows - n_held < n_classes:
        raise DataError(
            f"Cannot carve a stratified {target} split out of train of {description}: {fraction} of {n_rows} "
            f"rows leaves {n_held} held-out and {n_rows - n_held} training rows for {n_classes} classes (each "
            f"side needs one row per class). Change --validation_split_percentage, or {fix}."
        )
    try:
        parts = train.train_test_split(test_size=fraction, stratify_by_column="label", seed=seed)
    except ValueError as err:
        raise DataError(
            f"Cannot carve a stratified {target} split out of train of {description}: {err}. {fix}."
        ) from err
    return _with_split(splits, parts["train"], target, parts["test"])


def _with_split(splits: DatasetDict, train: Dataset, target: str, held_out: Dataset) -> DatasetDict:
    """`splits` with a new train and the `target` split, in the canonical order (train, validation, test, then the
    others), wherever in the run the split is carved."""
    out = {**splits, "train": train, target: held_out}
    rank = {name: i for i, name in enumerate(SPLIT_ORDER)}
    return DatasetDict({name: out[name] for name in sorted(out, key=lambda name: rank.get(name, len(rank)))})


def per_class_subset(ds: Dataset, per_class: Optional[int], seed: int, description: str) -> Dataset:
    """A seeded subset with `per_class` rows of every class (all rows of a smaller class), in a shuffled order."""
    if per_class is None:
        return ds
    if not isinstance(ds.features["label"], ClassLabel):
        raise DataError(
            f"--train_samples_per_class needs single-label classes; {description} has no class label column. "
            "Use --max_train_samples for a subset of other tasks."
        )
    perm = np.random.default_rng(seed).permutation(len(ds))
    labels = classlabel_ids(ds)[perm]
    seen: dict[int, int] = {}
    keep = []
    for position, label in zip(perm.tolist(), labels.tolist()):
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            keep.append(position)
    return ds.select(keep)


def _stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation in which every prefix holds each class in proportion to its size."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(labels))
    permuted = labels[perm]
    counts = np.bincount(permuted)
    by_class = np.argsort(permuted, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(labels), dtype=np.int64)
    rank[by_class] = np.arange(len(labels)) - starts[permuted[by_class]]  # position within its class
    key = (rank + 0.5) / counts[permuted]  # spread each class evenly over [0, 1)
    return perm[np.argsort(key, kind="stable")]


def subsample(ds: Dataset, n: Optional[int], seed: int) -> Dataset:
    """Seeded subset, class-stratified for classes (the built-in files are sorted by label, so never the first n
    rows)."""
    if n is None or n >= len(ds):
        return ds
    if not isinstance(ds.features["label"], ClassLabel):
        return ds.select(np.random.default_rng(seed).permutation(len(ds))[:n].tolist())
    order = _stratified_order(classlabel_ids(ds), seed)
    return ds.select(order[:n].tolist())


def read_train_rows(path: str) -> dict[str, list[int]]:
    """`--train_rows_file`: `{"labelled": [...], "unlabelled": [...]}` positions, checked to be whole numbers that
    name each row once."""
    try:
        rows = json.loads(open(path, encoding="utf-8").read())
    except (OSError, ValueError) as err:
        raise DataError(
            f"--train_rows_file '{path}' is not readable JSON ({err}). Write it as the docs show."
        ) from None
    if (
        not isinstance(rows, dict)
        or not isinstance(rows.get("labelled"), list)
        or set(rows) - {"labelled", "unlabelled"}
    ):
        raise DataError(
            f"--train_rows_file '{path}' must hold an object with a 'labelled' list of row positions (and optionally "
            "an 'unlabelled' one), nothing else."
        )
    out = {key: rows.get(key, []) for key in ("labelled", "unlabelled")}
    flat = [*out["labelled"], *out["unlabelled"]]
    if not out["labelled"] or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in flat):
        raise DataError(f"--train_rows_file '{path}': give at least one labelled row, as positions 0, 1, 2, ...")
    if len(set(flat)) != len(flat):
        raise DataError(f"--train_rows_file '{path}' names some rows twice (or as labelled and unlabelled): once each.")
    return out


def select_train_rows(
    splits: DatasetDict, rows: dict[str, list[int]], pool_split: str, description: str
) -> DatasetDict:
    """Train becomes `rows["labelled"]` (in that order) and `pool_split` the `rows["unlabelled"]`, found by their
    `SOURCE_ROW` position; a row that a hold-out took (validation, test) or that the split lacks is an error."""
    train = splits["train"]
    where = {int(position): index for index, position in enumerate(train[SOURCE_ROW])}
    out = DatasetDict(splits)
    for split, positions in (("train", rows["labelled"]), (pool_split, rows["unlabelled"])):
        missing = [p for p in positions if p not in where]
        if missing:
            raise DataError(
                f"--train_rows_file names train row {missing[0]} of {description}, which is not in its train split "
                f"({len(missing)} such rows: past its end, or held out as validation / test). Name rows of train only."
            )
        if positions:
            out[split] = train.select([where[p] for p in positions]).remove_columns(SOURCE_ROW)
    return out
