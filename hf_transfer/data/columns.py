"""The canonical columns: which column is the input and which the label, renamed to `text` / `image` and
`label`, every other column dropped; and the checks on what those columns hold."""

from __future__ import annotations

import io
import re
from typing import Any, Literal, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, DatasetDict, Image, List, Value

from ..constants import Modality
from ..errors import DataError
from ..modalities import MODALITIES
from .constants import IMAGE_COLUMN_CANDIDATES, LABEL_COLUMN_CANDIDATES, TEXT_COLUMN_CANDIDATES
from .sources import RawSource

__all__ = [
    "find_column",
    "match_column",
    "keep_columns",
    "resolve_columns",
    "to_canonical_columns",
    "infer_modality",
    "canonical_text_column",
    "canonical_image_column",
    "infer_task",
    "verify_images",
    "null_rows",
    "rows_text",
    "dot_number",
    "is_text",
]

# A number as text files write it with a decimal point: `3`, `-0.25`, `.5`, `1e-3`. No decimal comma (`1,5`), no
# thousands separator, no `inf` / `nan`: text that is anything else stays text.
_DOT_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def match_column(columns: list[str], requested: Optional[str], candidates: tuple[str, ...]) -> Optional[str]:
    """`requested` when the file has it, else the first of `candidates` it has (any case); None when neither: the
    caller says which flag names the column."""
    if requested is not None:
        return requested if requested in columns else None
    by_lower = {c.lower(): c for c in columns}
    return next((by_lower[c] for c in candidates if c in by_lower), None)


def keep_columns(ds: Dataset, split: str, keep: dict[str, str]) -> Dataset:
    """`ds` reduced to the columns named in `keep`, renamed to their canonical names (`keep`: file column ->
    canonical); a split without one of them is one `DataError`."""
    missing = [c for c in keep if c not in ds.column_names]
    if missing:
        raise DataError(f"Split '{split}' has no column(s) {missing} (columns: {ds.column_names}).")
    return ds.select_columns(list(keep)).rename_columns({k: v for k, v in keep.items() if k != v})


def find_column(
    ds: Dataset, requested: Optional[str], candidates: tuple[str, ...], flag: str, what: str
) -> Optional[str]:
    """The `what` column of `ds`: `requested` (named by `flag`; one `DataError` when absent), else the first of
    `candidates` present; None when neither."""
    if requested is not None and requested not in ds.column_names:
        raise DataError(
            f"The {what} column '{requested}' ({flag}) is not in split 'train'. Available columns: "
            f"{ds.column_names}. Pass {flag} with one of them."
        )
    return match_column(ds.column_names, requested, candidates)


def resolve_columns(splits: DatasetDict, source: RawSource) -> tuple[str, Modality, str]:
    """Pick the input column, its modality, and the label column: flags, then known names, then types."""
    train = splits["train"]
    columns, features = train.column_names, train.features
    text = find_column(train, source.text_column, TEXT_COLUMN_CANDIDATES, "--text_column", "text")
    image = find_column(train, source.image_column, IMAGE_COLUMN_CANDIDATES, "--image_column", "image")
    if image is None and source.text_column is None:
        image = next((c for c in columns if isinstance(features[c], Image)), None)
    if source.text_column is not None:
        image = None
    elif source.image_column is not None:
        text = None
    if text is None and image is None:
        raise DataError(
            f"No text or image column found in {source.description}. Available columns: {columns}. Pass "
            "--text_column NAME for text or --image_column NAME for images."
        )
    if text is not None and image is not None:
        raise DataError(
            f"{source.description} has both a text column '{text}' and an image column '{image}'. Pass "
            "--text_column or --image_column to choose one."
        )
    input_column = text or image

    label = find_column(train, source.label_column, LABEL_COLUMN_CANDIDATES, "--label_column", "label")
    if label is None:
        class_labels = [c for c in columns if isinstance(features[c], ClassLabel)]
        label = class_labels[0] if len(class_labels) == 1 else None
    if label is not None and label == input_column:
        raise DataError(
            f"The label column and the input column are both '{label}' in {source.description}. Pass "
            f"--label_column with the class column (available columns: {columns})."
        )
    if label is None:
        raise DataError(
            f"No label column found in {source.description}. Available columns: {columns}. "
            f"Pass --label_column NAME.{source.label_hint}"
        )
    for split, ds in splits.items():
        for column, flag in ((input_column, "--text_column" if text else "--image_column"), (label, "--label_column")):
            if column not in ds.column_names:
                raise DataError(
                    f"Split '{split}' of {source.description} has no column '{column}' (its columns: "
                    f"{ds.column_names}). Give every split the same columns, or pass {flag}."
                )
    return input_column, ("text" if text else "vision"), label


