"""`hf-transfer compare`: which strategy for this data? A grid of strategies x seeds x label budgets through the
recipe of the task (recipes/finetune.py; recipes/detect.py for `--task object_detection`), then the table, the plots
and a recommendation in the comparison folder.

    hf-transfer compare recipes/configs/compare.yaml                  # MiniLM on tweets: probe, LoRA, full
    hf-transfer compare --model_name_or_path minilm --strategy linear_probe lora --train_samples_per_class 8 32 all \\
        --train_file reviews.csv --recipe_args "--num_train_epochs 3" --output_dir outputs/compare-reviews
    hf-transfer compare --task object_detection --backbone efficientnet-lite0 --strategy frozen_backbone full \\
        --backbone_init pretrained random --max_train_samples 100 300 --dataset_name fashion_mnist_boxes

Before any cell trains, the data is loaded once: a task compare does not score (regression, multi-label, NER)
stops here, bad boxes stop a detection comparison, and each cell's real labelled rows are drawn as its run will
draw them. Ctrl-C (or SIGTERM) stops the running cells, writes the table of the finished ones and exits with 130;
the same command resumes.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

from transformers import HfArgumentParser

from ..data import DataArguments
from ..data.splits import SOURCE_ROW
from ..errors import ConfigError
from ..hub import HubArguments, check_repo_id
from ..recipe.arguments import config_to_argv, given_argument_names, given_argument_value, parse_recipe_args
from ..tasks import AUTO_TASK
from .arguments import CompareArguments
from .arms import LABELLED_ROW_CHOICES, UNLABELLED_POOLS
from .budgets import (
    LabelledRows,
    RowsPlan,
    check_single_label,
    choose_labelled_rows,
    draw_labelled_rows,
    labelled_rows_of,
    load_train_pool,
    select_pool,
    warn_small_classes,
)
from .compared import COMPARED_RECIPES, ComparedRecipe, compared_recipe_for
from .grid import Cell, CellResult, GridInterrupted, build_grid, model_labels, run_grid
from .plots import plot_accuracy_vs_labels, plot_accuracy_vs_time
from .publish import push_comparison
from .summary import recommend, summarize, write_cells, write_csv, write_markdown

__all__ = ["INTERRUPTED_EXIT_CODE", "data_flags", "main", "parse_arguments", "plan_classification_rows"]

logger = logging.getLogger(__name__)

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C


def data_flags(data_args) -> list[str]:
    """The data arguments the user set, as recipe flags: every cell reads the same data."""
    changed = {
        f.name: getattr(data_args, f.name)
        for f in dataclasses.fields(data_args)
        if f.init and getattr(data_args, f.name) != (f.default if f.default is not dataclasses.MISSING else None)
    }
    return config_to_argv(changed)


def _pool_features(model: str, pool, recipe_values: dict):
    """The backbone's pooled embedding of every pool row (`hf-transfer select`'s extraction and feature cache)."""
    from datasets import DatasetDict

    from ..models import ModelArguments
    from ..probing import FeatureCache
    from ..transferability.candidates import CandidateRequest, extract_candidate_features

    cache_dir = recipe_values.get("feature_cache_dir")
    (candidate,) = extract_candidate_features(
        CandidateRequest(model, source_head=False),
        DatasetDict({"pool": pool.remove_columns(SOURCE_ROW)}),
        model_args=ModelArguments(model_name_or_path=model, cache_dir=recipe_values.get("cache_dir")),
        max_seq_length=recipe_values.get("max_seq_length", 128),
        cache=FeatureCache(cache_dir),
    )
    return candidate.features["pool"]


class _ChosenRows:
    """Every cell's labelled rows (source positions) and unlabelled pool, chosen before any cell runs: the random
    draw once per (budget, seed), a selection strategy once per (model, budget, seed) on that model's features."""

    def __init__(self, pool, models, compare_args: CompareArguments, recipe_values: dict) -> None:
        self.pool = pool
        self.positions = list(pool[SOURCE_ROW])
        self.chosen: dict[tuple[Optional[str], str], dict[tuple[str, int], list[int]]] = {}
        features: dict[str, object] = {}
        budgets, seeds = compare_args.label_budgets, compare_args.seeds
        for name in dict.fromkeys(compare_args.selection):
            strategy = LABELLED_ROW_CHOICES.get(name).select_strategy
            for model in dict.fromkeys(models) if strategy is not None else [None]:

                def pool_features(model=model):
                    if model not in features:
                        features[model] = _pool_features(model, pool, recipe_values)
                    return features[model]

                self.chosen[(model, name)] = choose_labelled_rows(pool, budgets, seeds, strategy, pool_features)
        self.labelled = {key: labelled_rows_of(pool, rows) for key, rows in self._all()}

    def _all(self):
        for (model, name), per_cell in self.chosen.items():
            for (budget, seed), rows in per_cell.items():
                yield (model, name, budget, seed), rows

    def _key(self, cell: Cell) -> tuple:
        model = None if LABELLED_ROW_CHOICES.get(cell.selection).select_strategy is None else cell.model
        return model, cell.selection, cell.label_budget, cell.seed

    def rows(self, cell: Cell) -> dict:
        """The cell's --train_rows_file: its labelled rows, and the pool's other rows where its arm takes them."""
        model, name, budget, seed = self._key(cell)
        labelled = self.chosen[(model, name)][(budget, seed)]
        rows = {"labelled": labelled}
        if UNLABELLED_POOLS.get(cell.unlabelled).uses_pool:
            taken = set(labelled)
            rows["unlabelled"] = [p for p in self.positions if p not in taken]
        return rows

    def labelled_rows(self, cell: Cell) -> LabelledRows:
        return self.labelled[self._key(cell)]


