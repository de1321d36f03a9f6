"""The selection strategies themselves, on numpy features: each takes a `SelectionProblem` and returns `Pick`s, the
rows to label next in the order chosen, each with the one line that says why.

Every strategy is deterministic under `problem.seed`, never returns a row that is not `available`, and treats the
labelled rows and the pool rows picked in earlier rounds (`picked_before`) as already covering their part of the
feature space, so a second round continues the first instead of repeating it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import pairwise_distances, pairwise_distances_argmin_min
from sklearn.neighbors import NearestNeighbors

from ..errors import ConfigError
from .uncertainty import ProbeOutputs

__all__ = [
    "Pick",
    "SelectionProblem",
    "typicality",
    "select_typical",
    "select_kcenter",
    "select_margin",
    "select_entropy",
    "select_badge",
    "select_random",
]

TYPICALITY_NEIGHBOURS = 20  # TypiClust's k: density is the inverse mean distance to this many nearest rows
FULL_KMEANS_CLUSTERS = 50  # above this many clusters, mini-batch k-means (TypiClust's switch too)


@dataclass(frozen=True)
class Pick:
    row: int  # index into the pool
    reason: str


@dataclass
class SelectionProblem:
    """What a strategy chooses from.

    Args:
        features: `(N, D)` the pool rows' features.
        available: `(N,)` bool, the rows that may be picked (not labelled, not picked before, not a duplicate).
        num_rows: how many rows to pick.
        labelled: `(M, D)` the labelled rows' features (they cover their part of the space); may be empty.
        picked_before: pool rows picked in earlier rounds (covered too, and never picked again).
        seed: every random choice (k-means, k-means++ draws, the random baseline) follows it.
        probe: the probe fitted on the labelled rows, read on the pool rows (uncertainty strategies only).
    """

    features: np.ndarray
    available: np.ndarray
    num_rows: int
    labelled: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    picked_before: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    seed: int = 0
    probe: Optional[ProbeOutputs] = None

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float64)
        self.available = np.asarray(self.available, dtype=bool).copy()
        self.picked_before = np.asarray(self.picked_before, dtype=np.int64)
        self.available[self.picked_before] = False
        if self.labelled.size == 0:
            self.labelled = np.zeros((0, self.features.shape[1]))
        left = int(self.available.sum())
        if self.num_rows < 1:
            raise ConfigError(f"--num_rows must be at least 1; got {self.num_rows}.")
        if self.num_rows > left:
            raise ConfigError(
                f"--num_rows {self.num_rows} is more than the {left} pool rows left to pick (of {len(self.features)}; "
                "the others are labelled, picked before, or duplicates). Ask for at most that many."
            )

    @property
    def covered(self) -> np.ndarray:
        """`(M + P, D)`: the labelled rows and the pool rows picked before."""
        return np.concatenate([self.labelled, self.features[self.picked_before]])

    def require_probe(self, strategy: str) -> ProbeOutputs:
        if self.probe is None:
            raise ConfigError(
                f"--strategy {strategy} needs labelled rows to fit a probe on: pass --train_file or --train_dir, or "
                "use typical, kcenter or random for a cold start."
            )
        return self.probe


def typicality(features: np.ndarray, neighbours: int = TYPICALITY_NEIGHBOURS) -> np.ndarray:
    """TypiClust's typicality: the inverse of the mean distance to a row's `neighbours` nearest other rows."""
    k = min(neighbours, len(features) - 1)
    if k < 1:
        return np.ones(len(features))
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    return 1.0 / (distances[:, 1:].mean(1) + 1e-12)  # column 0 is the row itself


def _cluster(features: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    if clusters <= 1:
        return np.zeros(len(features), dtype=np.int64)
    if clusters <= FULL_KMEANS_CLUSTERS:
        model = KMeans(n_clusters=clusters, n_init=3, random_state=seed)
    else:
        model = MiniBatchKMeans(n_clusters=clusters, n_init=3, batch_size=4096, random_state=seed)
    return model.fit_predict(features)


def select_typical(problem: SelectionProblem) -> list[Pick]:
    """TypiClust: k-means of every row (pool and labelled) into `labelled + picked + K` clusters; K times, take the
    cluster with the fewest labelled or picked rows (the largest on ties) and pick its most typical available row.

    Reference: Hacohen, Dekel & Weinshall 2022, "Active Learning on a Budget: Opposite Strategies Suit High and Low
    Budgets", ICML. https://arxiv.org/abs/2202.02794
    """
    pool, labelled, before = problem.features, problem.labelled, problem.picked_before
    everything = np.concatenate([pool, labelled])
    clusters = min(len(labelled) + len(before) + problem.num_rows, len(everything))
    assignment = _cluster(everything, clusters, problem.seed)
    density = typicality(everything)[: len(pool)]
    mean_density = float(density.mean())
    pool_cluster = assignment[: len(pool)]
    sizes = np.bincount(assignment, minlength=clusters)
    taken = np.bincount(assignment[len(pool) :], minlength=clusters)  # labelled rows per cluster
    taken += np.bincount(pool_cluster[before], minlength=clusters)  # and rows picked in earlier rounds
    free = problem.available.copy()
    picks = []
    for _ in range(problem.num_rows):
        open_clusters = np.unique(pool_cluster[free])
        cluster = min(open_clusters, key=lambda c: (taken[c], -sizes[c], c))
        rows = np.flatnonzero(free & (pool_cluster == cluster))
        row = int(rows[np.argmax(density[rows])])
        history = f", {taken[cluster]} labelled or picked there before" if taken[cluster] else ""
        picks.append(
            Pick(
                row,
                f"most typical row of cluster {cluster} ({sizes[cluster]} rows{history}; density "
                f"{density[row] / mean_density:.1f}x the pool's mean)",
            )
        )
        taken[cluster] += 1
        free[row] = False
    return picks


def select_kcenter(problem: SelectionProblem) -> list[Pick]:
    """Greedy k-center (the coreset of Sener & Savarese): each pick is the available row farthest from every
    labelled, earlier-picked or just-picked row. With nothing covered yet, the first is the row nearest the pool's
    mean. https://arxiv.org/abs/1708.00489"""
    pool, covered = problem.features, problem.covered
    if len(covered):
        _, nearest = pairwise_distances_argmin_min(pool, covered)
    else:
        nearest = np.full(len(pool), np.inf)
    free = problem.available.copy()
    picks = []
    for _ in range(problem.num_rows):
        if np.isinf(nearest[free]).all():  # a cold start's first pick
            centre = pool[free].mean(0, keepdims=True)
            rows = np.flatnonzero(free)
            row = int(rows[np.argmin(pairwise_distances(pool[rows], centre)[:, 0])])
            reason = "the row nearest the pool's mean (k-center start without labelled rows)"
        else:
            row = int(np.argmax(np.where(free, nearest, -np.inf)))
            distance, median = float(nearest[row]), float(np.median(nearest[free]))
            reason = (
                f"farthest from every labelled or picked row (distance {distance:.3f}, "
                f"{distance / max(median, 1e-12):.1f}x the median row's)"
            )
        picks.append(Pick(row, reason))
        free[row] = False
        nearest = np.minimum(nearest, pairwise_distances(pool, pool[[row]])[:, 0])
    return picks


