"""Zero-shot image classification with a dual encoder: each class's prompt is embedded by the text tower, each image
by the image tower, and an image takes the class whose prompt is nearest (cosine), as
`pipeline("zero-shot-image-classification")` does with the saved model.

Scores: on the held-out classes (only their rows, only their prompts: classes the alignment never paired with an
image), on the seen classes, and on all classes (every row, every prompt). A multi-label row counts as right when the
predicted class is one of its labels (top-1 hit rate).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import VisionTextDualEncoderModel

from .captions import class_prompts

__all__ = ["class_text_embeddings", "image_embeddings", "zero_shot_scores"]


@torch.no_grad()
def class_text_embeddings(
    model: VisionTextDualEncoderModel, tokenizer: Any, names: Sequence[str], template: str
) -> torch.Tensor:
    """(C, P) L2-normalised embeddings of the class prompts, in the shared space."""
    model.eval()
    inputs = tokenizer(class_prompts(names, template), padding=True, return_tensors="pt").to(model.device)
    return F.normalize(model.get_text_features(**inputs, return_dict=True).pooler_output, dim=-1)


@torch.no_grad()
def image_embeddings(
    model: VisionTextDualEncoderModel, image_processor: Any, dataset: Dataset, batch_size: int = 64
) -> torch.Tensor:
    """(N, P) L2-normalised embeddings of the dataset's images."""
    model.eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        images = [image.convert("RGB") for image in dataset[start : start + batch_size]["image"]]
        pixels = image_processor(images, return_tensors="pt")["pixel_values"].to(model.device)
        out.append(F.normalize(model.get_image_features(pixel_values=pixels, return_dict=True).pooler_output, dim=-1))
    return torch.cat(out).cpu()


def _hits(similarity: np.ndarray, candidates: list[int], labels: list, multi_label: bool) -> np.ndarray:
    predicted = np.asarray(candidates)[similarity[:, candidates].argmax(axis=1)]
    if multi_label:
        return np.array([p in set(row) for p, row in zip(predicted, labels)], dtype=float)
    return (predicted == np.asarray(labels)).astype(float)


def _chance(labels: list, candidates: list[int], multi_label: bool) -> float:
    """The accuracy of a prompt drawn at random among `candidates`: 1 / their count for one class per row; for
    several, the mean share of the candidates a row holds (a mosaic with two of three held-out items is right
    two times in three)."""
    if not multi_label:
        return 1.0 / len(candidates)
    chosen = set(candidates)
    return float(np.mean([len(chosen & set(row)) / len(candidates) for row in labels]))


def zero_shot_scores(
    model: VisionTextDualEncoderModel,
    processor: Any,
    dataset: Dataset,
    names: Sequence[str],
    held_out: Sequence[int],
    template: str,
    multi_label: bool = False,
    split: str = "test",
    prefix: str = "zero_shot",
) -> dict[str, float]:
    """Zero-shot accuracy on `dataset` (`image`, `label`), the split it is (`test`, `eval`) in its keys:
    `{prefix}_all_{split}_accuracy`, and with held-out classes `{prefix}_heldout_{split}_accuracy` and
    `{prefix}_seen_{split}_accuracy` (each over the rows and prompts of those classes only), with the chance level
    of each (what a random prompt of the group scores on its rows) and the row counts."""
    texts = class_text_embeddings(model, processor.tokenizer, names, template)
    images = image_embeddings(model, processor.image_processor, dataset)
    similarity = (images @ texts.T).numpy()  # (N, C) cosines
    labels = dataset["label"]
    groups = {"all": list(range(len(names)))}
    if held_out:
        groups["heldout"] = list(held_out)
        groups["seen"] = [i for i in range(len(names)) if i not in set(held_out)]
    scores: dict[str, float] = {}
    for group, candidates in groups.items():
        chosen = set(candidates)
        rows = [i for i, row in enumerate(labels) if (chosen & set(row) if multi_label else row in chosen)]
        if not rows:
            continue
        hits = _hits(similarity[rows], candidates, [labels[i] for i in rows], multi_label)
        scores[f"{prefix}_{group}_{split}_accuracy"] = float(hits.mean())
        scores[f"{prefix}_{group}_{split}_chance"] = _chance([labels[i] for i in rows], candidates, multi_label)
        scores[f"{prefix}_{group}_{split}_samples"] = len(rows)
    return scores
