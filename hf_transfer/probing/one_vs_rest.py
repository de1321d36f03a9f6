"""The probe of a multi-label task: one logistic regression per label on standardised frozen features (one-vs-rest,
as scikit-learn's `OneVsRestClassifier(LogisticRegression())`), one L2 strength for all, chosen on validation mAP.

The K binary problems are fitted together: the objective  (1/N) sum_n sum_k BCE(w_k z_n + b_k, y_nk)
+ l2/2 ||W||^2  separates into K independent L2-penalised logistic regressions, so one L-BFGS run solves them all.
The L2 sweep is the softmax probe's (`hf_transfer.probing.logistic.sweep_l2`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
from torch import nn

from ..constants import DEFAULT_L2_GRID
from ..metrics.multi_label import mean_average_precision
from .logistic import STANDARDIZE_PRIOR_ROWS, standardization, sweep_l2

__all__ = ["OneVsRestProbe", "fit_one_vs_rest_probe"]


@dataclass
class OneVsRestProbe:
    """A fitted one-vs-rest probe: `weight` (K, D) and `bias` (K,) give each label's logit from raw features."""

    weight: torch.Tensor
    bias: torch.Tensor
    l2: float
    validation_map: float
    validation_loss: float
    sweep: dict[float, float] = field(default_factory=dict)  # l2 -> validation mAP
    sweep_loss: dict[float, float] = field(default_factory=dict)  # l2 -> validation loss
    validation_folds: int = 0  # > 0: the validation score and loss are this many folds' mean (cross-validation)

    def scored(self, score: float, loss: float, folds: int) -> OneVsRestProbe:
        """The same fit with its validation score and loss replaced by `folds` folds' cross-validated ones."""
        return replace(self, validation_map=score, validation_loss=loss, validation_folds=folds)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.weight.T + self.bias

    @property
    def selection_key(self) -> tuple[float, float]:
        """Higher is better: validation mAP, then the lower validation loss."""
        return (self.validation_map, -self.validation_loss)


def _one_vs_rest_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum over labels, mean over rows: each label's logistic regression has the usual mean log-loss."""
    return nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum") / logits.shape[0]


def _validation_map(logits: torch.Tensor, y: torch.Tensor) -> float:
    value = mean_average_precision(logits.numpy(), y.numpy())
    return value if value == value else 0.0  # no label has a positive in validation: every l2 ties on loss


def fit_one_vs_rest_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    max_iter: int = 200,
) -> OneVsRestProbe:
    """One logistic regression per label (`train_labels`: (N, K) 0/1 rows), L2 strength chosen on validation mAP."""
    if train_features.shape[0] == 0 or val_features.shape[0] == 0:
        raise ValueError("Linear probing needs non-empty train and validation features.")
    y_train, y_val = train_labels.double(), val_labels.double()
    l2, value, loss, weight, bias, sweep, sweep_loss = sweep_l2(
        train_features,
        y_train,
        val_features,
        y_val,
        standardization(train_features, STANDARDIZE_PRIOR_ROWS),
        y_train.shape[1],
        l2_grid,
        max_iter,
        _one_vs_rest_loss,
        _validation_map,
    )
    return OneVsRestProbe(weight.float(), bias.float(), l2, value, loss, sweep, sweep_loss)
