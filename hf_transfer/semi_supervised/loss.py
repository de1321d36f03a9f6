"""`ConsistencyLoss`: FixMatch's unlabelled loss, the strong view's prediction against the weak view's pseudo-label."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..pseudo_labels import PseudoLabels

__all__ = ["ConsistencyLoss"]


class ConsistencyLoss(nn.Module):
    """Masked cross-entropy (single-label) or masked BCE per label (multi-label) between the strong view's logits and
    the pseudo-labels the weak view kept:

        l_u = 1 / (mu B) * sum_b 1[max p_b >= tau_c] * CE(p_strong_b, argmax p_b)

    averaged over every unlabelled row of the batch (FixMatch, Sohn et al. 2020), so rows below their class's
    threshold pull the mean down instead of being dropped from it: the loss grows as the model grows confident.
    Multi-label: the mean over every (row, label) pair of the masked BCE against the 0/1 pseudo-label.

    Args:
        multi_label: several labels per row.

    Inputs: `logits` (N, C) of the strong view; `pseudo` the `PseudoLabels` of the weak view (same rows).
    """

    def __init__(self, multi_label: bool = False) -> None:
        super().__init__()
        self.multi_label = multi_label

    def forward(self, logits: torch.Tensor, pseudo: PseudoLabels) -> torch.Tensor:
        targets, mask = pseudo.targets.to(logits.device), pseudo.mask.to(logits.device).float()
        if self.multi_label:
            per_label = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none")  # (N, C)
            return (per_label * mask).mean()
        per_row = F.cross_entropy(logits, targets.long(), reduction="none")  # (N,)
        return (per_row * mask).mean()

    def get_config_dict(self) -> dict:
        return {"multi_label": self.multi_label}
