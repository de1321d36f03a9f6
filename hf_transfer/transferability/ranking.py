"""Score every candidate, rank them, and (when asked) check the ranking against linear probes: Kendall's tau between
each score and the test accuracy a probe on the same features reaches."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..errors import ConfigError
from ..probing import fit_linear_probe
from .candidates import CandidateFeatures
from .labels import class_indices
from .registry import get_score

__all__ = ["RankedCandidate", "Ranking", "kendall_tau", "rank_candidates", "write_ranking"]

MIN_ROWS_PER_CLASS = 2


@dataclass
class RankedCandidate:
    name: str
    feature_dim: int
    scores: dict[str, Optional[float]]  # None: the score is not defined for this candidate (no source head)
    score_seconds: float
    extraction_seconds: float
    probe_validation_accuracy: Optional[float] = None
    probe_test_accuracy: Optional[float] = None


@dataclass
class Ranking:
    rows: list[RankedCandidate]  # best first by `rank_by`
    rank_by: str
    scores: list[str]
    score_split: str
    rows_scored: int
    kendall_tau: dict[str, dict[str, float]] = field(default_factory=dict)  # score -> tau, p_value, candidates

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        probe = any(r.probe_test_accuracy is not None for r in self.rows)
        header = ["rank", "candidate", "dim", *self.scores] + (["probe test acc."] if probe else []) + ["seconds"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for rank, row in enumerate(self.rows, 1):
            cells = [str(rank), f"`{row.name}`", str(row.feature_dim)]
            cells += ["n/a" if row.scores[s] is None else f"{row.scores[s]:.4g}" for s in self.scores]
            if probe:
                cells.append("" if row.probe_test_accuracy is None else f"{row.probe_test_accuracy:.3f}")
            cells.append(f"{row.extraction_seconds + row.score_seconds:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        text = (
            f"Ranked by `{self.rank_by}` on the {self.rows_scored} rows of the `{self.score_split}` split "
            "(higher transfers better).\n\n" + "\n".join(lines) + "\n"
        )
        if self.kendall_tau:
            taus = ", ".join(
                f"{name} {v['tau']:+.2f} (p = {v['p_value']:.2g}, {int(v['candidates'])} candidates)"
                for name, v in self.kendall_tau.items()
            )
            text += f"\nKendall's tau between each score and the probe's test accuracy: {taus}.\n"
        return text


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Kendall's tau-b (ties counted) and its two-sided p-value."""
    from scipy.stats import kendalltau

    result = kendalltau(x, y)
    return float(result.statistic), float(result.pvalue)


def _probe_accuracy(candidate: CandidateFeatures) -> tuple[float, float]:
    """A linear probe on the candidate's features (L2 chosen on validation): validation and test accuracy."""
    for split in ("train", "validation", "test"):
        if split not in candidate.features:
            raise ConfigError(
                f"Checking the ranking with probes needs train, validation and test splits; no {split!r}."
            )
    labels = {s: y.long() for s, y in candidate.labels.items()}
    num_classes = int(max(int(y.max()) for y in labels.values())) + 1
    probe = fit_linear_probe(
        candidate.features["train"],
        labels["train"],
        candidate.features["validation"],
        labels["validation"],
        num_classes,
    )
    test = float((probe.predict(candidate.features["test"].float()) == labels["test"]).double().mean())
    return probe.validation_accuracy, test


def rank_candidates(
    candidates: Sequence[CandidateFeatures],
    score_names: Sequence[str],
    rank_by: str = "logme",
    score_split: str = "train",
    fit_probes: bool = False,
) -> Ranking:
    """Every score of every candidate on `score_split`, sorted by `rank_by` (candidates it is undefined for last)."""
    if rank_by not in score_names:
        raise ConfigError(f"--rank_by {rank_by!r} is not among --scores ({', '.join(score_names)}).")
    scores = [get_score(name) for name in score_names]
    labels = candidates[0].labels[score_split]
    counts = torch.bincount(class_indices(labels))
    if len(counts) < 2 or int(counts.min()) < MIN_ROWS_PER_CLASS:
        raise ConfigError(
            f"The {score_split} split needs at least two classes with {MIN_ROWS_PER_CLASS}+ rows each to score "
            f"candidates; it has {counts.tolist()} rows per class. Use more rows (--max_train_samples)."
        )
    rows = []
    for candidate in candidates:
        features = candidate.features[score_split]
        probabilities = candidate.source_probabilities[score_split] if candidate.source_probabilities else None
        start = time.perf_counter()
        values = {
            score.name: (
                None
                if score.needs_source_head and probabilities is None
                else score.compute(features, probabilities, labels)
            )
            for score in scores
        }
        row = RankedCandidate(
            candidate.candidate.name,
            int(features.shape[1]),
            values,
            time.perf_counter() - start,
            candidate.extraction_seconds,
        )
        if fit_probes:
            row.probe_validation_accuracy, row.probe_test_accuracy = _probe_accuracy(candidate)
        rows.append(row)
    rows.sort(key=lambda r: -math.inf if r.scores[rank_by] is None else r.scores[rank_by], reverse=True)
    ranking = Ranking(rows, rank_by, list(score_names), score_split, int(len(labels)))
    if fit_probes:
        for name in score_names:
            defined = [r for r in rows if r.scores[name] is not None]
            if len(defined) >= 3:
                tau, p = kendall_tau([r.scores[name] for r in defined], [r.probe_test_accuracy for r in defined])
                ranking.kendall_tau[name] = {"tau": tau, "p_value": p, "candidates": len(defined)}
    return ranking


def write_ranking(ranking: Ranking, output_dir: str | Path) -> tuple[Path, Path]:
    """`ranking.json` and `ranking.md` in `output_dir`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_dir / "ranking.json", output_dir / "ranking.md"
    json_path.write_text(json.dumps(ranking.to_dict(), indent=2) + "\n")
    md_path.write_text(ranking.to_markdown())
    return json_path, md_path
