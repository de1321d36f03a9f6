"""`create_contrastive_loss`: the loss `ContrastiveArguments` names, with its temperature and gather settings."""

from __future__ import annotations

from typing import Any

from torch import nn

from .in_batch_negatives import InBatchNegativesLoss
from .ntxent import NTXentLoss
from .supcon import SupConLoss

__all__ = ["create_contrastive_loss"]


def create_contrastive_loss(args: Any) -> nn.Module:
    """The loss named by `ContrastiveArguments.contrastive_loss`, with its temperature and gather settings."""
    common: dict[str, Any] = dict(
        temperature=args.temperature,
        learnable_temperature=args.learnable_temperature,
        min_temperature=args.min_temperature,
        gather_across_processes=args.gather_across_processes,
    )
    if args.contrastive_loss == "in_batch":
        return InBatchNegativesLoss(symmetric=args.symmetric, **common)
    if args.contrastive_loss == "supcon":
        return SupConLoss(**common)
    return NTXentLoss(**common)
