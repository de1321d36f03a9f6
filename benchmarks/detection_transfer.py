#!/usr/bin/env python
"""Benchmark: transfer of a pretrained classification backbone to object detection (`recipes/detect.py`).

Cells: derived data set x strategy x label budget (training images) x backbone initialisation (the pretrained
weights, or the same architecture at random: `--random_init`) x seed. Each cell is one run of the recipe in a fresh
process; its test scores (COCO mAP by torchmetrics, on the set's 200 test canvases or `--eval_images`) are appended to
`--output_file` (JSON lines) as it finishes, so an interrupted benchmark resumes where it stopped. The table at the
end gives test mAP and mAP@50, mean +- standard deviation over seeds, and the pretrained - random-init gain.

Every cell is shown the same number of training images (`--images_seen`: a fixed compute budget, so a small budget
trains more epochs), at 64 px by default: what lets a DETR-family detector move off mAP 0 in minutes on 2 CPU cores.

    python benchmarks/detection_transfer.py                                   # the defaults below
    python benchmarks/detection_transfer.py --datasets digits_boxes --strategies full --budgets 300 --seeds 0 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ONE_FINAL_EVALUATION, machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _cell_key(cell: dict) -> tuple:
    return tuple(cell[k] for k in ("dataset", "strategy", "budget", "init", "seed"))


def run_cell(cell: dict, args: argparse.Namespace, work_dir: Path) -> dict:
    output_dir = work_dir / "-".join(map(str, _cell_key(cell)))
    # The same number of training images shown at every budget (a fixed compute budget), unless --epochs is given.
    epochs = args.epochs if args.epochs is not None else args.images_seen / cell["budget"]
    command = [
        sys.executable,
        str(ROOT / "recipes" / "detect.py"),
        "--backbone", args.backbone,
        "--dataset_name", cell["dataset"],
        "--strategy", cell["strategy"],
        "--max_train_samples", str(cell["budget"]),
        "--max_eval_samples", str(args.eval_images),
        "--image_size", str(args.image_size),
        "--num_train_epochs", str(epochs),
        "--head_epochs", str(epochs / 2),
        "--per_device_train_batch_size", str(args.batch_size),
        "--learning_rate", str(args.learning_rate),
        "--seed", str(cell["seed"]),
        "--logging_steps", "50",
        "--output_dir", str(output_dir),
        *ONE_FINAL_EVALUATION,
    ]  # fmt: skip
    if cell["init"] == "random":
        command += ["--random_init", "true"]
    start = time.time()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"cell {cell} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    results = json.loads((output_dir / "all_results.json").read_text())
    keep = (
        "test_map",
        "test_map_50",
        "test_map_75",
        "eval_map",
        "train_loss",
        "train_runtime",
        "trainable_params",
        "total_params",
    )
    return {**cell, **{k: results.get(k) for k in keep}, "wall_s": time.time() - start}


def table(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["strategy"], row["budget"], row["init"]), []).append(row)

    def stat(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} +- {sd:.3f}"

    lines = [
        "| data set | strategy | train images | backbone | test mAP | test mAP@50 | train loss (run mean) | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (dataset, strategy, budget, init), cells in sorted(groups.items()):
        lines.append(
            f"| {dataset} | {strategy} | {budget} | {init} | {stat([c['test_map'] for c in cells])} | "
            f"{stat([c['test_map_50'] for c in cells])} | {stat([c['train_loss'] for c in cells])} | {len(cells)} |"
        )
    by_init = {key: [c["test_map"] for c in cells] for key, cells in groups.items()}
    lines += ["", "| data set | strategy | train images | test mAP, pretrained - random init |", "|---|---|---|---|"]
    for (dataset, strategy, budget, init), values in sorted(by_init.items()):
        random_values = by_init.get((dataset, strategy, budget, "random"))
        if init == "pretrained" and random_values:
            gain = statistics.mean(values) - statistics.mean(random_values)
            lines.append(f"| {dataset} | {strategy} | {budget} | {gain:+.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["fashion_mnist_boxes", "digits_boxes"])
    parser.add_argument("--strategies", nargs="+", default=["frozen_backbone", "full"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[100, 300, 1000])
    parser.add_argument("--inits", nargs="+", default=["pretrained", "random"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--eval_images", type=int, default=200)
    parser.add_argument("--epochs", type=float, default=None, help="Epochs at every budget (instead of --images_seen).")
    parser.add_argument(
        "--images_seen", type=int, default=9600, help="Training images shown per cell, whatever its budget."
    )
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--output_file", default=str(ROOT / "benchmarks" / "results" / "detection_transfer.jsonl"))
    args = parser.parse_args()

    output = Path(args.output_file)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in output.read_text().splitlines()] if output.is_file() else []
    finished = {_cell_key(row) for row in done if "test_map" in row}
    settings = {k: v for k, v in vars(args).items() if k != "output_file"}
    if not output.is_file():
        output.write_text(json.dumps({"settings": settings, "machine": machine_info("timm", "torchmetrics")}) + "\n")
    with tempfile.TemporaryDirectory(prefix="detection-bench-") as work:
        for dataset, budget, seed, strategy, init in itertools.product(
            args.datasets, args.budgets, args.seeds, args.strategies, args.inits
        ):
            cell = {"dataset": dataset, "strategy": strategy, "budget": budget, "init": init, "seed": seed}
            if _cell_key(cell) in finished:
                continue
            row = run_cell(cell, args, Path(work))
            print(json.dumps(row), flush=True)
            with output.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done.append(row)
    print(table([row for row in done if "test_map" in row]))


if __name__ == "__main__":
    main()