def _write_tables(
    results: list[CellResult], output_dir: Path, title: str, plots: bool, compared: ComparedRecipe
) -> str:
    """comparison.md / .csv / _cells.jsonl (and the plots) of `results`; returns the markdown."""
    rows = summarize(results)
    by_labels, by_time = compared.plot_files
    names = [by_labels, by_time] if plots else []
    if plots:
        plot_accuracy_vs_labels(rows, output_dir / by_labels, title)
        plot_accuracy_vs_time(rows, output_dir / by_time, title)
    write_csv(rows, output_dir / "comparison.csv", compared)
    write_cells(results, output_dir / "comparison_cells.jsonl")
    return write_markdown(rows, recommend(rows), names, output_dir / "comparison.md", compared)


class _SigtermAsInterrupt:
    """SIGTERM handled like Ctrl-C while the comparison runs (main thread only): stop the cells, keep the table."""

    def __enter__(self) -> None:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)

    @staticmethod
    def _raise(signum, frame) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc_info) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def parse_arguments(argv: Optional[Sequence[str]] = None) -> tuple[object, CompareArguments, HubArguments]:
    """`[CONFIG] [--flags]` as (data, comparison, Hub) arguments; the data arguments are the compared recipe's, which
    --task picks (`DataArguments`; `DetectionDataArguments` for object detection). CompareArguments comes after them:
    the recipe's budget flag (--train_samples_per_class, detect's --max_train_samples) becomes compare's list of
    budgets, replacing the single-valued data flag. The Hub's bounds (`--hub_max_retries`, `--hub_request_timeout`,
    `--hub_deadline`) are the recipes' own, so a push message names flags this command has."""
    compared = compared_recipe_for(given_argument_value(argv, "task") or AUTO_TASK)
    given = given_argument_names(argv)
    data_fields = {f.name for f in dataclasses.fields(compared.data_arguments.resolve())}
    for other in COMPARED_RECIPES.entries():  # another recipe's budget flag would count the wrong thing
        if other.budget_argument in given and other.budget_argument not in {compared.budget_argument, *data_fields}:
            raise ConfigError(
                f"--{other.budget_argument} is the budget of recipes/{other.script} ({other.budget_unit}); "
                f"recipes/{compared.script} counts {compared.budget_unit}: pass --{compared.budget_argument} "
                "(or --label_budgets)."
            )
    parser = HfArgumentParser(
        (compared.data_arguments.resolve(), CompareArguments, HubArguments),
        prog="hf-transfer compare",
        conflict_handler="resolve",
    )
    budget = f"--{compared.budget_argument}"
    spellings = [f for f in dict.fromkeys((budget, budget.replace("_", "-"))) if f not in _budget_flags(parser)]
    if spellings:  # the recipe's own budget flag, several values (finetune's is an alias of --label_budgets already)
        parser.add_argument(*spellings, dest="label_budgets", nargs="+", type=str, help="Same as --label_budgets.")
    parser.set_defaults(**{compared.budget_argument: None})  # the data field, now without a flag of its own
    return parse_recipe_args(parser, argv)


def _budget_flags(parser: HfArgumentParser) -> list[str]:
    return [option for action in parser._actions if action.dest == "label_budgets" for option in action.option_strings]


