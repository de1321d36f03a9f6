"""Contrastive losses on embeddings: NT-Xent (SimCLR / SimCSE), paired in-batch negatives, SupCon.

Every loss is a small `nn.Module` whose `forward(anchors, positives, labels=None)` takes embeddings
(never a backbone), optionally gathers them from all processes (`gather_across_processes`), and hands
off to `compute_loss_from_embeddings`, a function of embeddings only that is easy to test. Similarities
are cosines; logits are `cos / temperature`. sentence-transformers calls the same factor `scale`:
`scale = 1 / temperature`, so its `scale=20` is `temperature=0.05` here.

With several processes each process computes the loss of its own anchors against the candidates of
*all* processes (its local rows sit at `offset` in the gathered batch); the mean of these per-process
losses, which DDP's gradient averaging optimises, is exactly the loss of one process holding the whole
global batch.

References:
    - Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations" (SimCLR,
      NT-Xent), https://arxiv.org/abs/2002.05709
    - van den Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding" (InfoNCE),
      https://arxiv.org/abs/1807.03748
    - Gao et al. 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings",
      https://arxiv.org/abs/2104.08821
    - Khosla et al. 2020, "Supervised Contrastive Learning" (SupCon), https://arxiv.org/abs/2004.11362
    - Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision" (CLIP's
      learnable, clamped logit scale), https://arxiv.org/abs/2103.00020
    - lightly's `NTXentLoss` (lightly/loss/ntx_ent_loss.py), sentence-transformers' `MultipleNegativesRankingLoss`.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..constants import MIN_TEMPERATURE
from ..errors import ConfigError
from .distributed import gather_with_grad

__all__ = [
    "MIN_TEMPERATURE",
    "Temperature",
    "NTXentLoss",
    "InBatchNegativesLoss",
    "SupConLoss",
    "ntxent_loss",
    "in_batch_negatives_loss",
    "supcon_loss",
    "create_contrastive_loss",
]

Scale = Union[float, torch.Tensor]


class Temperature(nn.Module):
    """The softmax temperature tau of a contrastive loss, fixed or learnable.

    Logits are `cos(z_i, z_j) / tau`, i.e. `cos * scale` with `scale = 1 / tau`. A learnable temperature
    is CLIP's `logit_scale`: the parameter is `log(1 / tau)`, initialised from `temperature`, and the
    scale used is clamped to `[1, 1 / min_temperature]` (tau in `[min_temperature, 1]`; CLIP's 100 is
    `min_temperature=0.01`), so it can neither collapse to a hard max nor blow up the logits. Outside the
    clamp the gradient is zero, so the parameter stops there. Exclude it from weight decay (the
    `ContrastiveTrainer` does), or decay pulls it towards tau = 1.

    Args:
        temperature (`float`): tau, or its initial value when learnable. At least `MIN_TEMPERATURE` (1e-3).
        learnable (`bool`): learn tau with the model.
        min_temperature (`float`): lower clamp of a learnable tau; in `(0, temperature]`.

    Raises:
        ConfigError: near-zero or non-finite temperature, or `min_temperature` out of range.
    """

    def __init__(self, temperature: float = 0.1, learnable: bool = False, min_temperature: float = 0.01):
        super().__init__()
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)) or temperature < MIN_TEMPERATURE:
            raise ConfigError(
                f"temperature must be a finite number >= {MIN_TEMPERATURE}; got {temperature!r}. A near-zero "
                "temperature turns the softmax into a hard max and overflows the logits: use 0.05-0.5 "
                "(SimCSE 0.05, SupCon 0.1, SimCLR 0.1-0.5)."
            )
        if learnable and not 0.0 < min_temperature <= temperature:
            raise ConfigError(
                f"min_temperature must be in (0, temperature={temperature}] for a learnable temperature; got "
                f"{min_temperature}. CLIP uses 0.01 (logit scale at most 100)."
            )
        self.initial_temperature = float(temperature)
        self.learnable = bool(learnable)
        self.min_temperature = float(min_temperature)
        if self.learnable:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        else:
            self.register_parameter("logit_scale", None)

    def scale(self) -> Scale:
        """`1 / tau` (a tensor when learnable, so gradients reach `logit_scale`)."""
        if not self.learnable:
            return 1.0 / self.initial_temperature
        return self.logit_scale.exp().clamp(min=1.0, max=1.0 / self.min_temperature)

    @property
    def value(self) -> float:
        """The temperature in use now, as a number."""
        scale = self.scale()
        return float(1.0 / (scale.detach() if isinstance(scale, torch.Tensor) else scale))

    def get_config_dict(self) -> dict[str, Any]:
        config = {"temperature": self.initial_temperature, "learnable_temperature": self.learnable}
        if self.learnable:
            config["min_temperature"] = self.min_temperature
        return config

    def extra_repr(self) -> str:
        return f"temperature={self.value:.4g}, learnable={self.learnable}"


def _rows(offset: int, count: int, device: torch.device) -> torch.Tensor:
    return torch.arange(offset, offset + count, device=device)


# --------------------------------------------------------------------------------------------------
# Functions of embeddings only


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
    rows = _rows(offset, local_size, z.device)  # (B,)
    query_index = torch.cat([rows, rows + n])  # (2B,) positions of the scored views in z
    target = torch.cat([rows + n, rows])  # (2B,) their partners
    # i: scored view, j: candidate view, d: embedding dimension
    logits = torch.einsum("id,jd->ij", z[query_index], z) * scale  # (2B, 2N)
    self_mask = F.one_hot(query_index, num_classes=2 * n).bool()  # (2B, 2N)
    logits = logits.masked_fill(self_mask, float("-inf"))
    return F.cross_entropy(logits, target)


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
    rows = _rows(offset, local_size, a.device)  # (B,)
    # i: scored anchor, j: candidate positive, d: embedding dimension
    logits = torch.einsum("id,jd->ij", a[rows], p) * scale  # (B, N)
    loss = F.cross_entropy(logits, rows)
    if symmetric:
        logits_back = torch.einsum("id,jd->ij", p[rows], a) * scale  # (B, N)
        loss = (loss + F.cross_entropy(logits_back, rows)) / 2
    return loss


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
    rows = _rows(offset, local_size, z.device)
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


# --------------------------------------------------------------------------------------------------
# Modules


class _ContrastiveLoss(nn.Module):
    """Shared parts: the temperature and the cross-process gather."""

    def __init__(
        self,
        temperature: float = 0.1,
        learnable_temperature: bool = False,
        min_temperature: float = 0.01,
        gather_across_processes: bool = True,
    ):
        super().__init__()
        self.temperature = Temperature(temperature, learnable_temperature, min_temperature)
        self.gather_across_processes = gather_across_processes

    def _gather(self, *tensors: Optional[torch.Tensor]) -> tuple[list[Optional[torch.Tensor]], int, int]:
        """Gather the (B, ...) tensors of all processes in one call; returns them, the offset and B."""
        present = [t for t in tensors if t is not None]
        local_size = present[0].shape[0]
        if not self.gather_across_processes:
            return list(tensors), 0, local_size
        widths = [t.shape[1] if t.ndim > 1 else 1 for t in present]
        dtype = torch.promote_types(present[0].dtype, torch.float32)
        packed = torch.cat([t.reshape(local_size, -1).to(dtype) for t in present], dim=1)  # (B, sum widths)
        gathered, offset = gather_with_grad(packed)
        pieces = list(torch.split(gathered, widths, dim=1))
        out: list[Optional[torch.Tensor]] = []
        for t in tensors:
            if t is None:
                out.append(None)
                continue
            piece = pieces.pop(0)
            out.append(piece.reshape(-1, *t.shape[1:]).to(t.dtype))
        return out, offset, local_size

    def get_config_dict(self) -> dict[str, Any]:
        return {**self.temperature.get_config_dict(), "gather_across_processes": self.gather_across_processes}


class NTXentLoss(_ContrastiveLoss):
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


class InBatchNegativesLoss(_ContrastiveLoss):
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


class SupConLoss(_ContrastiveLoss):
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
