"""Each task's scorer (named by its `hf_transfer.tasks` entry) and `create_compute_metrics`, the `compute_metrics` a
`Trainer` gets for the task it trains."""

from __future__ import annotations

import logging
from typing import Callable, Optional, Sequence

import numpy as np
from transformers import EvalPrediction

from ..tasks import TASKS
from .classification import compute_classification_metrics
from .multi_label import DecisionThresholds, compute_multi_label_metrics
from .regression import compute_regression_metrics
from .token_classification import SentenceWindows, compute_token_classification_metrics

__all__ = [
    "create_compute_metrics",
    "compute_task_metrics",
    "score_classes",
    "score_class_lists",
    "score_numbers",
    "score_word_tags",
]

logger = logging.getLogger(__name__)


def compute_task_metrics(
    task: str,
    outputs,
    references,
    thresholds: Optional[DecisionThresholds] = None,
    label_names: Optional[Sequence[str]] = None,
    windows: Optional[SentenceWindows] = None,
) -> dict[str, float]:
    """The task's metrics of model outputs (logits, or raw-unit predictions for `regression`) against references;
    a multi-label head is cut at `thresholds` (default 0.5) and scored per label when `label_names` are given; token
    classification (per-row tag logits, -100 where a position is not scored) needs `label_names`, the tags, and
    scores whole sentences when given the rows' `windows`. The task's entry (`Task.compute_metrics`) names the
    scorer."""
    return TASKS.get(task).compute_metrics(
        outputs, references, thresholds=thresholds, label_names=label_names, windows=windows
    )


# The scorers of the tasks' entries, of one signature.


def score_classes(outputs, references, *, thresholds=None, label_names=None, windows=None) -> dict[str, float]:
    """Accuracy and macro-F1 of the top class."""
    return compute_classification_metrics(np.argmax(np.asarray(outputs), axis=-1), references)


def score_class_lists(outputs, references, *, thresholds=None, label_names=None, windows=None) -> dict[str, float]:
    """Micro / macro / per-label F1 at the decision thresholds, mAP and subset accuracy."""
    return compute_multi_label_metrics(np.asarray(outputs), references, thresholds, label_names)


def score_numbers(outputs, references, *, thresholds=None, label_names=None, windows=None) -> dict[str, float]:
    """RMSE, MAE, R², Pearson and Spearman of raw-unit predictions."""
    return compute_regression_metrics(np.asarray(outputs), references, label_names)


def score_word_tags(outputs, references, *, thresholds=None, label_names=None, windows=None) -> dict[str, float]:
    """Entity-level precision / recall / F1 and word accuracy over whole sentences (`label_names` are the tags)."""
    return compute_token_classification_metrics(outputs, references, label_names, windows)


def create_compute_metrics(
    task: str = "single_label",
    thresholds: Optional[DecisionThresholds] = None,
    label_names: Optional[Sequence[str]] = None,
    windows: Sequence[SentenceWindows] = (),
) -> Callable[[EvalPrediction], dict[str, float]]:
    """A `compute_metrics` for `Trainer`: accuracy and macro-F1 of the argmax for classes; micro / macro / per-label
    F1, mAP and subset accuracy for `multi_label`; RMSE, MAE, R², Pearson and Spearman for `regression`; entity-level
    precision / recall / F1 and word accuracy for `token_classification`.

    `windows`: the `SentenceWindows` of the token classification splits the `Trainer` will score (validation, test).
    `Trainer` hands over predictions without saying which split they are, so each call takes the windows whose
    scored tags are its references, and scores whole sentences (every word, long sentences read in windows)."""

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        if isinstance(logits, tuple):
            logits = logits[0]
        references = eval_prediction.label_ids
        layout = next((w for w in windows if w.matches(references)), None)
        if windows and layout is None:
            logger.warning(
                "These %d rows are none of the splits whose sentence windows are known: scored per row (window), "
                "so a sentence read in several windows is scored as several.",
                len(references),
            )
        return compute_task_metrics(task, logits, references, thresholds, label_names, layout)

    return compute_metrics
