"""The comparison's table: mean and spread over seeds per (model, strategy, label budget), and the one-line
recommendation the table backs (or the admission that it backs none).

Each row says what its cells really had (labelled rows per class, in total) and whether its seeds drew the same
rows (a budget at or above every class size, or `all`): their spread is then training noise alone, and the
recommendation says so rather than passing it off as a spread over labelled sets."""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..constants import HP_SEARCH_PREFIX
from .arms import LABELLED_ROW_CHOICES
from .grid import CellResult, model_labels

__all__ = ["SummaryRow", "recommend", "summarize", "write_cells", "write_csv", "write_markdown"]


@dataclass
class SummaryRow:
    model: str
    strategy: str
    label_budget: str
    train_rows: Optional[int]
    seeds: int
    accuracy_mean: float
    accuracy_std: float
    f1_mean: float
    f1_std: float
    train_seconds_mean: float
    peak_memory_mib: Optional[float]
    trainable_params: Optional[int]
    failed: int
    rows_per_class_min: Optional[int] = None  # labelled rows the cells really had, over classes (None: not known)
    rows_per_class_max: Optional[int] = None
    same_rows: bool = False  # every seed drew the same labelled rows: the spread is training noise alone
    arms: str = ""  # `Cell.arm_label`: how the rows were chosen and the unlabelled pool, where not the defaults
    selected: bool = False  # a selection strategy picked budget x classes rows, not so many per class

    @property
    def label(self) -> str:
        return f"{self.model} {self.strategy}" + (f" {self.arms}" if self.arms else "")

    @property
    def rows_per_class(self) -> Optional[str]:
        """The labelled rows per class the cells had, `8` or `5-8`; None when not known."""
        if self.rows_per_class_min is None:
            return None
        low, high = self.rows_per_class_min, self.rows_per_class_max
        return str(low) if low == high else f"{low}-{high}"

    @property
    def budget_met(self) -> bool:
        """Whether every class gave the rows the budget asked for (`all` always does)."""
        if self.selected:  # the classes of the picked rows are the strategy's outcome, not a shortfall
            return True
        return self.label_budget == "all" or self.rows_per_class_min in (None, int(self.label_budget))


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _test_metric(results: dict, name: str) -> Optional[float]:
    """The test split's metric, else validation's (a data set without a test split)."""
    for prefix in ("test", "eval"):
        if f"{prefix}_{name}" in results:
            return float(results[f"{prefix}_{name}"])
    return None


def summarize(cells: Sequence[CellResult]) -> list[SummaryRow]:
    """One row per (model, strategy, arms, label budget): the model as given, so two models of one name stay two
    rows."""
    labels = model_labels([result.cell.model for result in cells])
    groups: dict[tuple[str, str, str, str], list[CellResult]] = {}
    for result in cells:
        cell = result.cell
        groups.setdefault((cell.model, cell.strategy, cell.arm_label, cell.label_budget), []).append(result)
    rows = []
    for (model, strategy, arms, budget), members in groups.items():
        finished = [m for m in members if m.results is not None]
        labelled = [m.labelled for m in finished if m.labelled is not None]
        ranges = [drawn.per_class_range for drawn in labelled]
        train_rows = labelled[0].total if labelled else finished[0].results.get("train_samples") if finished else None
        accuracy = [v for m in finished if (v := _test_metric(m.results, "accuracy")) is not None]
        f1 = [v for m in finished if (v := _test_metric(m.results, "f1")) is not None]
        seconds = [float(m.results.get("train_runtime", math.nan)) for m in finished]
        memory = [m.results.get("peak_gpu_memory_mib") or m.peak_rss_mib for m in finished]
        memory = [float(v) for v in memory if v]
        rows.append(
            SummaryRow(
                labels[model],
                strategy,
                budget,
                train_rows,
                len(finished),
                *_mean_std(accuracy),
                *_mean_std(f1),
                statistics.fmean(seconds) if seconds else math.nan,
                max(memory) if memory else None,
                finished[0].results.get("trainable_params") if finished else None,
                len(members) - len(finished),
                min(low for low, _ in ranges) if ranges else None,
                max(high for _, high in ranges) if ranges else None,
                len(labelled) > 1 and all(drawn.rows == labelled[0].rows for drawn in labelled),
                arms,
                LABELLED_ROW_CHOICES.get(members[0].cell.selection).select_strategy is not None,
            )
        )
    return rows


