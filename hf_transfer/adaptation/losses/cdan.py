"""`CDANLoss`: a domain discriminator conditioned on the classifier's predictions (Long et al. 2018)."""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn

from .dann import DANNLoss
from .gradient_reversal import split_domains

__all__ = ["CDANLoss", "multilinear_map"]

# Above this many entries (feature width x classes) the full outer product is replaced by its randomized version.
MAX_MULTILINEAR_DIM = 4096


def multilinear_map(features: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """f ⊗ g, flattened: row i holds g_ik · f_id at position k · D + d. `(N, D), (N, C) -> (N, C·D)`."""
    return (predictions.unsqueeze(2) * features.unsqueeze(1)).flatten(1)


class CDANLoss(nn.Module):
    """Conditional domain-adversarial loss (CDAN, CDAN+E): DANN's discriminator reads features *and* predictions.

    DANN aligns the marginal feature distributions, which can put target rows of one class next to source rows
    of another. CDAN conditions the discriminator on the classifier's prediction g = softmax(logits): it sees
    the multilinear map T(f, g) = f ⊗ g (C·D entries), so aligning makes the joint (feature, class)
    distributions match. For wide features the map is replaced by its randomized version
    T(f, g) = (f R_f) ⊙ (g R_g) / √d with fixed Gaussian R_f (D, d), R_g (C, d), whose inner products equal
    those of f ⊗ g in expectation. The discriminator D sits behind gradient reversal, as in DANN:

        L = - Σ_i w_i [ d_i log σ(D(R_λ(T_i))) + (1 - d_i) log(1 - σ(D(R_λ(T_i)))) ] / Σ_i w_i,

    with w_i = 1 + exp(-H(g_i)) under entropy conditioning (CDAN+E: uncertain rows, whose g says little, count
    less), else w_i = 1. g is treated as a constant, as in the paper's code: the reversed gradient reaches the
    backbone through f only.

    Args:
        feature_dim (`int`): D, the width of the features the head sees.
        num_labels (`int`): C, the number of classes.
        hidden_size (`int`, defaults to 256), dropout (`float`, defaults to 0.5): the discriminator, as `DANNLoss`.
        entropy_conditioning (`bool`, defaults to True): CDAN+E's example weights.
        randomized (`bool`, *optional*): use the randomized map; default: when C·D > 4096.
        randomized_dim (`int`, defaults to 1024): d, the width of the randomized map.
        coefficient (`float`, defaults to 1.0): λ, the scale of the reversed gradient (set by the trainer).

    Inputs:
        features (`torch.Tensor`, `(N, D)`) and logits (`torch.Tensor`, `(N, C)`): source and target rows.
        domain_labels (`torch.Tensor`, `(N,)`): 0 for source rows, 1 for target rows.

    Returns:
        A scalar: the discriminator's (weighted) mean binary cross-entropy (log 2 at chance).

    References:
        Long et al. 2018, "Conditional Adversarial Domain Adaptation", NeurIPS. https://arxiv.org/abs/1705.10667

    Example:
        >>> loss_fn = CDANLoss(feature_dim=16, num_labels=3, hidden_size=8)
        >>> features, logits = torch.randn(8, 16, requires_grad=True), torch.randn(8, 3)
        >>> loss_fn(features, logits, torch.tensor([0] * 4 + [1] * 4)).backward()
    """

    inputs = ("features", "logits")
    adversarial = True
    citation = """@inproceedings{long2018conditional,
  title={Conditional Adversarial Domain Adaptation},
  author={Long, Mingsheng and Cao, Zhangjie and Wang, Jianmin and Jordan, Michael I.},
  booktitle={Advances in Neural Information Processing Systems 31},
  pages={1640--1650},
  year={2018}
}"""

    def __init__(
        self,
        feature_dim: int,
        num_labels: int,
        hidden_size: int = 256,
        dropout: float = 0.5,
        entropy_conditioning: bool = True,
        randomized: Optional[bool] = None,
        randomized_dim: int = 1024,
        coefficient: float = 1.0,
    ):
        super().__init__()
        if feature_dim <= 0 or num_labels <= 0 or randomized_dim <= 0:
            raise ValueError(
                f"CDANLoss needs positive feature_dim, num_labels and randomized_dim; got {feature_dim}, "
                f"{num_labels}, {randomized_dim}."
            )
        self.feature_dim = feature_dim
        self.num_labels = num_labels
        self.entropy_conditioning = entropy_conditioning
        self.randomized = feature_dim * num_labels > MAX_MULTILINEAR_DIM if randomized is None else bool(randomized)
        self.randomized_dim = randomized_dim
        if self.randomized:
            # Fixed projections, saved with the discriminator so a resumed run keeps the same map.
            self.register_buffer("feature_projection", torch.randn(feature_dim, randomized_dim))
            self.register_buffer("prediction_projection", torch.randn(num_labels, randomized_dim))
        map_dim = randomized_dim if self.randomized else feature_dim * num_labels
        self.adversary = DANNLoss(map_dim, hidden_size=hidden_size, dropout=dropout, coefficient=coefficient)

    @property
    def coefficient(self) -> float:
        return self.adversary.coefficient

    @coefficient.setter
    def coefficient(self, value: float) -> None:
        self.adversary.coefficient = value

    def conditional_map(self, features: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        """T(f, g): the multilinear map, or its randomized version. `(N, D), (N, C) -> (N, C·D or d)`."""
        if not self.randomized:
            return multilinear_map(features, predictions)
        projected = (features @ self.feature_projection) * (predictions @ self.prediction_projection)  # (N, d)
        return projected / math.sqrt(self.randomized_dim)

    def forward(self, features: torch.Tensor, logits: torch.Tensor, domain_labels: torch.Tensor) -> torch.Tensor:
        split_domains(features, domain_labels, "CDANLoss")  # shape and both-domains checks
        if logits.shape != (features.shape[0], self.num_labels):
            raise ValueError(
                f"CDANLoss was built for {self.num_labels} classes and {features.shape[0]} rows; got logits of shape "
                f"{tuple(logits.shape)}."
            )
        predictions = torch.softmax(logits.detach().float(), dim=1)  # (N, C), a constant
        domain_logits = self.adversary.domain_logits(self.conditional_map(features.float(), predictions))  # (N,)
        losses = nn.functional.binary_cross_entropy_with_logits(
            domain_logits, domain_labels.to(domain_logits.dtype), reduction="none"
        )  # (N,)
        if not self.entropy_conditioning:
            return losses.mean()
        entropy = -(predictions * torch.log(predictions.clamp_min(1e-12))).sum(dim=1)  # (N,)
        weights = 1.0 + torch.exp(-entropy)
        return (weights * losses).sum() / weights.sum()

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "feature_dim": self.feature_dim,
            "num_labels": self.num_labels,
            "hidden_size": self.adversary.hidden_size,
            "dropout": self.adversary.dropout,
            "entropy_conditioning": self.entropy_conditioning,
            "randomized": self.randomized,
            "randomized_dim": self.randomized_dim,
        }