def plan_classification_rows(data_args: DataArguments, compare_args: CompareArguments, recipe_values: dict) -> RowsPlan:
    """recipes/finetune.py's cells: a task compare does not score stops here; each (budget, seed) cell's labelled
    rows are drawn as the recipe will draw them (or chosen by the arms, and handed over as a --train_rows_file), and
    a budget a class cannot fill is said."""
    if data_args.train_samples_seed is not None:
        raise ConfigError("--train_samples_seed is each cell's --seed (it draws the labelled rows): pass --seed.")
    if data_args.train_rows_file is not None:
        raise ConfigError(
            "--train_rows_file is what compare writes for each cell: choose the rows with --selection, --unlabelled "
            "and --pool_samples."
        )
    if compare_args.explicit_rows and data_args.max_train_samples is not None:
        raise ConfigError(
            "--max_train_samples subsets the labelled rows: with --selection, --unlabelled or "
            "--pool_samples, size the pool with --pool_samples instead."
        )
    if data_args.dataset_name is None and data_args.train_file is None and data_args.train_dir is None:
        raise ConfigError("Name the data: --dataset_name (e.g. tweet_sentiment), --train_file or --train_dir.")
    dataset = compare_args.compared.data_name(data_args)
    train = load_train_pool(data_args, recipe_values.get("cache_dir"), recipe_values.get("task", "auto"))
    check_single_label(train, dataset)
    if compare_args.explicit_rows:  # The pool, and every cell's rows from it (a selection reads its features).
        pool = select_pool(train, compare_args.pool_samples, data_args.split_seed)
        warn_small_classes(pool, draw_labelled_rows(pool, compare_args.label_budgets, compare_args.seeds, None))
        chosen = _ChosenRows(pool, compare_args.model_name_or_path, compare_args, recipe_values)
        # The probe's L2 is then chosen on held-out rows outside the pool (the split compare's pool was cut from)
        # rather than by cross-validation on the labelled rows, which a selection that picked one row of a class
        # could not fold.
        shared = []
        if data_args.validation_split_percentage == DataArguments.validation_split_percentage:  # else a data flag
            shared = ["--validation_split_percentage", str(data_args.validation_split_percentage)]
        return RowsPlan(labelled_rows=chosen.labelled_rows, cell_rows=chosen.rows, shared_flags=shared)
    labelled = draw_labelled_rows(train, compare_args.label_budgets, compare_args.seeds, data_args.max_train_samples)
    warn_small_classes(train, labelled)
    return RowsPlan(labelled_rows=lambda cell: labelled[(cell.label_budget, cell.seed)])


def main(argv: Optional[Sequence[str]] = None) -> int:
    # 1. Arguments: flags, or a YAML / JSON file and overriding flags.
    data_args, compare_args, hub_args = parse_arguments(argv)
    compared = compare_args.compared
    if compare_args.push_to_hub:
        check_repo_id(compare_args.hub_repo_id, "--hub_repo_id")  # before hours of runs, not after

    # 2. The data, once, before any cell (the compared recipe's plan): a task compare does not score and bad boxes
    #    stop here; each cell's labelled rows are drawn as the recipe will draw them, and a budget the data cannot
    #    fill is said.
    recipe_values = compare_args.recipe_values()
    plan: RowsPlan = compared.plan_rows(data_args, compare_args, recipe_values)
    dataset = compared.data_name(data_args)
    output_dir = Path(compare_args.output_dir or f"outputs/compare-{dataset.replace('/', '_')}")
    models = compare_args.model_name_or_path
    title = f"{', '.join(dict.fromkeys(model_labels(models).values()))} on {dataset}"
    output_dir.mkdir(parents=True, exist_ok=True)

    # 3. The grid: every unfinished cell runs; finished ones are read back. An interrupt keeps what finished.
    shared_flags = data_flags(data_args) + plan.shared_flags
    cells = build_grid(
        models,
        compare_args.strategies,
        compare_args.label_budgets,
        compare_args.seeds,
        compare_args.selection,
        compare_args.unlabelled,
        compare_args.head_init,
        compare_args.backbone_init,
        compared.name,
    )
    try:
        with _SigtermAsInterrupt():
            results = run_grid(
                cells,
                output_dir,
                shared_flags,
                extra_flags=lambda cell: compare_args.flags_for(cell.strategy, cell.head_init, cell.backbone_init),
                cell_rows=plan.cell_rows,
                parallel=compare_args.parallel,
            )
    except GridInterrupted as interrupted:
        for result in interrupted.results:
            result.labelled = plan.labelled_rows(result.cell)
        _write_tables(interrupted.results, output_dir, title, False, compared)
        finished = sum(r.results is not None for r in interrupted.results)
        print(
            f"interrupted: {finished} of {interrupted.total} cells finished, the others stopped or never started; "
            f"partial table in {output_dir / 'comparison.md'} (run the same command to finish the rest).",
            file=sys.stderr,
        )
        return INTERRUPTED_EXIT_CODE
    for result in results:
        result.labelled = plan.labelled_rows(result.cell)

    # 4. Table, recommendation and plots.
    print(_write_tables(results, output_dir, title, True, compared))
    failed = [r for r in results if r.results is None]
    print(f"Saved {output_dir / 'comparison.md'}, comparison.csv and the plots", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} cell(s) failed; see {failed[0].log}. Rerun to retry them.", file=sys.stderr)
        return 1
    if compare_args.push_to_hub:
        print(push_comparison(output_dir, compare_args.hub_repo_id, hub_args, private=compare_args.hub_private or None))
    return 0