def null_rows(array: Union[pa.Array, pa.ChunkedArray]) -> np.ndarray:
    missing = pc.is_null(array, nan_is_null=True) if pa.types.is_floating(array.type) else pc.is_null(array)
    return np.flatnonzero(np.asarray(missing.to_numpy(zero_copy_only=False), dtype=bool))


def is_text(feature: Any) -> bool:
    """Whether a column's feature is plain strings (a csv's cells, names), not numbers, lists or classes."""
    return isinstance(feature, Value) and (
        pa.types.is_string(feature.pa_type) or pa.types.is_large_string(feature.pa_type)
    )


def dot_number(text: str) -> Optional[float]:
    """The number `text` writes in the dot format (surrounding spaces allowed), or None: the one reading of text as a
    number, so `1,5` is never taken for 1.5 (nor for 15)."""
    stripped = text.strip()
    return float(stripped) if _DOT_NUMBER.fullmatch(stripped) else None


def rows_text(rows: np.ndarray) -> str:
    shown = ", ".join(str(r) for r in rows[:10])
    return f"rows {shown}" + (f" (and {len(rows) - 10} more)" if len(rows) > 10 else "")


def to_canonical_columns(ds: Dataset, split: str, input_column: str, modality: Modality, label_column: str) -> Dataset:
    """The input and label columns alone, renamed to the modality's canonical input column (or `tokens`, for a column
    of word lists) and `label`, the input checked and cast by the modality's entry."""
    entry = MODALITIES.get(modality)
    ds = ds.select_columns([input_column, label_column])
    if entry.words_column is not None and isinstance(ds.features[input_column], List):  # token classification
        return _to_canonical_tokens(ds, split, input_column, label_column)
    target = entry.input_column
    renames = {old: new for old, new in ((input_column, target), (label_column, "label")) if old != new}
    if renames:
        ds = ds.rename_columns(renames)
    return entry.canonicalize(ds, split, input_column)


def canonical_text_column(ds: Dataset, split: str, input_column: str) -> Dataset:
    """`text` checked to hold a string in every row (`input_column` is its name in the user's data, for messages)."""
    feature = ds.features["text"]
    if not isinstance(feature, Value):
        raise DataError(
            f"Text column '{input_column}' in split '{split}' holds {feature}, not strings. "
            "Pass --text_column with a column of plain strings."
        )
    missing = null_rows(ds.with_format("arrow")["text"])
    if len(missing):
        raise DataError(
            f"Split '{split}' has {len(missing)} rows with no text in column '{input_column}' "
            f"({rows_text(missing)}, 0-based, header not counted). Drop or fill those rows."
        )
    if feature.dtype != "string":
        ds = ds.cast_column("text", Value("string"))
    return ds


def canonical_image_column(ds: Dataset, split: str, input_column: str) -> Dataset:
    """`image` cast to decoded images (`input_column` is its name in the user's data, for messages)."""
    feature = ds.features["image"]
    if not (isinstance(feature, Image) and feature.decode):
        try:
            ds = ds.cast_column("image", Image())  # paths, {bytes, path} structs, pixel arrays
        except Exception as err:
            raise DataError(
                f"Column '{input_column}' in split '{split}' cannot be read as images ({type(err).__name__}: "
                f"{err}). Pass --image_column with a column of images or image file paths."
            ) from err
    return ds


