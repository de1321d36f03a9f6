"""`CORALLoss`: the distance between the two domains' feature covariances (Deep CORAL, Sun & Saenko 2016)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .gradient_reversal import split_domains

__all__ = ["CORALLoss"]


def _covariance(x: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance of the rows of x (N, D) -> (D, D)."""
    centered = x - x.mean(0, keepdim=True)  # (N, D)
    return centered.T @ centered / (x.shape[0] - 1)  # (D, D)


class CORALLoss(nn.Module):
    """Deep CORAL: match the second-order statistics (covariances) of source and target features.

        L_CORAL = 1 / (4 D²) · || C_S - C_T ||²_F,

    where C_S, C_T are the unbiased (D, D) feature covariances of the source and the target rows of the
    batch, C = (Xᵀ X - (1ᵀ X)ᵀ (1ᵀ X) / n) / (n - 1). The loss is invariant to a shift of either domain
    (covariances are centred) and zero when the two batches have equal covariances.

    Args:
        none: the method has no hyperparameter besides its weight λ (`--alignment_weight`); the paper picks λ
            so that the CORAL and classification losses are about equal at the end of training.

    Inputs:
        features (`torch.Tensor`, `(N, D)`): source and target rows in any order (at least 2 of each).
        domain_labels (`torch.Tensor`, `(N,)`): 0 for source rows, 1 for target rows.

    Returns:
        A non-negative scalar.

    References:
        Sun & Saenko 2016, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation", ECCV Workshops.
        https://arxiv.org/abs/1607.01719

    Relations:
        `MMDLoss` with a linear kernel matches first moments; CORAL matches second moments; a Gaussian-kernel
        MMD matches all moments.

    Example:
        >>> loss_fn = CORALLoss()
        >>> features = torch.randn(8, 16)
        >>> loss_fn(features, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])).shape
        torch.Size([])
    """

    adversarial = False
    citation = """@inproceedings{sun2016deep,
  title={Deep {CORAL}: Correlation Alignment for Deep Domain Adaptation},
  author={Sun, Baochen and Saenko, Kate},
  booktitle={Computer Vision -- ECCV 2016 Workshops},
  pages={443--450},
  year={2016}
}"""

    def forward(self, features: torch.Tensor, domain_labels: torch.Tensor) -> torch.Tensor:
        source, target = split_domains(features.float(), domain_labels, "CORALLoss")  # (Ns, D), (Nt, D)
        d = features.shape[1]
        difference = _covariance(source) - _covariance(target)  # (D, D)
        return difference.pow(2).sum() / (4.0 * d * d)

    def get_config_dict(self) -> dict[str, Any]:
        return {}
