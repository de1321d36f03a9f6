#!/usr/bin/env python
"""Benchmark: every finetune strategy on a real regression target, through recipes/finetune.py.

MiniLM on `drug_reviews_usefulness` (the drug reviews' log(1 + usefulCount), 540 train / 60 validation / 379 test
reviews), the way a user runs it: `--strategy linear_probe | full | lora | lp_ft`, one run per seed (the probe is
deterministic, so it runs once), test RMSE / R² / Spearman and training time collected from `all_results.json`.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/regression_strategies.py   # ~20 min, 2 cores

Results go to `benchmarks/results/regression_strategies.json` and a markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import ROOT, run_recipe_for_results

STRATEGIES = {
    "linear_probe": [],
    "full": ["--learning_rate", "5e-5", "--head_learning_rate", "1e-3", "--num_train_epochs", "2"],
    "lora": ["--learning_rate", "1e-3", "--head_learning_rate", "1e-3", "--num_train_epochs", "2"],
    "lp_ft": ["--learning_rate", "2e-5", "--num_train_epochs", "1"],
}
COMMON = [
    "--model_name_or_path",
    "minilm",
    "--dataset_name",
    "drug_reviews_usefulness",
    "--max_seq_length",
    "128",
    "--per_device_train_batch_size",
    "16",
    "--per_device_eval_batch_size",
    "64",
    "--save_strategy",
    "no",
    "--eval_strategy",
    "no",
    "--report_to",
    "none",
]
KEEP = ("eval_r2", "test_rmse", "test_mae", "test_r2", "test_pearson", "test_spearman", "train_runtime", "pooling")


def run_cell(strategy: str, seed: int, cache: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="hf_transfer-regression-") as out:
        flags = [*COMMON, "--strategy", strategy, *STRATEGIES[strategy], "--seed", str(seed)]
        results = run_recipe_for_results("finetune.py", [*flags, "--feature_cache_dir", cache], out)
    return {key: results[key] for key in KEEP if key in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--output_file", default=str(ROOT / "benchmarks" / "results" / "regression_strategies.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    cells = []
    with tempfile.TemporaryDirectory(prefix="hf_transfer-regression-cache-") as cache:
        for strategy in args.strategies:
            for seed in args.seeds[:1] if strategy == "linear_probe" else args.seeds:
                cell = {"strategy": strategy, "seed": seed, **run_cell(strategy, seed, cache)}
                print(json.dumps(cell), flush=True)
                cells.append(cell)
    Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()[0], "python": sys.version.split()[0]}
    Path(args.output_file).write_text(json.dumps({"machine": machine, "cells": cells}, indent=2) + "\n")

    def stat(runs: list[dict], key: str) -> str:
        values = np.array([r[key] for r in runs])
        return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"

    print(f"seeds {args.seeds} (the probe is deterministic: one run); mean ± sd over seeds")
    print("| strategy | runs | test RMSE | test R² | test Spearman | validation R² | train s |")
    print("|---|---|---|---|---|---|---|")
    for strategy in args.strategies:
        runs = [c for c in cells if c["strategy"] == strategy]
        print(
            f"| {strategy} | {len(runs)} | {stat(runs, 'test_rmse')} | {stat(runs, 'test_r2')} | "
            f"{stat(runs, 'test_spearman')} | {stat(runs, 'eval_r2')} | "
            f"{np.mean([r['train_runtime'] for r in runs]):.0f} |"
        )


if __name__ == "__main__":
    main()