def _to_canonical_tokens(ds: Dataset, split: str, input_column: str, label_column: str) -> Dataset:
    """A column of word lists as `tokens` (token classification); each row needs at least one word, all strings."""
    inner = ds.features[input_column].feature
    if not (isinstance(inner, Value) and inner.dtype in ("string", "large_string")):
        raise DataError(
            f"Column '{input_column}' in split '{split}' holds lists of {inner}, not words: token classification needs "
            "a list of words (strings) per row. Pass --text_column with a column of word lists."
        )
    words = ds.with_format("arrow")[input_column]
    lengths = pc.fill_null(pc.list_value_length(words), 0).to_numpy(zero_copy_only=False)
    empty = np.flatnonzero(lengths == 0)
    if len(empty):
        raise DataError(
            f"Split '{split}' has {len(empty)} rows with no words in column '{input_column}' ({rows_text(empty)}, "
            "0-based). Drop those rows."
        )
    renames = {old: new for old, new in ((input_column, "tokens"), (label_column, "label")) if old != new}
    return ds.rename_columns(renames) if renames else ds


def infer_task(
    dataset: Union[Dataset, DatasetDict],
) -> Literal["single_label", "multi_label", "regression", "token_classification"]:
    """The task a canonical data set's `label` holds: `single_label` (a `ClassLabel`), `multi_label` (a
    `List(ClassLabel)`), `regression` (a float), or `token_classification` (a tag per word of `tokens`)."""
    if isinstance(dataset, DatasetDict):
        dataset = dataset["train"] if "train" in dataset else next(iter(dataset.values()))
    feature = dataset.features.get("label")
    if "tokens" in dataset.column_names:
        return "token_classification"
    if isinstance(feature, List) and isinstance(feature.feature, ClassLabel):
        return "multi_label"
    if (
        isinstance(feature, List)
        and isinstance(feature.feature, Value)
        and pa.types.is_floating(feature.feature.pa_type)
    ):
        return "regression"  # several targets per row
    if isinstance(feature, Value) and pa.types.is_floating(feature.pa_type):
        return "regression"
    return "single_label"


def infer_modality(dataset: Union[Dataset, DatasetDict]) -> Modality:
    """Say whether a canonical data set holds text or images, so callers pick the backbone without asking."""
    if isinstance(dataset, DatasetDict):
        if not dataset:
            raise DataError("The DatasetDict has no splits; load the data with load_transfer_dataset.")
        dataset = dataset["train"] if "train" in dataset else next(iter(dataset.values()))
    columns = dataset.column_names
    for entry in MODALITIES.entries():
        if entry.input_column in columns or entry.words_column in columns:
            return entry.name
    raise DataError(
        f"Cannot tell text from vision: no 'text' or 'image' column (columns: {columns}). "
        "Load the data with hf_transfer.data.load_transfer_dataset, which renames the input column."
    )


def verify_images(dataset_dict: DatasetDict, image_column: str = "image") -> None:
    """Open every image once, so a corrupt file fails here with its path rather than mid-epoch in a worker.

    Raises:
        DataError: naming the first file (or row) that PIL cannot open.
    """
    import PIL.Image

    for split, ds in dataset_dict.items():
        if image_column not in ds.column_names:
            continue
        raw = ds.select_columns([image_column]).cast_column(image_column, Image(decode=False))
        row = 0
        for batch in raw.iter(batch_size=256):
            for item in batch[image_column]:
                path = item.get("path") if item else None
                where = f"file '{path}'" if path else f"row {row}"
                try:
                    if item is None or (item.get("bytes") is None and path is None):
                        raise ValueError("no image data")
                    source = io.BytesIO(item["bytes"]) if item.get("bytes") is not None else path
                    with PIL.Image.open(source) as img:
                        img.load()
                except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
                    raise DataError(
                        f"Image {where} in split '{split}' cannot be opened ({type(err).__name__}: {err}). "
                        "Remove or fix that file, then run again."
                    ) from err
                row += 1
