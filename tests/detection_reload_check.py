"""Reload detect.py outputs the way the docs tell users to, in this fresh process, and score them on the test split.

    python tests/detection_reload_check.py SPEC.json

SPEC is a list of `{"output_dir", "data": {DetectionDataArguments fields}}`. For each run it prints (one JSON list on
the last line) the test scores of `AutoModelForObjectDetection` + `AutoImageProcessor` (predictions read with the
processor's `post_process_object_detection`, at every score), and of `pipeline("object-detection", threshold=0)`,
plus whether the pipeline's detections are the model's (the pipeline rounds box corners to whole pixels). Only the
rows and the mAP definition come from the toolkit (`load_detection_dataset`, `score_detections`); everything that
loads or runs the model is plain transformers.
"""

from __future__ import annotations

import json
import sys

import torch
from transformers import AutoImageProcessor, AutoModelForObjectDetection, pipeline

from hf_transfer.detection import DetectionDataArguments, load_detection_dataset, score_detections


@torch.no_grad()
def _model_predictions(output_dir: str, images: list) -> tuple[list[dict], list[str]]:
    model = AutoModelForObjectDetection.from_pretrained(output_dir).eval()
    processor = AutoImageProcessor.from_pretrained(output_dir)
    predictions = []
    for image in images:
        image = image.convert("RGB")
        outputs = model(**processor(images=[image], return_tensors="pt"))
        sizes = torch.tensor([(image.height, image.width)])
        predictions += processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=sizes)
    return predictions, [model.config.id2label[i] for i in range(len(model.config.id2label))]


def _pipeline_predictions(output_dir: str, images: list, label2id: dict) -> list[dict]:
    detector = pipeline("object-detection", model=output_dir)
    predictions = []
    for image in images:
        found = detector(image.convert("RGB"), threshold=0.0)
        boxes = [[d["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")] for d in found]
        predictions.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "scores": torch.tensor([d["score"] for d in found]),
                "labels": torch.tensor([label2id[d["label"]] for d in found], dtype=torch.long),
            }
        )
    return predictions


def check(run: dict) -> dict:
    test = load_detection_dataset(DetectionDataArguments(**run["data"]))["test"]
    images, objects = test["image"], test["objects"]
    predictions, names = _model_predictions(run["output_dir"], images)
    piped = _pipeline_predictions(run["output_dir"], images, {name: i for i, name in enumerate(names)})
    whole_pixels = [{**p, "boxes": p["boxes"].int().float()} for p in predictions]
    same = all(
        torch.equal(a["labels"], b["labels"])
        and torch.allclose(a["scores"], b["scores"], atol=1e-5)
        and torch.equal(a["boxes"], b["boxes"])
        for a, b in zip(sorted_by_score(whole_pixels), sorted_by_score(piped))
    )
    return {
        "output_dir": run["output_dir"],
        "model": score_detections(predictions, objects, names),
        "pipeline": score_detections(piped, objects, names),
        "pipeline_matches_model": same,
    }


def sorted_by_score(predictions: list[dict]) -> list[dict]:
    out = []
    for p in predictions:
        order = torch.argsort(p["scores"], descending=True, stable=True)
        out.append({k: v[order] for k, v in p.items()})
    return out


if __name__ == "__main__":
    runs = json.loads(open(sys.argv[1]).read())
    print(json.dumps([check(run) for run in runs]))
