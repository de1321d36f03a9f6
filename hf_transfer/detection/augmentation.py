"""Box-aware training augmentation (albumentations) and the transform that turns detection rows into the detector's
inputs.

Augmentation moves boxes with the pixels: a horizontal flip, and a random resized crop (scale and crop) whose boxes
albumentations clips to the crop, dropping those left with under `_MIN_VISIBILITY` of their area. The image
processor then resizes to `--image_size`, normalises, and turns COCO boxes into the normalised (cx, cy, w, h) that
DETR's loss reads; evaluation rows go through the processor alone.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

__all__ = ["create_box_augmentation", "detection_transform", "collate_detection"]

_MIN_VISIBILITY = 0.3  # a cropped box keeping less of its area than this is dropped, not kept as a sliver


def create_box_augmentation(image_size: int) -> Any:
    """Flip and scale / crop, boxes kept right (albumentations, COCO boxes, clipped to the image)."""
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.RandomResizedCrop(size=(image_size, image_size), scale=(0.5, 1.0), ratio=(0.75, 1.333), p=0.5),
        ],
        bbox_params=A.BboxParams(
            format="coco", label_fields=["category"], clip=True, min_visibility=_MIN_VISIBILITY, min_area=1.0
        ),
        seed=None,
    )


def _annotations(image_id: int, boxes, categories) -> dict:
    return {
        "image_id": image_id,
        "annotations": [
            {
                "image_id": image_id,
                "category_id": int(c),
                "bbox": [float(v) for v in b],
                "iscrowd": 0,
                "area": float(b[2] * b[3]),
            }
            for b, c in zip(boxes, categories)
        ],
    }


def detection_transform(processor: Any, augmentation: Optional[Any] = None) -> Callable[[dict], dict]:
    """A `Dataset.with_transform` function: rows to `pixel_values`, `pixel_mask` and DETR `labels`."""

    def transform(batch: dict) -> dict:
        images, annotations = [], []
        for image_id, image, objects in zip(batch["image_id"], batch["image"], batch["objects"]):
            array = np.asarray(image.convert("RGB"))
            boxes, categories = objects["bbox"], objects["category"]
            if augmentation is not None:
                out = augmentation(
                    image=array, bboxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4), category=list(categories)
                )
                array, boxes, categories = out["image"], out["bboxes"], out["category"]
            images.append(array)
            annotations.append(_annotations(image_id, boxes, categories))
        encoded = processor(images=images, annotations=annotations, return_tensors="pt")
        result = {"pixel_values": encoded["pixel_values"], "labels": encoded["labels"]}
        if "pixel_mask" in encoded:
            result["pixel_mask"] = encoded["pixel_mask"]
        return result

    return transform


def collate_detection(rows: list[dict]) -> dict:
    """Stack the images; DETR's labels stay one dict per image (their box counts differ)."""
    import torch

    batch = {
        "pixel_values": torch.stack([row["pixel_values"] for row in rows]),
        "labels": [row["labels"] for row in rows],
    }
    if "pixel_mask" in rows[0]:
        batch["pixel_mask"] = torch.stack([row["pixel_mask"] for row in rows])
    return batch
