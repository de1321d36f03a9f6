"""What each label budget really gives: the labelled rows every (budget, seed) cell trains on, drawn the way the
recipe draws them, before any cell runs. A budget larger than a class gives that class's every row, and a budget
larger than every class gives every seed the same rows: the table and the recommendation must say so."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Optional, Sequence

from datasets import Dataset

from ..data import DataArguments, infer_task, load_transfer_dataset
from ..data.splits import per_class_subset, subsample
from ..errors import ConfigError
from ..tasks import TASKS

__all__ = [
    "LabelledRows",
    "check_single_label",
    "draw_labelled_rows",
    "load_train_pool",
    "warn_small_classes",
]

logger = logging.getLogger(__name__)

_ROW = "__compare_row__"


@dataclass(frozen=True)
class LabelledRows:
    """The labelled rows one (budget, seed) cell trains on: how many per class, in total, and which."""

    per_class: dict[str, int]
    total: int
    rows: frozenset[int]  # positions in the train pool, to tell whether two seeds drew the same rows

    @property
    def per_class_range(self) -> tuple[int, int]:
        counts = list(self.per_class.values())
        return min(counts), max(counts)


def load_train_pool(data_args: DataArguments, cache_dir: Optional[str], task: str) -> Dataset:
    """The train split every cell subsets, loaded as the recipe loads it: no label budget, no train subsample."""
    pool_args = dataclasses.replace(
        data_args, train_samples_per_class=None, train_samples_seed=None, max_train_samples=None
    )
    return load_transfer_dataset(pool_args, cache_dir=cache_dir, task=task)["train"]


def check_single_label(train: Dataset, dataset: str) -> None:
    """compare scores one class per row (accuracy, macro-F1, rows per class): anything else stops here, before any
    cell trains, not as a table of nan."""
    task = infer_task(train)
    if not TASKS.get(task).one_class_per_row:
        raise ConfigError(
            f"hf-transfer compare scores single-label classification and {dataset} holds {task.replace('_', '-')} "
            f"labels: run recipes/finetune.py --task {task} for it (or pass --label_column with a column of classes)."
        )


def draw_labelled_rows(
    train: Dataset, budgets: Sequence[str], seeds: Sequence[int], max_train_samples: Optional[int]
) -> dict[tuple[str, int], LabelledRows]:
    """The rows of every (budget, seed) cell, with the recipe's own subset functions in the recipe's order
    (`hf_transfer.data.loading`: the per-class budget, then --max_train_samples, both seeded by the cell's seed)."""
    names = train.features["label"].names
    pool = train.select_columns(["label"]).add_column(_ROW, list(range(len(train))))
    drawn = {}
    for budget in dict.fromkeys(budgets):
        for seed in dict.fromkeys(seeds):
            rows = per_class_subset(pool, None if budget == "all" else int(budget), seed, "the train split")
            rows = subsample(rows, max_train_samples, seed)
            counts = {name: 0 for name in names}
            for label in rows["label"]:
                counts[names[label]] += 1
            drawn[(budget, seed)] = LabelledRows(counts, len(rows), frozenset(rows[_ROW]))
    return drawn


def warn_small_classes(train: Dataset, drawn: dict[tuple[str, int], LabelledRows]) -> list[str]:
    """One warning per numeric budget that some class cannot fill: logged, and returned (one line each)."""
    names = train.features["label"].names
    sizes = {name: 0 for name in names}
    for label in train["label"]:
        sizes[names[label]] += 1
    smallest = min(sizes, key=sizes.get)
    lines = []
    for budget in dict.fromkeys(b for b, _ in drawn if b != "all"):
        short = [name for name, size in sizes.items() if size < int(budget)]
        if not short:
            continue
        draws = [rows for (b, _), rows in drawn.items() if b == budget]
        low, high = min(d.per_class_range[0] for d in draws), max(d.per_class_range[1] for d in draws)
        same = len(draws) > 1 and all(d.rows == draws[0].rows for d in draws)
        lines.append(
            f"label budget {budget}: {len(short)} of {len(sizes)} classes have fewer rows (smallest: {smallest!r}, "
            f"{sizes[smallest]}), so its cells get {low if low == high else f'{low}-{high}'} labelled rows per class"
            + ("; every seed draws the same rows, so their spread is training noise alone" if same else "")
            + ". The table shows the rows each cell really had."
        )
    for line in lines:
        logger.warning(line)
    return lines
