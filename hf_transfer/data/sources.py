"""Reading each kind of source as raw splits: a built-in, a Hub data set, data files, image folders.

Nothing here renames or encodes: every source hands a `RawSource` to the one canonical path
(`hf_transfer.data.loading`), so a user file and a built-in are checked the same way.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Optional, Sequence

import datasets
import pandas as pd
from datasets import Dataset, DatasetDict, Features, Value

from ..cache import cache_write_problem
from ..errors import DataError, HfTransferError
from ..registry import get_builtin_dataset
from .arguments import DataArguments
from .conll import load_conll_file
from .constants import BUILTIN_DATASETS, FILE_BUILDERS, SPLIT_ORDER
from .text_files import file_utf8_problem, not_utf8_error

__all__ = ["RawSource", "load_source", "read_data_files"]

logger = logging.getLogger(__name__)


class RawSource(NamedTuple):
    """What a source loader hands to the common canonicalization path."""

    splits: DatasetDict
    description: str  # for messages: "--train_file 'a.csv'", "built-in 'digits'", ...
    text_column: Optional[str] = None
    image_column: Optional[str] = None
    label_column: Optional[str] = None
    carve_test: bool = False  # the source is one pool: hold out a stratified test split first
    verify: bool = False  # open every image (user-provided images only)
    label_hint: str = ""  # extra advice when the label column is missing
    task: Optional[str] = None  # what the label column holds when the source knows (a built-in regression target)


def load_source(args: DataArguments, cache_dir: Optional[str]) -> RawSource:
    if args.dataset_name in BUILTIN_DATASETS:
        if any((args.text_column, args.image_column, args.label_column)):
            logger.warning("Built-in '%s' has fixed columns; ignoring --*_column flags.", args.dataset_name)
        with _datasets_cache_errors(cache_dir):
            return get_builtin_dataset(args.dataset_name).load(cache_dir)
    if args.dataset_name is not None:
        return _load_hub(args, cache_dir)
    if args.train_file is not None:
        return _load_files(args, cache_dir)
    return _load_image_dirs(args, cache_dir)


def _load_hub(args: DataArguments, cache_dir: Optional[str]) -> RawSource:
    name, config = args.dataset_name, args.dataset_config_name
    try:
        loaded = datasets.load_dataset(name, config, cache_dir=cache_dir)
    except Exception as err:  # offline, not found, bad config, broken script: all end the same way
        raise _unwritable_cache(err, cache_dir) or DataError(
            f"Could not load dataset '{name}'"
            + (f" (config '{config}')" if config else "")
            + f": {type(err).__name__}: {err}. --dataset_name takes a built-in ({', '.join(BUILTIN_DATASETS)}) "
            "or a Hub dataset id; a Hub id needs network access or an earlier download in the cache "
            "(with HF_HUB_OFFLINE=1 only the cache is read). Offline, use a built-in or --train_file/--train_dir."
        ) from err
    if not isinstance(loaded, DatasetDict):
        loaded = DatasetDict({"train": loaded})
    return RawSource(loaded, f"dataset '{name}'", args.text_column, args.image_column, args.label_column)


def _root_cause(err: BaseException) -> BaseException:
    """The innermost exception behind `err` (datasets wraps the reader's error in `DatasetGenerationError`)."""
    seen = set()
    while id(err) not in seen:
        seen.add(id(err))
        inner = err.__cause__ or err.__context__
        if inner is None:
            break
        err = inner
    return err


def _unwritable_cache(err: BaseException, cache_dir: Optional[str], inputs: Sequence[str] = ()) -> Optional[DataError]:
    """The one line for a datasets cache that cannot be written (permission, read-only, full), naming the folder
    and how to move it; None for any other error, or one about reading an input file (`inputs`)."""
    cause = _root_cause(err)
    filename = getattr(cause, "filename", None)
    if filename is not None and any(os.path.abspath(os.fspath(filename)) == os.path.abspath(p) for p in inputs):
        return None
    problem = cache_write_problem(
        cause,
        "the datasets cache",
        cache_dir or datasets.config.HF_DATASETS_CACHE,
        "pass --cache_dir with a writable folder, or set HF_DATASETS_CACHE (or HF_HOME) to one",
    )
    return DataError(problem) if problem else None


@contextmanager
def _datasets_cache_errors(cache_dir: Optional[str], inputs: Sequence[str] = ()) -> Iterator[None]:
    """Turn an unwritable datasets cache met inside the block into its one line (`_unwritable_cache`)."""
    try:
        yield
    except HfTransferError:
        raise
    except Exception as err:
        error = _unwritable_cache(err, cache_dir, inputs)
        if error is None:
            raise
        raise error from err


def _read_file(path: str, split: str, flag: str, cache_dir: Optional[str]) -> Dataset:
    """One data file as a `Dataset`; csv / tsv cells are read as text, so a label such as `01`, `1.0` or `1,5`
    stays what the file says (the labels' module decides, with the task, what it means)."""
    builder, kwargs = FILE_BUILDERS[Path(path).suffix.lower()]
    if builder == "conll":
        with _datasets_cache_errors(cache_dir, [path]):
            return load_conll_file(path, cache_dir, where=f"{flag} '{path}'")
    options: dict[str, Any] = dict(kwargs)
    if builder == "csv":
        columns = pd.read_csv(path, nrows=0, sep=kwargs.get("sep", ","), encoding="utf-8").columns
        options["features"] = Features({str(column): Value("string") for column in columns})
    return datasets.load_dataset(builder, data_files={split: path}, cache_dir=cache_dir, **options)[split]


def read_data_files(args: DataArguments, cache_dir: Optional[str] = None) -> DatasetDict:
    """`--train_file` / `--validation_file` / `--test_file` as they are (all columns), each checked: an empty or
    header-only file, one that is not UTF-8 text, and one the format's reader rejects are one `DataError` each.
    The one file reader of every recipe (`load_transfer_dataset` continues from here)."""
    splits = {}
    for split in SPLIT_ORDER:
        path = getattr(args, f"{split}_file")
        if path is None:
            continue
        flag, suffix = f"--{split}_file", Path(path).suffix.lower()
        if "://" not in path and os.path.getsize(path) == 0:
            raise DataError(f"{flag} '{path}' is empty, so split '{split}' has no rows. Give it some rows.")
        try:
            splits[split] = _read_file(path, split, flag, cache_dir)
        except HfTransferError:
            raise
        except Exception as err:
            cause = _root_cause(err)
            if "corresponds to no data" in str(err):
                raise DataError(
                    f"{flag} '{path}' has no data rows, so split '{split}' is empty. Give it some rows."
                ) from err
            unwritable = _unwritable_cache(err, cache_dir, [path])
            if unwritable is not None:
                raise unwritable from err
            problem = file_utf8_problem(path) if "://" not in path else None
            if problem is not None:
                raise not_utf8_error(f"{flag} '{path}'", path, problem) from err
            raise DataError(
                f"Could not read {flag} '{path}' as {FILE_BUILDERS[suffix][0]} ({type(cause).__name__}: {cause}). "
                f"Check that the file is valid {suffix}."
            ) from err
    return DatasetDict(splits)


def _load_files(args: DataArguments, cache_dir: Optional[str]) -> RawSource:
    description = f"--train_file '{args.train_file}'"
    return RawSource(
        read_data_files(args, cache_dir),
        description,
        args.text_column,
        args.image_column,
        args.label_column,
        verify=True,
    )


def _load_image_dirs(args: DataArguments, cache_dir: Optional[str]) -> RawSource:
    data_files = {
        split: [os.path.join(getattr(args, f"{split}_dir"), "**")]
        for split in SPLIT_ORDER
        if getattr(args, f"{split}_dir")
    }
    classes = sorted(p.name for p in Path(args.train_dir).iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) == 1:  # `imagefolder` labels nothing then, which read as a missing label column
        raise DataError(
            f"--train_dir '{args.train_dir}' has one class folder ({classes[0]}); a classifier needs at "
            "least 2. Add a sub-folder of images per other class (train_dir/<class>/<image>)."
        )
    try:
        loaded = datasets.load_dataset("imagefolder", data_files=data_files, cache_dir=cache_dir)
    except Exception as err:
        folders = ", ".join(f"--{split}_dir '{getattr(args, f'{split}_dir')}'" for split in data_files)
        raise _unwritable_cache(err, cache_dir) or DataError(
            f"Could not read image folders {folders} ({type(err).__name__}: {err}). Each folder needs image "
            "files (.png, .jpg, ...) in one sub-folder per class."
        ) from err
    hint = " Put the images in one sub-folder per class (train_dir/<class>/<image>)."
    return RawSource(
        loaded,
        f"--train_dir '{args.train_dir}'",
        args.text_column,
        args.image_column,
        args.label_column,
        verify=True,
        label_hint=hint,
    )
