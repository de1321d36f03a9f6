"""NT-Xent (SimCLR / SimCSE): every view identifies its partner among the other 2N - 1 views."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .base import ContrastiveLoss, rows_at
from .temperature import Scale

__all__ = ["NTXentLoss", "ntxent_loss"]


def ntxent_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    scale: Scale,
    offset: int = 0,
    local_size: Optional[int] = None,
) -> torch.Tensor:
    """NT-Xent over the 2N views: each view must pick its partner among the 2N - 1 other views.

    Args:
        anchors: (N, D) first views, the whole (gathered) batch.
        positives: (N, D) second views, row i the partner of `anchors[i]`.
        scale: 1 / temperature.
        offset, local_size: the anchor rows this process scores (`offset : offset + local_size`); all by default.

    Returns:
        The mean over the 2 * local_size scored views of `-log softmax` of the partner's logit.
    """
    n = anchors.shape[0]
    local_size = n if local_size is None else local_size
    z = F.normalize(torch.cat([anchors, positives]), dim=-1)  # (2N, D)
    rows = rows_at(offset, local_size, z.device)  # (B,)
    query_index = torch.cat([rows, rows + n])  # (2B,) positions of the scored views in z
    target = torch.cat([rows + n, rows])  # (2B,) their partners
    # i: scored view, j: candidate view, d: embedding dimension
    logits = torch.einsum("id,jd->ij", z[query_index], z) * scale  # (2B, 2N)
    self_mask = F.one_hot(query_index, num_classes=2 * n).bool()  # (2B, 2N)
    logits = logits.masked_fill(self_mask, float("-inf"))
    return F.cross_entropy(logits, target)


class NTXentLoss(ContrastiveLoss):
    """NT-Xent (normalized temperature-scaled cross-entropy), SimCLR's loss; SimCSE's with dropout views.

    Each sample comes as two views; the 2N views of a batch (of all processes, when gathering) are
    embedded and every view must identify its partner among the other 2N - 1:

        loss = -1/2N * sum_i log( exp(cos(z_i, z_j(i)) / tau) / sum_{k != i} exp(cos(z_i, z_k) / tau) )

    where j(i) is the other view of i's sample. `tau` is the temperature (`scale = 1 / tau` in
    sentence-transformers' terms); lower values weigh hard negatives more.

    Args:
        temperature (`float`): tau (initial value when learnable); SimCLR uses 0.1-0.5, SimCSE 0.05.
        learnable_temperature (`bool`): learn tau like CLIP's logit scale, clamped at `min_temperature`.
        min_temperature (`float`): lower bound of a learnable tau.
        gather_across_processes (`bool`): use the views of all processes as negatives (gradients flow back).

    References:
        Chen et al. 2020 (SimCLR), https://arxiv.org/abs/2002.05709; Gao et al. 2021 (SimCSE),
        https://arxiv.org/abs/2104.08821.

    Inputs:
        | anchors        | positives             | labels  |
        |----------------|-----------------------|---------|
        | (B, D) view 1  | (B, D) view 2         | ignored |

    Relations:
        `InBatchNegativesLoss` uses only the other column as candidates (N - 1 negatives instead of
        2N - 2); `SupConLoss` adds same-class views as positives.

    Raises:
        ConfigError: near-zero temperature (see `Temperature`).

    Example:
        >>> loss = NTXentLoss(temperature=0.1)
        >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> loss(z1, z2).shape
        torch.Size([])
    """

    def forward(
        self, anchors: torch.Tensor, positives: torch.Tensor, labels: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """anchors, positives: (B, D) the two views of B samples. Returns a scalar."""
        (anchors, positives), offset, local_size = self._gather(anchors, positives)  # (N, D) each
        return self.compute_loss_from_embeddings(anchors, positives, offset, local_size)

    def compute_loss_from_embeddings(
        self, anchors: torch.Tensor, positives: torch.Tensor, offset: int = 0, local_size: Optional[int] = None
    ) -> torch.Tensor:
        return ntxent_loss(anchors, positives, self.temperature.scale(), offset, local_size)

    @property
    def citation(self) -> str:
        return """
@inproceedings{chen2020simclr,
  title={A Simple Framework for Contrastive Learning of Visual Representations},
  author={Chen, Ting and Kornblith, Simon and Norouzi, Mohammad and Hinton, Geoffrey},
  booktitle={International Conference on Machine Learning},
  year={2020},
  url={https://arxiv.org/abs/2002.05709}
}
"""
