"""The order rows are batched in for pair training: batches that always hold pairs of a class."""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from ..processing.labels import multi_hot

__all__ = ["ClassBalancedOrder", "as_class_array", "row_label_tensor"]


class ClassBalancedOrder(Sampler[int]):
    """Row indices in consecutive batches of `batch_size`, each made of a few classes with two or more rows each
    (P classes x K rows, as in metric learning), so every batch has pairs that agree however many classes there are.
    Each pass covers about every row once (a class with few rows is drawn again). Multi-label rows (`classes` None)
    are shuffled plainly. `Trainer` cuts the order into batches of the same `batch_size`."""

    def __init__(self, num_rows: int, batch_size: int, classes: Optional[np.ndarray], seed: int) -> None:
        self.num_rows, self.batch_size, self.classes, self.seed = num_rows, batch_size, classes, seed
        self.epoch = 0
        self.batches = max(1, -(-num_rows // batch_size))

    def __len__(self) -> int:
        return self.batches * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        if self.classes is None:
            order = np.concatenate([rng.permutation(self.num_rows) for _ in range(-(-len(self) // self.num_rows))])
            return iter(order[: len(self)].tolist())
        members = {c: np.flatnonzero(self.classes == c) for c in np.unique(self.classes)}
        per_class = max(2, self.batch_size // max(1, min(len(members), self.batch_size // 2)))
        order: list[int] = []
        for _ in range(self.batches):
            chosen = rng.permutation(list(members))[: max(1, self.batch_size // per_class)]
            batch = np.concatenate(
                [rng.choice(members[c], per_class, replace=len(members[c]) < per_class) for c in chosen]
            )
            batch = np.concatenate([batch, rng.choice(self.num_rows, self.batch_size - len(batch))])  # fill up
            order.extend(rng.permutation(batch).tolist())
        return iter(order)


def as_class_array(labels: torch.Tensor) -> Optional[np.ndarray]:
    """Row classes for `ClassBalancedOrder`: the ids of single-label rows, None for multi-label 0/1 rows."""
    return labels.numpy() if labels.dim() == 1 else None


def row_label_tensor(labels: Sequence[Any], num_labels: int) -> torch.Tensor:
    """A `label` column as pair training reads it: class ids (N,), or 0/1 rows (N, num_labels) of label-id lists."""
    if len(labels) and isinstance(labels[0], (list, tuple)):
        return torch.tensor(multi_hot([list(ids) for ids in labels], num_labels))
    return torch.as_tensor(list(labels), dtype=torch.long)
