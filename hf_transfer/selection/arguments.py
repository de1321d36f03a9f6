"""`SelectArguments`: what `hf-transfer select` is asked. Flags that mean what a recipe's flag means carry the
recipe's name (`--model_name_or_path`, `--train_file`, `--train_dir`, `--text_column`, `--feature_batch_size`,
`--max_seq_length`, `--cache_dir`, `--output_dir`, `--seed`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..constants import DEFAULT_LABEL_SEPARATOR
from ..data.constants import BUILTIN_DATASETS, DERIVED_DATASETS, FILE_BUILDERS
from ..errors import ConfigError, DataError
from ..tasks import AUTO_TASK, TASK_CHOICES
from .registry import AUTO_STRATEGY, SELECTION_STRATEGIES

__all__ = ["SelectArguments"]


@dataclass
class SelectArguments:
    """What `hf-transfer select` reads and writes.

    Args:
        model_name_or_path (`str`): the backbone whose features the rows are chosen on (a built-in name or a path).
        num_rows (`int`): how many rows to pick in this call (K).
        pool_file / pool_dir / dataset_name: the unlabelled rows, exactly one: a data file with a text or image(-path)
            column, an image folder (any depth), or a built-in data set's train split with its labels hidden.
        train_file / train_dir (`str`, *optional*): the rows labelled so far (the recipes' flags). Without them:
            a cold start.
        strategy (`str`, defaults to `auto`): a name of `SELECTION_STRATEGIES`.
        output_dir (`str`, *optional*): where `selected.csv` and `selection.json` go; an existing selection there
            is continued.
    """

    model_name_or_path: str = field(
        metadata={"help": "Backbone whose features the rows are chosen on: a built-in (minilm, ...) or a path / id."}
    )
    num_rows: int = field(metadata={"help": "How many rows to pick in this call (K, at least 1)."})
    pool_file: Optional[str] = field(
        default=None,
        metadata={
            "help": "Unlabelled rows: .csv, .tsv, .json, .jsonl or .parquet with a text column or an image-path column "
            "(any label column is ignored)."
        },
    )
    pool_dir: Optional[str] = field(
        default=None, metadata={"help": "Unlabelled images: a folder, read at any depth (flat is fine)."}
    )
    dataset_name: Optional[str] = field(
        default=None,
        metadata={
            "help": "A built-in data set whose train split is the pool, its labels hidden (for simulations): "
            + ", ".join((*BUILTIN_DATASETS, *DERIVED_DATASETS))
            + "."
        },
    )
    max_pool_samples: Optional[int] = field(
        default=None, metadata={"help": "With --dataset_name: keep a seeded subset of this many pool rows."}
    )
    train_file: Optional[str] = field(
        default=None,
        metadata={"help": "The rows labelled so far, as finetune reads them (text or image column and a label)."},
    )
    train_dir: Optional[str] = field(
        default=None, metadata={"help": "The images labelled so far: one sub-folder per class, as finetune reads them."}
    )
    text_column: Optional[str] = field(default=None, metadata={"help": "Text column of the pool and train files."})
    image_column: Optional[str] = field(
        default=None, metadata={"help": "Image (or image path) column of the pool and train files."}
    )
    label_column: Optional[str] = field(default=None, metadata={"help": "Label column of --train_file."})
    id_column: Optional[str] = field(
        default=None,
        metadata={"help": "A column of the pool file copied into selected.csv to name each row. Default: `id` if any."},
    )
    task: str = field(
        default=AUTO_TASK,
        metadata={
            "help": f"What the labels of --train_file hold: {', '.join(TASK_CHOICES)} (as in finetune). Uncertainty "
            "is defined for single_label and multi_label; a regression target leaves the diversity strategies."
        },
    )
    label_separator: str = field(
        default=DEFAULT_LABEL_SEPARATOR, metadata={"help": "Separator of several labels in one multi-label cell."}
    )
    strategy: str = field(
        default=AUTO_STRATEGY,
        metadata={
            "help": f"How to choose: {', '.join(SELECTION_STRATEGIES)}. auto: typical without labelled rows, badge with "
            "them (kcenter for a regression target)."
        },
    )
    output_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "Where selected.csv and selection.json go (default outputs/select-<pool>). A selection already "
            "there is continued: its rows are never picked again."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of k-means, BADGE's draws and random; same seed, same rows."})
    feature_batch_size: int = field(default=64, metadata={"help": "Rows per forward pass during extraction."})
    max_seq_length: int = field(default=128, metadata={"help": "Token limit for text."})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when available), cpu or cuda."})
    cache_dir: Optional[str] = field(
        default=None,
        metadata={"help": "Model, data and feature cache directory (features under <cache_dir>/features)."},
    )

    def __post_init__(self) -> None:
        pools = [f"--{name}" for name in ("pool_file", "pool_dir", "dataset_name") if getattr(self, name)]
        if len(pools) != 1:
            given = f" (got {' and '.join(pools)})" if pools else ""
            raise DataError(f"Pass exactly one pool: --pool_file, --pool_dir or --dataset_name{given}.")
        if self.train_file and self.train_dir:
            raise DataError("Pass --train_file or --train_dir for the labelled rows, not both.")
        if isinstance(self.num_rows, bool) or not isinstance(self.num_rows, int) or self.num_rows < 1:
            raise ConfigError(f"--num_rows must be a positive integer; got {self.num_rows!r}.")
        for flag, path in (("--pool_file", self.pool_file), ("--train_file", self.train_file)):
            if path is None:
                continue
            if Path(path).suffix.lower() not in FILE_BUILDERS:
                raise DataError(f"{flag} '{path}' has an unknown extension; use one of {', '.join(FILE_BUILDERS)}.")
            if not os.path.isfile(path):
                raise DataError(f"{flag} '{path}' does not exist or is not a file. Check the path.")
        for flag, path in (("--pool_dir", self.pool_dir), ("--train_dir", self.train_dir)):
            if path is not None and not os.path.isdir(path):
                raise DataError(f"{flag} '{path}' does not exist or is not a folder. Check the path.")
        if self.max_pool_samples is not None and (self.dataset_name is None or self.max_pool_samples < 1):
            raise ConfigError("--max_pool_samples is a positive number of rows, and only with --dataset_name.")
        if self.task not in TASK_CHOICES:
            raise ConfigError(f"--task {self.task!r} is not one of {', '.join(TASK_CHOICES)}.")
        SELECTION_STRATEGIES.check(self.strategy)
        if self.feature_batch_size < 1:
            raise ConfigError(f"--feature_batch_size must be at least 1; got {self.feature_batch_size}.")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device {self.device!r}: use auto, cpu or cuda.")

    @property
    def pool_description(self) -> str:
        if self.pool_file:
            return f"--pool_file '{self.pool_file}'"
        if self.pool_dir:
            return f"--pool_dir '{self.pool_dir}'"
        return f"built-in '{self.dataset_name}' (train split, labels hidden)"

    @property
    def pool_name(self) -> str:
        """The pool's short name for the default output folder."""
        source = self.pool_file or self.pool_dir or self.dataset_name
        return Path(source.rstrip("/")).stem if (self.pool_file or self.pool_dir) else source
