"""Paired in-batch negatives (InfoNCE): every anchor identifies its positive among all positives of the batch."""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F

from .base import ContrastiveLoss, rows_at
from .temperature import Scale

__all__ = ["InBatchNegativesLoss", "in_batch_negatives_loss"]


def in_batch_negatives_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    scale: Scale,
    symmetric: bool = False,
    offset: int = 0,
    local_size: Optional[int] = None,
) -> torch.Tensor:
    """InfoNCE with in-batch negatives: anchor i must pick positive i among the N positives.

    Args:
        anchors: (N, D) anchor embeddings, the whole (gathered) batch.
        positives: (N, D) positive embeddings, row i paired with `anchors[i]`.
        scale: 1 / temperature.
        symmetric: also make positive i pick anchor i among the N anchors; the two losses are averaged.
        offset, local_size: the rows this process scores; all by default.

    Returns:
        Mean cross-entropy; each scored row has N - 1 in-batch negatives.
    """
    n = anchors.shape[0]
    local_size = n if local_size is None else local_size
    a, p = F.normalize(anchors, dim=-1), F.normalize(positives, dim=-1)  # (N, D) each
    rows = rows_at(offset, local_size, a.device)  # (B,)
    # i: scored anchor, j: candidate positive, d: embedding dimension
    logits = torch.einsum("id,jd->ij", a[rows], p) * scale  # (B, N)
    loss = F.cross_entropy(logits, rows)
    if symmetric:
        logits_back = torch.einsum("id,jd->ij", p[rows], a) * scale  # (B, N)
        loss = (loss + F.cross_entropy(logits_back, rows)) / 2
    return loss


class InBatchNegativesLoss(ContrastiveLoss):
    """InfoNCE with in-batch negatives over (anchor, positive) pairs; sentence-transformers' MNRL.

    Anchor i must pick its own positive among the N positives of the batch (of all processes, when
    gathering), the other N - 1 being negatives:

        loss = -1/N * sum_i log( exp(cos(a_i, p_i) / tau) / sum_j exp(cos(a_i, p_j) / tau) )

    With `symmetric=True` the positive -> anchor direction is added and the two are averaged. `tau` is
    the temperature; sentence-transformers' `scale` is `1 / tau` (its default 20 is tau = 0.05).

    Args:
        temperature (`float`): tau (initial value when learnable); 0.05 matches MNRL's default.
        symmetric (`bool`): average the anchor->positive and positive->anchor losses.
        learnable_temperature (`bool`): learn tau like CLIP's logit scale, clamped at `min_temperature`.
        min_temperature (`float`): lower bound of a learnable tau.
        gather_across_processes (`bool`): use the positives of all processes as negatives, so 2 processes
            with batch B give every anchor 2B - 1 negatives.

    References:
        van den Oord et al. 2018 (InfoNCE), https://arxiv.org/abs/1807.03748; Henderson et al. 2017,
        https://arxiv.org/abs/1705.00652; Gao et al. 2021 (SimCSE), https://arxiv.org/abs/2104.08821.

    Inputs:
        | anchors               | positives                    | labels  |
        |-----------------------|------------------------------|---------|
        | (B, D) anchor / view 1 | (B, D) positive / view 2    | ignored |

    Relations:
        `NTXentLoss` also uses the anchors as negatives of each other (2N - 2 negatives).

    Example:
        >>> loss = InBatchNegativesLoss(temperature=0.05, symmetric=True)
        >>> loss(torch.randn(8, 16), torch.randn(8, 16)).shape
        torch.Size([])
    """

    def __init__(
        self,
        temperature: float = 0.05,
        symmetric: bool = False,
        learnable_temperature: bool = False,
        min_temperature: float = 0.01,
        gather_across_processes: bool = True,
    ):
        super().__init__(temperature, learnable_temperature, min_temperature, gather_across_processes)
        self.symmetric = symmetric

    def forward(
        self, anchors: torch.Tensor, positives: torch.Tensor, labels: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """anchors, positives: (B, D) pairs. Returns a scalar."""
        (anchors, positives), offset, local_size = self._gather(anchors, positives)  # (N, D) each
        return self.compute_loss_from_embeddings(anchors, positives, offset, local_size)

    def compute_loss_from_embeddings(
        self, anchors: torch.Tensor, positives: torch.Tensor, offset: int = 0, local_size: Optional[int] = None
    ) -> torch.Tensor:
        return in_batch_negatives_loss(anchors, positives, self.temperature.scale(), self.symmetric, offset, local_size)

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "symmetric": self.symmetric}

    @property
    def citation(self) -> str:
        return """
@misc{oord2018cpc,
  title={Representation Learning with Contrastive Predictive Coding},
  author={van den Oord, Aaron and Li, Yazhe and Vinyals, Oriol},
  year={2018},
  eprint={1807.03748},
  archivePrefix={arXiv},
  url={https://arxiv.org/abs/1807.03748}
}
"""
