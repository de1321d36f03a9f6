"""`DataArguments`: which data to load and how to split and subsample it; checked before anything is read."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..constants import DEFAULT_LABEL_SEPARATOR
from ..errors import DataError
from .constants import (
    BUILTIN_DATASETS,
    DERIVED_DATASETS,
    FILE_BUILDERS,
    IMAGE_COLUMN_CANDIDATES,
    LABEL_COLUMN_CANDIDATES,
    SPLIT_ORDER,
    TEXT_COLUMN_CANDIDATES,
)

__all__ = ["DataArguments", "data_source_name", "label_names_of"]


@dataclass
class DataArguments:
    """What data to load and how to split and subsample it.

    Exactly one source kind is used: `dataset_name`, or the `*_file` flags, or the `*_dir` flags.

    Args:
        dataset_name (`str`, *optional*):
            A built-in offline set (`tweet_sentiment`, `drug_reviews`, `bbc_news`, `fashion_mnist`, `digits`)
            or a Hub dataset id passed to `datasets.load_dataset`.
        dataset_config_name (`str`, *optional*):
            Config of a Hub dataset. Not used by the built-ins.
        train_file (`str`, *optional*):
            Training data as `.csv`, `.tsv`, `.json`, `.jsonl` or `.parquet`.
        validation_file (`str`, *optional*):
            Validation data, same formats; needs `train_file`. Carved out of train when omitted.
        test_file (`str`, *optional*):
            Test data, same formats; needs `train_file`.
        train_dir (`str`, *optional*):
            Image folder with one sub-folder per class (`train_dir/cat/1.png`), loaded with `imagefolder`.
        validation_dir (`str`, *optional*):
            Same layout as `train_dir`; needs it. Carved out of train when omitted.
        test_dir (`str`, *optional*):
            Same layout as `train_dir`; needs it.
        text_column (`str`, *optional*):
            Column with the input text. Auto-detected among `TEXT_COLUMN_CANDIDATES` when omitted.
        image_column (`str`, *optional*):
            Column with the input image (or image paths). Auto-detected among `IMAGE_COLUMN_CANDIDATES`, or
            any `datasets.Image` column, when omitted.
        label_column (`str`, *optional*):
            Column with the class (name or integer id). Auto-detected among `LABEL_COLUMN_CANDIDATES`, or the
            only `ClassLabel` column, when omitted.
        validation_split_percentage (`float`, defaults to 0.1):
            Fraction of train, in (0, 1), carved out as a stratified validation split when the source has none.
        max_train_samples (`int`, *optional*):
            Keep a seeded, class-stratified subset of this many train rows. All rows when omitted.
        train_rows_file (`str`, *optional*):
            A JSON file `{"labelled": [...], "unlabelled": [...]}` of positions in the source's train split (before
            any hold-out is carved): the labelled rows to train on, and rows whose labels are hidden as the
            unlabelled pool. Written by `hf-transfer compare` for rows chosen by `hf-transfer select`.
        max_eval_samples (`int`, *optional*):
            Same for the validation and the test split.
        split_seed (`int`, defaults to 42):
            Seed of every split and subsample, so reruns see the same rows (and the same fingerprints).
    """

    dataset_name: Optional[str] = field(
        default=None,
        metadata={
            "help": "A built-in offline data set (one of: "
            + ", ".join((*BUILTIN_DATASETS, *DERIVED_DATASETS))
            + ") or a Hub dataset id for datasets.load_dataset. Omit it when you pass --train_file or --train_dir."
        },
    )
    dataset_config_name: Optional[str] = field(
        default=None,
        metadata={"help": "Config name of the Hub dataset (e.g. 'sst2' for 'glue'). Not used by the built-ins."},
    )
    train_file: Optional[str] = field(
        default=None,
        metadata={
            "help": "Training data file: .csv, .tsv, .json, .jsonl or .parquet, with a text or image column "
            "and a label column."
        },
    )
    validation_file: Optional[str] = field(
        default=None,
        metadata={
            "help": "Validation data file, same formats as --train_file (which it needs). When omitted, "
            "--validation_split_percentage of train is carved out."
        },
    )
    test_file: Optional[str] = field(
        default=None,
        metadata={"help": "Test data file, same formats as --train_file (which it needs). No test split when omitted."},
    )
    train_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "Image folder with one sub-folder per class (train_dir/<class>/<image>), read with "
            "'imagefolder'. Every image is opened once to catch corrupt files early."
        },
    )
    validation_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "Validation image folder, same layout as --train_dir (which it needs). When omitted, "
            "--validation_split_percentage of train is carved out."
        },
    )
    test_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "Test image folder, same layout as --train_dir (which it needs). No test split when omitted."
        },
    )
    text_column: Optional[str] = field(
        default=None,
        metadata={
            "help": "Column holding the input text. Default: the first of "
            f"{', '.join(TEXT_COLUMN_CANDIDATES)} found. Pass it when your column is named otherwise."
        },
    )
    image_column: Optional[str] = field(
        default=None,
        metadata={
            "help": "Column holding the input image (or image file paths). Default: the first of "
            f"{', '.join(IMAGE_COLUMN_CANDIDATES)} found, else any Image-typed column."
        },
    )
    label_column: Optional[str] = field(
        default=None,
        metadata={
            "help": "Column holding the class, as a name or an integer id (a list of names, or names joined by "
            "--label_separator, for multi-label; a number for regression). Default: the first of "
            f"{', '.join(LABEL_COLUMN_CANDIDATES)} found, else the only ClassLabel column."
        },
    )
    label_separator: str = field(
        default=DEFAULT_LABEL_SEPARATOR,
        metadata={
            "help": "What separates several labels in one text cell of a multi-label column (`sports,politics`), "
            "read so under --task multi_label only; under --task auto a cell that holds it stops the run, asking "
            f"for --task multi_label or --task single_label. Default '{DEFAULT_LABEL_SEPARATOR}'."
        },
    )
    validation_split_percentage: float = field(
        default=0.1,
        metadata={
            "help": "Fraction of train (strictly between 0 and 1) held out as a stratified, seeded "
            "validation split when the source has no validation split. Default 0.1."
        },
    )
    max_train_samples: Optional[int] = field(
        default=None,
        metadata={
            "help": "Keep a seeded, class-stratified subset of this many train rows (positive). Default: all rows."
        },
    )
    train_samples_per_class: Optional[int] = field(
        default=None,
        metadata={
            "help": "Keep a seeded subset of this many train rows per class (all of a smaller class): a label budget, "
            "as in few-shot comparisons. Single-label classification only. Default: all rows."
        },
    )
    train_rows_file: Optional[str] = field(
        default=None,
        metadata={
            "help": "A JSON file naming the train rows to use by their position in the source's train split (0-based, "
            'before validation or test is carved): {"labelled": [...], "unlabelled": [...]}. The labelled rows are '
            "the train split; the unlabelled ones, if any, become the unlabelled pool with their labels hidden. "
            "hf-transfer compare writes one per cell for its selection and unlabelled arms. Replaces "
            "--train_samples_per_class and --max_train_samples."
        },
    )
    train_samples_seed: Optional[int] = field(
        default=None,
        metadata={
            "help": "Seed of the train subset (--train_samples_per_class, --max_train_samples) alone, so runs can draw "
            "different labelled rows and still score on the same validation and test rows. Default: --split_seed."
        },
    )
    max_eval_samples: Optional[int] = field(
        default=None,
        metadata={
            "help": "Keep a seeded, class-stratified subset of this many rows in validation and in test "
            "(positive). Default: all rows."
        },
    )
    split_seed: int = field(
        default=42,
        metadata={"help": "Seed for carving splits and subsampling; the same seed gives the same rows. Default 42."},
    )

    @property
    def draws_train_subset(self) -> bool:
        """The labelled rows are a budget drawn from a larger pool (`--max_train_samples`, `--train_samples_per_class`,
        `--train_rows_file`): a validation split carved before the draw then takes none of them."""
        return (
            self.max_train_samples is not None
            or self.train_samples_per_class is not None
            or self.train_rows_file is not None
        )

    def __post_init__(self) -> None:
        files = {f"--{s}_file": getattr(self, f"{s}_file") for s in SPLIT_ORDER}
        dirs = {f"--{s}_dir": getattr(self, f"{s}_dir") for s in SPLIT_ORDER}
        given = [flag for flag, value in {"--dataset_name": self.dataset_name, **files, **dirs}.items() if value]
        kinds = [
            kind
            for kind, on in (
                ("--dataset_name", self.dataset_name is not None),
                ("data files", any(files.values())),
                ("image folders", any(dirs.values())),
            )
            if on
        ]
        if not kinds:
            raise DataError(
                "No data source given. Pass --dataset_name (a built-in: "
                f"{', '.join((*BUILTIN_DATASETS, *DERIVED_DATASETS))}; or a Hub dataset id), or --train_file, or "
                "--train_dir."
            )
        if len(kinds) > 1:
            raise DataError(
                f"Pass one kind of data source, not {' and '.join(kinds)} (got {', '.join(given)}). "
                "Keep either --dataset_name, or the --*_file flags, or the --*_dir flags."
            )
        for kind, flags in (("file", files), ("dir", dirs)):
            train = flags[f"--train_{kind}"]
            for split in ("validation", "test"):
                if flags[f"--{split}_{kind}"] and not train:
                    raise DataError(
                        f"--{split}_{kind} needs --train_{kind}: the model is trained on the train split. "
                        f"Pass --train_{kind} too."
                    )
        for flag, path in files.items():
            if path is None:
                continue
            suffix = Path(path).suffix.lower()
            if suffix not in FILE_BUILDERS:
                raise DataError(
                    f"{flag} '{path}' has an unknown extension '{suffix}'. Use one of "
                    f"{', '.join(FILE_BUILDERS)} (tab-separated text as .tsv, JSON lines as .jsonl)."
                )
            if "://" not in path and not os.path.isfile(path):
                raise DataError(f"{flag} '{path}' does not exist or is not a file. Check the path.")
        for flag, path in dirs.items():
            if path is not None and not os.path.isdir(path):
                raise DataError(f"{flag} '{path}' does not exist or is not a folder. Check the path.")
        if self.dataset_config_name is not None:
            if self.dataset_name is None:
                raise DataError("--dataset_config_name needs --dataset_name (a Hub dataset id). Drop it or add one.")
            if self.dataset_name in (*BUILTIN_DATASETS, *DERIVED_DATASETS):
                raise DataError(
                    f"The built-in data set '{self.dataset_name}' has no configs; drop --dataset_config_name "
                    f"(got '{self.dataset_config_name}')."
                )
        if self.text_column is not None and self.image_column is not None:
            raise DataError(
                f"Pass --text_column or --image_column, not both (got '{self.text_column}' and "
                f"'{self.image_column}'): a data set is either text or vision here."
            )
        if not 0.0 < self.validation_split_percentage < 1.0:
            raise DataError(
                f"--validation_split_percentage must be a fraction strictly between 0 and 1; got "
                f"{self.validation_split_percentage}. Use e.g. 0.1 for 10% of train."
            )
        for flag, value in (
            ("--max_train_samples", self.max_train_samples),
            ("--train_samples_per_class", self.train_samples_per_class),
            ("--max_eval_samples", self.max_eval_samples),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise DataError(
                    f"{flag} must be a positive integer; got {value!r}: it would leave an empty split. "
                    "Omit it to use every row."
                )
        if self.train_rows_file is not None:
            if not self.train_rows_file.endswith(".json") or not os.path.isfile(self.train_rows_file):
                raise DataError(
                    f"--train_rows_file '{self.train_rows_file}' is not a .json file that exists. Check the path."
                )
            subsets = [flag for flag in ("max_train_samples", "train_samples_per_class") if getattr(self, flag)]
            if subsets:
                raise DataError(
                    f"--train_rows_file names the labelled rows itself: drop --{subsets[0]} (it would subset them)."
                )
        if not isinstance(self.label_separator, str) or not self.label_separator.strip():
            raise DataError(
                f"--label_separator must be a visible character or string such as ',' or '|'; got "
                f"{self.label_separator!r}."
            )


def data_source_name(args: DataArguments) -> str:
    """What the data is called in results and model cards: the data set name, else the train file or folder."""
    return args.dataset_name or args.train_file or args.train_dir


def label_names_of(dataset, args: DataArguments) -> list[str]:
    """The names of a canonical data set's outputs: its classes (of one label, or of a multi-label list), or for a
    regression target the target's name (`--label_column`, else `target`)."""
    train = dataset["train"] if "train" in dataset else dataset
    feature = train.features["label"]
    names = getattr(getattr(feature, "feature", feature), "names", None)
    if names is not None:
        return list(names)
    target = args.label_column or "target"
    size = getattr(feature, "length", -1)  # several targets per row: List(float32, length=K)
    return [f"{target}_{k}" for k in range(size)] if size and size > 0 else [target]
