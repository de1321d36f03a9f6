#!/usr/bin/env python
"""Benchmark: every finetune strategy on a real task of each kind, through recipes/finetune.py.

MiniLM the way a user runs it: `--strategy linear_probe | full | lora | lp_ft`, one run per seed (the probe is
deterministic, so it runs once), the task's test metrics and training time collected from `all_results.json`.
- `--task regression`: `drug_reviews_usefulness` (the drug reviews' log(1 + usefulCount); 540 train / 60 validation /
  379 test reviews): RMSE, R², Spearman.
- `--task multi_label`: `twitter_entity_types` (which of 10 entity types a WNUT-16 tweet mentions; 1,723 train / 192
  validation / 479 test tweets): micro / macro F1 at the saved decision thresholds, mAP.
- `--task token_classification`: `twitter_ner` (the same tweets, 21 IOB2 tags): seqeval entity F1, precision, recall.
- `--task multi_label_images`: EfficientNet-Lite0 on `fashion_mnist_mosaics` (derived: the Fashion-MNIST classes in
  a 2x2 mosaic; 1,000 train / 500 validation / 500 test mosaics at 112x112): micro / macro F1, mAP.
- `--task regression_images`: EfficientNet-Lite0 on `fashion_mnist_mosaic_counts` (derived: how many items, 1-4, the
  same mosaics hold): RMSE, R², Spearman.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/task_strategies.py --task regression   # ~20 min
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/task_strategies.py --task multi_label  # ~40 min
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/task_strategies.py --task token_classification
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/task_strategies.py --task multi_label_images
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/task_strategies.py --task regression_images

Results go to `benchmarks/results/<task>_strategies.json` and a markdown table is printed.
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

# The (key, column title) pairs of a table, per kind of target.
REGRESSION_COLUMNS = [
    ("test_rmse", "test RMSE"),
    ("test_r2", "test R²"),
    ("test_spearman", "test Spearman"),
    ("eval_r2", "validation R²"),
]
MULTI_LABEL_COLUMNS = [
    ("test_micro_f1", "test micro-F1"),
    ("test_macro_f1", "test macro-F1"),
    ("test_map", "test mAP"),
    ("eval_map", "validation mAP"),
]
# EfficientNet-Lite0 on 112x112 mosaics (56x56 upsampled), 1,000 train / 500 validation / 500 test mosaics.
MOSAIC_RUNS = {
    "model": "efficientnet-lite0",
    "extra": ["--image_size", "112", "--max_train_samples", "1000", "--max_eval_samples", "500"],
    "strategies": {
        "linear_probe": [],
        "full": ["--learning_rate", "1e-3", "--head_learning_rate", "1e-2", "--num_train_epochs", "3"],
        "lora": ["--learning_rate", "1e-3", "--head_learning_rate", "1e-2", "--num_train_epochs", "3"],
        "lp_ft": ["--learning_rate", "3e-4", "--num_train_epochs", "2"],
    },
}

# Per task: the built-in data, each strategy's settings, and the columns of the table.
TASKS = {
    "regression": {
        "dataset": "drug_reviews_usefulness",
        "strategies": {
            "linear_probe": [],
            "full": ["--learning_rate", "5e-5", "--head_learning_rate", "1e-3", "--num_train_epochs", "2"],
            "lora": ["--learning_rate", "1e-3", "--head_learning_rate", "1e-3", "--num_train_epochs", "2"],
            "lp_ft": ["--learning_rate", "2e-5", "--num_train_epochs", "1"],
        },
        "columns": REGRESSION_COLUMNS,
    },
    "multi_label": {
        "dataset": "twitter_entity_types",
        "strategies": {
            "linear_probe": [],
            "full": ["--learning_rate", "5e-5", "--head_learning_rate", "1e-3", "--num_train_epochs", "3"],
            "lora": ["--learning_rate", "1e-3", "--head_learning_rate", "1e-3", "--num_train_epochs", "3"],
            "lp_ft": ["--learning_rate", "2e-5", "--num_train_epochs", "2"],
        },
        "columns": MULTI_LABEL_COLUMNS,
    },
    "token_classification": {
        "dataset": "twitter_ner",
        "strategies": {
            "linear_probe": [],
            "full": ["--learning_rate", "5e-5", "--head_learning_rate", "1e-3", "--num_train_epochs", "3"],
            "lora": ["--learning_rate", "1e-3", "--head_learning_rate", "1e-3", "--num_train_epochs", "3"],
            "lp_ft": ["--learning_rate", "2e-5", "--num_train_epochs", "2"],
        },
        "columns": [
            ("test_f1", "test entity F1"),
            ("test_precision", "test precision"),
            ("test_recall", "test recall"),
            ("eval_f1", "validation entity F1"),
        ],
    },
    "multi_label_images": {**MOSAIC_RUNS, "dataset": "fashion_mnist_mosaics", "columns": MULTI_LABEL_COLUMNS},
    # The same mosaics, counted: a regression target (1-4 items) for images.
    "regression_images": {**MOSAIC_RUNS, "dataset": "fashion_mnist_mosaic_counts", "columns": REGRESSION_COLUMNS},
}
COMMON = [
    "--max_seq_length",
    "128",
    "--per_device_train_batch_size",
    "16",
    "--per_device_eval_batch_size",
    "64",
    *ONE_FINAL_EVALUATION,
]


def run_cell(task: str, strategy: str, seed: int, cache: str) -> dict:
    spec = TASKS[task]
    with tempfile.TemporaryDirectory(prefix=f"hf_transfer-{task}-") as out:
        flags = [*COMMON, "--model_name_or_path", spec.get("model", "minilm"), "--dataset_name", spec["dataset"]]
        flags += [*spec.get("extra", []), "--strategy", strategy, *spec["strategies"][strategy]]
        results = run_recipe_for_results(
            "finetune.py", [*flags, "--seed", str(seed), "--feature_cache_dir", cache], out
        )
    keep = [key for key, _ in spec["columns"]] + ["train_runtime", "pooling"]
    return {key: results[key] for key in keep if key in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=list(TASKS), required=True)
    parser.add_argument("--strategies", nargs="+", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--output_file", default=None)
    args = parser.parse_args()
    spec = TASKS[args.task]
    strategies = args.strategies or list(spec["strategies"])
    output_file = args.output_file or str(ROOT / "benchmarks" / "results" / f"{args.task}_strategies.json")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    cells = []
    with tempfile.TemporaryDirectory(prefix="hf_transfer-task-cache-") as cache:
        for strategy in strategies:
            for seed in args.seeds[:1] if strategy == "linear_probe" else args.seeds:
                cell = {"strategy": strategy, "seed": seed, **run_cell(args.task, strategy, seed, cache)}
                print(json.dumps(cell), flush=True)
                cells.append(cell)
    Path(output_file).parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()[0], "python": sys.version.split()[0]}
    Path(output_file).write_text(json.dumps({"machine": machine, "task": args.task, "cells": cells}, indent=2) + "\n")

    def stat(runs: list[dict], key: str) -> str:
        values = np.array([r[key] for r in runs])
        return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"

    print(f"{args.task} on {spec['dataset']}, seeds {args.seeds} (the probe is deterministic: one run); mean ± sd")
    print("| strategy | runs | " + " | ".join(title for _, title in spec["columns"]) + " | train s |")
    print("|---|---|" + "---|" * len(spec["columns"]) + "---|")
    for strategy in strategies:
        runs = [c for c in cells if c["strategy"] == strategy]
        print(
            f"| {strategy} | {len(runs)} | "
            + " | ".join(stat(runs, key) for key, _ in spec["columns"])
            + f" | {np.mean([r['train_runtime'] for r in runs]):.0f} |"
        )


if __name__ == "__main__":
    main()
