"""LEEP (Nguyen et al. 2020): how well the source head's predictions, re-labelled empirically, predict the target."""

from __future__ import annotations

import torch

from .labels import class_indices

__all__ = ["leep"]


def leep(source_probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    """Log Expected Empirical Prediction: the mean log-likelihood of a classifier built from the source head alone.

    With theta(x) the source head's distribution over its own classes z, the empirical joint of target label y and
    source label z is P(y, z) = 1/n sum_{i: y_i = y} theta(x_i)_z, which gives P(y | z) = P(y, z) / P(z). The
    "expected empirical predictor" says p(y | x) = sum_z P(y | z) theta(x)_z, and

        LEEP = 1/n sum_i log( sum_z P(y_i | z) theta(x_i)_z )   (<= 0; higher transfers better).

    Args:
        source_probabilities: `(N, Z)` softmax outputs of the pretrained (source) head on the target inputs.
        labels: `(N,)` target labels.

    Reference: Nguyen et al. 2020, "LEEP: A New Measure to Evaluate Transferability of Learned Representations",
    ICML. https://arxiv.org/abs/2002.12462
    """
    theta = source_probabilities.double()
    y = class_indices(labels)
    n = theta.shape[0]
    joint = torch.zeros(int(y.max()) + 1, theta.shape[1], dtype=torch.float64).index_add_(0, y, theta) / n  # (C, Z)
    conditional = joint / joint.sum(0, keepdim=True).clamp_min(1e-300)  # P(y | z)
    expected = (theta * conditional[y]).sum(1)  # p(y_i | x_i)
    return float(torch.log(expected.clamp_min(1e-300)).mean())
