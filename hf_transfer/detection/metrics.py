"""Detection scores with torchmetrics' `MeanAveragePrecision` (COCO's mAP, through pycocotools' definitions): mAP over
IoU 0.50:0.95, mAP@50, mAP@75, recall at 100 detections, and AP per class.

Predictions are read the way `pipeline("object-detection")` reads them: the image processor's
`post_process_object_detection` at the images' own sizes, so a saved model scored in a fresh process reproduces
these numbers.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..constants import DETECTION_METRICS

__all__ = ["predict_detections", "score_detections", "evaluate_detector"]


@torch.no_grad()
def predict_detections(
    model: Any, processor: Any, images: list, *, threshold: float = 0.0, batch_size: int = 16
) -> list[dict[str, torch.Tensor]]:
    """`boxes` (x0, y0, x1, y1 in the image's pixels), `scores` and `labels` per image."""
    model.eval()
    device = next(model.parameters()).device
    predictions = []
    for start in range(0, len(images), batch_size):
        chunk = [image.convert("RGB") for image in images[start : start + batch_size]]
        inputs = processor(images=chunk, return_tensors="pt").to(device)
        outputs = model(**inputs)
        sizes = torch.tensor([(image.height, image.width) for image in chunk])
        results = processor.post_process_object_detection(outputs, threshold=threshold, target_sizes=sizes)
        predictions += [{k: v.detach().cpu() for k, v in result.items()} for result in results]
    return predictions


def _targets(objects: list[dict]) -> list[dict[str, torch.Tensor]]:
    targets = []
    for row in objects:
        boxes = torch.tensor(row["bbox"], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # COCO (x, y, w, h) -> (x0, y0, x1, y1)
        targets.append({"boxes": boxes, "labels": torch.tensor(row["category"], dtype=torch.long)})
    return targets


def score_detections(
    predictions: list[dict[str, torch.Tensor]], objects: list[dict], label_names: list[str]
) -> dict[str, float]:
    """`map`, `map_50`, `map_75`, `mar_100`, and `ap_<class>` per class (-1 for a class absent from the split), of
    `predictions` against the rows' `objects`."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True)
    metric.update([{k: p[k] for k in ("boxes", "scores", "labels")} for p in predictions], _targets(objects))
    computed = metric.compute()
    scores = {name: float(computed[name]) for name in DETECTION_METRICS}
    per_class = dict(zip(computed["classes"].reshape(-1).tolist(), computed["map_per_class"].reshape(-1).tolist()))
    for index, name in enumerate(label_names):
        scores[f"ap_{name}"] = float(per_class.get(index, -1.0))
    return scores


def evaluate_detector(
    model: Any,
    processor: Any,
    dataset: Any,
    label_names: list[str],
    *,
    threshold: float = 0.0,
    batch_size: int = 16,
    prefix: Optional[str] = None,
) -> dict[str, float]:
    """The scores of `model` on a canonical detection split, keyed `{prefix}_{metric}`."""
    predictions = predict_detections(model, processor, dataset["image"], threshold=threshold, batch_size=batch_size)
    scores = score_detections(predictions, dataset["objects"], label_names)
    return {f"{prefix}_{k}" if prefix else k: v for k, v in scores.items()}
