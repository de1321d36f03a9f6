"""Supervised contrastive loss (SupCon, L_out): all views of a class are positives."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .base import ContrastiveLoss, rows_at
from .temperature import Scale

__all__ = ["SupConLoss", "supcon_loss"]


def supcon_loss(
    anchors: torch.Tensor,
    positives: Optional[torch.Tensor],
    labels: torch.Tensor,
    scale: Scale,
    offset: int = 0,
    local_size: Optional[int] = None,
) -> torch.Tensor:
    """SupCon (Khosla et al. 2020, L_out): every view of the same class is a positive.

    For view i with positives P(i) (same label, i excluded) among all V*N views A:
    `loss_i = -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip * scale) / sum_{a in A, a != i} exp(s_ia * scale) )`.
    Views without any positive (a class seen once, with one view) are left out of the mean.

    Args:
        anchors: (N, D) first views, the whole (gathered) batch.
        positives: (N, D) second views, or None for a single view per sample.
        labels: (N,) integer classes.
        scale: 1 / temperature.
        offset, local_size: the samples this process scores; all by default.
    """
    n = anchors.shape[0]
    local_size = n if local_size is None else local_size
    views = [anchors] if positives is None else [anchors, positives]
    z = F.normalize(torch.cat(views), dim=-1)  # (V*N, D)
    all_labels = labels.reshape(-1).repeat(len(views))  # (V*N,)
    rows = rows_at(offset, local_size, z.device)
    query_index = torch.cat([rows + v * n for v in range(len(views))])  # (V*B,)
    # i: scored view, j: candidate view, d: embedding dimension
    logits = torch.einsum("id,jd->ij", z[query_index], z) * scale  # (V*B, V*N)
    self_mask = F.one_hot(query_index, num_classes=z.shape[0]).bool()  # (V*B, V*N)
    log_prob = logits.masked_fill(self_mask, float("-inf")).log_softmax(dim=-1)  # (V*B, V*N)
    positive_mask = (all_labels[query_index].unsqueeze(1) == all_labels.unsqueeze(0)) & ~self_mask  # (V*B, V*N)
    counts = positive_mask.sum(dim=1)  # (V*B,)
    has_positive = counts > 0
    if not bool(has_positive.any()):
        # Nothing to pull together; keep the graph so every process still runs the same backward.
        return logits.sum() * 0.0
    summed = log_prob.masked_fill(~positive_mask, 0.0).sum(dim=1)  # (V*B,)
    return -(summed[has_positive] / counts[has_positive]).mean()


class SupConLoss(ContrastiveLoss):
    """Supervised contrastive loss (Khosla et al. 2020, L_out): all views of a class are positives.

    With views A of the batch (two per sample here) and P(i) the other views with i's label:

        loss = 1/|A| * sum_i -1/|P(i)| * sum_{p in P(i)} log( exp(cos(z_i, z_p) / tau) / D_i ),
        D_i = sum_{a in A, a != i} exp(cos(z_i, z_a) / tau)

    `tau` is the temperature (`scale = 1 / tau`); the paper uses 0.1. The paper's extra factor
    tau / base_tau is 1 here (base_tau = tau). Without `positives`, each sample is one view and samples
    whose class appears once in the batch are left out of the mean.

    Args:
        temperature (`float`): tau (initial value when learnable).
        learnable_temperature (`bool`): learn tau like CLIP's logit scale, clamped at `min_temperature`.
        min_temperature (`float`): lower bound of a learnable tau.
        gather_across_processes (`bool`): use the views (and labels) of all processes.

    References:
        Khosla et al. 2020, "Supervised Contrastive Learning", https://arxiv.org/abs/2004.11362.

    Requirements:
        Integer class labels for every sample.

    Inputs:
        | anchors       | positives              | labels       |
        |---------------|------------------------|--------------|
        | (B, D) view 1 | (B, D) view 2, or None | (B,) classes |

    Relations:
        With all labels distinct it equals `NTXentLoss`.

    Example:
        >>> loss = SupConLoss(temperature=0.1)
        >>> loss(torch.randn(8, 16), torch.randn(8, 16), torch.tensor([0, 1, 0, 1, 2, 2, 0, 1])).shape
        torch.Size([])
    """

    def forward(
        self, anchors: torch.Tensor, positives: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """anchors, positives: (B, D) views; labels: (B,) classes. Returns a scalar."""
        if labels is None:
            raise ValueError(
                "SupConLoss needs class labels: give the data a label column (the collator passes it as `labels`), "
                "or use NTXentLoss for unlabelled data."
            )
        (anchors, positives, labels), offset, local_size = self._gather(anchors, positives, labels)
        return self.compute_loss_from_embeddings(anchors, positives, labels, offset, local_size)

    def compute_loss_from_embeddings(
        self,
        anchors: torch.Tensor,
        positives: Optional[torch.Tensor],
        labels: torch.Tensor,
        offset: int = 0,
        local_size: Optional[int] = None,
    ) -> torch.Tensor:
        return supcon_loss(anchors, positives, labels, self.temperature.scale(), offset, local_size)

    @property
    def citation(self) -> str:
        return """
@inproceedings{khosla2020supcon,
  title={Supervised Contrastive Learning},
  author={Khosla, Prannay and Teterwak, Piotr and Wang, Chen and Sarna, Aaron and Tian, Yonglong
          and Isola, Phillip and Maschinot, Aaron and Liu, Ce and Krishnan, Dilip},
  booktitle={Advances in Neural Information Processing Systems},
  year={2020},
  url={https://arxiv.org/abs/2004.11362}
}
"""