def _top_uncertain(problem: SelectionProblem, scores: np.ndarray, reasons: list[str]) -> list[Pick]:
    rows = np.flatnonzero(problem.available)
    order = rows[np.lexsort((rows, -scores[rows]))]  # most uncertain first; ties by row
    return [Pick(int(row), reasons[row]) for row in order[: problem.num_rows]]


def select_margin(problem: SelectionProblem) -> list[Pick]:
    """The K rows with the smallest margin: between the probe's two most probable classes, or (multi-label) between
    a label's probability and its threshold."""
    return _top_uncertain(problem, *problem.require_probe("margin").margin())


def select_entropy(problem: SelectionProblem) -> list[Pick]:
    """The K rows whose predicted distribution has the highest entropy (multi-label: mean binary entropy)."""
    return _top_uncertain(problem, *problem.require_probe("entropy").entropy())


def select_badge(problem: SelectionProblem) -> list[Pick]:
    """BADGE: k-means++ seeding on the gradient embeddings `(p - onehot(argmax p)) ⊗ x`. A row's embedding is long
    when the probe is unsure of it (and its features are large), and far from the others when its gradient points
    elsewhere: the draws favour uncertain rows that differ from each other. The first pick is the longest embedding,
    unless rows were picked before, whose embeddings then start the seeding.

    Reference: Ash et al. 2020, "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds", ICLR.
    https://arxiv.org/abs/1906.03671
    """
    probe = problem.require_probe("badge")
    uncertainty, reasons = probe.margin()
    # g_i = r_i ⊗ x_i is never built (N x C*D): <g_i, g_j> = (r_i . r_j)(x_i . x_j).
    residual, features = probe.residual(), problem.features  # (N, C), (N, D)
    sq_norm = (residual**2).sum(1) * (features**2).sum(1)  # |g_i|^2

    def sq_distance(j: int) -> np.ndarray:  # |g_i - g_j|^2 for every row i
        inner = (residual @ residual[j]) * (features @ features[j])
        return np.maximum(sq_norm + sq_norm[j] - 2 * inner, 0.0)

    rng = np.random.default_rng(problem.seed)
    free = problem.available.copy()
    nearest = None  # squared distance of each row to the nearest centre so far
    for row in problem.picked_before:
        nearest = sq_distance(row) if nearest is None else np.minimum(nearest, sq_distance(row))
    picks = []
    for _ in range(problem.num_rows):
        rows = np.flatnonzero(free)
        if nearest is None:
            row = int(rows[np.argmax(sq_norm[rows])])
            how = "the longest gradient embedding (first k-means++ centre)"
        else:
            weights = nearest[rows]
            if weights.sum() <= 0:  # every row left sits on a centre: the most uncertain of them
                row = int(rows[np.argmax(uncertainty[rows])])
            else:
                row = int(rng.choice(rows, p=weights / weights.sum()))
            how = f"k-means++ draw on gradient embeddings (squared distance {nearest[row]:.3g} to the nearest pick)"
        picks.append(Pick(row, f"{reasons[row]}; {how}"))
        free[row] = False
        nearest = sq_distance(row) if nearest is None else np.minimum(nearest, sq_distance(row))
    return picks


def select_random(problem: SelectionProblem) -> list[Pick]:
    """A seeded permutation of the pool, read in order past unavailable rows: the same seed gives the same rows, and
    two rounds of K give the rows one round of 2K gives."""
    order = np.random.default_rng(problem.seed).permutation(len(problem.features))
    rows = order[problem.available[order]][: problem.num_rows]
    return [Pick(int(row), f"random draw (seed {problem.seed})") for row in rows]
