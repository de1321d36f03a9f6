"""Accuracy and macro-F1 through `evaluate`, from the metric modules that ship inside this package (`../accuracy`,
`../f1`), loaded once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import evaluate
import numpy as np

__all__ = ["METRIC_NAMES", "load_metric", "compute_classification_metrics"]

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
