"""Derived built-in detection sets: small grey items placed on colour canvases, with their boxes.

No detection data ships offline, so it is derived, the way `digits_m` is (`hf_transfer.data.derived_sets`): each
canvas is a random crop of one of scikit-learn's two sample photos (dimmed, so items stand out), holding 1 to
`max_items` items of a classification set (Fashion-MNIST clothes, or scikit-learn's digits), each resized to its own
scale (`item_scale` of the canvas side), tinted a random bright colour and alpha-blended in by its own intensity.
An item's box is the tight box of its visible pixels after resizing, so a box never includes the empty margin of the
28x28 (8x8) source; items may touch but overlap by at most `_MAX_OVERLAP` of the smaller box.

Training canvases take their items from the source's train split, validation and test canvases from its test split,
so no item is seen both in training and in evaluation. Everything is drawn from generators seeded by the split and
`seed`: two calls give identical pixels and boxes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Optional

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, List, Value

__all__ = ["CanvasSource", "CANVAS_SOURCES", "create_canvas_set", "detection_features"]

_MAX_OVERLAP = 0.2  # intersection over the smaller box allowed between two items of a canvas
_SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}


@dataclass(frozen=True)
class CanvasSource:
    """A classification set whose items are placed on canvases: its built-in name and the splits items come from."""

    name: str
    dataset_name: str
    train_items_split: str = "train"
    eval_items_split: str = "test"


CANVAS_SOURCES = {
    "fashion_mnist_boxes": CanvasSource("fashion_mnist_boxes", "fashion_mnist"),
    "digits_boxes": CanvasSource("digits_boxes", "digits"),
}


def detection_features(category_names: list[str]) -> Features:
    """The canonical detection row: an image, its id, and `objects` with COCO boxes (`[x, y, width, height]` in
    pixels) and a category each (the layout of the Hub's detection sets, e.g. cppe-5)."""
    return Features(
        {
            "image_id": Value("int64"),
            "image": Image(),
            "objects": {
                "bbox": List(List(Value("float32"), length=4)),
                "category": List(ClassLabel(names=category_names)),
            },
        }
    )


def _photos() -> tuple[np.ndarray, ...]:
    from ..data.derived_sets import _background_photos

    return _background_photos()


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    import PIL.Image

    photos = _photos()
    photo = photos[int(rng.integers(len(photos)))]
    side = int(rng.integers(size, min(photo.shape[:2]) + 1))
    top = int(rng.integers(photo.shape[0] - side + 1))
    left = int(rng.integers(photo.shape[1] - side + 1))
    crop = PIL.Image.fromarray(photo[top : top + side, left : left + side]).resize((size, size), PIL.Image.BILINEAR)
    return np.asarray(crop, dtype=np.float32) * 0.45  # (size, size, 3), dimmed


def _overlaps(box: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]]) -> bool:
    x0, y0, x1, y1 = box
    for a0, b0, a1, b1 in placed:
        inter = max(0, min(x1, a1) - max(x0, a0)) * max(0, min(y1, b1) - max(y0, b0))
        smaller = min((x1 - x0) * (y1 - y0), (a1 - a0) * (b1 - b0))
        if inter > _MAX_OVERLAP * smaller:
            return True
    return False


def _canvas(
    items: list[tuple[np.ndarray, int]], rng: np.random.Generator, size: int, item_scale: tuple[float, float]
) -> tuple[bytes, list[list[float]], list[int]]:
    """One canvas PNG with `items` ((grey array, class) each) placed on it; the boxes and classes of those placed."""
    import PIL.Image

    canvas = _background(rng, size)
    boxes: list[list[float]] = []
    classes: list[int] = []
    placed: list[tuple[int, int, int, int]] = []
    for grey, label in items:
        side = max(6, int(round(rng.uniform(*item_scale) * size)))
        alpha = np.asarray(PIL.Image.fromarray(grey).resize((side, side), PIL.Image.BILINEAR), dtype=np.float32) / 255
        rows, cols = np.nonzero(alpha > 0.15)
        if len(rows) == 0:
            continue
        for _ in range(20):  # a free spot, or the item is left out
            left, top = int(rng.integers(size - side + 1)), int(rng.integers(size - side + 1))
            box = (left + int(cols.min()), top + int(rows.min()), left + int(cols.max()) + 1, top + int(rows.max()) + 1)
            if not _overlaps(box, placed):
                break
        else:
            continue
        colour = rng.uniform(140, 255, size=3).astype(np.float32)
        region = canvas[top : top + side, left : left + side]
        canvas[top : top + side, left : left + side] = region * (1 - alpha[..., None]) + colour * alpha[..., None]
        placed.append(box)
        boxes.append([float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])])
        classes.append(label)
    buffer = io.BytesIO()
    PIL.Image.fromarray(canvas.clip(0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue(), boxes, classes


def _split_canvases(
    items: Dataset,
    count: int,
    rng: np.random.Generator,
    size: int,
    max_items: int,
    item_scale: tuple[float, float],
    features: Features,
    first_id: int,
) -> Dataset:
    order = rng.permutation(len(items))
    needed = count * max_items
    order = np.resize(order, needed)  # small sources (digits) reuse items, each time at another scale and place
    picked = items.select(order.tolist())
    labels = picked["label"]
    rows = {"image_id": [], "image": [], "objects": []}
    cursor = 0
    for index in range(count):
        how_many = int(rng.integers(1, max_items + 1))
        chosen = [
            (np.asarray(picked[cursor + k]["image"].convert("L")), int(labels[cursor + k])) for k in range(how_many)
        ]
        cursor += how_many
        png, boxes, classes = _canvas(chosen, rng, size, item_scale)
        rows["image_id"].append(first_id + index)
        rows["image"].append({"bytes": png, "path": None})
        rows["objects"].append({"bbox": boxes, "category": classes})
    return Dataset.from_dict(rows, features=features)


def create_canvas_set(
    name: str,
    *,
    image_size: int = 96,
    train_images: int = 1000,
    eval_images: int = 200,
    max_items: int = 3,
    item_scale: tuple[float, float] = (0.25, 0.5),
    seed: int = 0,
    cache_dir: Optional[str] = None,
) -> DatasetDict:
    """The derived detection set `name` (a key of `CANVAS_SOURCES`): train, validation and test canvases of
    `image_size` px (`eval_images` each for validation and test)."""
    from ..data.arguments import DataArguments
    from ..data.loading import load_transfer_dataset

    source = CANVAS_SOURCES[name]
    base = load_transfer_dataset(DataArguments(dataset_name=source.dataset_name), cache_dir=cache_dir)
    names = base["train"].features["label"].names
    features = detection_features(names)
    counts = {"train": train_images, "validation": eval_images, "test": eval_images}
    splits = {}
    first_id = 0
    for split, count in counts.items():
        items = base[source.train_items_split if split == "train" else source.eval_items_split]
        if split == "test":  # validation and test canvases share the eval items: different halves of them
            items = items.select(range(len(items) // 2, len(items)))
        elif split == "validation":
            items = items.select(range(len(items) // 2))
        rng = np.random.default_rng([seed, _SPLIT_SEEDS[split]])
        splits[split] = _split_canvases(items, count, rng, image_size, max_items, item_scale, features, first_id)
        first_id += count
    return DatasetDict(splits)
