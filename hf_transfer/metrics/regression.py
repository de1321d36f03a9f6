"""Regression metrics: RMSE, MAE, R², Pearson and Spearman correlation, computed with scikit-learn and scipy."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from ..constants import REGRESSION_METRICS

__all__ = ["REGRESSION_METRICS", "compute_regression_metrics"]


def compute_regression_metrics(predictions, references) -> dict[str, float]:
    """The metrics of `REGRESSION_METRICS` for raw-unit predictions against references (one target)."""
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    references = np.asarray(references, dtype=np.float64).reshape(-1)
    constant = predictions.std() == 0 or references.std() == 0  # a correlation of a constant is undefined
    return {
        "rmse": float(np.sqrt(mean_squared_error(references, predictions))),
        "mae": float(mean_absolute_error(references, predictions)),
        "r2": float(r2_score(references, predictions)),
        "pearson": float("nan") if constant else float(pearsonr(predictions, references)[0]),
        "spearman": float("nan") if constant else float(spearmanr(predictions, references)[0]),
    }
