"""The probe itself: multinomial logistic regression on standardised features, full-batch L-BFGS, the L2 strength
swept on a log grid and chosen on validation accuracy (the CLIP / DINOv2 protocol)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable, Literal, Optional, Sequence

import torch
from torch import nn

from ..constants import DEFAULT_L2_GRID
from ..models.heads import get_classifier

__all__ = [
    "ProbeResult",
    "fit_linear_probe",
    "sweep_l2",
    "standardization",
    "load_probe_into_classifier",
    "MAX_GRID_EXTENSIONS",
]

logger = logging.getLogger(__name__)


@dataclass
class ProbeResult:
    """A fitted probe: `weight` (C, D) and `bias` (C,) act on raw (unstandardised) features."""

    weight: torch.Tensor
    bias: torch.Tensor
    l2: float
    validation_accuracy: float
    sweep: dict[float, float] = field(default_factory=dict)  # l2 -> validation accuracy
    validation_loss: float = float("nan")
    sweep_loss: dict[float, float] = field(default_factory=dict)  # l2 -> validation loss
    validation_folds: int = 0  # > 0: the validation score and loss are this many folds' mean (cross-validation)

    def scored(self, score: float, loss: float, folds: int) -> ProbeResult:
        """The same fit with its validation score and loss replaced by `folds` folds' cross-validated ones."""
        return replace(self, validation_accuracy=score, validation_loss=loss, validation_folds=folds)

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        return (features @ self.weight.T + self.bias).argmax(-1)

    @property
    def selection_key(self) -> tuple[float, float]:
        """Higher is better: validation accuracy, then the lower validation loss."""
        return (self.validation_accuracy, -self.validation_loss)


def _softmax_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, y)


