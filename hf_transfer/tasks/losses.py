"""The training losses a task computes as a batch mean (`Task.batch_mean_loss`), rather than the model's own.

`Trainer` scales a model's loss for gradient accumulation and the number of processes; a stock multi-label loss was
summed over the accumulated micro-batches. These are per-batch means, which `TransferTrainer` tells `Trainer`
(`loss_is_scaled_for_ga = False`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["regression_loss", "multi_label_loss", "soft_target_loss"]


def regression_loss(logits: torch.Tensor, labels: torch.Tensor, target_scale: Optional[object] = None) -> torch.Tensor:
    """Mean squared error; on standardised targets when the head trains on them (`target_scale`)."""
    if target_scale is not None:
        from ..finetuning.targets import standardized_mse

        return standardized_mse(logits, labels, target_scale)
    return F.mse_loss(logits.view_as(labels).float(), labels.float())


def multi_label_loss(logits: torch.Tensor, labels: torch.Tensor, target_scale: Optional[object] = None) -> torch.Tensor:
    """Binary cross-entropy per label, averaged over labels and rows (labels are 0 / 1, or mixed soft targets)."""
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def soft_target_loss(logits: torch.Tensor, labels: torch.Tensor, target_scale: Optional[object] = None) -> torch.Tensor:
    """Cross-entropy against soft targets `(B, C)` (Mixup / CutMix of one-class rows)."""
    return torch.sum(-labels * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
