"""`MCCLoss`: minimum class confusion on the target predictions (Jin et al. 2020)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .gradient_reversal import split_domains

__all__ = ["MCCLoss"]


class MCCLoss(nn.Module):
    """Minimum Class Confusion: penalise target predictions that spread their mass over several classes.

    It acts on the classifier's *target logits* only (no features, no source rows). With temperature T,
    the target predictions ŷ_i = softmax(z_i / T) (B rows, C classes) give

        w_i = B (1 + exp(-H(ŷ_i))) / Σ_j (1 + exp(-H(ŷ_j)))     (confident rows weigh more; H is the entropy,
                                                                  treated as a constant)
        M   = Ŷᵀ diag(w) Ŷ                                       (C, C): class correlation, M_jk large when
                                                                  rows are split between classes j and k
        M̃_jk = M_jk / Σ_k' M_jk'                                 (each row normalised, so rare classes count)
        L_MCC = 1/C Σ_{j ≠ k} M̃_jk.

    One-hot predictions have no confusion (0); uniform predictions have the most, (C - 1) / C. Unlike the
    feature-alignment losses it needs no source statistics, so it also works when the class priors of the domains
    differ (a discriminator or a kernel would then align the wrong things).

    Args:
        temperature (`float`, defaults to 2.5): T; > 1 softens over-confident predictions so the confusion between
            the top classes is visible (the paper uses 2.5-3).

    Inputs:
        logits (`torch.Tensor`, `(N, C)`): the task head's logits for source and target rows in any order.
        domain_labels (`torch.Tensor`, `(N,)`): 0 for source rows, 1 for target rows (only target rows count).

    Returns:
        A scalar in [0, (C - 1) / C].

    References:
        Jin et al. 2020, "Minimum Class Confusion for Versatile Domain Adaptation", ECCV.
        https://arxiv.org/abs/1912.03699

    Example:
        >>> loss_fn = MCCLoss(temperature=2.5)
        >>> logits = torch.randn(8, 5, requires_grad=True)
        >>> loss_fn(logits, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])).backward()
    """

    inputs = ("logits",)
    adversarial = False
    citation = """@inproceedings{jin2020minimum,
  title={Minimum Class Confusion for Versatile Domain Adaptation},
  author={Jin, Ying and Wang, Ximei and Long, Mingsheng and Wang, Jianmin},
  booktitle={Computer Vision -- ECCV 2020},
  pages={464--480},
  year={2020}
}"""

    def __init__(self, temperature: float = 2.5):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"MCCLoss needs a positive temperature; got {temperature}.")
        self.temperature = float(temperature)

    def forward(self, logits: torch.Tensor, domain_labels: torch.Tensor) -> torch.Tensor:
        _, target = split_domains(logits.float(), domain_labels, "MCCLoss")  # (B, C)
        batch_size, num_classes = target.shape
        probabilities = torch.softmax(target / self.temperature, dim=1)  # (B, C)
        entropy = -(probabilities * torch.log(probabilities.clamp_min(1e-12))).sum(dim=1).detach()  # (B,)
        weights = 1.0 + torch.exp(-entropy)
        weights = batch_size * weights / weights.sum()  # (B,), mean 1
        confusion = (probabilities * weights.unsqueeze(1)).T @ probabilities  # (C, C)
        confusion = confusion / confusion.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return (confusion.sum() - confusion.trace()) / num_classes

    def get_config_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature}
