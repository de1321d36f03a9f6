"""Multi-label scores: micro / macro F1, one F1 per label, subset accuracy at decision thresholds, and mAP (which needs
no threshold); and the thresholds themselves, chosen on validation.

A sigmoid head's 0.5 is rarely the best cut: rare labels get low probabilities, so their F1 peaks well below it.
`choose_decision_thresholds` picks one global threshold (best micro-F1) and, for labels with enough positive and
negative validation rows, a threshold of their own (best F1 of that label); the saved model carries them
(`hf_transfer.recipe.saving`). Metrics on the split the thresholds were chosen on are optimistic; test is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from sklearn.metrics import average_precision_score

__all__ = [
    "THRESHOLD_GRID",
    "MIN_ROWS_FOR_OWN_THRESHOLD",
    "DecisionThresholds",
    "choose_decision_thresholds",
    "compute_multi_label_metrics",
    "mean_average_precision",
    "sigmoid",
]

# Candidate cuts on the sigmoid probability.
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))
# A label gets its own threshold when validation has at least this many positive and this many negative rows of it.
MIN_ROWS_FOR_OWN_THRESHOLD = 5


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, dtype=np.float64), -50, 50)))


@dataclass
class DecisionThresholds:
    """A label is predicted when its sigmoid probability is at least its threshold (`per_label`, id order)."""

    per_label: list[float]
    global_threshold: float
    own: list[bool]  # whether each label's threshold was chosen for it (else it is the global one)

    def predict(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(logits) >= np.asarray(self.per_label)

    def to_dict(self, label_names: Sequence[str]) -> dict:
        """What is saved with the model (`decision_thresholds.json` and `config.decision_thresholds`)."""
        return {
            "thresholds": {name: t for name, t in zip(label_names, self.per_label)},
            "global_threshold": self.global_threshold,
            "own_threshold": [name for name, own in zip(label_names, self.own) if own],
            "rule": "predict a label when sigmoid(logit) >= its threshold",
            "chosen_on": "validation: the global threshold for micro-F1, a label's own for its F1",
        }

    @classmethod
    def fixed(cls, num_labels: int, threshold: float = 0.5) -> "DecisionThresholds":
        return cls([threshold] * num_labels, threshold, [False] * num_labels)


def _f1(predicted: np.ndarray, truth: np.ndarray, axis: Optional[int] = None) -> np.ndarray:
    """F1 over `axis` (None: micro); nan where a label is neither true nor predicted."""
    tp = np.logical_and(predicted, truth).sum(axis=axis)
    denominator = predicted.sum(axis=axis) + truth.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2.0 * tp / np.maximum(denominator, 1), np.nan)


def choose_decision_thresholds(
    logits: np.ndarray, references: np.ndarray, grid: Sequence[float] = THRESHOLD_GRID
) -> DecisionThresholds:
    """The global threshold with the best micro-F1 on (`logits`, `references`), and for each label with at least
    `MIN_ROWS_FOR_OWN_THRESHOLD` positive and negative rows the threshold with its best F1; ties go to the cut
    nearest 0.5 (globally) or nearest the global one (per label)."""
    probabilities = sigmoid(logits)
    truth = np.asarray(references) > 0.5
    grid = np.asarray(sorted(grid))

    def best(scores: np.ndarray, prefer: float) -> float:
        scores = np.nan_to_num(scores, nan=-1.0)
        candidates = np.flatnonzero(scores >= scores.max() - 1e-12)
        return float(grid[candidates[np.argmin(np.abs(grid[candidates] - prefer))]])

    global_threshold = best(np.array([_f1(probabilities >= t, truth) for t in grid]), 0.5)
    per_label, own = [], []
    positives = truth.sum(0)
    for k in range(truth.shape[1]):
        enough = min(positives[k], len(truth) - positives[k]) >= MIN_ROWS_FOR_OWN_THRESHOLD
        if enough:
            scores = np.array([_f1(probabilities[:, k] >= t, truth[:, k]) for t in grid])
            per_label.append(best(scores, global_threshold))
        else:
            per_label.append(global_threshold)
        own.append(bool(enough))
    return DecisionThresholds(per_label, global_threshold, own)


def mean_average_precision(logits: np.ndarray, references: np.ndarray) -> float:
    """Macro mean of each label's average precision (ranking quality, no threshold), over labels with a positive."""
    truth = np.asarray(references) > 0.5
    scores = np.asarray(logits, dtype=np.float64)
    present = np.flatnonzero(truth.any(0))
    if len(present) == 0:
        return float("nan")
    return float(np.mean([average_precision_score(truth[:, k], scores[:, k]) for k in present]))


def compute_multi_label_metrics(
    logits: np.ndarray,
    references: np.ndarray,
    thresholds: Optional[DecisionThresholds] = None,
    label_names: Optional[Sequence[str]] = None,
) -> dict[str, float]:
    """`micro_f1`, `macro_f1` (over labels true or predicted at least once), `map`, `subset_accuracy` (every label
    of a row right), and `f1_<label>` per label when `label_names` are given; at `thresholds` (default 0.5)."""
    logits = np.asarray(logits, dtype=np.float64).reshape(len(logits), -1)
    truth = np.asarray(references).reshape(logits.shape) > 0.5
    thresholds = thresholds or DecisionThresholds.fixed(logits.shape[1])
    predicted = thresholds.predict(logits)
    per_label = _f1(predicted, truth, axis=0)
    results = {
        "micro_f1": float(np.nan_to_num(_f1(predicted, truth), nan=0.0)),
        "macro_f1": float(np.nanmean(per_label)) if np.isfinite(per_label).any() else 0.0,
        "map": mean_average_precision(logits, truth),
        "subset_accuracy": float((predicted == truth).all(1).mean()),
    }
    for name, value in zip(label_names or (), per_label):
        results[f"f1_{name}"] = float(value) if np.isfinite(value) else 0.0
    return results
