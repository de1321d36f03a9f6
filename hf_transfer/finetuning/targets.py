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
    """Mean and standard deviation of the train targets: one number each, or one per target (several targets)."""

    mean: float | tuple[float, ...]
    std: float | tuple[float, ...]

    @classmethod
    def of(cls, targets: Sequence) -> TargetScale:
        values = np.asarray(targets, dtype=np.float64)
        if values.ndim == 1:
            return cls(float(values.mean()), float(values.std()) or 1.0)
        return cls(tuple(map(float, values.mean(0))), tuple(float(s) or 1.0 for s in values.std(0)))

    def tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std as (K,) tensors (K = 1 for one target) on `like`'s device and dtype."""
        mean = torch.as_tensor(np.atleast_1d(self.mean), dtype=like.dtype, device=like.device)
        return mean, torch.as_tensor(np.atleast_1d(self.std), dtype=like.dtype, device=like.device)


class _Scale(nn.Module):
    """`std_k * x_k`: the raw-unit weight rows (or bias entries) of a standardised head, one std per output."""

    def __init__(self, scale: TargetScale):
        super().__init__()
        self.scale = scale

    def _std(self, x: torch.Tensor) -> torch.Tensor:
        std = self.scale.tensors(x)[1]
        return std.view(-1, *([1] * (x.dim() - 1)))  # (K, 1) for a (K, D) weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._std(x)

    def right_inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x / self._std(x)


class _Shift(nn.Module):
    """`std_k * x_k + mean_k`: the raw-unit bias of a standardised head."""

    def __init__(self, scale: TargetScale):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.scale.tensors(x)
        return x * std + mean

    def right_inverse(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.scale.tensors(x)
        return (x - mean) / std


def standardize_target_head(model: nn.Module, scale: TargetScale, *, new_head: bool) -> None:
    """Reparametrise the final Linear of `model` (through peft, the trained copy) for standardised training.

    The head keeps computing what it computes now (a probe's raw-unit head stays exact); a `new_head` instead
    starts at the target mean (standardised bias 0), as a fresh classifier starts at uniform probabilities.
    """
    head = trained_classifier(model)
    parametrize.register_parametrization(head, "weight", _Scale(scale))
    if head.bias is not None:
        parametrize.register_parametrization(head, "bias", _Shift(scale))
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
    """Mean squared error in units of each target's variance, averaged over targets: 1.0 is what predicting the mean
    scores."""
    predictions = predictions.reshape(targets.shape[0], -1).float()
    targets = targets.reshape(targets.shape[0], -1).float()
    std = scale.tensors(predictions)[1]
    return (((predictions - targets) / std) ** 2).mean()
