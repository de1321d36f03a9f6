"""(image, caption) pairs for alignment: a user's file of image paths and captions, or a labelled image set whose class
names become the captions; and the classes held out of training for zero-shot evaluation.

Either way the splits hold `image` (decoded), `caption` (a string) and, when the source is labelled, `label` (a
`ClassLabel`, or a list of them for multi-label rows): the zero-shot evaluation reads it. Held-out classes leave the
train and validation splits (every row that names one of them); the test split keeps all rows, so the zero-shot
scores on held-out classes are scores on classes the text tower never saw paired with an image.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Optional

import numpy as np
from datasets import ClassLabel, DatasetDict, List

from ..data import DataArguments, infer_modality, label_names_of, load_transfer_dataset, read_data_files
from ..data.columns import canonical_image_column, keep_columns, match_column
from ..data.constants import IMAGE_COLUMN_CANDIDATES, LABEL_COLUMN_CANDIDATES
from ..data.splits import carve_split, subsample
from ..errors import ConfigError, DataError
from .arguments import AlignmentArguments
from .captions import caption_for

__all__ = ["AlignmentData", "load_alignment_dataset", "CAPTION_COLUMN"]

logger = logging.getLogger(__name__)

CAPTION_COLUMN = "caption"


class AlignmentData(NamedTuple):
    """The pairs and what the zero-shot evaluation needs of them.

    Args:
        splits: `train`, `validation` and maybe `test`, with `image`, `caption` (and `label` when labelled).
        class_names: the classes of `label` (empty without labels).
        held_out: the held-out class ids (never in train or validation).
        multi_label: `label` holds lists of classes.
    """

    splits: DatasetDict
    class_names: list[str]
    held_out: list[int]
    multi_label: bool

    @property
    def seen(self) -> list[int]:
        return [i for i in range(len(self.class_names)) if i not in self.held_out]


def _load_captioned_files(data_args: DataArguments, caption_column: str, cache_dir: Optional[str]) -> DatasetDict:
    """A file with an image column (paths) and `caption_column`, and a label column when it has one."""
    raw = read_data_files(data_args, cache_dir)
    columns = raw["train"].column_names
    image = match_column(columns, data_args.image_column, IMAGE_COLUMN_CANDIDATES)
    if image is None:
        raise DataError(
            f"No image column in {data_args.train_file} (columns: {columns}). Pass --image_column NAME (a column of "
            "image file paths)."
        )
    if caption_column not in columns:
        raise DataError(f"--caption_column {caption_column!r} is not in {data_args.train_file} (columns: {columns}).")
    label = match_column(columns, data_args.label_column, LABEL_COLUMN_CANDIDATES)
    keep = {image: "image", caption_column: CAPTION_COLUMN, **({label: "label"} if label else {})}
    out = {}
    for split, ds in raw.items():
        ds = keep_columns(ds, split, keep)
        empty = [i for i, text in enumerate(ds[CAPTION_COLUMN]) if not isinstance(text, str) or not text.strip()]
        if empty:
            raise DataError(
                f"Split '{split}' has {len(empty)} rows without a caption in '{caption_column}' (rows {empty[:10]}, "
                "0-based). Drop or fill those rows."
            )
        out[split] = canonical_image_column(ds, split, image)
    splits = DatasetDict(out)
    if label:  # one ClassLabel over every split, for the zero-shot evaluation
        names = sorted({str(v) for ds in splits.values() for v in ds["label"]})
        feature = ClassLabel(names=names)
        splits = DatasetDict(
            {
                split: ds.map(lambda row: {"label": names.index(str(row["label"]))}).cast_column("label", feature)
                for split, ds in splits.items()
            }
        )
    return splits


def _draw_held_out(args: AlignmentArguments, names: list[str], seed: int) -> list[int]:
    if args.num_held_out_classes is not None:
        if args.num_held_out_classes >= len(names):
            raise ConfigError(
                f"--num_held_out_classes {args.num_held_out_classes} leaves no class to align on ({len(names)} "
                f"classes); hold out at most {len(names) - 2}."
            )
        return sorted(np.random.default_rng(seed).choice(len(names), args.num_held_out_classes, replace=False).tolist())
    held = list(args.held_out_classes or [])
    unknown = [name for name in held if name not in names]
    if unknown:
        raise ConfigError(f"--held_out_classes {unknown} are not classes of the data; its classes: {names}.")
    if held and len(held) >= len(names):
        raise ConfigError(f"--held_out_classes holds out every class ({len(names)}); keep at least two to align on.")
    return sorted(names.index(name) for name in held)


def _without(ds, held_out: set[int], multi_label: bool):
    if multi_label:
        return ds.filter(lambda labels: not held_out.intersection(labels), input_columns="label")
    return ds.filter(lambda label: label not in held_out, input_columns="label")


def load_alignment_dataset(
    data_args: DataArguments, args: AlignmentArguments, cache_dir: Optional[str] = None
) -> AlignmentData:
    """The (image, caption) pairs of `data_args`' source, held-out classes removed from train and validation.

    Raises:
        ConfigError: `--caption_column` without `--train_file`; held-out classes without labels, or unknown ones.
        DataError: text data, or a file without its image or caption column.
    """
    if args.caption_column is not None:
        if not data_args.train_file:
            raise ConfigError(
                f"--caption_column {args.caption_column!r} reads captions from --train_file (a csv/json/parquet of "
                "image paths and captions); built-in sets and folders get captions from their class names: drop it."
            )
        splits = _load_captioned_files(data_args, args.caption_column, cache_dir)
        labelled = "label" in splits["train"].column_names
        if "validation" not in splits:
            if labelled:
                splits = carve_split(
                    splits,
                    "validation",
                    data_args.validation_split_percentage,
                    data_args.split_seed,
                    data_args.train_file,
                )
            else:
                parts = splits["train"].train_test_split(
                    data_args.validation_split_percentage, seed=data_args.split_seed
                )
                splits["train"], splits["validation"] = parts["train"], parts["test"]
        for split in splits:
            limit = data_args.max_train_samples if split == "train" else data_args.max_eval_samples
            if labelled:
                splits[split] = subsample(splits[split], limit, data_args.split_seed)
            elif limit is not None and limit < len(splits[split]):
                order = np.random.default_rng(data_args.split_seed).permutation(len(splits[split]))[:limit]
                splits[split] = splits[split].select(sorted(order.tolist()))
    else:
        splits = load_transfer_dataset(data_args, cache_dir=cache_dir, task="auto")
        labelled = True
    if infer_modality(splits) != "vision":
        raise DataError(
            "Alignment pairs images with captions, but the data holds text. Pass an image set (--dataset_name "
            "fashion_mnist, --train_dir, or --train_file with an image column and --caption_column)."
        )
    if not labelled:
        if args.held_out_classes or args.num_held_out_classes:
            raise ConfigError(
                "--held_out_classes needs labelled data (a label column next to the captions) to know which rows "
                "belong to a class; drop it, or add a label column."
            )
        return AlignmentData(splits, [], [], False)

    feature = splits["train"].features["label"]
    multi_label = isinstance(feature, List)
    if not isinstance(getattr(feature, "feature", feature), ClassLabel):
        raise DataError("Alignment needs class labels (or captions); a numeric target cannot be written as a caption.")
    names = label_names_of(splits, data_args)
    held_out = _draw_held_out(args, names, data_args.split_seed)
    if len(held_out) == 1:
        logger.warning(
            "One held-out class: its zero-shot score has one candidate prompt and is 1.0 by construction; hold out at "
            "least two classes to measure zero-shot transfer (the 'all' score still includes it)."
        )
    if held_out:
        for split in ("train", "validation"):
            splits[split] = _without(splits[split], set(held_out), multi_label)
        if len(splits["train"]) == 0:
            raise DataError("Holding out those classes leaves no training rows; hold out fewer classes.")
        logger.info("Held out of alignment: %s", [names[i] for i in held_out])
    if CAPTION_COLUMN not in splits["train"].column_names:
        template = args.caption_template
        splits = DatasetDict(
            {
                split: ds.map(
                    lambda labels: {CAPTION_COLUMN: [caption_for(label, names, template) for label in labels]},
                    input_columns="label",
                    batched=True,
                )
                for split, ds in splits.items()
            }
        )
    return AlignmentData(splits, names, held_out, multi_label)
