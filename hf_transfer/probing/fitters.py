"""The probe of each task (`Task.probe` names one), all of one signature, so `probe_classification_model` fits
whatever its task's entry says without branching on the task.

Each takes the `(features, labels)` of train and validation and keyword options: the head's `num_classes`, the
`l2_grid` and `max_iter` budget, and optionally a validation `score_fn` (with `patience`) that chooses L2 instead of
the probe's own criterion (entity F1 for token classification); each reads the options it needs.
"""

from __future__ import annotations

from typing import Any

import torch

from .logistic import fit_linear_probe
from .one_vs_rest import fit_one_vs_rest_probe
from .ridge import fit_ridge_probe

__all__ = ["fit_logistic", "fit_one_vs_rest", "fit_ridge"]

Split = tuple[torch.Tensor, torch.Tensor]


def fit_logistic(train: Split, validation: Split, **options: Any):
    """Multinomial logistic regression: one class per row (or per token). `options`: `num_classes`, `l2_grid`,
    `max_iter`, and optionally `score_fn` / `patience`."""
    return fit_linear_probe(
        *train,
        *validation,
        options["num_classes"],
        options["l2_grid"],
        options["max_iter"],
        score_fn=options.get("score_fn"),
        patience=options.get("patience"),
    )


def fit_one_vs_rest(train: Split, validation: Split, **options: Any):
    """One logistic regression per label (multi-label), one L2 for all."""
    return fit_one_vs_rest_probe(*train, *validation, options["l2_grid"], options["max_iter"])


def fit_ridge(train: Split, validation: Split, **options: Any):
    """Ridge regression on standardised features and targets (closed form: no iterations)."""
    return fit_ridge_probe(*train, *validation, options["l2_grid"])
