"""`hf-transfer compare`: which strategy for this data? A grid of strategies x seeds x label budgets through
recipes/finetune.py, then the table, the plots and a recommendation in the comparison folder.

    hf-transfer compare recipes/configs/compare.yaml                  # MiniLM on tweets: probe, LoRA, full
    hf-transfer compare --models minilm --strategies linear_probe lora --label_budgets 8 32 all \\
        --train_file reviews.csv --recipe_args "--num_train_epochs 3" --output_dir outputs/compare-reviews
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Optional, Sequence

from transformers import HfArgumentParser

from ..data import DataArguments, data_source_name
from ..errors import ConfigError
from ..hub import check_repo_id
from ..recipe.arguments import config_to_argv, parse_recipe_args
from .config import CompareArguments
from .grid import build_grid, model_label, run_grid
from .plots import plot_accuracy_vs_labels, plot_accuracy_vs_time
from .publish import push_comparison
from .summary import recommend, summarize, write_cells, write_csv, write_markdown

__all__ = ["data_flags", "main"]

ACCURACY_VS_LABELS = "accuracy_vs_labels.png"
ACCURACY_VS_TIME = "accuracy_vs_time.png"


def data_flags(data_args: DataArguments) -> list[str]:
    """The data arguments the user set, as recipe flags: every cell reads the same data."""
    changed = {
        f.name: getattr(data_args, f.name)
        for f in dataclasses.fields(data_args)
        if f.init and getattr(data_args, f.name) != (f.default if f.default is not dataclasses.MISSING else None)
    }
    return config_to_argv(changed)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # 1. Arguments: flags, or a YAML / JSON file and overriding flags.
    parser = HfArgumentParser((CompareArguments, DataArguments), prog="hf-transfer compare")
    compare_args, data_args = parse_recipe_args(parser, argv)
    if data_args.train_samples_per_class is not None:
        raise ConfigError("--train_samples_per_class is what --label_budgets sets per cell: pass --label_budgets.")
    if data_args.dataset_name is None and data_args.train_file is None and data_args.train_dir is None:
        raise ConfigError("Name the data: --dataset_name (e.g. tweet_sentiment), --train_file or --train_dir.")
    if compare_args.push_to_hub:
        check_repo_id(compare_args.hub_repo_id, "--hub_repo_id")  # before hours of runs, not after
    dataset = data_source_name(data_args)
    output_dir = Path(compare_args.output_dir or f"outputs/compare-{dataset.replace('/', '_')}")
    output_dir.mkdir(parents=True, exist_ok=True)

    # 2. The grid: every unfinished cell runs; finished ones are read back.
    cells = build_grid(compare_args.models, compare_args.strategies, compare_args.label_budgets, compare_args.seeds)
    results = run_grid(
        cells,
        output_dir,
        data_flags(data_args),
        extra_flags=compare_args.flags_for,
        parallel=compare_args.parallel,
    )

    # 3. Table, recommendation and plots.
    rows = summarize(results)
    recommendation = recommend(rows)
    title = f"{', '.join(dict.fromkeys(model_label(m) for m in compare_args.models))} on {dataset}"
    plot_accuracy_vs_labels(rows, output_dir / ACCURACY_VS_LABELS, title)
    plot_accuracy_vs_time(rows, output_dir / ACCURACY_VS_TIME, title)
    write_csv(rows, output_dir / "comparison.csv")
    write_cells(results, output_dir / "comparison_cells.jsonl")
    print(write_markdown(rows, recommendation, [ACCURACY_VS_LABELS, ACCURACY_VS_TIME], output_dir / "comparison.md"))
    failed = [r for r in results if r.results is None]
    print(f"Saved {output_dir / 'comparison.md'}, comparison.csv and the plots", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} cell(s) failed; see {failed[0].log}. Rerun to retry them.", file=sys.stderr)
        return 1
    if compare_args.push_to_hub:
        print(push_comparison(output_dir, compare_args.hub_repo_id, private=compare_args.hub_private or None))
    return 0
