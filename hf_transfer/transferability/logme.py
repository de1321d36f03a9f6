"""LogME (You et al. 2021): the evidence of a Bayesian linear model of the labels on the features."""

from __future__ import annotations

import math

import torch

from .labels import one_hot_targets

__all__ = ["logme", "logme_evidence"]

_GRID_POINTS = 241  # log(lambda) grid of the global search; a golden-section search refines the best point
_GRID_MARGIN = 30.0  # the grid reaches e^30 beyond the squared singular values: both limits within ~1e-13
_GOLDEN_STEPS = 80


class _Basis:
    """F in the basis of its own SVD, truncated to its numerical rank r <= min(N, D): a direction with a zero (or
    rounding-level) singular value carries no feature and is part of the noise only."""

    def __init__(self, features: torch.Tensor) -> None:
        eps = torch.finfo(features.dtype).eps if features.is_floating_point() else torch.finfo(torch.float64).eps
        f = features.double()
        # The maximised evidence does not change when F is scaled (alpha absorbs it); one global scale keeps the
        # numbers in range for features of any magnitude (a random network's can be 1e-20).
        self.scale = float(f.pow(2).mean().sqrt()) or 1.0
        f = f / self.scale
        self.n, self.dim = f.shape
        u, s, _ = torch.linalg.svd(f, full_matrices=False)  # min(N, D) singular values, largest first
        tolerance = float(s[0]) * max(self.n, self.dim) * eps if s.numel() else 0.0
        rank = int((s > tolerance).sum())
        self.u, self.s2 = u[:, :rank], s[:rank] ** 2


def _column_evidence(basis: _Basis, target: torch.Tensor) -> tuple[float, float, float]:
    """(log evidence per row, alpha, beta) of one target column, maximised over alpha and beta."""
    y = target.double()
    n, s2 = basis.n, basis.s2
    z = basis.u.T @ y  # y in the basis of F's left singular vectors
    z2 = z**2
    # The part of y that F cannot reach, from the residual itself: |y|^2 - |z|^2 would leave rounding noise where
    # F reaches everything (rank N), which the search would take for noise to fit.
    outside = float((y - basis.u @ z).pow(2).sum())

    def quadratic(lam: torch.Tensor) -> torch.Tensor:  # Q(lambda) = beta * y^T C^-1 y, for lambda (...,)
        return (z2 * lam[..., None] / (lam[..., None] + s2)).sum(-1) + outside

    def profile(log_lam: torch.Tensor | float) -> torch.Tensor:  # the evidence at the best beta, up to constants
        lam = torch.as_tensor(log_lam, dtype=torch.float64).exp()
        return -torch.log(quadratic(lam).clamp_min(1e-300)) - torch.log1p(s2 / lam[..., None]).sum(-1) / n

    if s2.numel() == 0:  # no feature varies: the model is noise alone (w = 0, alpha infinite)
        lam = torch.tensor(math.inf, dtype=torch.float64)
    else:
        low, high = math.log(float(s2[-1])) - _GRID_MARGIN, math.log(float(s2[0])) + _GRID_MARGIN
        grid = torch.linspace(low, high, _GRID_POINTS, dtype=torch.float64)
        best = int(torch.argmax(profile(grid)))
        a, b = float(grid[max(best - 1, 0)]), float(grid[min(best + 1, _GRID_POINTS - 1)])
        ratio = (math.sqrt(5.0) - 1.0) / 2.0
        for _ in range(_GOLDEN_STEPS):  # golden-section search for the maximum between the grid's neighbours
            c, d = b - ratio * (b - a), a + ratio * (b - a)
            if float(profile(c)) >= float(profile(d)):
                b = d
            else:
                a = c
        lam = torch.tensor((a + b) / 2.0, dtype=torch.float64).exp()
    q = max(float(quadratic(lam)), 1e-300)
    beta = n / q
    log_det = float(torch.log1p(s2 / lam).sum()) if s2.numel() else 0.0
    evidence = -n / 2 * math.log(2 * math.pi / beta) - n / 2 - log_det / 2
    alpha = float(lam) * beta
    return evidence / n, alpha * basis.scale**2, beta  # alpha of the prior on the weights of the unscaled features


def logme_evidence(features: torch.Tensor, target: torch.Tensor) -> tuple[float, float, float]:
    """Maximised log evidence per row of one target column, and the (alpha, beta) that maximise it.

    Model: y = F w + e with prior w ~ N(0, alpha^-1 I) and noise e ~ N(0, beta^-1 I), so the evidence is
    p(y | F, alpha, beta) = N(y; 0, alpha^-1 F F^T + beta^-1 I). With F = U S V^T of rank r <= min(N, D),
    z = U^T y and lambda = alpha / beta, it reads

        log p = N/2 log(beta / 2 pi) - 1/2 sum_i log(1 + s_i^2 / lambda) - beta / 2 Q(lambda),
        Q(lambda) = sum_i z_i^2 lambda / (lambda + s_i^2) + |y|^2 - |z|^2,

    whose best beta is N / Q(lambda). What is left is a smooth function of log(lambda) alone, maximised by a
    grid over the whole range of the singular values and a golden-section refinement. Unlike MacKay's fixed-point
    updates (You et al.'s algorithm), this cannot divide by zero when D >= N: there F can fit y exactly, the best
    beta grows without bound (the evidence itself stays finite) and the updates collapse. The search stops e^30
    past the smallest singular value, where the evidence is within rounding of that limit. One evaluation costs
    O(min(N, D)) after the SVD.
    """
    return _column_evidence(_Basis(features), target)


def logme(features: torch.Tensor, labels: torch.Tensor, regression: bool = False) -> float:
    """LogME: the mean over label columns of the maximised log evidence per row (higher transfers better).

    Classification labels `(N,)` become one-hot columns; regression targets `(N,)` or `(N, T)` are used as they are.
    Any shape works, more dimensions than rows included (few labelled rows, every layer of a model).

    Reference: You et al. 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning", ICML.
    https://arxiv.org/abs/2102.11005
    """
    targets = labels.double().reshape(len(labels), -1) if regression else one_hot_targets(labels)
    basis = _Basis(features)  # one SVD for every column
    return float(sum(_column_evidence(basis, targets[:, j])[0] for j in range(targets.shape[1])) / targets.shape[1])