def _fit_one(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    l2: float,
    init: Optional[tuple],
    max_iter: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = _softmax_loss,
) -> tuple[torch.Tensor, torch.Tensor]:
    d = x.shape[1]
    weight = torch.zeros(num_classes, d, dtype=x.dtype) if init is None else init[0].clone()
    bias = torch.zeros(num_classes, dtype=x.dtype) if init is None else init[1].clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-6, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ weight.T + bias  # (N, C)
        loss = loss_fn(logits, y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


# Pseudo-rows of the pooled variance mixed into each feature's variance (see `standardization`).
STANDARDIZE_PRIOR_ROWS = 32

# How many extra decades the L2 sweep may extend past an edge of its grid that wins.
MAX_GRID_EXTENSIONS = 3


def _scale_floor(mean_variance: torch.Tensor) -> float:
    """The smallest scale a feature is divided by: 1e-6 of the features' typical scale (never 0)."""
    return max(1e-6 * float(mean_variance.sqrt()), 1e-300)


def standardization(
    features: torch.Tensor, prior_rows: int = STANDARDIZE_PRIOR_ROWS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and scale per feature, with each variance shrunk towards the features' average variance.

    With n training rows, var_j = (n * s_j^2 + n0 * mean(s^2)) / (n + n0): on thousands of rows this is the
    usual per-feature standardisation, on 8 examples per class it cannot blow up a feature that happened
    to be near-constant on those rows (plain per-feature scaling is degenerate there).
    """
    x = features.double()
    n = x.shape[0]
    mean = x.mean(0)
    var = x.var(0, unbiased=False)
    pooled = var.mean()
    shrunk = (n * var + prior_rows * pooled) / (n + prior_rows)
    # The floor is relative: features of any scale (a random network's can be 1e-20) keep their variation.
    return mean, shrunk.sqrt().clamp(min=_scale_floor(pooled))


def fit_linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    num_classes: int,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    max_iter: int = 200,
    standardize: Literal["shrunk", "per_feature", "global"] = "shrunk",
    extend_grid: bool = True,
    score_fn: Optional[Callable[[torch.Tensor, torch.Tensor], float]] = None,
    patience: Optional[int] = None,
) -> ProbeResult:
    """Multinomial logistic regression on frozen features, L2 strength chosen on the validation split.

    The objective for each `l2` in the grid is  mean CE(W z + b, y) + l2 / 2 * ||W||^2  over
    standardised features z = (x - mu) / sigma (mu, sigma from the training split, `standardization`).
    The best validation accuracy wins; ties (common on small validation sets) go to the lower validation
    cross-entropy, so the choice does not default to one end of the grid. When an edge of the grid still
    wins, the sweep goes on past it, a decade at a time (up to `MAX_GRID_EXTENSIONS` decades), unless
    `extend_grid=False` (callers that need exactly the grid's values in `sweep`).
    `standardize`: `shrunk` (default; per-feature variances shrunk towards their mean, `standardization`),
    `per_feature` (plain), or `global` (one std for all features, for a handful of rows such as an episode's
    support set). `score_fn(logits, labels)` replaces validation accuracy as the criterion (token classification
    scores entities); `patience` stops the sweep after that many weaker fits in a row (`sweep_l2`).
    """
    if train_features.shape[0] == 0 or val_features.shape[0] == 0:
        raise ValueError("Linear probing needs non-empty train and validation features.")
    if standardize == "global":
        mean = train_features.double().mean(0)
        variance = (train_features.double() - mean).pow(2).mean()
        std = variance.sqrt().clamp(min=_scale_floor(variance)).expand_as(mean)
    else:
        mean, std = standardization(train_features, STANDARDIZE_PRIOR_ROWS if standardize == "shrunk" else 0)

    def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
        return float((logits.argmax(-1) == y).double().mean())

    l2, accuracy, loss, raw_weight, raw_bias, sweep, sweep_loss = sweep_l2(
        train_features,
        train_labels.long(),
        val_features,
        val_labels.long(),
        (mean, std),
        num_classes,
        l2_grid,
        max_iter,
        _softmax_loss,
        score_fn or accuracy,
        extend_grid,
        patience,
    )
    return ProbeResult(raw_weight.float(), raw_bias.float(), l2, accuracy, sweep, loss, sweep_loss)


def sweep_l2(
    train_features: torch.Tensor,
    y_train: torch.Tensor,
    val_features: torch.Tensor,
    y_val: torch.Tensor,
    standardisation: tuple[torch.Tensor, torch.Tensor],
    num_outputs: int,
    l2_grid: Sequence[float],
    max_iter: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    score_fn: Callable[[torch.Tensor, torch.Tensor], float],
    extend_grid: bool = True,
    patience: Optional[int] = None,
) -> tuple[float, float, float, torch.Tensor, torch.Tensor, dict[float, float], dict[float, float]]:
    """Fit `loss_fn + l2 / 2 ||W||^2` on standardised features for each `l2` (strongest first, each fit warm-starting
    the next), keep the best validation `score_fn` (ties: the lower validation loss), extend the grid past a winning
    edge (`MAX_GRID_EXTENSIONS`), and return `(l2, score, loss, raw weight, raw bias, {l2: score}, {l2: loss})` with the
    standardisation folded into the weights. Shared by the softmax probe and the one-vs-rest multi-label probe.
    `patience`: stop the grid after that many fits in a row that are worse than the best so far (weaker penalties
    rarely win again once the validation score falls; for fits on tens of thousands of rows, e.g. every token)."""
    mean, std = standardisation
    z_train = (train_features.double() - mean) / std  # (N, D)
    z_val = (val_features.double() - mean) / std
    fits: dict[float, tuple[float, float, torch.Tensor, torch.Tensor]] = {}

    def sweep(values: Sequence[float], init: Optional[tuple]) -> Optional[tuple]:
        worse = 0
        for l2 in values:
            if patience is not None and worse >= patience:
                logger.info("probe sweep stopped: %d weaker fits in a row", worse)
                break
            weight, bias = _fit_one(z_train, y_train, num_outputs, l2, init, max_iter, loss_fn)
            init = (weight, bias)
            logits = z_val @ weight.T + bias
            value = score_fn(logits, y_val)
            loss = float(loss_fn(logits, y_val))
            fits[l2] = (value, loss, weight, bias)
            logger.info("probe l2=%.1e validation score=%.4f loss=%.4f", l2, value, loss)
            worse = 0 if best() == l2 else worse + 1
        return init

    def best() -> float:
        return min(fits, key=lambda l2: (-fits[l2][0], fits[l2][1]))

    grid = sorted({float(v) for v in l2_grid}, reverse=True)  # strongest first: each fit warm-starts the next
    sweep(grid, None)
    for _ in range(MAX_GRID_EXTENSIONS if extend_grid else 0):
        chosen, strongest, weakest = best(), max(fits), min(fits)
        if len(fits) < 2 or chosen not in (strongest, weakest) or (chosen == weakest and weakest == 0.0):
            break
        if chosen == strongest:
            sweep([strongest * 10.0], None)
        else:
            sweep([weakest / 10.0], fits[weakest][2:])
    l2 = best()
    value, loss, weight, bias = fits[l2]
    # Fold the standardisation in: W z + b = (W / sigma) x + (b - (W / sigma) mu).
    raw_weight = weight / std  # (C, D)
    raw_bias = bias - raw_weight @ mean  # (C,)
    ordered = sorted(fits.items(), reverse=True)
    return l2, value, loss, raw_weight, raw_bias, {k: v[0] for k, v in ordered}, {k: v[1] for k, v in ordered}


def load_probe_into_classifier(model: nn.Module, probe: ProbeResult) -> None:
    """Copy the probe into the model's final head layer (shapes must match)."""
    head = get_classifier(model)
    if tuple(head.weight.shape) != tuple(probe.weight.shape):
        raise ValueError(f"Probe weight {tuple(probe.weight.shape)} does not fit head {tuple(head.weight.shape)}.")
    with torch.no_grad():
        head.weight.copy_(probe.weight.to(head.weight.dtype))
        if head.bias is not None:
            head.bias.copy_(probe.bias.to(head.bias.dtype))
