#!/usr/bin/env python
"""Benchmark: the stock head's pooler vs the pooling the backbone was trained with, through recipes/finetune.py.

all-MiniLM-L6-v2 was trained as a sentence encoder with mean pooling; `BertForSequenceClassification` reads
BERT's pooler (first token, dense, tanh) instead. For each data set and strategy this runs the recipe twice, the
way a user does, `--pooling head` and `--pooling mean`, and collects validation / test accuracy and macro-F1 and
the training time from `all_results.json`.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/pooling_head_vs_trained.py   # ~15 min, 2 cores

    .venv/bin/python benchmarks/pooling_head_vs_trained.py --strategies lora --seeds 42 43 44 \
        --output_file benchmarks/results/pooling_head_vs_trained_lora_seeds.json     # ~20 min

Results go to `benchmarks/results/pooling_head_vs_trained.json`; the last line is the mean test-accuracy ratio
mean / head over all cells and seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import ONE_FINAL_EVALUATION, ROOT, run_recipe_for_results

DATASETS = {
    "tweet_sentiment": ["--max_train_samples", "1500", "--max_eval_samples", "500", "--max_seq_length", "64"],
    "bbc_news": ["--max_train_samples", "800", "--max_seq_length", "128"],
}
STRATEGIES = {  # the integration tests' one-epoch settings
    "linear_probe": [],
    "full": ["--learning_rate", "1e-4", "--head_learning_rate", "1e-3", "--num_train_epochs", "1"],
    "lora": ["--learning_rate", "3e-3", "--head_learning_rate", "5e-3", "--num_train_epochs", "1"],
}
COMMON = [
    "--model_name_or_path",
    "minilm",
    "--per_device_train_batch_size",
    "16",
    "--per_device_eval_batch_size",
    "64",
    *ONE_FINAL_EVALUATION,
]


def run_cell(dataset: str, strategy: str, pooling: str, cache: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="hf_transfer-pooling-") as out:
        flags = [*COMMON, "--dataset_name", dataset, *DATASETS[dataset], "--strategy", strategy]
        flags += [*STRATEGIES[strategy], "--pooling", pooling, "--seed", str(seed), "--feature_cache_dir", cache]
        results = run_recipe_for_results("finetune.py", flags, out)
    keep = ("eval_accuracy", "eval_f1", "test_accuracy", "test_f1", "train_runtime", "trainable_params", "pooling")
    return {k: results[k] for k in keep if k in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[42], help="one run per seed; the table shows mean ± sd"
    )
    parser.add_argument("--output_file", default=str(ROOT / "benchmarks" / "results" / "pooling_head_vs_trained.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    cells = []
    with tempfile.TemporaryDirectory(prefix="hf_transfer-pooling-cache-") as cache:
        for dataset in args.datasets:
            for strategy in args.strategies:
                for seed in args.seeds:
                    for pooling in ("head", "mean"):  # alternate within a cell, so load drifts hit both alike
                        cell = {
                            "dataset": dataset,
                            "strategy": strategy,
                            "pooling": pooling,
                            "seed": seed,
                            **run_cell(dataset, strategy, pooling, cache, seed),
                        }
                        print(json.dumps(cell), flush=True)
                        cells.append(cell)
    Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()[0], "python": sys.version.split()[0]}
    Path(args.output_file).write_text(json.dumps({"machine": machine, "cells": cells}, indent=2) + "\n")
    print(f"seeds {args.seeds}; mean ± sd over seeds (sd 0 for one seed)")
    print(
        "| data | strategy | head (pooler) val / test acc | mean val / test acc | mean - head test, per seed | head / mean train s |"
    )
    print("|---|---|---|---|---|---|")
    ratios = []

    def stat(runs: list[dict], key: str) -> str:
        values = np.array([r[key] for r in runs])
        return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"

    for dataset in args.datasets:
        for strategy in args.strategies:
            head, mean = (
                [c for c in cells if c["dataset"] == dataset and c["strategy"] == strategy and c["pooling"] == p]
                for p in ("head", "mean")
            )
            diffs = [m["test_accuracy"] - h["test_accuracy"] for h, m in zip(head, mean)]
            ratios.extend(m["test_accuracy"] / h["test_accuracy"] for h, m in zip(head, mean))
            print(
                f"| {dataset} | {strategy} | {stat(head, 'eval_accuracy')} / {stat(head, 'test_accuracy')} | "
                f"{stat(mean, 'eval_accuracy')} / {stat(mean, 'test_accuracy')} | "
                f"{' '.join(f'{d:+.3f}' for d in diffs)} | "
                f"{np.mean([h['train_runtime'] for h in head]):.0f} / {np.mean([m['train_runtime'] for m in mean]):.0f} |"
            )
    print(f"test accuracy ratio mean/head: {sum(ratios) / len(ratios):.3f}")


if __name__ == "__main__":
    main()
