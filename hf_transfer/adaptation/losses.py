"""Feature-alignment losses for unsupervised domain adaptation: DANN, Deep CORAL and multi-kernel MMD.

Each loss is a small `nn.Module` that takes a batch of features from both domains and their domain
labels (0 = source, 1 = target) and returns a scalar to *add* to the task loss. They act on whatever
features the classifier head sees (`DomainAdaptationTrainer` captures them with a forward pre-hook on
the head), so they never need to know the backbone.

How strongly the backbone is pushed towards domain-invariant features is one coefficient c, set by the
trainer (`--alignment_weight` times the warm-up `ganin_coefficient(p)` of training progress p):

- `CORALLoss`, `MMDLoss`: the trainer adds `c * loss`;
- `DANNLoss` (`adversarial = True`): the trainer sets `loss.coefficient = c`, the scale of the reversed
  gradient, and adds the loss unscaled, so the domain discriminator always learns at full strength.

References:
    Ganin et al. 2016, "Domain-Adversarial Training of Neural Networks", JMLR 17. https://arxiv.org/abs/1505.07818
    Sun & Saenko 2016, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation". https://arxiv.org/abs/1607.01719
    Long et al. 2015, "Learning Transferable Features with Deep Adaptation Networks" (DAN). https://arxiv.org/abs/1502.02791
    Gretton et al. 2012, "A Kernel Two-Sample Test", JMLR 13.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

import torch
from torch import nn

__all__ = [
    "ALIGNMENT_METHODS",
    "GradientReversal",
    "grad_reverse",
    "ganin_coefficient",
    "DANNLoss",
    "CORALLoss",
    "MMDLoss",
    "create_alignment_loss",
]

ALIGNMENT_METHODS = ("dann", "coral", "mmd")


# --------------------------------------------------------------------------------------------------
# Gradient reversal and its warm-up schedule


class _GradientReversalFunction(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by -coefficient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coefficient * grad_output, None


def grad_reverse(x: torch.Tensor, coefficient: float = 1.0) -> torch.Tensor:
    """`x` unchanged in the forward pass; gradient `-coefficient * g` in the backward pass (Ganin et al. 2016)."""
    return _GradientReversalFunction.apply(x, float(coefficient))


class GradientReversal(nn.Module):
    """The gradient-reversal layer R_λ: R(x) = x, dR/dx = -λ I. `coefficient` is λ and may change between steps."""

    def __init__(self, coefficient: float = 1.0):
        super().__init__()
        self.coefficient = float(coefficient)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.coefficient)

    def extra_repr(self) -> str:
        return f"coefficient={self.coefficient}"


def ganin_coefficient(progress: float, gamma: float = 10.0) -> float:
    """The warm-start schedule λ_p = 2 / (1 + exp(-γ p)) - 1 of Ganin et al. 2016 (sec. 5.2.2, γ = 10).

    `progress` p runs from 0 (first step) to 1 (last step); λ_p rises from 0 to almost 1, so the
    alignment term cannot swamp the task loss while the head is still random.
    """
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def _split_domains(features: torch.Tensor, domain_labels: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if features.dim() != 2:
        raise ValueError(f"{name} takes features of shape (N, D); got {tuple(features.shape)}. Flatten them first.")
    if domain_labels.shape != features.shape[:1]:
        raise ValueError(
            f"{name}: domain_labels must have shape ({features.shape[0]},), one 0 (source) or 1 (target) per row; "
            f"got {tuple(domain_labels.shape)}."
        )
    is_target = domain_labels.bool()
    source, target = features[~is_target], features[is_target]  # (Ns, D), (Nt, D)
    if len(source) < 2 or len(target) < 2:
        raise ValueError(
            f"{name} needs at least 2 source and 2 target rows per batch; got {len(source)} and {len(target)}. "
            "Use a larger --per_device_train_batch_size."
        )
    return source, target


# --------------------------------------------------------------------------------------------------
# DANN


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
        _split_domains(features, domain_labels, "DANNLoss")  # shape and both-domains checks
        logits = self.domain_logits(features.float())  # (N,)
        return nn.functional.binary_cross_entropy_with_logits(logits, domain_labels.to(logits.dtype))

    def get_config_dict(self) -> dict[str, Any]:
        return {"feature_dim": self.feature_dim, "hidden_size": self.hidden_size, "dropout": self.dropout}


# --------------------------------------------------------------------------------------------------
# Deep CORAL


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
        source, target = _split_domains(features.float(), domain_labels, "CORALLoss")  # (Ns, D), (Nt, D)
        d = features.shape[1]
        difference = _covariance(source) - _covariance(target)  # (D, D)
        return difference.pow(2).sum() / (4.0 * d * d)

    def get_config_dict(self) -> dict[str, Any]:
        return {}


# --------------------------------------------------------------------------------------------------
# Multi-kernel MMD (DAN)


class MMDLoss(nn.Module):
    """Multi-kernel maximum mean discrepancy (MK-MMD), the alignment term of DAN.

    The squared MMD between the source rows {x_i} (n of them) and the target rows {y_j} (m) under the
    kernel k = 1/K Σ_u k_u, a mixture of K Gaussian kernels k_u(a, b) = exp(-||a - b||² / (2 σ_u²)):

        biased (V-statistic, default):  MMD² = 1/n² Σ k(x_i, x_i') + 1/m² Σ k(y_j, y_j') - 2/(nm) Σ k(x_i, y_j)
        linear (DAN's O(n) unbiased estimate, n = m):
            MMD² = 2/n Σ_{i=1}^{n/2} [k(x_{2i-1}, x_{2i}) + k(y_{2i-1}, y_{2i}) - k(x_{2i-1}, y_{2i}) - k(x_{2i}, y_{2i-1})]

    Bandwidths: σ_u² = s · kernel_mul^(u - ⌊K/2⌋), u = 0..K-1, around s, the mean pairwise squared distance of
    the pooled batch (computed without gradient), so the kernels adapt to the feature scale. DAN learns the
    kernel weights β_u; like most implementations we use uniform weights 1/K.

    Args:
        num_kernels (`int`, defaults to 5): K, the number of Gaussian kernels.
        kernel_mul (`float`, defaults to 2.0): ratio between neighbouring bandwidths σ_u²
            (5 kernels: s/4, s/2, s, 2s, 4s).
        estimator (`Literal["biased", "linear"]`, defaults to `"biased"`): the quadratic-time biased estimate
            (lower variance) or DAN's linear-time unbiased one (needs equal source and target counts; may be
            negative).

    Inputs:
        features (`torch.Tensor`, `(N, D)`): source and target rows in any order (at least 2 of each).
        domain_labels (`torch.Tensor`, `(N,)`): 0 for source rows, 1 for target rows.

    Returns:
        A scalar, MMD²; zero (biased estimate) when the two batches are identical.

    References:
        Long et al. 2015, "Learning Transferable Features with Deep Adaptation Networks", ICML.
        https://arxiv.org/abs/1502.02791
        Gretton et al. 2012, "A Kernel Two-Sample Test", JMLR 13.

    Example:
        >>> loss_fn = MMDLoss(num_kernels=5, kernel_mul=2.0)
        >>> source, target = torch.randn(8, 16), torch.randn(8, 16) + 1.0
        >>> features = torch.cat([source, target])
        >>> loss_fn(features, torch.tensor([0] * 8 + [1] * 8)) > 0
        tensor(True)
    """

    adversarial = False
    citation = """@inproceedings{long2015learning,
  title={Learning Transferable Features with Deep Adaptation Networks},
  author={Long, Mingsheng and Cao, Yue and Wang, Jianmin and Jordan, Michael I.},
  booktitle={Proceedings of the 32nd International Conference on Machine Learning},
  pages={97--105},
  year={2015}
}"""

    def __init__(
        self, num_kernels: int = 5, kernel_mul: float = 2.0, estimator: Literal["biased", "linear"] = "biased"
    ):
        super().__init__()
        if num_kernels < 1:
            raise ValueError(f"MMDLoss needs num_kernels >= 1; got {num_kernels}.")
        if kernel_mul <= 1.0 and num_kernels > 1:
            raise ValueError(f"MMDLoss needs kernel_mul > 1 to spread {num_kernels} kernels; got {kernel_mul}.")
        if estimator not in ("biased", "linear"):
            raise ValueError(f"MMDLoss estimator must be 'biased' or 'linear'; got {estimator!r}.")
        self.num_kernels = num_kernels
        self.kernel_mul = kernel_mul
        self.estimator = estimator

    def bandwidths(self, squared_distances: torch.Tensor, n: int) -> torch.Tensor:
        """σ_u² for u = 0..K-1 from the mean off-diagonal squared distance of the pooled batch of n rows."""
        base = squared_distances.detach().sum() / (n * n - n)  # mean over i != j
        base = base.clamp(min=1e-12)
        exponents = torch.arange(self.num_kernels, device=base.device, dtype=base.dtype) - self.num_kernels // 2
        return base * self.kernel_mul**exponents  # (K,)

    def kernel(self, squared_distances: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
        """The mixture 1/K Σ_u exp(-d² / (2 σ_u²)), elementwise over any tensor of squared distances."""
        return torch.exp(-squared_distances.unsqueeze(-1) / (2.0 * sigma2)).mean(-1)

    def forward(self, features: torch.Tensor, domain_labels: torch.Tensor) -> torch.Tensor:
        source, target = _split_domains(features.float(), domain_labels, "MMDLoss")  # (n, D), (m, D)
        n, m = len(source), len(target)
        pooled = torch.cat([source, target])  # (n + m, D)
        squared = torch.cdist(pooled, pooled).pow(2)  # (n + m, n + m)
        sigma2 = self.bandwidths(squared, n + m)  # (K,)
        if self.estimator == "biased":
            k = self.kernel(squared, sigma2)  # (n + m, n + m)
            return k[:n, :n].mean() + k[n:, n:].mean() - 2.0 * k[:n, n:].mean()
        if n != m or n < 2:
            raise ValueError(f"The linear MMD estimate needs as many source as target rows; got {n} and {m}.")
        half = n // 2
        x1, x2 = source[0 : 2 * half : 2], source[1 : 2 * half : 2]  # (n/2, D) each
        y1, y2 = target[0 : 2 * half : 2], target[1 : 2 * half : 2]

        def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.kernel((a - b).pow(2).sum(-1), sigma2)  # (n/2,)

        return (k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)).mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {"num_kernels": self.num_kernels, "kernel_mul": self.kernel_mul, "estimator": self.estimator}


# --------------------------------------------------------------------------------------------------
# Factory


def create_alignment_loss(
    method: str,
    feature_dim: int,
    *,
    dann_hidden_size: int = 256,
    dann_dropout: float = 0.5,
    mmd_num_kernels: int = 5,
    mmd_kernel_mul: float = 2.0,
    mmd_estimator: Literal["biased", "linear"] = "biased",
) -> Optional[nn.Module]:
    """The alignment loss of `method` (`dann`, `coral`, `mmd`), or None for methods without one."""
    if method == "dann":
        return DANNLoss(feature_dim, hidden_size=dann_hidden_size, dropout=dann_dropout)
    if method == "coral":
        return CORALLoss()
    if method == "mmd":
        return MMDLoss(num_kernels=mmd_num_kernels, kernel_mul=mmd_kernel_mul, estimator=mmd_estimator)
    return None
