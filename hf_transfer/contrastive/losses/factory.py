"""`create_contrastive_loss`: the loss `ContrastiveArguments` names, with its temperature and gather settings."""

from __future__ import annotations

from typing import Any

from torch import nn

from .registry import CONTRASTIVE_LOSSES

__all__ = ["create_contrastive_loss"]


def create_contrastive_loss(args: Any) -> nn.Module:
    """The loss named by `ContrastiveArguments.contrastive_loss` (an unknown name is a `ConfigError`), with its
    temperature and gather settings."""
    entry = CONTRASTIVE_LOSSES.get(args.contrastive_loss)
    kwargs: dict[str, Any] = dict(
        temperature=args.temperature,
        learnable_temperature=args.learnable_temperature,
        min_temperature=args.min_temperature,
        gather_across_processes=args.gather_across_processes,
    )
    if entry.has_symmetric_option:
        kwargs["symmetric"] = args.symmetric
    return entry.loss_class(**kwargs)
