"""The comparison's table: mean and spread over seeds per (model, strategy, label budget), and the one-line
recommendation the table backs (or the admission that it backs none).

Each row says what its cells really had (labelled rows per class, in total) and whether its seeds drew the same
rows (a budget at or above every class size, or `all`): their spread is then training noise alone, and the
recommendation says so rather than passing it off as a spread over labelled sets.

The scores, the budget's unit and the words come from the compared recipe (`compared.COMPARED_RECIPES`, named by the
cells): test accuracy and macro-F1 per labelled rows per class for classification, test mAP, mAP@50, mAP@75 and AP
per class per training images for detection."""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..constants import HP_SEARCH_PREFIX
from .arms import BACKBONE_INITS, DEFAULT_BACKBONE_INIT, LABELLED_ROW_CHOICES
from .compared import AUTO_RECIPE, COMPARED_RECIPES, ComparedRecipe
from .grid import CellResult, model_labels

__all__ = ["SummaryRow", "recommend", "summarize", "write_cells", "write_csv", "write_markdown"]


@dataclass
class SummaryRow:
    """One (model, strategy, arms, label budget) of the table. `scores` holds each of the compared recipe's metrics
    as (mean, std) over seeds, the headline first (`row.score("map_50")`)."""

    model: str
    strategy: str
    label_budget: str
    train_rows: Optional[int]
    seeds: int
    scores: dict[str, tuple[float, float]]
    train_seconds_mean: float
    peak_memory_mib: Optional[float]
    trainable_params: Optional[int]
    failed: int
    rows_per_class_min: Optional[int] = None  # labelled rows the cells really had, over classes (None: not known)
    rows_per_class_max: Optional[int] = None
    same_rows: bool = False  # every seed drew the same labelled rows: the spread is training noise alone
    arms: str = ""  # `Cell.arm_label`: how the rows were chosen and the unlabelled pool, where not the defaults
    selected: bool = False  # a selection strategy picked budget x classes rows, not so many per class
    recipe: str = AUTO_RECIPE  # `compared.COMPARED_RECIPES`: what the cells ran, so what the scores and budgets are
    per_label: dict[str, float] = field(default_factory=dict)  # a per-label score's mean over seeds, by label
    arm_values: dict[str, str] = field(default_factory=dict)  # `Cell.arms`: each arm that differs from its default

    def score(self, metric: str) -> tuple[float, float]:
        """(mean, std) over seeds of `metric`, a key of the compared recipe's metrics (`accuracy`, `map_50`)."""
        if metric not in self.scores:
            raise KeyError(f"{metric!r} is not a score of {self.recipe}'s table ({', '.join(self.scores)})")
        return self.scores[metric]

    @property
    def compared(self) -> ComparedRecipe:
        return COMPARED_RECIPES.get(self.recipe)

    @property
    def headline_mean(self) -> float:
        return next(iter(self.scores.values()))[0]

    @property
    def headline_std(self) -> float:
        return next(iter(self.scores.values()))[1]

    @property
    def reached(self) -> Optional[int]:
        """How much of the budget the cells really had, in its unit: labelled rows per class (the largest class
        share), or training examples in all; None when not known."""
        return self.rows_per_class_max if self.compared.budget_per_class else self.train_rows

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
        had = self.rows_per_class_min if self.compared.budget_per_class else self.train_rows
        return self.label_budget == "all" or had in (None, int(self.label_budget))


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
    compared = COMPARED_RECIPES.get(cells[0].cell.recipe if cells else AUTO_RECIPE)
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
        scores = {
            metric.key: _mean_std([v for m in finished if (v := _test_metric(m.results, metric.key)) is not None])
            for metric in compared.metrics
        }
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
                scores,
                statistics.fmean(seconds) if seconds else math.nan,
                max(memory) if memory else None,
                finished[0].results.get("trainable_params") if finished else None,
                len(members) - len(finished),
                min(low for low, _ in ranges) if ranges else None,
                max(high for _, high in ranges) if ranges else None,
                len(labelled) > 1 and all(drawn.rows == labelled[0].rows for drawn in labelled),
                arms,
                LABELLED_ROW_CHOICES.get(members[0].cell.selection).select_strategy is not None,
                compared.name,
                _per_label_means(finished, compared),
                members[0].cell.arms,
            )
        )
    return rows


