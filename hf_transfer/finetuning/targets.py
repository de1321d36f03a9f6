"""Regression heads that train on standardised targets and are saved in raw units.

Targets come in their own units (a count, a score from 0 to 5). Trained on them directly, the head's scale is
the target's: Adam's steps, gradient clipping and the learning rate then mean something different for every data
set. So while training the final Linear is reparametrised (`torch.nn.utils.parametrize`): its weights are
`std * W` and its bias `std * b + mean`, and the optimiser moves `W` and `b`, the head of the standardised problem
(a new head starts at `b = 0`, predicting the mean). The model's output is in raw units throughout, so evaluation,
metrics and every saved checkpoint read raw values; `fold_target_scale` removes the reparametrisation before the
final save, leaving a plain Linear that computes the same thing: the saved model predicts raw units, with no
toolkit code.

The loss is the mean squared error divided by the target variance (the standardised problem's MSE), so its scale,
and gradient clipping, do not depend on the target's units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..models.heads import trained_classifier

__all__ = ["TargetScale", "standardize_target_head", "fold_target_scale", "standardized_mse"]


@dataclass(frozen=True)
class TargetScale:
    """Mean and standard deviation of the train targets."""

    mean: float
    std: float

    @classmethod
    def of(cls, targets: Sequence[float]) -> TargetScale:
        values = np.asarray(targets, dtype=np.float64)
        return cls(float(values.mean()), float(values.std()) or 1.0)


class _Scale(nn.Module):
    """`std * x`: the raw-unit weight of a standardised head."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std

    def right_inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.std


class _Shift(nn.Module):
    """`std * x + mean`: the raw-unit bias of a standardised head."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def right_inverse(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def standardize_target_head(model: nn.Module, scale: TargetScale, *, new_head: bool) -> None:
    """Reparametrise the final Linear of `model` (through peft, the trained copy) for standardised training.

    The head keeps computing what it computes now (a probe's raw-unit head stays exact); a `new_head` instead
    starts at the target mean (standardised bias 0), as a fresh classifier starts at uniform probabilities.
    """
    head = trained_classifier(model)
    parametrize.register_parametrization(head, "weight", _Scale(scale.std))
    if head.bias is not None:
        parametrize.register_parametrization(head, "bias", _Shift(scale.mean, scale.std))
        if new_head:
            with torch.no_grad():
                head.parametrizations.bias.original.zero_()


def fold_target_scale(model: nn.Module) -> None:
    """Remove the reparametrisation, leaving a plain Linear in raw units (before the final save)."""
    head = trained_classifier(model)
    for name in ("weight", "bias"):
        if parametrize.is_parametrized(head, name):
            parametrize.remove_parametrizations(head, name, leave_parametrized=True)


def standardized_mse(predictions: torch.Tensor, targets: torch.Tensor, scale: TargetScale) -> torch.Tensor:
    """Mean squared error in units of the target variance: 1.0 is what predicting the mean scores."""
    predictions = predictions.reshape(targets.shape[0], -1).float()
    targets = targets.reshape(targets.shape[0], -1).float()
    return nn.functional.mse_loss(predictions, targets) / (scale.std**2)
