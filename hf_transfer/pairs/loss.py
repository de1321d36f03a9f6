"""The pair objective: the cosine similarity of two rows' embeddings regressed onto how much their labels agree."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PairCosineLoss", "label_agreement"]


def label_agreement(labels: torch.Tensor) -> torch.Tensor:
    """(B, B) targets in [0, 1]: 1 for two rows of one class, 0 for two classes; for multi-label 0/1 rows, the
    Jaccard overlap of their label sets (two rows without labels agree)."""
    if labels.dim() == 1:
        return (labels.unsqueeze(0) == labels.unsqueeze(1)).float()
    sets = labels.float()
    shared = sets @ sets.T
    either = sets.sum(1, keepdim=True) + sets.sum(1) - shared
    return torch.where(either > 0, shared / either.clamp(min=1.0), torch.ones_like(shared))


class PairCosineLoss(nn.Module):
    """Mean squared error between cos(u_i, u_j) and the label agreement of rows i and j, over every pair of a batch.

    SetFit draws separate (a, b) pairs and embeds both sides; scoring all B(B-1)/2 pairs of B embedded rows gives
    far more pairs per forward pass. Pairs that agree and pairs that do not are weighted half and half, so a batch of
    many classes (mostly disagreeing pairs) still pulls each class together, as SetFit's balanced sampling does.
    """

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = F.normalize(embeddings.float(), dim=-1)
        cosine = z @ z.T  # (B, B)
        target = label_agreement(labels).to(cosine.device)
        upper = torch.triu(torch.ones_like(cosine, dtype=torch.bool), diagonal=1)
        errors = (cosine - target).pow(2)
        agree = upper & (target > 0)
        disagree = upper & (target == 0)
        parts = [errors[mask].mean() for mask in (agree, disagree) if mask.any()]
        if not parts:  # a batch of one row: no pair
            return cosine.sum() * 0.0
        return torch.stack(parts).mean()
