"""`create_compute_metrics`: the `compute_metrics` a `Trainer` gets for the task it trains."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from transformers import EvalPrediction

from .classification import compute_classification_metrics
from .multi_label import DecisionThresholds, compute_multi_label_metrics
from .regression import compute_regression_metrics
from .token_classification import compute_token_classification_metrics

__all__ = ["create_compute_metrics", "compute_task_metrics"]


def compute_task_metrics(
    task: str,
    outputs,
    references,
    thresholds: Optional[DecisionThresholds] = None,
    label_names: Optional[Sequence[str]] = None,
) -> dict[str, float]:
    """The task's metrics of model outputs (logits, or raw-unit predictions for `regression`) against references;
    a multi-label head is cut at `thresholds` (default 0.5) and scored per label when `label_names` are given; token
    classification (per-row tag logits, -100 where a position is not scored) needs `label_names`, the tags."""
    if task == "token_classification":  # per-row tag logits; label_names are the tags
        return compute_token_classification_metrics(outputs, references, label_names)
    outputs = np.asarray(outputs)
    if task == "regression":
        return compute_regression_metrics(outputs, references, label_names)
    if task == "multi_label":
        return compute_multi_label_metrics(outputs, references, thresholds, label_names)
    return compute_classification_metrics(np.argmax(outputs, axis=-1), references)


def create_compute_metrics(
    task: str = "single_label",
    thresholds: Optional[DecisionThresholds] = None,
    label_names: Optional[Sequence[str]] = None,
) -> Callable[[EvalPrediction], dict[str, float]]:
    """A `compute_metrics` for `Trainer`: accuracy and macro-F1 of the argmax for classes; micro / macro / per-label
    F1, mAP and subset accuracy for `multi_label`; RMSE, MAE, R², Pearson and Spearman for `regression`; entity-level
    precision / recall / F1 and word accuracy for `token_classification`."""

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        if isinstance(logits, tuple):
            logits = logits[0]
        return compute_task_metrics(task, logits, eval_prediction.label_ids, thresholds, label_names)

    return compute_metrics