def _budget_value(budget: str) -> float:
    return math.inf if budget == "all" else float(budget)


def _where(row: SummaryRow) -> str:
    """The labelled rows a row's cells really had, in words: the budget asked for when every class met it."""
    if row.label_budget == "all":
        return "all labelled rows" + (f" ({row.rows_per_class} per class)" if row.rows_per_class else "")
    if row.budget_met:
        return f"{row.label_budget} labelled rows per class"
    short = "no class has that many" if row.rows_per_class_max < int(row.label_budget) else "smaller classes have fewer"
    return f"{row.rows_per_class} labelled rows per class (asked {row.label_budget}; {short})"


def recommend(rows: Sequence[SummaryRow]) -> str:
    """One line: the best strategy at the largest label budget, with its margin over the runner-up in units of their
    spread over seeds; within the spread, the cheaper of the two (training time) is what the table supports. Seeds
    that drew the same labelled rows have no spread over labelled sets: the line says so, and with no spread at all
    (one seed, or identical runs) it makes no call."""
    scored = [r for r in rows if r.seeds and not math.isnan(r.accuracy_mean)]
    if not scored:
        return "No cell finished: no recommendation."
    budget = max((r.label_budget for r in scored), key=_budget_value)
    at_budget = sorted((r for r in scored if r.label_budget == budget), key=lambda r: r.accuracy_mean, reverse=True)
    best = at_budget[0]
    where = _where(best)
    if len(at_budget) == 1:
        return f"With {where}: {best.label} reaches {best.accuracy_mean:.3f} test accuracy (nothing to compare with)."
    second = at_budget[1]
    margin = best.accuracy_mean - second.accuracy_mean
    spread = math.hypot(best.accuracy_std, second.accuracy_std)
    seeds = min(best.seeds, second.seeds)
    same = best.same_rows or second.same_rows
    numbers = (
        f"{best.accuracy_mean:.3f} ± {best.accuracy_std:.3f} against {second.accuracy_mean:.3f} ± "
        f"{second.accuracy_std:.3f} for {second.label} over {seeds} seed{'s' if seeds != 1 else ''}"
        + (" that all drew the same labelled rows" if same else "")
    )
    if seeds < 2 or (same and spread == 0):
        why = "one seed has no spread" if seeds < 2 else "identical rows and identical runs have no spread"
        smallest = min(r.rows_per_class_min or 0 for r in (best, second))
        fix = (
            f"; label budgets below {smallest} rows per class draw other rows per seed" if same and smallest > 1 else ""
        )
        return f"No call with {where}: {best.label} leads by {margin:.3f} ({numbers}), but {why} to judge it by{fix}."
    noise = ", training noise alone" if same else ""
    if spread > 0 and margin > spread:
        return (
            f"Recommended with {where}: {best.label} ({numbers}; margin {margin:.3f}, {margin / spread:.1f}x the "
            f"spread{noise})."
        )
    cheaper = min((best, second), key=lambda r: r.train_seconds_mean)
    return (
        f"No clear winner with {where}: {best.label} leads by {margin:.3f}, within the seeds' spread{noise} "
        f"({numbers}); {cheaper.label} is the cheaper ({cheaper.train_seconds_mean:.0f} s per run)."
    )


_COLUMNS = (
    "model",
    "strategy",
    "label_budget",
    "train_rows",
    "seeds",
    "accuracy_mean",
    "accuracy_std",
    "f1_mean",
    "f1_std",
    "train_seconds_mean",
    "peak_memory_mib",
    "trainable_params",
    "failed",
    "rows_per_class_min",
    "rows_per_class_max",
    "same_rows",
    "arms",
)


