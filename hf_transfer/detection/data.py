"""Detection data in one canonical form, checked: rows of `image_id`, `image` and `objects` (`bbox`: COCO
`[x, y, width, height]` in pixels, `category`: a `ClassLabel` per box), with train / validation (/ test) splits.

Three sources reach it: the derived built-ins (`hf_transfer.detection.canvases`), a `datasets` set whose rows have an
image and an `objects` column (the Hub's detection layout), and folders of images with a COCO `annotations.json`.
Every box is checked before training: a box of zero or negative size, one reaching outside its image, or an unknown
category stops the run with one line naming the split, the row and the box.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from datasets import ClassLabel, Dataset, DatasetDict

from ..errors import DataError
from .arguments import DETECTION_DATASETS, DetectionDataArguments
from .canvases import create_canvas_set, detection_features

__all__ = [
    "load_detection_dataset",
    "load_coco_folder",
    "check_boxes",
    "category_names_of",
    "encode_objects",
    "objects_summary",
]

_OUTSIDE_TOLERANCE = 1.0  # pixels a box may reach past the border (rounding in annotation tools)


def category_names_of(splits: DatasetDict) -> list[str]:
    return list(splits["train"].features["objects"]["category"].feature.names)


def load_coco_folder(folder: str, split: str) -> Dataset:
    """A folder of images with a COCO `annotations.json` as canonical rows (categories renumbered 0..n-1 in the
    order of their COCO ids; images without annotations kept, with no objects)."""
    root = Path(folder)
    path = root / "annotations.json"
    if not path.is_file():
        raise DataError(
            f"--{split}_dir {folder} has no annotations.json: put the COCO annotations of its images there."
        )
    try:
        coco = json.loads(path.read_text())
        images, annotations, categories = coco["images"], coco["annotations"], coco["categories"]
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(
            f"{path} is not COCO detection JSON ({type(err).__name__}: {err}): it needs `images`, `annotations` and "
            "`categories` lists."
        ) from None
    by_id = {c["id"]: i for i, c in enumerate(sorted(categories, key=lambda c: c["id"]))}
    names = [c["name"] for c in sorted(categories, key=lambda c: c["id"])]
    objects: dict[Any, dict[str, list]] = {image["id"]: {"bbox": [], "category": []} for image in images}
    for number, annotation in enumerate(annotations):
        image_id = annotation.get("image_id")
        if image_id not in objects:
            raise DataError(f"{path}: annotation {number} names image_id {image_id!r}, which `images` does not list.")
        if annotation.get("category_id") not in by_id:
            raise DataError(
                f"{path}: annotation {number} (image_id {image_id}) has category_id {annotation.get('category_id')!r}, "
                f"not one of `categories` ({', '.join(map(str, by_id))}); fix it or add the category."
            )
        objects[image_id]["bbox"].append([float(v) for v in annotation["bbox"]])
        objects[image_id]["category"].append(by_id[annotation["category_id"]])
    rows = {"image_id": [], "image": [], "objects": []}
    for image in images:
        file = root / image["file_name"]
        if not file.is_file():
            raise DataError(f"{path}: image {image['id']} is {file}, which does not exist.")
        rows["image_id"].append(int(image["id"]))
        rows["image"].append(str(file))
        rows["objects"].append(objects[image["id"]])
    return Dataset.from_dict(rows, features=detection_features(names))


def _from_datasets(args: DetectionDataArguments, cache_dir: Optional[str]) -> DatasetDict:
    """A `datasets` set with an image column and an `objects` column (bbox, category), in canonical columns."""
    from datasets import load_dataset

    try:
        raw = load_dataset(args.dataset_name, args.dataset_config_name, cache_dir=cache_dir)
    except Exception as err:  # datasets raises many kinds for a name it cannot resolve
        raise DataError(
            f"--dataset_name {args.dataset_name!r} could not be loaded ({type(err).__name__}: {err}); give a built-in "
            f"({', '.join(DETECTION_DATASETS)}), a datasets id, or --train_dir with a COCO annotations.json."
        ) from None
    out = {}
    for split, ds in raw.items():
        missing = [c for c in (args.image_column, args.objects_column) if c not in ds.column_names]
        if missing:
            raise DataError(
                f"Split '{split}' of {args.dataset_name} has no column {missing} (it has {ds.column_names}); name them "
                "with --image_column / --objects_column."
            )
        objects = ds.features[args.objects_column]
        category = objects.get("category") if isinstance(objects, dict) else None
        if category is None or "bbox" not in objects:
            raise DataError(
                f"Column {args.objects_column!r} of {args.dataset_name} must hold `bbox` and `category` lists; it "
                f"holds {objects}."
            )
        names = category.feature.names if isinstance(getattr(category, "feature", None), ClassLabel) else None
        if names is None:
            raise DataError(
                f"`{args.objects_column}.category` of {args.dataset_name} is not a ClassLabel list: cast it with "
                "datasets' ClassLabel so the categories have names."
            )
        ids = ds["image_id"] if "image_id" in ds.column_names else list(range(len(ds)))
        ds = ds.rename_columns({args.image_column: "image", args.objects_column: "objects"})
        ds = ds.map(
            _canonical_row,
            with_indices=True,
            fn_kwargs={"ids": ids},
            remove_columns=[c for c in ds.column_names if c not in ("image", "objects")],
        )
        out[split] = ds.cast(detection_features(names))
    return DatasetDict(out)


def _canonical_row(row: dict, index: int, ids: list) -> dict:
    objects = row["objects"]
    return {"image_id": ids[index], "objects": {"bbox": objects["bbox"], "category": objects["category"]}}


def check_boxes(ds: Dataset, split: str, source: str) -> None:
    """One `DataError` line for the first bad box of `ds`: zero or negative size, outside the image, or an unknown
    category."""
    names = ds.features["objects"]["category"].feature.names
    images = ds.cast_column("image", ds.features["image"].__class__(decode=False))["image"]
    for row, (objects, image, image_id) in enumerate(zip(ds["objects"], images, ds["image_id"])):
        width = height = None
        for number, (box, category) in enumerate(zip(objects["bbox"], objects["category"])):
            where = f"{source}, split '{split}', row {row} (image_id {image_id}), box {number} {list(box)}"
            if len(box) != 4:
                raise DataError(f"{where}: a box is [x, y, width, height] (COCO); fix or drop it.")
            x, y, w, h = box
            if w <= 0 or h <= 0:
                raise DataError(f"{where}: zero or negative width / height; fix or drop the box.")
            if not 0 <= category < len(names):
                raise DataError(f"{where}: category {category} is not one of the {len(names)} categories; fix it.")
            if width is None:
                width, height = _image_size(image)
            t = _OUTSIDE_TOLERANCE
            if x < -t or y < -t or x + w > width + t or y + h > height + t:
                raise DataError(
                    f"{where}: outside the {width}x{height} image (COCO boxes are [x, y, width, height] in pixels); "
                    "clip or drop it."
                )
        if len(objects["bbox"]) != len(objects["category"]):
            raise DataError(
                f"{source}, split '{split}', row {row}: {len(objects['bbox'])} boxes but "
                f"{len(objects['category'])} categories; give one category per box."
            )


def _image_size(image: dict) -> tuple[int, int]:
    import io

    import PIL.Image

    source = io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]
    with PIL.Image.open(source) as opened:
        return opened.size


def _subset(ds: Dataset, count: Optional[int], seed: int) -> Dataset:
    if count is None or count >= len(ds):
        return ds
    return ds.shuffle(seed=seed).select(range(count))


def load_detection_dataset(args: DetectionDataArguments, cache_dir: Optional[str] = None) -> DatasetDict:
    """The checked canonical splits of `args`' source (see the module docstring)."""
    if args.dataset_name in DETECTION_DATASETS:
        # Canvases are drawn in order, so a smaller budget is a prefix of a larger one (nested label budgets).
        splits = create_canvas_set(
            args.dataset_name,
            image_size=args.image_size,
            train_images=args.max_train_samples or 1000,
            eval_images=args.max_eval_samples or 200,
            cache_dir=cache_dir,
        )
        source = f"the built-in {args.dataset_name}"
    elif args.dataset_name is not None:
        splits = _from_datasets(args, cache_dir)
        source = args.dataset_name
    else:
        folders = {"train": args.train_dir, "validation": args.validation_dir, "test": args.test_dir}
        splits = DatasetDict({s: load_coco_folder(f, s) for s, f in folders.items() if f is not None})
        source = args.train_dir
    if "train" not in splits:
        raise DataError(f"{source} has no train split; it has {', '.join(splits)}.")
    names = category_names_of(splits)
    for split, ds in splits.items():
        if category_names_of(DatasetDict(train=ds)) != names:
            raise DataError(f"Split '{split}' of {source} has other categories than train; give every split the same.")
        if len(ds) == 0:
            raise DataError(f"Split '{split}' of {source} is empty. Give it some images.")
    splits = encode_objects(splits, source)  # rows numbered as in the source, before any split or subset
    if "validation" not in splits:
        carved = splits["train"].train_test_split(test_size=args.validation_split_percentage, seed=args.split_seed)
        splits["train"], splits["validation"] = carved["train"], carved["test"]
    splits["train"] = _subset(splits["train"], args.max_train_samples, args.split_seed)
    for split in ("validation", "test"):
        if split in splits:
            splits[split] = _subset(splits[split], args.max_eval_samples, args.split_seed)
    return splits


def encode_objects(splits: DatasetDict, description: str, label_separator: Optional[str] = None) -> DatasetDict:
    """The task entry's label encoding (`TASKS["object_detection"].encode_labels`): boxes are already COCO
    `[x, y, w, h]` with `ClassLabel` categories, so this checks every box of every split (`check_boxes`)."""
    for split, ds in splits.items():
        check_boxes(ds, split, description)
    return splits


def objects_summary(splits: DatasetDict) -> str:
    """The log line on what the labels hold: images, boxes and boxes per class of each split."""
    names = category_names_of(splits)
    parts = []
    for split, ds in splits.items():
        categories = [c for row in ds["objects"] for c in row["category"]]
        counts = {names[i]: categories.count(i) for i in range(len(names))}
        parts.append(f"{split}: {len(ds)} images, {len(categories)} boxes {counts}")
    return "; ".join(parts)
