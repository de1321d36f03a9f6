"""Accuracy and macro-F1 through `evaluate`, from the metric modules that ship inside this package (`../accuracy`,
`../f1`), loaded once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable

import evaluate
import numpy as np
from transformers import EvalPrediction

__all__ = ["METRIC_NAMES", "load_metric", "compute_classification_metrics", "create_compute_metrics"]

METRIC_NAMES = ("accuracy", "f1")
_METRICS_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def load_metric(name: str) -> evaluate.EvaluationModule:
    """Load a packaged metric module (`accuracy` or `f1`) with `evaluate.load`, offline."""
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric {name!r}; the packaged metrics are {', '.join(METRIC_NAMES)}.")
    return evaluate.load(str(_METRICS_DIR / name / f"{name}.py"))


def compute_classification_metrics(predictions, references) -> dict[str, float]:
    """Accuracy and macro-F1 of integer predictions against references."""
    predictions = np.asarray(predictions).reshape(-1)
    references = np.asarray(references).reshape(-1)
    results = load_metric("accuracy").compute(predictions=predictions, references=references)
    results.update(load_metric("f1").compute(predictions=predictions, references=references, average="macro"))
    return results


def create_compute_metrics() -> Callable[[EvalPrediction], dict[str, float]]:
    """A `compute_metrics` for `Trainer`: argmax over logits, then accuracy and macro-F1."""

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        if isinstance(logits, tuple):
            logits = logits[0]
        return compute_classification_metrics(np.argmax(logits, axis=-1), eval_prediction.label_ids)

    return compute_metrics
