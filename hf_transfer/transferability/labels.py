"""Label helpers shared by the transferability scores."""

from __future__ import annotations

import torch

__all__ = ["one_hot_targets", "class_indices"]


def class_indices(labels: torch.Tensor) -> torch.Tensor:
    """Labels `(N,)` as 0..C-1 in order of first value, so scores never depend on how classes are numbered."""
    _, indices = torch.unique(labels.long(), return_inverse=True)
    return indices


def one_hot_targets(labels: torch.Tensor) -> torch.Tensor:
    """`(N, C)` float64 one-hot columns of the classes present in `labels`."""
    indices = class_indices(labels)
    return torch.nn.functional.one_hot(indices, int(indices.max()) + 1).double()
