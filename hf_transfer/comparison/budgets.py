"""What each label budget really gives: the labelled rows every (budget, seed) cell trains on, drawn the way the
recipe draws them, before any cell runs. A budget larger than a class gives that class's every row, and a budget
larger than every class gives every seed the same rows: the table and the recommendation must say so.

Each compared recipe plans its cells' rows with a function of its own (`ComparedRecipe.plan_rows`, returning a
`RowsPlan`): classification's is `command.plan_classification_rows`, detection's `plan_detection_images` here."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from datasets import Dataset

from ..data import DataArguments, infer_task, load_transfer_dataset
from ..data.splits import SOURCE_ROW, per_class_subset, subsample
from ..errors import ConfigError
from ..tasks import TASKS

__all__ = [
    "LabelledRows",
    "RowsPlan",
    "plan_detection_images",
    "check_single_label",
    "choose_labelled_rows",
    "draw_labelled_rows",
    "load_train_pool",
    "select_pool",
    "warn_small_classes",
]

if TYPE_CHECKING:
    import torch

    from ..detection import DetectionDataArguments
    from .arguments import CompareArguments
    from .grid import Cell

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


@dataclass
class RowsPlan:
    """What every cell of a comparison will train on, known before any cell runs.

    Args:
        labelled_rows: the labelled rows a cell has (the table's "what each cell really had").
        cell_rows: a cell's --train_rows_file content (`{"labelled": [...], "unlabelled": [...]}`), or None when the
            cell draws its rows itself from its flags.
        shared_flags: recipe flags every cell gets besides the data flags.
    """

    labelled_rows: Callable[["Cell"], LabelledRows]
    cell_rows: Callable[["Cell"], Optional[dict]] = lambda cell: None
    shared_flags: list[str] = field(default_factory=list)


def plan_detection_images(
    data_args: "DetectionDataArguments", compare_args: "CompareArguments", recipe_values: dict
) -> RowsPlan:
    """The training images of every detection budget, loaded and checked once as recipes/detect.py loads them
    (`load_detection_dataset`: a bad box stops the comparison here, naming the row, not in every cell). detect
    subsets train by --split_seed, so every seed of a budget has the same images; a budget larger than the train
    split gives all of it, and is said."""
    from ..detection import category_names_of, load_detection_dataset

    drawn: dict[str, LabelledRows] = {}
    for budget in dict.fromkeys(compare_args.label_budgets):
        asked = None if budget == "all" else int(budget)
        splits = load_detection_dataset(
            dataclasses.replace(data_args, max_train_samples=asked), cache_dir=recipe_values.get("cache_dir")
        )
        train, names = splits["train"], category_names_of(splits)
        categories = [category for objects in train["objects"] for category in objects["category"]]
        boxes = {name: categories.count(index) for index, name in enumerate(names)}
        drawn[budget] = LabelledRows(boxes, len(train), frozenset(train["image_id"]))
        if asked is not None and len(train) < asked:
            logger.warning(
                f"budget {budget}: the train split has {len(train)} images, so its cells train on all of them. The "
                "table shows the images each cell really had."
            )
    return RowsPlan(labelled_rows=lambda cell: drawn[cell.label_budget])


def load_train_pool(data_args: DataArguments, cache_dir: Optional[str], task: str) -> Dataset:
    """The train split every cell subsets, loaded as the recipe loads it: no label budget, no train subsample. Its
    `SOURCE_ROW` column holds each row's position in the source's train split, the positions a cell's
    --train_rows_file names."""
    pool_args = dataclasses.replace(
        data_args, train_samples_per_class=None, train_samples_seed=None, max_train_samples=None
    )
    return load_transfer_dataset(pool_args, cache_dir=cache_dir, task=task, keep_source_rows=True)["train"]


def select_pool(train: Dataset, pool_samples: Optional[int], seed: int) -> Dataset:
    """The rows every cell's labelled rows (and unlabelled rest) come from: --pool_samples of train, class-stratified
    and seeded by --split_seed (the same pool for every seed, so seeds differ only in what they pick)."""
    return subsample(train, pool_samples, seed)


def check_single_label(train: Dataset, dataset: str) -> None:
    """compare scores one class per row (accuracy, macro-F1, rows per class): anything else stops here, before any
    cell trains, not as a table of nan."""
    task = infer_task(train)
    if not TASKS.get(task).one_class_per_row:
        raise ConfigError(
            f"hf-transfer compare scores single-label classification and {dataset} holds {task.replace('_', '-')} "
            f"labels: run recipes/finetune.py --task {task} for it (or pass --label_column with a column of classes)."
        )


def _labelled_rows(names: Sequence[str], labels: Sequence[int], positions: Sequence[int]) -> LabelledRows:
    counts = {name: 0 for name in names}
    for label in labels:
        counts[names[label]] += 1
    return LabelledRows(counts, len(positions), frozenset(positions))


def choose_labelled_rows(
    pool: Dataset,
    budgets: Sequence[str],
    seeds: Sequence[int],
    select_strategy: Optional[str],
    features: Optional[Callable[[], "torch.Tensor"]] = None,
) -> dict[tuple[str, int], list[int]]:
    """Each (budget, seed)'s labelled rows as source positions (`SOURCE_ROW`): the seeded draw per class without a
    `select_strategy`, else that `hf-transfer select` strategy on the pool's `features()` (computed once, only
    here), the labels hidden. Selection runs in rounds from the smallest budget up, each adding budget x classes
    rows minus those picked before, the picked rows' labels revealed to the uncertainty strategies (`auto` is
    `typical` in the first round and `badge` after, as `hf-transfer select` resolves it)."""
    positions = list(pool[SOURCE_ROW])
    names = pool.features["label"].names
    numeric = sorted({int(b) for b in budgets if b != "all"})
    chosen: dict[tuple[str, int], list[int]] = {}
    if select_strategy is None:
        for budget in dict.fromkeys(budgets):
            for seed in dict.fromkeys(seeds):
                rows = per_class_subset(pool, None if budget == "all" else int(budget), seed, "the pool")
                chosen[(budget, seed)] = list(rows[SOURCE_ROW])
        return chosen

    import numpy as np
    import torch
    from sklearn.preprocessing import normalize

    from ..selection.registry import resolve_strategy
    from ..selection.strategies import SelectionProblem
    from ..selection.uncertainty import fit_selection_probe

    pool_features = features()
    unit = normalize(pool_features.double().numpy())
    labels = np.asarray(pool["label"])
    for seed in dict.fromkeys(seeds):
        picked: list[int] = []
        for budget in numeric:
            wanted = min(budget * len(names), len(pool))
            if wanted > len(picked):
                strategy = resolve_strategy(select_strategy, labelled=bool(picked), task="single_label")
                probe = None
                if strategy.needs_probe:
                    seen = sorted(set(labels[picked].tolist()))
                    probe = fit_selection_probe(
                        pool_features[picked],
                        torch.as_tensor(np.searchsorted(seen, labels[picked])),
                        pool_features,
                        "single_label",
                        [names[c] for c in seen],
                        strategy.name,
                        seed,
                    )
                problem = SelectionProblem(
                    unit, np.ones(len(unit), bool), wanted - len(picked), picked_before=picked, seed=seed, probe=probe
                )
                picked += [pick.row for pick in strategy.select(problem)]
            chosen[(str(budget), seed)] = [positions[row] for row in picked]
    return chosen


def labelled_rows_of(pool: Dataset, chosen: Sequence[int]) -> LabelledRows:
    """What a cell given the `chosen` source positions of `pool` has, per class."""
    where = {position: index for index, position in enumerate(pool[SOURCE_ROW])}
    labels = list(pool["label"])
    return _labelled_rows(pool.features["label"].names, [labels[where[p]] for p in chosen], chosen)


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
