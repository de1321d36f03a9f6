"""The recipes `hf-transfer compare` runs as cells, by name (a task entry's `recipe`): recipes/finetune.py for
classification, recipes/detect.py for object detection.

An entry holds everything that differs between them: the script and its argument classes (which read --recipe_args),
its data arguments (the data flags compare takes itself), its strategies, the flag that names a cell's model, what a
label budget counts and the flag that sets it, the metrics the table, the plots and the recommendation read (the
first is the headline), and the arms the recipe has. The command, the grid and the summary ask the entry; adding a
recipe is adding an entry. Implementations are named lazily: argument modules read this one for free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .._registry import LazyReference, Registry
from ..tasks import AUTO_TASK, TASKS

__all__ = ["ARM_FLAGS", "COMPARED_RECIPES", "ComparedMetric", "ComparedRecipe", "compared_recipe_for"]

# compare's arm flags (beyond model, strategy, budget and seed); each recipe lists the ones it has.
ARM_FLAGS = ("selection", "unlabelled", "pool_samples", "head_init", "hp_search", "backbone_init")

AUTO_RECIPE = "finetune"  # --task auto: the task is read from the data, which finetune's loaders do


@dataclass(frozen=True)
class ComparedMetric:
    """A score of the table: `key` in all_results.json (`test_<key>`, else `eval_<key>`), `name` in the table."""

    key: str
    name: str


@dataclass(frozen=True)
class ComparedRecipe:
    """A recipe that compare runs as its cells.

    Args:
        name: the recipe, as `Task.recipe` names it (`finetune`, `detect`).
        script: its file in recipes/.
        what: what it trains, for messages ("single-label classification").
        tasks: the `--task` values whose runs compare can score with its metrics.
        argument_classes: `() -> tuple` of the recipe's argument dataclasses, in its order (--recipe_args and
            --strategy_args are read with them).
        data_arguments: the recipe's data dataclass: compare takes these flags itself, so every cell and the
            comparison read the same data.
        data_name: `data_args -> str`, what the data is called in titles and the default folder.
        plan_rows: `(data_args, compare_args, recipe_values) -> RowsPlan`: loads the data once before any cell and
            says which labelled rows each cell will have (`hf_transfer.comparison.budgets.RowsPlan`).
        strategy_registry: the recipe's --strategy registry (`strategies` once imported).
        default_strategies, default_models, default_budgets: compare's defaults for it.
        model_argument: the recipe argument a cell's model goes to.
        budget_argument: the recipe argument a cell's label budget goes to.
        budget_per_class: a budget counts labelled rows per class (else training examples in all).
        budget_unit: what one unit of budget is, in words ("labelled training rows per class", "training images").
        budget_folder: the budget's part of a cell's folder name, `{budget}` filled in.
        rows_seed_argument: the recipe argument that the cell's seed also sets to draw its labelled rows; None when
            the seed does not change them (every seed trains on the same examples).
        metrics: the table's scores, the headline first.
        per_label_prefix: results keys of per-label scores (`test_ap_`), kept in the cells' numbers and tabled.
        per_label_name: their name in the table ("AP").
        arms: the arm flags of compare (`ARM_FLAGS`) it has.
        cell_flags: the recipe arguments compare sets per cell, each with compare's flag that sets it.
        table_columns: the table's names for the budget and for what the cells had ("labels per class", "train
            rows"; "train images", "boxes per class").
        plot_files: the two plots' file names (headline against budget, headline against training time).
        table_note: the paragraph under the table's title that says how to read it.
        column_names: comparison.csv's and comparison_cells.jsonl's names for what the cells had, where a recipe's
            words differ from classification's (`train_rows` -> `train_images`, `rows_per_class_min` ->
            `boxes_per_class_min`, `labelled_rows_per_class` -> `boxes_per_class`).
    """

    name: str
    script: str
    what: str
    tasks: tuple[str, ...]
    argument_classes: LazyReference
    data_arguments: LazyReference
    data_name: LazyReference
    plan_rows: LazyReference
    strategy_registry: LazyReference
    default_strategies: tuple[str, ...]
    default_models: tuple[str, ...]
    default_budgets: tuple[str, ...]
    model_argument: str
    budget_argument: str
    budget_per_class: bool
    budget_unit: str
    budget_folder: str
    rows_seed_argument: Optional[str]
    metrics: tuple[ComparedMetric, ...]
    arms: tuple[str, ...]
    cell_flags: dict[str, str]
    table_columns: tuple[str, str]
    plot_files: tuple[str, str]
    table_note: str
    per_label_prefix: Optional[str] = None
    per_label_name: Optional[str] = None
    column_names: dict[str, str] = field(default_factory=dict)

    @property
    def strategies(self) -> Registry:
        return self.strategy_registry.resolve()

    @property
    def headline(self) -> ComparedMetric:
        return self.metrics[0]

    def column(self, name: str) -> str:
        """`name` as this recipe's tables and cell numbers call it."""
        return self.column_names.get(name, name)

    def folder_budget(self, budget: str) -> str:
        return "all" if budget == "all" else self.budget_folder.format(budget=budget)


COMPARED_RECIPES: Registry[ComparedRecipe] = Registry("compared recipe", "--task")

