#!/usr/bin/env python
"""Benchmark: full and LoRA fine-tuning of EfficientNet-Lite0 with and without training augmentation, 3 seeds.

Through `recipes/finetune.py`, the way a user runs it, on small image sets where augmentation should matter:
- `fashion_mnist`: 1,000 train / 500 validation / 500 test images, 112x112 (28x28 upsampled);
- `digits`: all 1,293 train / 144 validation / 360 test images, 64x64 (8x8 upsampled).
Each cell is one `--augmentation` setting: `none` (train on the evaluation transform, the recipe's behaviour before
augmentation existed) against `basic` (random-resized crop of 8-100% of the image, flip, colour jitter), `light`
(`basic` with a crop of at least half the image and no colour jitter) and, with `--arms timm`, the fuller timm recipe (`randaugment` + Mixup 0.8 / CutMix 1.0 + label
smoothing 0.1 + weight EMA). Full: lr 1e-3, head 1e-2; LoRA: lr 1e-3, head 1e-2 (r 8); batch 32, `--epochs` epochs.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/augmentation_strategies.py   # ~40 min

Results go to `benchmarks/results/augmentation_strategies.jsonl` (a line per cell, appended, so a stopped run keeps
its cells and `--skip_done` resumes it); a markdown table of test accuracy, mean ± sd, is printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from _common import ONE_FINAL_EVALUATION, ROOT, run_recipe_for_results

DATASETS = {
    "fashion_mnist": ["--image_size", "112", "--max_train_samples", "1000", "--max_eval_samples", "500"],
    "digits": ["--image_size", "64"],
}
STRATEGIES = {
    "full": ["--learning_rate", "1e-3", "--head_learning_rate", "1e-2"],
    "lora": ["--learning_rate", "1e-3", "--head_learning_rate", "1e-2"],
}
ARMS = {
    "none": ["--augmentation", "none"],
    "basic": ["--augmentation", "basic"],
    # A milder crop than timm's ImageNet range (at least half the image), flips, no colour jitter.
    "light": ["--augmentation", "basic", "--crop_scale", "0.5", "1.0", "--color_jitter", "0"],
    "timm": [
        "--augmentation",
        "randaugment",
        "--mixup",
        "0.8",
        "--cutmix",
        "1.0",
        "--label_smoothing_factor",
        "0.1",
        "--model_ema",
        "true",
    ],
}
COMMON = [
    "--model_name_or_path",
    "efficientnet-lite0",
    "--per_device_train_batch_size",
    "32",
    "--per_device_eval_batch_size",
    "64",
    *ONE_FINAL_EVALUATION,
]


def run_cell(dataset: str, strategy: str, arm: str, seed: int, epochs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="hf_transfer-aug-") as out:
        flags = [*COMMON, "--dataset_name", dataset, *DATASETS[dataset], "--strategy", strategy, *STRATEGIES[strategy]]
        flags += [*ARMS[arm], "--num_train_epochs", str(epochs), "--seed", str(seed)]
        results = run_recipe_for_results("finetune.py", flags, out)
    keep = ("test_accuracy", "test_f1", "eval_accuracy", "train_runtime", "augmentation")
    return {key: results[key] for key in keep if key in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--arms", nargs="+", default=["none", "basic"], choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--skip_done", action="store_true", help="Skip cells already in the results file.")
    parser.add_argument("--output_file", default=str(ROOT / "benchmarks" / "results" / "augmentation_strategies.jsonl"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    output = Path(args.output_file)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in output.read_text().splitlines()] if output.is_file() else []

    def key(cell: dict) -> tuple:
        return cell["dataset"], cell["strategy"], cell["arm"], cell["seed"], cell["epochs"]

    finished = {key(c) for c in done}
    for dataset in args.datasets:
        for strategy in args.strategies:
            for arm in args.arms:
                for seed in args.seeds:
                    cell = {"dataset": dataset, "strategy": strategy, "arm": arm, "seed": seed, "epochs": args.epochs}
                    if args.skip_done and key(cell) in finished:
                        continue
                    cell.update(run_cell(dataset, strategy, arm, seed, args.epochs))
                    print(json.dumps(cell), flush=True)
                    with output.open("a") as f:
                        f.write(json.dumps(cell) + "\n")
                    done.append(cell)

    print(f"EfficientNet-Lite0, {args.epochs} epochs, test accuracy mean ± sd over seeds (runs)")
    print("| data | strategy | " + " | ".join(args.arms) + " |")
    print("|---|---|" + "---|" * len(args.arms))
    for dataset in args.datasets:
        for strategy in args.strategies:
            row = []
            for arm in args.arms:
                runs = [
                    c["test_accuracy"]
                    for c in done
                    if (c["dataset"], c["strategy"], c["arm"], c["epochs"]) == (dataset, strategy, arm, args.epochs)
                ]
                sd = np.std(runs, ddof=1) if len(runs) > 1 else 0.0
                row.append(f"{np.mean(runs):.3f} ± {sd:.3f} ({len(runs)})" if runs else "-")
            print(f"| {dataset} | {strategy} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
