"""The unlabelled pool: a file, an image folder, or a share of train set aside (`load_transfer_dataset`'s
`unlabelled` split), in train's canonical columns so the run's preprocessing reads it unchanged."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

import datasets
from datasets import Dataset, DatasetDict

from ..data.columns import find_column
from ..data.constants import IMAGE_COLUMN_CANDIDATES, TEXT_COLUMN_CANDIDATES
from ..data.loading import UNLABELLED_SPLIT
from ..data.sources import read_data_files
from ..data.splits import subsample
from ..errors import DataError
from ..modalities import MODALITIES
from .arguments import SemiSupervisedArguments

__all__ = ["UnlabelledPool", "load_unlabelled_pool"]

logger = logging.getLogger(__name__)


@dataclass
class UnlabelledPool:
    """`rows`: the pool in train's columns; its `label` column is a placeholder unless `has_hidden_labels` (a share
    of train set aside), whose labels score the pseudo-labels and train nothing. `source`: where it came from."""

    rows: Dataset
    has_hidden_labels: bool
    source: str


def _placeholder_labels(ds: Dataset, label_feature) -> Dataset:
    """A `label` column of train's type that no code reads as truth (class 0, or no classes for multi-label)."""
    if "label" in ds.column_names:
        ds = ds.remove_columns("label")
    empty = [] if isinstance(label_feature, (datasets.Sequence, datasets.List)) else 0
    return ds.add_column("label", [empty] * len(ds)).cast_column("label", label_feature)


def _read_unlabelled_file(
    path: str, train: Dataset, text_column: Optional[str], image_column: Optional[str], cache_dir
):
    table = read_data_files(SimpleNamespace(train_file=path, validation_file=None, test_file=None), cache_dir)["train"]
    modality = "text" if "text" in train.column_names else "vision"
    entry = MODALITIES.get(modality)
    requested, candidates, flag = (
        (text_column, TEXT_COLUMN_CANDIDATES, "--text_column")
        if modality == "text"
        else (image_column, IMAGE_COLUMN_CANDIDATES, "--image_column")
    )
    if requested is not None and requested not in table.column_names:
        raise DataError(
            f"--unlabelled_file '{path}' has no column '{requested}' ({flag}; its columns: {table.column_names}). "
            f"Give it the input column train has."
        )
    column = find_column(table, requested, candidates, flag, modality)
    if column is None:
        raise DataError(
            f"--unlabelled_file '{path}' has no {modality} input column (its columns: {table.column_names}). Give it "
            f"the input column train has, or name it with {flag}."
        )
    table = table.select_columns([column])
    if column != entry.input_column:
        table = table.rename_column(column, entry.input_column)
    return entry.canonicalize(table, "unlabelled", column)


def _read_unlabelled_dir(path: str, cache_dir) -> Dataset:
    if not os.path.isdir(path):
        raise DataError(f"--unlabelled_dir '{path}' is not a folder. Give a folder of images.")
    try:
        loaded = datasets.load_dataset(
            "imagefolder", data_files={"train": [os.path.join(path, "**")]}, drop_labels=True, cache_dir=cache_dir
        )["train"]
    except Exception as err:
        raise DataError(
            f"Could not read --unlabelled_dir '{path}' as images ({type(err).__name__}: {err}). Put image files "
            "(.png, .jpg, ...) in it."
        ) from err
    return loaded.select_columns(["image"])


def load_unlabelled_pool(
    raw_datasets: DatasetDict,
    args: SemiSupervisedArguments,
    *,
    text_column: Optional[str] = None,
    image_column: Optional[str] = None,
    seed: int = 42,
    cache_dir: Optional[str] = None,
) -> Optional[UnlabelledPool]:
    """The run's pool, or None without one; the `unlabelled` split is taken out of `raw_datasets` (no other stage
    should see it). A pool whose input kind differs from train's, or an empty pool, is one `DataError`."""
    train = raw_datasets["train"]
    if UNLABELLED_SPLIT in raw_datasets:
        rows, hidden, source = raw_datasets.pop(UNLABELLED_SPLIT), True, "rows of train set aside, labels hidden"
    elif args.unlabelled_file is not None:
        rows = _read_unlabelled_file(args.unlabelled_file, train, text_column, image_column, cache_dir)
        hidden, source = False, f"--unlabelled_file '{args.unlabelled_file}'"
    elif args.unlabelled_dir is not None:
        if "image" not in train.column_names:
            raise DataError(
                f"--unlabelled_dir holds images and this run's train rows are {train.column_names[0]}. Give text rows "
                "with --unlabelled_file."
            )
        rows, hidden, source = _read_unlabelled_dir(args.unlabelled_dir, cache_dir), False, "--unlabelled_dir"
    else:
        return None
    if len(rows) == 0:
        raise DataError(f"The unlabelled pool ({source}) has no rows. Give it some.")
    rows = subsample(rows, args.max_unlabelled_samples, seed) if hidden else rows
    if not hidden:
        if args.max_unlabelled_samples is not None and args.max_unlabelled_samples < len(rows):
            rows = rows.shuffle(seed=seed).select(range(args.max_unlabelled_samples))
        rows = _placeholder_labels(rows, train.features["label"])
    rows = rows.cast(train.features) if rows.features != train.features else rows
    logger.info("Unlabelled pool: %d rows from %s", len(rows), source)
    return UnlabelledPool(rows, hidden, source)