_SHARED_CELL_FLAGS = {"strategy": "--strategy", "seed": "--seed", "output_dir": "--output_dir"}

COMPARED_RECIPES.register(
    ComparedRecipe(
        name="finetune",
        script="finetune.py",
        what="single-label classification",
        tasks=(AUTO_TASK, *(task.name for task in TASKS.entries() if task.one_class_per_row)),
        argument_classes=LazyReference("hf_transfer.finetuning.recipe_arguments:finetune_argument_classes"),
        data_arguments=LazyReference("hf_transfer.data:DataArguments"),
        data_name=LazyReference("hf_transfer.data:data_source_name"),
        plan_rows=LazyReference("hf_transfer.comparison.command:plan_classification_rows"),
        strategy_registry=LazyReference("hf_transfer.finetuning.strategies:STRATEGIES"),
        default_strategies=("linear_probe", "lora", "full"),
        default_models=("minilm",),
        default_budgets=("8", "32", "128"),
        model_argument="model_name_or_path",
        budget_argument="train_samples_per_class",
        budget_per_class=True,
        budget_unit="labelled training rows per class",
        budget_folder="{budget}-per-class",
        rows_seed_argument="train_samples_seed",
        metrics=(ComparedMetric("accuracy", "accuracy"), ComparedMetric("f1", "macro-F1")),
        arms=("selection", "unlabelled", "pool_samples", "head_init", "hp_search"),
        cell_flags={
            "model_name_or_path": "--model_name_or_path",
            **_SHARED_CELL_FLAGS,
            "train_samples_seed": "--seed",
            "train_samples_per_class": "--train_samples_per_class",
            "hp_search": "--hp_search",  # to the cells of the strategies that fine-tune
            "train_rows_file": "--selection, --unlabelled and --pool_samples",
            "head_init": "--head_init",
            "head_init_model": "--head_init_model",
            "head_init_template": "--head_init (the aligned run's caption template)",
        },
        table_columns=("labels per class", "train rows"),
        plot_files=("accuracy_vs_labels.png", "accuracy_vs_time.png"),
        table_note=(
            "Mean ± standard deviation over seeds (their number in brackets); test split, else validation. Labels per "
            "class: the labelled rows each class really gave (a class smaller than the budget gives all of its rows; a "
            "selection strategy picks the budget times the classes in all, and the range it picked per class is "
            'shown). "same rows": every seed drew the same labelled rows, so the ± is training noise alone. Peak '
            "memory: the run's GPU peak, else the process's resident peak."
        ),
    )
)
COMPARED_RECIPES.register(
    ComparedRecipe(
        name="detect",
        script="detect.py",
        what="object detection",
        tasks=("object_detection",),
        argument_classes=LazyReference("hf_transfer.detection.arguments:detect_argument_classes"),
        data_arguments=LazyReference("hf_transfer.detection.arguments:DetectionDataArguments"),
        data_name=LazyReference("hf_transfer.detection.arguments:detection_source_name"),
        plan_rows=LazyReference("hf_transfer.comparison.budgets:plan_detection_images"),
        strategy_registry=LazyReference("hf_transfer.detection.strategies:DETECTION_STRATEGIES"),
        default_strategies=("frozen_backbone", "full"),
        default_models=("efficientnet-lite0",),
        default_budgets=("100", "300", "1000"),
        model_argument="backbone",
        budget_argument="max_train_samples",
        budget_per_class=False,
        budget_unit="training images",
        budget_folder="{budget}-images",
        rows_seed_argument=None,  # detect subsets train by --split_seed: every seed trains on the same images
        metrics=(ComparedMetric("map", "mAP"), ComparedMetric("map_50", "mAP@50"), ComparedMetric("map_75", "mAP@75")),
        arms=("backbone_init",),
        cell_flags={
            "backbone": "--model_name_or_path (or --backbone)",
            "model_name_or_path": "--model_name_or_path (the backbones)",
            **_SHARED_CELL_FLAGS,
            "max_train_samples": "--max_train_samples (the budgets)",
            "random_init": "--backbone_init",
        },
        table_columns=("train images", "boxes per class"),
        plot_files=("map_vs_images.png", "map_vs_time.png"),
        per_label_prefix="test_ap_",
        per_label_name="AP",
        column_names={
            "train_rows": "train_images",
            "rows_per_class_min": "boxes_per_class_min",
            "rows_per_class_max": "boxes_per_class_max",
            "labelled_rows": "train_images",
            "labelled_rows_per_class": "boxes_per_class",
        },
        table_note=(
            "Mean ± standard deviation over seeds (their number in brackets) of COCO mAP (torchmetrics); test split, "
            "else validation. Train images: the labelled images each cell trained on (a budget larger than the train "
            'split gives all of it). "same rows": every seed trained on the same images (recipes/detect.py subsets '
            "train by --split_seed), so the ± is training noise alone. Peak memory: the run's GPU peak, else the "
            "process's resident peak."
        ),
    )
)


def compared_recipe_for(task: str) -> ComparedRecipe:
    """The recipe compare runs for `--task` (`auto`: finetune's, which reads the task from the data)."""
    return COMPARED_RECIPES.get(AUTO_RECIPE if task == AUTO_TASK else TASKS.get(task).recipe)
