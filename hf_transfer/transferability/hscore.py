"""H-score (Bao et al. 2019): how much of the features' variance the class means explain."""

from __future__ import annotations

import torch

from .labels import class_indices

__all__ = ["h_score"]


def h_score(features: torch.Tensor, labels: torch.Tensor, rtol: float = 1e-10) -> float:
    """H(f) = tr( cov(f)^+ cov(E[f | y]) ): the between-class covariance measured in the metric of the features' own
    covariance (a multi-class Fisher criterion; higher transfers better).

    It is unchanged by any invertible linear map of the features and lies in [0, min(D, C - 1)]. A rank-deficient
    cov(f) (more dimensions than rows, constant features) is inverted in its range (pseudo-inverse): directions in
    which the features do not vary carry no information and add nothing.

    Args:
        features: `(N, D)` features of the target inputs.
        labels: `(N,)` target labels.

    Reference: Bao et al. 2019, "An Information-Theoretic Approach to Transferability in Task Transfer Learning",
    ICIP. https://ieeexplore.ieee.org/document/8803726
    """
    f = features.double()
    f = f - f.mean(0, keepdim=True)
    y = class_indices(labels)
    n = f.shape[0]
    num_classes = int(y.max()) + 1
    sums = torch.zeros(num_classes, f.shape[1], dtype=torch.float64).index_add_(0, y, f)
    means = sums / torch.bincount(y, minlength=num_classes).clamp_min(1).double()[:, None]
    g = means[y]  # E[f | y_i] for every row
    cov_f = f.T @ f / n
    cov_g = g.T @ g / n
    return float(torch.trace(torch.linalg.pinv(cov_f, rtol=rtol, hermitian=True) @ cov_g))
