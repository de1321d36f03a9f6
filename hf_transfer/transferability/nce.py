"""NCE (Tran et al. 2019): the negative conditional entropy of the target labels given the source head's labels."""

from __future__ import annotations

import torch

from .labels import class_indices

__all__ = ["nce"]


def nce(source_labels: torch.Tensor, labels: torch.Tensor) -> float:
    """Negative conditional entropy -H(Y | Z) of target labels Y given hard source labels Z, from the empirical joint.

        NCE = sum_{y, z} P(y, z) log P(y | z)   (<= 0; 0 when the source label determines the target label).

    Args:
        source_labels: `(N,)` the source head's predicted class (argmax) for each target input.
        labels: `(N,)` target labels.

    Reference: Tran et al. 2019, "Transferability and Hardness of Supervised Classification Tasks", ICCV.
    https://arxiv.org/abs/1908.08142
    """
    y, z = class_indices(labels), class_indices(source_labels)
    counts = torch.zeros(int(y.max()) + 1, int(z.max()) + 1, dtype=torch.float64)
    counts.index_put_((y, z), torch.ones(len(y), dtype=torch.float64), accumulate=True)
    joint = counts / counts.sum()
    conditional = counts / counts.sum(0, keepdim=True)
    present = counts > 0
    return float((joint[present] * torch.log(conditional[present])).sum())
