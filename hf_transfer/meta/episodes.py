"""N-way K-shot episodes over any labelled `datasets.Dataset`, with disjoint class splits.

An episode is drawn from a numpy generator seeded by `(seed, episode_index)`, so episode i of a split
is the same in every run, in every process, and after a resume; processes just take different indices.
Labels are re-indexed 0..N-1 in a random class order per episode, so the head has N outputs and no
class keeps a fixed output.

`EpisodeDataset` turns episodes into model inputs with any row collator (the ones of
`hf_transfer.processing`), as a map-style torch dataset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from datasets import ClassLabel, Dataset

from ..errors import DataError
from .class_splits import label_array

__all__ = ["Episode", "Task", "EpisodeSampler", "EpisodeDataset", "collate_rows"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Episode:
    """Row indices and re-indexed labels (0..N-1) of one episode; `classes[j]` is the class with label j."""

    index: int
    classes: tuple[int, ...]
    support_indices: np.ndarray  # (N * K,)
    support_labels: np.ndarray  # (N * K,)
    query_indices: np.ndarray  # (N * Q,)
    query_labels: np.ndarray  # (N * Q,)


class EpisodeSampler:
    """Seeded N-way K-shot Q-query episodes over the rows of one meta-split.

    Args:
        labels: a `datasets.Dataset` with a label column, or an integer label per row.
        n_way, k_shot, q_queries: classes per episode, support and query examples per class.
        classes: the class ids this split may draw (default: every class present in `rows`).
        rows: the row indices this split may use (default: all rows).
        seed: with the episode index, fixes every episode.
        label_names: names for messages (default: the `ClassLabel` names of a `Dataset`).

    Raises:
        DataError: a class has fewer than K + Q rows, or the split has fewer than N classes.

    Example:
        >>> sampler = EpisodeSampler([0, 0, 1, 1, 2, 2], n_way=2, k_shot=1, q_queries=1, seed=0)
        >>> episode = sampler.sample(0)
        >>> episode.support_labels.tolist(), episode.query_labels.tolist()
        ([0, 1], [0, 1])
    """

    def __init__(
        self,
        labels: Union[Dataset, Sequence[int], np.ndarray],
        n_way: int,
        k_shot: int,
        q_queries: int,
        *,
        classes: Optional[Sequence[int]] = None,
        rows: Optional[Sequence[int]] = None,
        seed: int = 0,
        label_names: Optional[Sequence[str]] = None,
        label_column: str = "label",
        split_name: str = "",
    ):
        if label_names is None and isinstance(labels, Dataset):
            feature = labels.features.get(label_column)
            label_names = feature.names if isinstance(feature, ClassLabel) else None
        y = label_array(labels, label_column)
        rows = np.arange(len(y)) if rows is None else np.asarray(rows, dtype=np.int64)
        present = np.unique(y[rows]) if len(rows) else np.zeros(0, dtype=np.int64)
        self.classes = tuple(int(c) for c in (present if classes is None else classes))
        self.n_way, self.k_shot, self.q_queries, self.seed = n_way, k_shot, q_queries, seed
        where = f" of the meta-{split_name} split" if split_name else ""
        if len(self.classes) < n_way:
            raise DataError(
                f"The episodes{where} can draw from {len(self.classes)} classes but n_way is {n_way}; lower n_way "
                "or give the split more classes."
            )
        name = (lambda c: str(label_names[c])) if label_names is not None else str
        needed = k_shot + q_queries
        split_labels = y[rows]
        self.rows_by_class: dict[int, np.ndarray] = {}
        for c in self.classes:
            members = rows[split_labels == c]
            if len(members) < needed:
                raise DataError(
                    f"Class '{name(c)}'{where} has {len(members)} examples but every episode needs K + Q = "
                    f"{k_shot} + {q_queries} = {needed} of each class. Lower --k_shot / --q_queries, add examples "
                    "of that class, or move it out of the split."
                )
            self.rows_by_class[c] = members

    def sample(self, index: int) -> Episode:
        """Episode `index`: the same for the same (seed, index), whatever was sampled before."""
        rng = np.random.default_rng([self.seed, int(index)])
        chosen = rng.choice(np.asarray(self.classes), size=self.n_way, replace=False)
        k, q = self.k_shot, self.q_queries
        support, query = [], []
        for c in chosen:
            picked = rng.choice(self.rows_by_class[int(c)], size=k + q, replace=False)
            support.append(picked[:k])
            query.append(picked[k:])
        return Episode(
            index=int(index),
            classes=tuple(int(c) for c in chosen),
            support_indices=np.concatenate(support),  # (N * K,), class-major
            support_labels=np.repeat(np.arange(self.n_way), k),  # (N * K,)
            query_indices=np.concatenate(query),  # (N * Q,)
            query_labels=np.repeat(np.arange(self.n_way), q),  # (N * Q,)
        )


@dataclass
class Task:
    """Model-ready tensors of one episode: inputs are keyword arguments of the model's forward."""

    index: int
    support: dict[str, torch.Tensor]
    support_labels: torch.Tensor  # (N * K,)
    query: dict[str, torch.Tensor]
    query_labels: torch.Tensor  # (N * Q,)

    def to(self, device: Union[str, torch.device]) -> "Task":
        move = lambda batch: {k: v.to(device) for k, v in batch.items()}  # noqa: E731
        return Task(
            self.index,
            move(self.support),
            self.support_labels.to(device),
            move(self.query),
            self.query_labels.to(device),
        )


def collate_rows(dataset: Dataset, indices: Sequence[int], collate_fn: Callable[[list[dict]], dict]) -> dict:
    """Rows `indices` of a (possibly transformed) data set through a row collator, without labels."""
    batch = dataset[[int(i) for i in indices]]  # column -> list; applies `with_transform`
    columns = list(batch)
    rows = [{c: batch[c][j] for c in columns} for j in range(len(indices))]
    out = dict(collate_fn(rows))
    out.pop("labels", None)
    out.pop("label", None)
    return out


class EpisodeDataset(torch.utils.data.Dataset):
    """Episodes `0..num_episodes-1` of a sampler as `Task`s (item i is episode i), for a `DataLoader`."""

    def __init__(self, sampler: EpisodeSampler, dataset: Dataset, collate_fn: Callable, num_episodes: int):
        self.sampler, self.dataset, self.collate_fn, self.num_episodes = sampler, dataset, collate_fn, num_episodes

    def __len__(self) -> int:
        return self.num_episodes

    def episode(self, index: int) -> Episode:
        return self.sampler.sample(index)

    def task(self, episode: Episode) -> Task:
        return Task(
            index=episode.index,
            support=collate_rows(self.dataset, episode.support_indices, self.collate_fn),
            support_labels=torch.as_tensor(episode.support_labels, dtype=torch.long),
            query=collate_rows(self.dataset, episode.query_indices, self.collate_fn),
            query_labels=torch.as_tensor(episode.query_labels, dtype=torch.long),
        )

    def __getitem__(self, index: int) -> Task:
        return self.task(self.sampler.sample(index))
