"""LogME (You et al. 2021): the evidence of a Bayesian linear model of the labels on the features."""

from __future__ import annotations

import math

import torch

from .labels import one_hot_targets

__all__ = ["logme", "logme_evidence"]


def logme_evidence(features: torch.Tensor, target: torch.Tensor, max_iter: int = 100, tol: float = 1e-5) -> tuple:
    """Maximised log evidence per row of one target column, and the (alpha, beta) that maximise it.

    Model: y = F w + e with prior w ~ N(0, alpha^-1 I) and noise e ~ N(0, beta^-1 I). The evidence
    p(y | F, alpha, beta) = N(y; 0, alpha^-1 F F^T + beta^-1 I) is maximised by the fixed point of MacKay's updates

        gamma = sum_i beta s_i^2 / (alpha + beta s_i^2),   alpha <- gamma / |m|^2,   beta <- (n - gamma) / |y - F m|^2,

    with s_i the singular values of F and m the posterior mean of w. Everything runs in the SVD basis of F, so one
    iteration costs O(n min(n, D)) whichever of n, D is larger.
    """
    features = features.double()
    # The maximised evidence does not change when F is scaled (alpha absorbs it); one global scale keeps the
    # iteration in range for features of any magnitude (a random network's can be 1e-20).
    scale = float(features.pow(2).mean().sqrt()) or 1.0
    features = features / scale
    target = target.double()
    n, dim = features.shape
    u, s, _ = torch.linalg.svd(features, full_matrices=False)  # k = min(n, D) singular values
    s2 = s**2
    z = u.T @ target  # y in the basis of F's left singular vectors
    residual_outside = float(target @ target - z @ z)  # the part of y that F cannot reach
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        shrink = beta * s2 / (alpha + beta * s2)
        gamma = float(shrink.sum())
        m_norm2 = float(((beta * s * z / (alpha + beta * s2)) ** 2).sum())
        fit_error = float((((shrink - 1.0) * z) ** 2).sum()) + residual_outside
        new_alpha = gamma / max(m_norm2, 1e-300)
        new_beta = (n - gamma) / max(fit_error, 1e-300)
        converged = abs(new_alpha / alpha - 1.0) < tol and abs(new_beta / beta - 1.0) < tol
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    shrink = beta * s2 / (alpha + beta * s2)
    m_norm2 = float(((beta * s * z / (alpha + beta * s2)) ** 2).sum())
    fit_error = float((((shrink - 1.0) * z) ** 2).sum()) + residual_outside
    # log|alpha I + beta F^T F|: D - k directions of F^T F have eigenvalue 0.
    log_det = float(torch.log(alpha + beta * s2).sum()) + (dim - s.numel()) * math.log(alpha)
    evidence = (
        n / 2 * math.log(beta)
        + dim / 2 * math.log(alpha)
        - n / 2 * math.log(2 * math.pi)
        - beta / 2 * fit_error
        - alpha / 2 * m_norm2
        - log_det / 2
    )
    return evidence / n, alpha * scale**2, beta  # alpha of the prior on the weights of the unscaled features


def logme(features: torch.Tensor, labels: torch.Tensor, regression: bool = False) -> float:
    """LogME: the mean over label columns of the maximised log evidence per row (higher transfers better).

    Classification labels `(N,)` become one-hot columns; regression targets `(N,)` or `(N, T)` are used as they are.

    Reference: You et al. 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning", ICML.
    https://arxiv.org/abs/2102.11005
    """
    targets = labels.double().reshape(len(labels), -1) if regression else one_hot_targets(labels)
    return float(sum(logme_evidence(features, targets[:, j])[0] for j in range(targets.shape[1])) / targets.shape[1])
