"""The comparison's plots (PNG): the headline score (accuracy; detection's mAP) against the label budget (labelled
rows per class; training images), and against training time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from .compared import AUTO_RECIPE, COMPARED_RECIPES
from .summary import SummaryRow

__all__ = ["plot_accuracy_vs_labels", "plot_accuracy_vs_time"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or under CI
    import matplotlib.pyplot as plt

    return plt


def _x_positions(rows: Sequence[SummaryRow]) -> dict[str, float]:
    """Budgets on a log axis, each at what its cells really had (labelled rows per class: a budget larger than the
    classes sits at their size; training images: at the train split's); `all` one step past the largest numeric
    budget."""
    numeric = sorted({int(r.label_budget) for r in rows if r.label_budget != "all"})
    positions = {}
    for budget in numeric:
        had = [r.reached for r in rows if r.label_budget == str(budget) and r.reached]
        positions[str(budget)] = float(min([budget, *had]))
    if any(r.label_budget == "all" for r in rows):
        positions["all"] = max(positions.values(), default=0.25) * 4
    return positions


def _tick_label(budget: str, position: float) -> str:
    return budget if budget == "all" or float(budget) == position else f"{position:.0f} (asked {budget})"


def _finish(plt, figure, axis, xlabel: str, ylabel: str, title: str, path: Path) -> None:
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_accuracy_vs_labels(rows: Sequence[SummaryRow], path: Path, title: str) -> None:
    plt = _pyplot()
    positions = _x_positions(rows)
    figure, axis = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for label in dict.fromkeys(r.label for r in rows):
        line = sorted((r for r in rows if r.label == label and r.seeds), key=lambda r: positions[r.label_budget])
        if not line:
            continue
        axis.errorbar(
            [positions[r.label_budget] for r in line],
            [r.headline_mean for r in line],
            yerr=[r.headline_std for r in line],
            marker="o",
            capsize=3,
            label=label,
        )
    axis.set_xscale("log", base=2)
    axis.set_xticks(list(positions.values()), [_tick_label(b, x) for b, x in positions.items()])
    compared = rows[0].compared if rows else COMPARED_RECIPES.get(AUTO_RECIPE)
    score = f"test {compared.headline.name} (mean ± std over seeds)"
    _finish(plt, figure, axis, compared.budget_unit, score, title, path)


def plot_accuracy_vs_time(rows: Sequence[SummaryRow], path: Path, title: str) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for label in dict.fromkeys(r.label for r in rows):
        points = [r for r in rows if r.label == label and r.seeds and not math.isnan(r.train_seconds_mean)]
        if not points:
            continue
        axis.scatter([r.train_seconds_mean for r in points], [r.headline_mean for r in points], label=label)
        for r in points:
            axis.annotate(
                r.label_budget,
                (r.train_seconds_mean, r.headline_mean),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    axis.set_xscale("log")
    compared = rows[0].compared if rows else COMPARED_RECIPES.get(AUTO_RECIPE)
    score = f"test {compared.headline.name} (mean over seeds)"
    _finish(plt, figure, axis, "training time per run (s, log scale)", score, title, path)
