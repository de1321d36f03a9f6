"""`load_transfer_dataset`: any source, through one canonical path, to the splits and columns every recipe reads."""

from __future__ import annotations

import logging
from typing import Optional

from datasets import DatasetDict

from ..errors import DataError
from ..registry import get_builtin_dataset
from ..tasks import AUTO_TASK, TASKS
from .arguments import DataArguments
from .columns import resolve_columns, to_canonical_columns, verify_images
from .constants import SPLIT_ORDER
from .sources import load_source
from .splits import (
    SOURCE_ROW,
    canonical_split_names,
    carve_split,
    per_class_subset,
    read_train_rows,
    select_train_rows,
    subsample,
)
from .targets import resolve_task

__all__ = ["UNLABELLED_SPLIT", "load_transfer_dataset"]

UNLABELLED_SPLIT = "unlabelled"  # `unlabelled_fraction`'s split: the rows a semi-supervised run treats as unlabelled

logger = logging.getLogger(__name__)

_BUILTIN_TEST_FRACTION = 0.2  # held-out test share for built-ins that ship as a single pool


def load_transfer_dataset(
    args: DataArguments,
    cache_dir: Optional[str] = None,
    task: str = "single_label",
    hold_out_validation: bool = True,
    unlabelled_fraction: Optional[float] = None,
    keep_source_rows: bool = False,
) -> DatasetDict:
    """Load `args`' source as a canonical `DatasetDict` (see the package docstring for the contract).

    Args:
        args: the data arguments.
        cache_dir: `datasets` cache folder (also where built-ins are prepared). Default: the `datasets` cache.
        task: what `label` must hold (a name of `hf_transfer.tasks.TASKS`, whose entry encodes it): `single_label` (a `ClassLabel`),
            `multi_label` (a `List(ClassLabel)`, possibly empty per row), `regression` (one float32 per row),
            `token_classification` (a `List(ClassLabel)` of tags, one per word of a `tokens` column; chosen whenever
            the input column holds word lists or the file is CoNLL), or
            `auto`: multi-label for lists, regression for numbers that are not all whole, else single_label
            (`hf_transfer.data.targets.resolve_task`); text labels holding `--label_separator` stop the run, asking
            for `--task multi_label` or `--task single_label`. `infer_task` reads it back.
        hold_out_validation: carve `--validation_split_percentage` of train out as validation when the source has
            no validation split. False leaves every row in train, for a run that chooses by cross-validation
            (the linear probe); the result then has no `validation` split.
        unlabelled_fraction: set this share of train aside (stratified, seeded, after validation is carved and
            before the labelled rows are subsampled) as an `unlabelled` split, last in the result. Its labels stay in
            the split, for scoring pseudo-labels only: nothing trains on them (`hf_transfer.semi_supervised`).
            `--train_rows_file` sets the same split aside by row positions instead.
        keep_source_rows: keep train's `SOURCE_ROW` column (each row's position in the source's train split), the
            positions a `--train_rows_file` names (`hf-transfer compare` writes such files).

    Raises:
        DataError: the source cannot be read or does not fit the contract; the message says what to change.
    """
    builtin = get_builtin_dataset(args.dataset_name)
    if builtin is not None and builtin.derived:  # made from another built-in, which comes through here
        return builtin.load(args, cache_dir)
    source = load_source(args, cache_dir)
    splits = canonical_split_names(source.splits, source.description)
    for split, ds in splits.items():
        if len(ds) == 0:
            raise DataError(f"Split '{split}' of {source.description} is empty. Give it some rows.")

    input_column, modality, label_column = resolve_columns(splits, source)
    splits = DatasetDict(
        {split: to_canonical_columns(ds, split, input_column, modality, label_column) for split, ds in splits.items()}
    )
    task = resolve_task(
        splits, source.task if task == AUTO_TASK and source.task else task, args.label_separator, source.description
    )
    task_entry = TASKS.get(task)
    splits = task_entry.encode_labels(splits, source.description, args.label_separator)

    seed = args.split_seed
    rows = read_train_rows(args.train_rows_file) if args.train_rows_file is not None else None
    if rows is not None and unlabelled_fraction is not None:
        raise DataError(
            "--train_rows_file names the unlabelled rows itself: drop --unlabelled_split_percentage (or the file's "
            "'unlabelled' list)."
        )
    if rows is not None or keep_source_rows:
        splits["train"] = splits["train"].add_column(SOURCE_ROW, list(range(len(splits["train"]))))
    if source.carve_test:
        splits = carve_split(splits, "test", _BUILTIN_TEST_FRACTION, seed, source.description)
    if "validation" not in splits and hold_out_validation:
        splits = carve_split(splits, "validation", args.validation_split_percentage, seed, source.description)
    if unlabelled_fraction is not None:
        splits = carve_split(splits, UNLABELLED_SPLIT, unlabelled_fraction, seed, source.description)
    for split, ds in splits.items():  # the positions are train's: a hold-out drops them
        if split != "train" and SOURCE_ROW in ds.column_names:
            splits[split] = ds.remove_columns(SOURCE_ROW)
    train_seed = seed if args.train_samples_seed is None else args.train_samples_seed
    if rows is not None:
        splits = select_train_rows(splits, rows, UNLABELLED_SPLIT, source.description)
    splits["train"] = per_class_subset(splits["train"], args.train_samples_per_class, train_seed, source.description)
    splits["train"] = subsample(splits["train"], args.max_train_samples, train_seed)
    for split in ("validation", "test"):
        if split in splits:
            splits[split] = subsample(splits[split], args.max_eval_samples, seed)
    splits = DatasetDict({split: splits[split] for split in (*SPLIT_ORDER, UNLABELLED_SPLIT) if split in splits})

    if source.verify and "image" in splits["train"].column_names:
        verify_images(splits)
    sizes = ", ".join(f"{split}={len(ds)}" for split, ds in splits.items())
    logger.info("Loaded %s: %s; %s", source.description, sizes, task_entry.summarize_labels(splits))
    return splits
