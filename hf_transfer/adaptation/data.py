"""Training batches that hold a labelled source half and an unlabelled target half.

`DomainPairDataset` makes each training item a (source row, target row) pair, so `Trainer`'s own sampler,
sharding over processes, gradient accumulation and checkpoint resume (which skips seen batches) all work
unchanged: a batch of B items is B labelled source rows and B unlabelled target rows. `DomainPairCollator`
turns such a batch into one model input of 2B rows (text padded together), with `labels` for the B source
rows and `domain_labels` (0 = source, 1 = target) for all of them; plain items (evaluation) go through the
wrapped collator untouched.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

__all__ = ["DomainPairDataset", "DomainPairCollator"]

logger = logging.getLogger(__name__)

_LABEL_KEYS = ("label", "labels")


def _cycled_permutations(size: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """`length` indices into `size` rows: seeded permutations of all rows, concatenated (each row once per cycle)."""
    cycles = -(-length // size)
    return np.concatenate([rng.permutation(size) for _ in range(cycles)])[:length]


class DomainPairDataset(TorchDataset):
    """Pairs every row of the larger domain with a row of the other, for one source + one target row per item.

    The length is max(len(source), len(target)): an epoch visits every row of the larger domain once and
    cycles through the smaller one in seeded random order, so no row of either domain is left out. Target
    labels, if the target split has them, are dropped here: no adaptation method can see them.

    Args:
        source: the processed, labelled source train split (items with a `label`).
        target: the processed target train split (any `label` is removed).
        seed: seed of the pairing.

    Example:
        >>> pairs = DomainPairDataset(processed_source["train"], processed_target["train"], seed=0)
        >>> item = pairs[0]  # {"source": {..., "label": 2}, "target": {...}, "target_row": 17}

    `target_row` is the target row's position in the target split, so per-row state over the unlabelled pool
    (target self-training's per-class thresholds) can follow each row across batches.
    """

    def __init__(self, source: Sequence, target: Sequence, seed: int = 0):
        if len(source) == 0 or len(target) == 0:
            raise ValueError(f"Both domains need training rows; got {len(source)} source and {len(target)} target.")
        self.source = source
        self.target = target
        length = max(len(source), len(target))
        rng = np.random.default_rng(seed)
        # Identity for the larger domain; cycled permutations for the smaller one.
        self._source_index = (
            np.arange(length) if len(source) == length else _cycled_permutations(len(source), length, rng)
        )
        self._target_index = (
            np.arange(length) if len(target) == length else _cycled_permutations(len(target), length, rng)
        )
        if len(source) == len(target):
            self._target_index = rng.permutation(length)

    def __len__(self) -> int:
        return len(self._source_index)

    @staticmethod
    def _rows(dataset: Any, indices: list[int]) -> list[dict]:
        getitems = getattr(dataset, "__getitems__", None)  # datasets.Dataset: one batched read (and transform)
        return list(getitems(indices)) if callable(getitems) else [dataset[i] for i in indices]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        sources = self._rows(self.source, [int(self._source_index[i]) for i in indices])
        target_rows = [int(self._target_index[i]) for i in indices]
        targets = self._rows(self.target, target_rows)
        return [
            {"source": dict(s), "target": {k: v for k, v in t.items() if k not in _LABEL_KEYS}, "target_row": row}
            for s, t, row in zip(sources, targets, target_rows)
        ]

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]


class DomainPairCollator:
    """Collate `DomainPairDataset` items into one batch of source rows followed by target rows.

    Output: the wrapped collator's model inputs for all 2B rows (e.g. `input_ids` (2B, T) padded together,
    or `pixel_values` (2B, 3, H, W)), `labels` (B,) for the source rows and `domain_labels` (2B,) with 0 for
    source and 1 for target rows, and `target_rows` (B,), the target rows' positions in the target split (for
    per-row state such as self-training's thresholds). Items that are not pairs (evaluation, `source_only`) are passed to the
    wrapped collator as they are.

    Args:
        collator: the plain collator (`hf_transfer.processing.create_collator`).
    """

    def __init__(self, collator: Callable[[list[dict]], dict[str, torch.Tensor]]):
        self.collator = collator

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features or "source" not in features[0]:
            return self.collator(features)
        sources = [dict(f["source"]) for f in features]
        labels = [int(s.pop("label") if "label" in s else s.pop("labels")) for s in sources]
        targets = [f["target"] for f in features]
        batch = dict(self.collator(sources + targets))
        batch["labels"] = torch.tensor(labels, dtype=torch.long)  # (B,)
        batch["domain_labels"] = torch.tensor([0] * len(sources) + [1] * len(targets), dtype=torch.long)  # (2B,)
        if all("target_row" in f for f in features):
            batch["target_rows"] = torch.tensor([f["target_row"] for f in features], dtype=torch.long)  # (B,)
        return batch
