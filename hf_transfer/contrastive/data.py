"""Data for contrastive pretraining: labelled sets as usual, plus unlabelled text and text pairs.

Labels are optional here (SimCLR and SimCSE never read them; SupCon does). Built-in sets, Hub ids, image
folders and labelled files go through `hf_transfer.data.load_transfer_dataset` unchanged. A `--train_file`
without a label column (a plain corpus), or any file read with `--pair_column`, is loaded directly into
columns `text` (and `positive`), with the same seeded `--max_train_samples` subsampling.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
from datasets import DatasetDict

from ..data import DataArguments, load_transfer_dataset, read_data_files
from ..data.columns import keep_columns, match_column
from ..data.constants import LABEL_COLUMN_CANDIDATES, TEXT_COLUMN_CANDIDATES
from ..errors import ConfigError, DataError

__all__ = ["load_contrastive_dataset", "PAIR_COLUMN"]

logger = logging.getLogger(__name__)

PAIR_COLUMN = "positive"  # canonical name of the pair column in the loaded data


def load_contrastive_dataset(
    data_args: DataArguments, contrastive_args: Any, cache_dir: Optional[str] = None
) -> DatasetDict:
    """Splits with `text` or `image`, `label` when the source has one, and `positive` with `--pair_column`.

    Raises:
        ConfigError: `--pair_column` without `--train_file`; SupCon on data without labels.
        DataError: a missing column or empty texts, with the fix.
    """
    if not data_args.train_file:
        if contrastive_args.pair_column:
            raise ConfigError(
                f"--pair_column {contrastive_args.pair_column!r} needs --train_file (a csv/json/parquet file with a "
                "text column and that column); built-in data sets have no pairs: use --views dropout."
            )
        return load_transfer_dataset(data_args, cache_dir=cache_dir)

    raw = read_data_files(data_args, cache_dir)  # the recipes' one file reader, with its checks
    columns = raw["train"].column_names
    label = match_column(columns, data_args.label_column, LABEL_COLUMN_CANDIDATES)
    if label is not None and not contrastive_args.pair_column:
        return load_transfer_dataset(data_args, cache_dir=cache_dir)  # labelled: the canonical path
    if contrastive_args.needs_labels:
        raise ConfigError(
            f"--contrastive_loss supcon needs labels, but {data_args.train_file} has no label column (columns: "
            f"{columns}). Pass --label_column NAME, or use --contrastive_loss ntxent for unlabelled text."
        )
    text = match_column(columns, data_args.text_column, TEXT_COLUMN_CANDIDATES)
    if text is None:
        raise DataError(f"No text column in {data_args.train_file} (columns: {columns}). Pass --text_column NAME.")
    keep = {text: "text"}
    if contrastive_args.pair_column:
        if contrastive_args.pair_column not in columns:
            raise DataError(
                f"--pair_column {contrastive_args.pair_column!r} is not in {data_args.train_file} (columns: {columns})."
            )
        keep[contrastive_args.pair_column] = PAIR_COLUMN
    out = {}
    for split, ds in raw.items():
        ds = keep_columns(ds, split, keep)
        for column in keep.values():
            empty = [i for i, value in enumerate(ds[column]) if not isinstance(value, str) or not value.strip()]
            if empty:
                raise DataError(
                    f"Split '{split}' has {len(empty)} rows without text in '{column}' (rows {empty[:10]}, 0-based). "
                    "Drop or fill those rows."
                )
        limit = data_args.max_train_samples if split == "train" else data_args.max_eval_samples
        if limit is not None and limit < len(ds):
            order = np.random.default_rng(data_args.split_seed).permutation(len(ds))[:limit]
            ds = ds.select(sorted(order.tolist()))
        out[split] = ds
    logger.info("Loaded unlabelled %s: %s", data_args.train_file, {k: len(v) for k, v in out.items()})
    return DatasetDict(out)
