"""`DANNLoss`: a domain discriminator behind gradient reversal (Ganin et al. 2016)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .gradient_reversal import GradientReversal, split_domains

__all__ = ["DANNLoss"]


class DANNLoss(nn.Module):
    """Domain-adversarial loss (DANN): a domain discriminator behind a gradient-reversal layer.

    A discriminator D predicts the domain d ∈ {0 = source, 1 = target} of each feature vector f; the loss is
    its binary cross-entropy

        L_d = - 1/N Σ_i [ d_i log σ(D(R_λ(f_i))) + (1 - d_i) log(1 - σ(D(R_λ(f_i)))) ].

    Minimising L_d trains D to tell the domains apart, while the reversal layer R_λ hands the feature
    extractor the gradient -λ ∂L_d/∂f: the backbone learns features on which D fails, i.e. features whose
    source and target distributions match (an upper bound on target error, Ben-David et al. 2010).

    Args:
        feature_dim (`int`): D, the size of the features (the input size of the classifier head).
        hidden_size (`int`, defaults to 256): width of the discriminator's two hidden layers.
        dropout (`float`, defaults to 0.5): dropout after each hidden layer, as in the paper.
        coefficient (`float`, defaults to 1.0): λ, the scale of the reversed gradient. It is *not* a loss
            weight: the discriminator always gets the full gradient. `DomainAdaptationTrainer` sets it every
            step to `alignment_weight * ganin_coefficient(progress)`.

    Inputs:
        features (`torch.Tensor`, `(N, D)`): source and target rows in any order.
        domain_labels (`torch.Tensor`, `(N,)`): 0 for source rows, 1 for target rows.

    Returns:
        A scalar: the discriminator's mean binary cross-entropy (log 2 ≈ 0.693 at chance).

    References:
        Ganin et al. 2016, "Domain-Adversarial Training of Neural Networks", JMLR 17(59).
        https://arxiv.org/abs/1505.07818

    Relations:
        `CORALLoss` and `MMDLoss` align fixed statistics instead of learning a critic; they have no parameters.

    Example:
        >>> loss_fn = DANNLoss(feature_dim=384, hidden_size=64)
        >>> features = torch.randn(8, 384, requires_grad=True)
        >>> domain_labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
        >>> loss = loss_fn(features, domain_labels)
        >>> loss.backward()  # features.grad is the *reversed* discriminator gradient
    """

    adversarial = True
    citation = """@article{ganin2016domain,
  title={Domain-Adversarial Training of Neural Networks},
  author={Ganin, Yaroslav and Ustinova, Evgeniya and Ajakan, Hana and Germain, Pascal and Larochelle, Hugo and
          Laviolette, Fran{\\c{c}}ois and Marchand, Mario and Lempitsky, Victor},
  journal={Journal of Machine Learning Research},
  volume={17},
  number={59},
  pages={1--35},
  year={2016}
}"""

    def __init__(self, feature_dim: int, hidden_size: int = 256, dropout: float = 0.5, coefficient: float = 1.0):
        super().__init__()
        if feature_dim <= 0 or hidden_size <= 0:
            raise ValueError(f"DANNLoss needs positive feature_dim and hidden_size; got {feature_dim}, {hidden_size}.")
        self.feature_dim = feature_dim
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.gradient_reversal = GradientReversal(coefficient)
        self.discriminator = nn.Sequential(
            nn.Linear(feature_dim, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, 1),
        )

    @property
    def coefficient(self) -> float:
        return self.gradient_reversal.coefficient

    @coefficient.setter
    def coefficient(self, value: float) -> None:
        self.gradient_reversal.coefficient = float(value)

    def domain_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Discriminator logits (N,), > 0 meaning 'target', behind the gradient reversal."""
        return self.discriminator(self.gradient_reversal(features)).squeeze(-1)  # (N, D) -> (N,)

    def forward(self, features: torch.Tensor, domain_labels: torch.Tensor) -> torch.Tensor:
        split_domains(features, domain_labels, "DANNLoss")  # shape and both-domains checks
        logits = self.domain_logits(features.float())  # (N,)
        return nn.functional.binary_cross_entropy_with_logits(logits, domain_labels.to(logits.dtype))

    def get_config_dict(self) -> dict[str, Any]:
        return {"feature_dim": self.feature_dim, "hidden_size": self.hidden_size, "dropout": self.dropout}
