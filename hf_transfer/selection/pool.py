"""The pool of unlabelled rows, the rows labelled so far, and how the two are matched.

A pool row counts as labelled when its *content* matches a labelled row's, whatever file it came from: text after
its whitespace is collapsed (`" a  b "` is `"a b"`; letter case and punctuation count), an image by the SHA-256 of
its file's bytes (the same picture saved again in another format is another image). Rows repeated inside the pool are
offered once (the first), so one label is never asked for twice.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from datasets import Dataset, DatasetDict, Image

from .._registry import Registry
from ..data import DataArguments, infer_modality, infer_task, label_names_of, load_transfer_dataset, read_data_files
from ..data.columns import match_column, verify_images
from ..data.constants import IMAGE_COLUMN_CANDIDATES, TEXT_COLUMN_CANDIDATES
from ..errors import ConfigError, DataError
from ..modalities import MODALITIES
from ..tasks import AUTO_TASK, TASKS
from .arguments import SelectArguments

__all__ = [
    "Pool",
    "Labelled",
    "load_pool",
    "load_labelled",
    "available_rows",
    "row_keys",
    "pool_fingerprint",
    "IMAGE_SUFFIXES",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
POOL_LABEL = 0  # the placeholder label pool rows carry through the extraction's collator (never read)


@dataclass
class Pool:
    """The unlabelled rows: `dataset` in canonical columns (`text` or `image`, and a placeholder `label`),
    `shown` what selected.csv names each row by (its text, its image path), `ids` a pool id column's values,
    `keys` the content keys rows are matched on, and `hidden_labels` (a built-in's, for simulations)."""

    dataset: Dataset
    modality: str
    description: str
    shown: list[str]
    keys: list[str]
    ids: Optional[list[str]] = None
    hidden_labels: Optional[list] = None

    def __len__(self) -> int:
        return len(self.dataset)


@dataclass
class Labelled:
    """The rows labelled so far, canonical (`text` or `image` and `label`), with their task and label names."""

    dataset: Dataset
    modality: str
    task: str
    label_names: list[str]
    keys: list[str]
    description: str


def _text_keys(dataset: Dataset) -> list[str]:
    return [" ".join(text.split()) for text in dataset["text"]]


def _image_keys(dataset: Dataset) -> list[str]:
    keys = []
    for image in dataset.cast_column("image", Image(decode=False))["image"]:
        data = image.get("bytes")
        if data is None:
            data = Path(image["path"]).read_bytes()
        keys.append(hashlib.sha256(data).hexdigest())
    return keys


@dataclass(frozen=True)
class RowKey:
    """How one modality's rows are matched (`name`: the modality)."""

    name: str
    keys: Callable[[Dataset], list[str]]


ROW_KEYS: Registry[RowKey] = Registry("row key", "modality")
ROW_KEYS.register(RowKey("text", _text_keys))
ROW_KEYS.register(RowKey("vision", _image_keys))


def row_keys(dataset: Dataset, modality: str) -> list[str]:
    """The content key of each row of a canonical data set (see the module docstring)."""
    return ROW_KEYS.get(modality).keys(dataset)


def pool_fingerprint(keys: list[str]) -> str:
    """What the pool holds, in order: a second call on another pool (or the same file reordered) is told apart."""
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def _input_column(dataset: Dataset, args: SelectArguments, where: str) -> tuple[str, str]:
    """(column, modality) of the pool file's input: the flag's column, else a known text or image column name."""
    columns = dataset.column_names
    for flag, requested, modality in (
        ("--text_column", args.text_column, "text"),
        ("--image_column", args.image_column, "vision"),
    ):
        if requested is not None:
            if requested not in columns:
                raise DataError(f"{where} has no column '{requested}' ({flag}); its columns: {columns}.")
            return requested, modality
    for candidates, modality in ((TEXT_COLUMN_CANDIDATES, "text"), (IMAGE_COLUMN_CANDIDATES, "vision")):
        found = match_column(columns, None, candidates)
        if found is not None:
            return found, modality
    image = next((c for c in columns if isinstance(dataset.features[c], Image)), None)
    if image is not None:
        return image, "vision"
    raise DataError(
        f"No text or image column found in {where} (columns: {columns}). Pass --text_column NAME or --image_column NAME."
    )


def _with_placeholder_label(dataset: Dataset) -> Dataset:
    return dataset.add_column("label", [POOL_LABEL] * len(dataset))


def _pool_from_file(args: SelectArguments) -> Pool:
    where = f"--pool_file '{args.pool_file}'"
    try:
        raw = read_data_files(DataArguments(train_file=args.pool_file), args.cache_dir)["train"]
    except DataError as err:  # the reader names the flag it was given; here the file is the pool
        raise DataError(str(err).replace(f"--train_file '{args.pool_file}'", where)) from err
    if len(raw) == 0:
        raise DataError(f"{where} has no rows. Give it the rows to choose from.")
    column, modality = _input_column(raw, args, where)
    entry = MODALITIES.get(modality)
    id_column = args.id_column or next((c for c in raw.column_names if c.lower() == "id"), None)
    if id_column is not None and id_column not in raw.column_names:
        raise DataError(f"{where} has no column '{id_column}' (--id_column); its columns: {raw.column_names}.")
    ids = [str(value) for value in raw[id_column]] if id_column else None
    shown = [str(value) for value in raw[column]]
    dataset = raw.select_columns([column])
    if column != entry.input_column:
        dataset = dataset.rename_column(column, entry.input_column)
    dataset = entry.canonicalize(dataset, "pool", column)
    if "image" in dataset.column_names:  # open every image once: a corrupt file fails here, naming it
        verify_images(DatasetDict({"pool": dataset}))
    dataset = _with_placeholder_label(dataset)
    return Pool(dataset, modality, where, shown, row_keys(dataset, modality), ids)


def _pool_from_dir(args: SelectArguments) -> Pool:
    root = Path(args.pool_dir)
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    where = f"--pool_dir '{args.pool_dir}'"
    if not files:
        raise DataError(f"{where} holds no images ({', '.join(IMAGE_SUFFIXES)}). Put the images to choose from there.")
    dataset = Dataset.from_dict({"image": [str(p) for p in files]}).cast_column("image", Image())
    verify_images(DatasetDict({"pool": dataset}))
    dataset = _with_placeholder_label(dataset)
    shown = [str(p.relative_to(root)) for p in files]
    return Pool(dataset, "vision", where, shown, row_keys(dataset, "vision"))


def _pool_from_builtin(args: SelectArguments) -> Pool:
    data_args = DataArguments(dataset_name=args.dataset_name, max_train_samples=args.max_pool_samples)
    train = load_transfer_dataset(data_args, args.cache_dir, task=AUTO_TASK, hold_out_validation=False)["train"]
    modality = infer_modality(train)
    if TASKS.get(infer_task(train)).per_token:
        raise ConfigError(f"select picks whole rows; '{args.dataset_name}' labels words. Pick a row-labelled data set.")
    hidden = list(train["label"])
    dataset = _with_placeholder_label(train.remove_columns("label"))
    entry = MODALITIES.get(modality)
    shown = list(dataset["text"]) if entry.input_column == "text" else [f"row {i}" for i in range(len(dataset))]
    return Pool(dataset, modality, args.pool_description, shown, row_keys(dataset, modality), hidden_labels=hidden)


_POOL_LOADERS = (("pool_file", _pool_from_file), ("pool_dir", _pool_from_dir), ("dataset_name", _pool_from_builtin))


def load_pool(args: SelectArguments) -> Pool:
    """The pool named by `--pool_file`, `--pool_dir` or `--dataset_name` (exactly one is set: `SelectArguments`)."""
    loader = next(load for flag, load in _POOL_LOADERS if getattr(args, flag))
    pool = loader(args)
    logger.info("Pool: %d rows of %s from %s", len(pool), pool.modality, pool.description)
    return pool


def load_labelled(args: SelectArguments, pool: Pool) -> Optional[Labelled]:
    """The rows of `--train_file` / `--train_dir` as finetune reads them (every row in train), or None."""
    if not (args.train_file or args.train_dir):
        return None
    data_args = DataArguments(
        train_file=args.train_file,
        train_dir=args.train_dir,
        text_column=args.text_column,
        image_column=args.image_column,
        label_column=args.label_column,
        label_separator=args.label_separator,
    )
    train = load_transfer_dataset(data_args, args.cache_dir, task=args.task, hold_out_validation=False)["train"]
    description = f"--train_file '{args.train_file}'" if args.train_file else f"--train_dir '{args.train_dir}'"
    task = infer_task(train)
    if TASKS.get(task).per_token:
        raise ConfigError(
            f"{description} labels words (token classification); select picks whole rows of a row-level task "
            "(single_label, multi_label, regression). Pass row-labelled data."
        )
    modality = infer_modality(train)
    if MODALITIES.get(modality) is not MODALITIES.get(pool.modality):
        raise DataError(
            f"{description} holds {modality} rows but {pool.description} holds {pool.modality}: the labelled rows and "
            "the pool must be the same kind of data."
        )
    names = label_names_of(train, data_args)
    return Labelled(train, modality, task, names, row_keys(train, modality), description)


def available_rows(pool: Pool, labelled: Optional[Labelled], picked_before: list[int]) -> np.ndarray:
    """`(N,)` bool: the pool rows that may be picked: the first of any repeated content, not labelled (by content),
    not picked in an earlier round."""
    labelled_keys = set(labelled.keys) if labelled is not None else set()
    seen: set[str] = set()
    available = np.zeros(len(pool), dtype=bool)
    for row, key in enumerate(pool.keys):
        available[row] = key not in seen and key not in labelled_keys
        seen.add(key)
    available[np.asarray(picked_before, dtype=np.int64)] = False
    return available