def _per_label_means(finished: Sequence[CellResult], compared: ComparedRecipe) -> dict[str, float]:
    """The mean over seeds of each label's score (detection's AP per class; -1, a class absent from the split, left
    out), by label."""
    prefix = compared.per_label_prefix
    if prefix is None:
        return {}
    values: dict[str, list[float]] = {}
    for member in finished:
        for key, value in member.results.items():
            if key.startswith(prefix) and value is not None and float(value) >= 0:
                values.setdefault(key[len(prefix) :], []).append(float(value))
    return {label: statistics.fmean(scores) for label, scores in values.items()}


def _budget_value(budget: str) -> float:
    return math.inf if budget == "all" else float(budget)


def _where(row: SummaryRow) -> str:
    """The labelled rows a row's cells really had, in words: the budget asked for when every class met it."""
    if not row.compared.budget_per_class:
        unit = row.compared.budget_unit
        if row.label_budget == "all":
            return f"all {unit}" + (f" ({row.train_rows})" if row.train_rows else "")
        if row.budget_met:
            return f"{row.label_budget} {unit}"
        return f"{row.train_rows} {unit} (asked {row.label_budget}; the train split has no more)"
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
    scored = [r for r in rows if r.seeds and not math.isnan(r.headline_mean)]
    if not scored:
        return "No cell finished: no recommendation."
    budget = max((r.label_budget for r in scored), key=_budget_value)
    at_budget = sorted((r for r in scored if r.label_budget == budget), key=lambda r: r.headline_mean, reverse=True)
    best = at_budget[0]
    where = _where(best)
    compared = best.compared
    if len(at_budget) == 1:
        return (
            f"With {where}: {best.label} reaches {best.headline_mean:.3f} test {compared.headline.name} (nothing to "
            "compare with)."
        )
    second = at_budget[1]
    margin = best.headline_mean - second.headline_mean
    spread = math.hypot(best.headline_std, second.headline_std)
    seeds = min(best.seeds, second.seeds)
    same = best.same_rows or second.same_rows
    numbers = (
        f"{best.headline_mean:.3f} ± {best.headline_std:.3f} against {second.headline_mean:.3f} ± "
        f"{second.headline_std:.3f} for {second.label} over {seeds} seed{'s' if seeds != 1 else ''}"
        + (" that all drew the same labelled rows" if same else "")
    )
    if seeds < 2 or (same and spread == 0):
        why = "one seed has no spread" if seeds < 2 else "identical rows and identical runs have no spread"
        smallest = min(r.rows_per_class_min or 0 for r in (best, second))
        fix = (
            f"; label budgets below {smallest} rows per class draw other rows per seed"
            if same and smallest > 1 and compared.rows_seed_argument is not None
            else ""
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


def _compared(rows: Sequence[SummaryRow], compared: Optional[ComparedRecipe]) -> ComparedRecipe:
    """The recipe a table is of: given, else its rows' (finetune's for an empty table)."""
    return compared or (rows[0].compared if rows else COMPARED_RECIPES.get(AUTO_RECIPE))


def _columns(compared: ComparedRecipe) -> tuple[str, ...]:
    """comparison.csv's columns: each metric's mean and std (`accuracy_mean`, ..., `map_50_std`) after the cell's
    coordinates."""
    scores = tuple(f"{metric.key}_{statistic}" for metric in compared.metrics for statistic in ("mean", "std"))
    return _LEADING_COLUMNS + scores + _TRAILING_COLUMNS


_LEADING_COLUMNS = ("model", "strategy", "label_budget", "train_rows", "seeds")
_TRAILING_COLUMNS = (
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

    compared = COMPARED_RECIPES.get(cells[0].cell.recipe if cells else AUTO_RECIPE)
    keys = tuple(f"{split}_{metric.key}" for split in ("test", "eval") for metric in compared.metrics)
    keys += ("train_runtime", "train_samples", "trainable_params")
    labels = model_labels([c.cell.model for c in cells])
    with path.open("w") as out:
        for c in cells:
            numbers = {k: c.results.get(k) for k in keys} if c.results is not None else {}
            numbers.update({k: v for k, v in (c.results or {}).items() if k.startswith(HP_SEARCH_PREFIX)})
            numbers.update({k: v for k, v in (c.results or {}).items() if "pseudo" in k or "unlabelled" in k})
            if compared.per_label_prefix is not None:  # detection's AP per class
                numbers.update({k: v for k, v in (c.results or {}).items() if k.startswith(compared.per_label_prefix)})
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
                row[compared.column("labelled_rows")] = c.labelled.total
                row[compared.column("labelled_rows_per_class")] = c.labelled.per_class
            out.write(json.dumps(row) + "\n")


def write_csv(rows: Sequence[SummaryRow], path: Path, compared: Optional[ComparedRecipe] = None) -> None:
    compared = _compared(rows, compared)
    columns = _columns(compared)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([compared.column(c) for c in columns])
        for row in rows:
            scores = [value for metric in compared.metrics for value in row.score(metric.key)]
            writer.writerow(
                [getattr(row, c) for c in _LEADING_COLUMNS] + scores + [getattr(row, c) for c in _TRAILING_COLUMNS]
            )


def _budget_cell(r: SummaryRow) -> str:
    """The budget as the table shows it: asked, and what the cells really had where that differs."""
    if not r.compared.budget_per_class:
        if r.label_budget == "all":
            return "all" + (f" ({r.train_rows})" if r.train_rows else "")
        return r.label_budget if r.budget_met else f"{r.train_rows} (asked {r.label_budget})"
    if r.label_budget == "all":
        return "all" + (f" ({r.rows_per_class})" if r.rows_per_class else "")
    if r.selected:
        return f"{r.label_budget} ({r.rows_per_class} picked)" if r.rows_per_class else r.label_budget
    return r.label_budget if r.budget_met else f"{r.rows_per_class} (asked {r.label_budget})"


def _per_label_table(rows: Sequence[SummaryRow], compared: ComparedRecipe) -> str:
    """Each row's per-label score (detection's AP per class), mean over seeds; empty without any."""
    labels = list(dict.fromkeys(label for r in rows for label in r.per_label))
    if not labels:
        return ""
    budget_column = compared.table_columns[0]
    lines = [
        f"| model | strategy | {budget_column} | " + " | ".join(labels) + " |",
        "|---|---|---|" + "---|" * len(labels),
    ]
    for r in sorted(rows, key=lambda r: (_budget_value(r.label_budget), -r.headline_mean)):
        strategy = f"{r.strategy}, {r.arms}" if r.arms else r.strategy
        values = " | ".join(f"{r.per_label[label]:.3f}" if label in r.per_label else "" for label in labels)
        lines.append(f"| {r.model} | {strategy} | {_budget_cell(r)} | {values} |")
    return (
        f"\n## {compared.per_label_name} per class\n\nTest split, else validation; mean over seeds (a class absent "
        "from the split is left out).\n\n" + "\n".join(lines) + "\n"
    )


def _transfer_gain_table(rows: Sequence[SummaryRow], compared: ComparedRecipe) -> str:
    """Pretrained minus random-init backbone, per (model, strategy, arms, budget) that has both (`--backbone_init`):
    what pretraining brings, the gap the random-init baseline exists to show; empty without such pairs."""

    def key(r: SummaryRow, init: str) -> tuple:
        others = {k: v for k, v in r.arm_values.items() if k != "backbone_init"}
        return r.model, r.strategy, r.label_budget, tuple(sorted(others.items())), init

    by_key = {key(r, r.arm_values.get("backbone_init", DEFAULT_BACKBONE_INIT)): r for r in rows if r.seeds}
    lines = []
    for r in sorted(rows, key=lambda r: (_budget_value(r.label_budget), r.model, r.strategy)):
        if r.arm_values.get("backbone_init", DEFAULT_BACKBONE_INIT) == DEFAULT_BACKBONE_INIT or not r.seeds:
            continue
        pretrained = by_key.get(key(r, DEFAULT_BACKBONE_INIT))
        if pretrained is None:
            continue
        gain = pretrained.headline_mean - r.headline_mean
        spread = math.hypot(pretrained.headline_std, r.headline_std)
        others = ", ".join(f"{k} {v}" for k, v in r.arm_values.items() if k != "backbone_init")
        strategy = f"{r.strategy}, {others}" if others else r.strategy
        lines.append(
            f"| {r.model} | {strategy} | {_budget_cell(r)} | {pretrained.headline_mean:.3f} | "
            f"{BACKBONE_INITS.get(r.arm_values['backbone_init']).label}: {r.headline_mean:.3f} | "
            f"{gain:+.3f} ± {spread:.3f} |"
        )
    if not lines:
        return ""
    name = f"Test {compared.headline.name}"
    header = [
        f"| model | strategy | {compared.table_columns[0]} | pretrained | other init | gain |",
        "|---|---|---|---|---|---|",
    ]
    return (
        f"\n## Transfer gain\n\n{name} of the pretrained backbone minus the same architecture at another "
        "initialisation (`--backbone_init`), means over seeds; the ± combines both rows' spreads.\n\n"
        + "\n".join(header + lines)
        + "\n"
    )


def write_markdown(
    rows: Sequence[SummaryRow],
    recommendation: str,
    plots: Sequence[str],
    path: Path,
    compared: Optional[ComparedRecipe] = None,
) -> str:
    compared = _compared(rows, compared)
    budget_column, size_column = compared.table_columns
    scores = " | ".join(f"test {metric.name}" for metric in compared.metrics)
    header = (
        f"| model | strategy | {budget_column} | {size_column} | {scores} | train s | peak memory MiB | "
        "trainable params |"
    )
    lines = [header, "|---|---|---|---|" + "---|" * len(compared.metrics) + "---|---|---|"]
    for r in sorted(rows, key=lambda r: (_budget_value(r.label_budget), -r.headline_mean)):
        failed = f" ({r.failed} failed)" if r.failed else ""
        seeds = f"{r.seeds}, same rows" if r.same_rows else str(r.seeds)
        size = r.train_rows if compared.budget_per_class else r.rows_per_class
        strategy = f"{r.strategy}, {r.arms}" if r.arms else r.strategy
        (mean, std), *others = r.scores.values()
        values = [f"{mean:.3f} ± {std:.3f} ({seeds}){failed}"] + [f"{m:.3f} ± {s:.3f}" for m, s in others]
        lines.append(
            f"| {r.model} | {strategy} | {_budget_cell(r)} | {size or ''} | {' | '.join(values)} | "
            f"{r.train_seconds_mean:.0f} | {'' if r.peak_memory_mib is None else f'{r.peak_memory_mib:.0f}'} | "
            f"{'' if r.trainable_params is None else f'{r.trainable_params:,}'} |"
        )
    text = (
        "# Strategy comparison\n\n"
        f"{recommendation}\n\n"
        f"{compared.table_note}\n\n"
        + "\n".join(lines)
        + "\n"
        + _transfer_gain_table(rows, compared)
        + _per_label_table(rows, compared)
    )
    for plot in plots:
        text += f"\n![{plot}]({plot})\n"
    path.write_text(text)
    return text
