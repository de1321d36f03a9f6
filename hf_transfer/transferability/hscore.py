"""H-score (Bao et al. 2019): how much of the features' variance the class means explain; with the feature covariance
shrunk (Ibrahim et al. 2021), so it stays meaningful when there are few rows for many dimensions."""

from __future__ import annotations

from typing import Union

import torch

from .labels import class_indices

__all__ = ["h_score", "ledoit_wolf_shrinkage"]


def ledoit_wolf_shrinkage(centered: torch.Tensor) -> float:
    """The Ledoit-Wolf (2004) weight s of the target mu I in (1 - s) S + s mu I, for centered rows `(N, D)`.

    s = b^2 / d^2 with d^2 = ||S - mu I||_F^2 / D (how far S is from the scaled identity) and b^2 = min(d^2, the
    estimated variance of S around the true covariance, 1/N^2 sum_i ||x_i x_i^T - S||_F^2 / D).
    """
    x = centered.double()
    n, dim = x.shape
    s = x.T @ x / n
    mu = float(torch.trace(s)) / dim
    d2 = float(((s - mu * torch.eye(dim, dtype=x.dtype)) ** 2).sum()) / dim
    if d2 <= 0.0:
        return 0.0
    # sum_i ||x_i x_i^T - S||_F^2 = sum_i |x_i|^4 - N ||S||_F^2
    row_norms = (x**2).sum(1)
    b2 = (float((row_norms**2).sum()) - n * float((s**2).sum())) / (n**2 * dim)
    return min(max(b2, 0.0), d2) / d2


def h_score(features: torch.Tensor, labels: torch.Tensor, shrinkage: Union[str, float] = "ledoit_wolf") -> float:
    """H(f) = tr( cov(f)^-1 cov(E[f | y]) ): the between-class covariance measured in the metric of the features' own
    covariance (a multi-class Fisher criterion; higher transfers better).

    The plain score (`shrinkage=0`, Bao et al.) is unchanged by any invertible linear map of the features and lies
    in [0, min(D, C - 1)]; with D near or above N the sample covariance is (nearly) singular and every candidate
    scores close to C - 1. By default (Ibrahim et al.'s regularised H-score) cov(f) is shrunk towards a scaled
    identity with the Ledoit-Wolf weight s, (1 - s) cov(f) + s mu I, and the between-class covariance scaled by the
    same (1 - s); `shrinkage` may also be a fixed weight in [0, 1]. A singular covariance is inverted in
    its range (pseudo-inverse): directions in which the features do not vary add nothing.

    Args:
        features: `(N, D)` features of the target inputs.
        labels: `(N,)` target labels.
        shrinkage: `"ledoit_wolf"` or a weight in [0, 1] (0: the original H-score).

    References:
        Bao et al. 2019, "An Information-Theoretic Approach to Transferability in Task Transfer Learning", ICIP.
        Ibrahim et al. 2021, "Newer is not always better: Rethinking transferability metrics, their peculiarities,
        stability and performance", https://openreview.net/pdf?id=iz_Wwmfquno
    """
    f = features.double()
    f = f - f.mean(0, keepdim=True)
    y = class_indices(labels)
    n, dim = f.shape
    num_classes = int(y.max()) + 1
    sums = torch.zeros(num_classes, dim, dtype=torch.float64).index_add_(0, y, f)
    means = sums / torch.bincount(y, minlength=num_classes).clamp_min(1).double()[:, None]
    g = means[y]  # E[f | y_i] for every row
    cov_f = f.T @ f / n
    cov_g = g.T @ g / n
    weight = ledoit_wolf_shrinkage(f) if shrinkage == "ledoit_wolf" else float(shrinkage)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"shrinkage must be 'ledoit_wolf' or a weight in [0, 1]; got {shrinkage!r}.")
    if weight > 0.0:  # both covariances shrink by (1 - s): the class means explain the same share of the variance
        mu = float(torch.trace(cov_f)) / dim
        cov_f = (1.0 - weight) * cov_f + weight * mu * torch.eye(dim, dtype=torch.float64)
        cov_g = (1.0 - weight) * cov_g
    return float(torch.trace(torch.linalg.pinv(cov_f, rtol=1e-10, hermitian=True) @ cov_g))
