"""The probe of each task (`Task.probe` names one), all of one signature, so `probe_classification_model` fits
whatever its task's entry says without branching on the task.

Each takes the `(features, labels)` of train and validation, the head's `num_classes`, the L2 grid and iteration
budget, and optionally a validation `score_fn` (with `patience`) that chooses L2 instead of the probe's own
criterion (entity F1 for token classification).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

from .logistic import fit_linear_probe
from .one_vs_rest import fit_one_vs_rest_probe
from .ridge import fit_ridge_probe

__all__ = ["fit_logistic", "fit_one_vs_rest", "fit_ridge"]

Split = tuple[torch.Tensor, torch.Tensor]
Scorer = Optional[Callable[[torch.Tensor, torch.Tensor], float]]


def fit_logistic(
    train: Split,
    validation: Split,
    *,
    num_classes: int,
    l2_grid: Sequence[float],
    max_iter: int,
    score_fn: Scorer = None,
    patience: Optional[int] = None,
):
    """Multinomial logistic regression: one class per row (or per token)."""
    return fit_linear_probe(*train, *validation, num_classes, l2_grid, max_iter, score_fn=score_fn, patience=patience)


def fit_one_vs_rest(
    train: Split,
    validation: Split,
    *,
    num_classes: int,
    l2_grid: Sequence[float],
    max_iter: int,
    score_fn: Scorer = None,
    patience: Optional[int] = None,
):
    """One logistic regression per label (multi-label), one L2 for all."""
    return fit_one_vs_rest_probe(*train, *validation, l2_grid, max_iter)


def fit_ridge(
    train: Split,
    validation: Split,
    *,
    num_classes: int,
    l2_grid: Sequence[float],
    max_iter: int,
    score_fn: Scorer = None,
    patience: Optional[int] = None,
):
    """Ridge regression on standardised features and targets (closed form: no iterations)."""
    return fit_ridge_probe(*train, *validation, l2_grid)
