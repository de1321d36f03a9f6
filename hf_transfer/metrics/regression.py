"""Regression metrics: RMSE, MAE, R², Pearson and Spearman correlation, computed with scikit-learn and scipy."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from ..constants import REGRESSION_METRICS

__all__ = ["REGRESSION_METRICS", "compute_regression_metrics"]


def compute_regression_metrics(predictions, references, target_names=None) -> dict[str, float]:
    """The metrics of `REGRESSION_METRICS` for raw-unit predictions against references: of the one target, or for
    several targets (N, K) their mean over targets plus `<metric>_<target name>` for each."""
    references = np.asarray(references, dtype=np.float64)
    predictions = np.asarray(predictions, dtype=np.float64).reshape(len(references), -1)
    references = references.reshape(len(references), -1)
    if references.shape[1] == 1:
        return _one_target(predictions[:, 0], references[:, 0])
    names = list(target_names or range(references.shape[1]))
    per_target = [_one_target(predictions[:, k], references[:, k]) for k in range(references.shape[1])]
    results = {metric: float(np.mean([scores[metric] for scores in per_target])) for metric in REGRESSION_METRICS}
    for name, scores in zip(names, per_target):
        results.update({f"{metric}_{name}": value for metric, value in scores.items()})
    return results


def _one_target(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    constant = predictions.std() == 0 or references.std() == 0  # a correlation of a constant is undefined
    return {
        "rmse": float(np.sqrt(mean_squared_error(references, predictions))),
        "mae": float(mean_absolute_error(references, predictions)),
        "r2": float(r2_score(references, predictions)),
        "pearson": float("nan") if constant else float(pearsonr(predictions, references)[0]),
        "spearman": float("nan") if constant else float(spearmanr(predictions, references)[0]),
    }
