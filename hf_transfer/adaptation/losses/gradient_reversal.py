"""Gradient reversal (identity forward, -c x gradient backward) and its warm-up schedule, as DANN trains."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["GradientReversal", "grad_reverse", "ganin_coefficient", "split_domains"]


class _GradientReversalFunction(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by -coefficient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coefficient * grad_output, None


def grad_reverse(x: torch.Tensor, coefficient: float = 1.0) -> torch.Tensor:
    """`x` unchanged in the forward pass; gradient `-coefficient * g` in the backward pass (Ganin et al. 2016)."""
    return _GradientReversalFunction.apply(x, float(coefficient))


class GradientReversal(nn.Module):
    """The gradient-reversal layer R_λ: R(x) = x, dR/dx = -λ I. `coefficient` is λ and may change between steps."""

    def __init__(self, coefficient: float = 1.0):
        super().__init__()
        self.coefficient = float(coefficient)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.coefficient)

    def extra_repr(self) -> str:
        return f"coefficient={self.coefficient}"


def ganin_coefficient(progress: float, gamma: float = 10.0) -> float:
    """The warm-start schedule λ_p = 2 / (1 + exp(-γ p)) - 1 of Ganin et al. 2016 (sec. 5.2.2, γ = 10).

    `progress` p runs from 0 (first step) to 1 (last step); λ_p rises from 0 to almost 1, so the
    alignment term cannot swamp the task loss while the head is still random.
    """
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def split_domains(features: torch.Tensor, domain_labels: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if features.dim() != 2:
        raise ValueError(f"{name} takes features of shape (N, D); got {tuple(features.shape)}. Flatten them first.")
    if domain_labels.shape != features.shape[:1]:
        raise ValueError(
            f"{name}: domain_labels must have shape ({features.shape[0]},), one 0 (source) or 1 (target) per row; "
            f"got {tuple(domain_labels.shape)}."
        )
    is_target = domain_labels.bool()
    source, target = features[~is_target], features[is_target]  # (Ns, D), (Nt, D)
    if len(source) < 2 or len(target) < 2:
        raise ValueError(
            f"{name} needs at least 2 source and 2 target rows per batch; got {len(source)} and {len(target)}. "
            "Use a larger --per_device_train_batch_size."
        )
    return source, target
