"""The probe of a numeric target: ridge regression on standardised features and standardised targets, the penalty
chosen on validation, solved in closed form for the whole grid at once (one SVD)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

from ..constants import DEFAULT_L2_GRID
from .logistic import STANDARDIZE_PRIOR_ROWS, standardization

__all__ = ["RidgeProbe", "fit_ridge_probe"]

logger = logging.getLogger(__name__)


@dataclass
class RidgeProbe:
    """A fitted ridge probe: `weight` (K, D) and `bias` (K,) map raw features to raw-unit predictions of K targets."""

    weight: torch.Tensor
    bias: torch.Tensor
    l2: float
    validation_r2: float  # averaged over targets
    validation_loss: float  # mean squared error in units of each train target's variance, averaged
    sweep: dict[float, float] = field(default_factory=dict)  # l2 -> validation R²
    sweep_loss: dict[float, float] = field(default_factory=dict)  # l2 -> validation loss
    validation_folds: int = 0  # > 0: the validation score and loss are this many folds' mean (cross-validation)

    def scored(self, score: float, loss: float, folds: int) -> RidgeProbe:
        """The same fit with its validation score and loss replaced by `folds` folds' cross-validated ones."""
        return replace(self, validation_r2=score, validation_loss=loss, validation_folds=folds)

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """(N,) predictions of one target, (N, K) of several."""
        out = features @ self.weight.T + self.bias
        return out[:, 0] if out.shape[1] == 1 else out

    @property
    def selection_key(self) -> tuple[float, float]:
        """Higher is better: validation R² (equivalently, the lower validation error)."""
        return (self.validation_r2, -self.validation_loss)


def fit_ridge_probe(
    train_features: torch.Tensor,
    train_targets: torch.Tensor,
    val_features: torch.Tensor,
    val_targets: torch.Tensor,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
) -> RidgeProbe:
    """Ridge regression on frozen features: for each `l2`, w minimises  mean (z w - t)^2 + l2 * ||w||^2  over
    standardised features z (`standardization`, as the logistic probe) and standardised targets t (each target
    its own w, one `l2` for all); the `l2` with the best validation R² (averaged over targets) wins, and both
    standardisations are folded into the returned raw-unit weights. Targets: (N,) or (N, K)."""
    if train_features.shape[0] < 2 or val_features.shape[0] == 0:
        raise ValueError("A ridge probe needs at least 2 train rows and 1 validation row.")
    mean, std = standardization(train_features, STANDARDIZE_PRIOR_ROWS)
    z_train = (train_features.double() - mean) / std  # (N, D)
    z_val = (val_features.double() - mean) / std
    z_mean = z_train.mean(0)  # ~0 (shrunk scales leave the centring exact), kept so the intercept is exact
    y = train_targets.double().reshape(train_targets.shape[0], -1)  # (N, K)
    y_mean = y.mean(0)
    y_std = y.std(0, unbiased=False)
    y_std = torch.where(y_std > 0, y_std, torch.ones_like(y_std))
    t = (y - y_mean) / y_std
    u, s, vh = torch.linalg.svd(z_train - z_mean, full_matrices=False)  # (N, R), (R,), (R, D)
    ut_t = u.T @ t  # (R, K)
    n = z_train.shape[0]
    y_val = val_targets.double().reshape(val_targets.shape[0], -1)
    val_var = ((y_val - y_val.mean(0)) ** 2).mean(0)
    val_var = torch.where(val_var > 0, val_var, torch.ones_like(val_var))
    fits: dict[float, tuple[float, float, torch.Tensor]] = {}
    for l2 in sorted({float(v) for v in l2_grid}, reverse=True):
        w = vh.T @ ((s / (s**2 + n * l2))[:, None] * ut_t)  # (D, K)
        predictions = ((z_val - z_mean) @ w) * y_std + y_mean
        mse = ((predictions - y_val) ** 2).mean(0)  # (K,)
        fits[l2] = (float((1.0 - mse / val_var).mean()), float((mse / y_std**2).mean()), w)
        logger.info("ridge probe l2=%.1e validation R2=%.4f", l2, fits[l2][0])
    l2 = max(fits, key=lambda value: (fits[value][0], -fits[value][1]))
    r2, loss, w = fits[l2]
    # prediction_k = y_std_k * (w_k . ((x - mu) / sigma - z_mean)) + y_mean_k
    raw_weight = (w / std[:, None] * y_std).T  # (K, D)
    raw_bias = y_mean - y_std * ((mean / std + z_mean) @ w)  # (K,)
    ordered = sorted(fits.items(), reverse=True)
    sweep, sweep_loss = {k: v[0] for k, v in ordered}, {k: v[1] for k, v in ordered}
    return RidgeProbe(raw_weight.float(), raw_bias.float(), l2, r2, loss, sweep, sweep_loss)