def write_cells(cells: Sequence[CellResult], path: Path) -> None:
    """Every cell's own numbers, one json line each: the runs behind each mean (and what a cell's `--hp_search`
    chose)."""
    import json

    keys = (
        "test_accuracy",
        "test_f1",
        "eval_accuracy",
        "eval_f1",
        "train_runtime",
        "train_samples",
        "trainable_params",
    )
    labels = model_labels([c.cell.model for c in cells])
    with path.open("w") as out:
        for c in cells:
            numbers = {k: c.results.get(k) for k in keys} if c.results is not None else {}
            numbers.update({k: v for k, v in (c.results or {}).items() if k.startswith(HP_SEARCH_PREFIX)})
            numbers.update({k: v for k, v in (c.results or {}).items() if "pseudo" in k or "unlabelled" in k})
            row = {
                "model": labels[c.cell.model],
                "model_name_or_path": c.cell.model,
                "strategy": c.cell.strategy,
                **c.cell.arms,
                "label_budget": c.cell.label_budget,
                "seed": c.cell.seed,
                "finished": c.results is not None,
                "peak_rss_mib": c.peak_rss_mib,
                **numbers,
            }
            if c.labelled is not None:  # what the cell really trained on, whatever the budget asked
                row["labelled_rows"] = c.labelled.total
                row["labelled_rows_per_class"] = c.labelled.per_class
            out.write(json.dumps(row) + "\n")


def write_csv(rows: Sequence[SummaryRow], path: Path) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(_COLUMNS)
        for row in rows:
            writer.writerow([getattr(row, c) for c in _COLUMNS])


def write_markdown(rows: Sequence[SummaryRow], recommendation: str, plots: Sequence[str], path: Path) -> str:
    header = (
        "| model | strategy | labels per class | train rows | test accuracy | test macro-F1 | train s | "
        "peak memory MiB | trainable params |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (_budget_value(r.label_budget), -r.accuracy_mean)):
        failed = f" ({r.failed} failed)" if r.failed else ""
        seeds = f"{r.seeds}, same rows" if r.same_rows else str(r.seeds)
        if r.label_budget == "all":
            budget = "all" + (f" ({r.rows_per_class})" if r.rows_per_class else "")
        elif r.selected:
            budget = f"{r.label_budget} ({r.rows_per_class} picked)" if r.rows_per_class else r.label_budget
        else:
            budget = r.label_budget if r.budget_met else f"{r.rows_per_class} (asked {r.label_budget})"
        strategy = f"{r.strategy}, {r.arms}" if r.arms else r.strategy
        lines.append(
            f"| {r.model} | {strategy} | {budget} | {r.train_rows or ''} | "
            f"{r.accuracy_mean:.3f} ± {r.accuracy_std:.3f} ({seeds}){failed} | {r.f1_mean:.3f} ± {r.f1_std:.3f} | "
            f"{r.train_seconds_mean:.0f} | {'' if r.peak_memory_mib is None else f'{r.peak_memory_mib:.0f}'} | "
            f"{'' if r.trainable_params is None else f'{r.trainable_params:,}'} |"
        )
    text = (
        "# Strategy comparison\n\n"
        f"{recommendation}\n\n"
        "Mean ± standard deviation over seeds (their number in brackets); test split, else validation. Labels per "
        "class: the labelled rows each class really gave (a class smaller than the budget gives all of its rows; a "
        "selection strategy picks the budget times the classes in all, and the range it picked per class is shown). "
        '"same rows": every seed drew the same labelled rows, so the ± is training noise alone. Peak memory: '
        "the run's GPU peak, else the process's resident peak.\n\n" + "\n".join(lines) + "\n"
    )
    for plot in plots:
        text += f"\n![{plot}]({plot})\n"
    path.write_text(text)
    return text
