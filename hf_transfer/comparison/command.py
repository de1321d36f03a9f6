"""`hf-transfer compare`: which strategy for this data? A grid of strategies x seeds x label budgets through
recipes/finetune.py, then the table, the plots and a recommendation in the comparison folder.

    hf-transfer compare recipes/configs/compare.yaml                  # MiniLM on tweets: probe, LoRA, full
    hf-transfer compare --model_name_or_path minilm --strategy linear_probe lora --train_samples_per_class 8 32 all \\
        --train_file reviews.csv --recipe_args "--num_train_epochs 3" --output_dir outputs/compare-reviews

Before any cell trains, the data is loaded once: a task compare does not score (regression, multi-label, NER)
stops here, and each cell's real labelled rows are drawn as its run will draw them. Ctrl-C (or SIGTERM) stops the
running cells, writes the table of the finished ones and exits with 130; the same command resumes.
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

from ..data import DataArguments, data_source_name
from ..errors import ConfigError
from ..hub import HubArguments, check_repo_id
from ..recipe.arguments import config_to_argv, parse_recipe_args
from .arguments import CompareArguments
from .budgets import check_single_label, draw_labelled_rows, load_train_pool, warn_small_classes
from .grid import CellResult, GridInterrupted, build_grid, model_labels, run_grid
from .plots import plot_accuracy_vs_labels, plot_accuracy_vs_time
from .publish import push_comparison
from .summary import recommend, summarize, write_cells, write_csv, write_markdown

__all__ = ["INTERRUPTED_EXIT_CODE", "data_flags", "main", "parse_arguments"]

logger = logging.getLogger(__name__)

ACCURACY_VS_LABELS = "accuracy_vs_labels.png"
ACCURACY_VS_TIME = "accuracy_vs_time.png"
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C


def data_flags(data_args: DataArguments) -> list[str]:
    """The data arguments the user set, as recipe flags: every cell reads the same data."""
    changed = {
        f.name: getattr(data_args, f.name)
        for f in dataclasses.fields(data_args)
        if f.init and getattr(data_args, f.name) != (f.default if f.default is not dataclasses.MISSING else None)
    }
    return config_to_argv(changed)


def _write_tables(results: list[CellResult], output_dir: Path, title: str, plots: bool) -> str:
    """comparison.md / .csv / _cells.jsonl (and the plots) of `results`; returns the markdown."""
    rows = summarize(results)
    names = [ACCURACY_VS_LABELS, ACCURACY_VS_TIME] if plots else []
    if plots:
        plot_accuracy_vs_labels(rows, output_dir / ACCURACY_VS_LABELS, title)
        plot_accuracy_vs_time(rows, output_dir / ACCURACY_VS_TIME, title)
    write_csv(rows, output_dir / "comparison.csv")
    write_cells(results, output_dir / "comparison_cells.jsonl")
    return write_markdown(rows, recommend(rows), names, output_dir / "comparison.md")


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


def parse_arguments(argv: Optional[Sequence[str]] = None) -> tuple[DataArguments, CompareArguments, HubArguments]:
    """`[CONFIG] [--flags]` as (data, comparison, Hub) arguments. CompareArguments comes after DataArguments: its
    --train_samples_per_class (a list of budgets) replaces the single-valued one of DataArguments. The Hub's bounds
    (`--hub_max_retries`, `--hub_request_timeout`, `--hub_deadline`) are the recipes' own, so a push message names
    flags this command has."""
    parser = HfArgumentParser(
        (DataArguments, CompareArguments, HubArguments), prog="hf-transfer compare", conflict_handler="resolve"
    )
    parser.set_defaults(train_samples_per_class=None)  # DataArguments' field, now without a flag of its own
    return parse_recipe_args(parser, argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # 1. Arguments: flags, or a YAML / JSON file and overriding flags.
    data_args, compare_args, hub_args = parse_arguments(argv)
    if data_args.train_samples_seed is not None:
        raise ConfigError("--train_samples_seed is each cell's --seed (it draws the labelled rows): pass --seed.")
    if data_args.dataset_name is None and data_args.train_file is None and data_args.train_dir is None:
        raise ConfigError("Name the data: --dataset_name (e.g. tweet_sentiment), --train_file or --train_dir.")
    if compare_args.push_to_hub:
        check_repo_id(compare_args.hub_repo_id, "--hub_repo_id")  # before hours of runs, not after
    dataset = data_source_name(data_args)
    output_dir = Path(compare_args.output_dir or f"outputs/compare-{dataset.replace('/', '_')}")
    models = compare_args.model_name_or_path
    title = f"{', '.join(dict.fromkeys(model_labels(models).values()))} on {dataset}"

    # 2. The data, once, before any cell: a task compare does not score stops here; each (budget, seed) cell's
    #    labelled rows are drawn as the recipe will draw them, and a budget a class cannot fill is said.
    recipe_values = compare_args.recipe_values()
    train = load_train_pool(data_args, recipe_values.get("cache_dir"), recipe_values.get("task", "auto"))
    check_single_label(train, dataset)
    labelled = draw_labelled_rows(train, compare_args.label_budgets, compare_args.seeds, data_args.max_train_samples)
    warn_small_classes(train, labelled)
    output_dir.mkdir(parents=True, exist_ok=True)

    # 3. The grid: every unfinished cell runs; finished ones are read back. An interrupt keeps what finished.
    cells = build_grid(models, compare_args.strategies, compare_args.label_budgets, compare_args.seeds)
    try:
        with _SigtermAsInterrupt():
            results = run_grid(
                cells,
                output_dir,
                data_flags(data_args),
                extra_flags=compare_args.flags_for,
                parallel=compare_args.parallel,
            )
    except GridInterrupted as interrupted:
        for result in interrupted.results:
            result.labelled = labelled[(result.cell.label_budget, result.cell.seed)]
        _write_tables(interrupted.results, output_dir, title, plots=False)
        finished = sum(r.results is not None for r in interrupted.results)
        print(
            f"interrupted: {finished} of {interrupted.total} cells finished, the others stopped or never started; "
            f"partial table in {output_dir / 'comparison.md'} (run the same command to finish the rest).",
            file=sys.stderr,
        )
        return INTERRUPTED_EXIT_CODE
    for result in results:
        result.labelled = labelled[(result.cell.label_budget, result.cell.seed)]

    # 4. Table, recommendation and plots.
    print(_write_tables(results, output_dir, title, plots=True))
    failed = [r for r in results if r.results is None]
    print(f"Saved {output_dir / 'comparison.md'}, comparison.csv and the plots", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} cell(s) failed; see {failed[0].log}. Rerun to retry them.", file=sys.stderr)
        return 1
    if compare_args.push_to_hub:
        print(push_comparison(output_dir, compare_args.hub_repo_id, hub_args, private=compare_args.hub_private or None))
    return 0
