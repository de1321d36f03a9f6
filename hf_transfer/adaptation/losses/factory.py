"""`create_alignment_loss`: the alignment loss a domain-adaptation method names."""

from __future__ import annotations

from typing import Literal, Optional

from torch import nn

from .coral import CORALLoss
from .dann import DANNLoss
from .mmd import MMDLoss

__all__ = ["ALIGNMENT_METHODS", "create_alignment_loss"]

ALIGNMENT_METHODS = ("dann", "coral", "mmd")


def create_alignment_loss(
    method: str,
    feature_dim: int,
    *,
    dann_hidden_size: int = 256,
    dann_dropout: float = 0.5,
    mmd_num_kernels: int = 5,
    mmd_kernel_mul: float = 2.0,
    mmd_estimator: Literal["biased", "linear"] = "biased",
) -> Optional[nn.Module]:
    """The alignment loss of `method` (`dann`, `coral`, `mmd`), or None for methods without one."""
    if method == "dann":
        return DANNLoss(feature_dim, hidden_size=dann_hidden_size, dropout=dann_dropout)
    if method == "coral":
        return CORALLoss()
    if method == "mmd":
        return MMDLoss(num_kernels=mmd_num_kernels, kernel_mul=mmd_kernel_mul, estimator=mmd_estimator)
    return None
