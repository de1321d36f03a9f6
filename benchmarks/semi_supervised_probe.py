#!/usr/bin/env python
"""Benchmark: probe self-training on an unlabelled pool against the probe of the labelled rows alone, through
`recipes/finetune.py`, at several budgets of labelled rows per class.

Each cell is three runs of the recipe on the same rows: `--unlabelled_split_percentage P --max_unlabelled_samples N`
sets a seeded share of train aside as the pool (labels hidden from training; they only score the pseudo-labels), and
`--train_samples_per_class K --train_samples_seed S` picks the labelled rows from the rest. `self_training` runs
`--self_training_rounds R` with the default thresholds (0.95, per-class floor 0.7), `self_training_floor_0.5` the same
with `--pseudo_label_min_threshold 0.5` (more, less certain pseudo-labels); `labelled_only` runs `--self_training_rounds 0` (the same labelled rows, the same L2
chosen by cross-validation on them, no pseudo-labels). Both are scored on the same test rows. Features are cached
(`--feature_cache_dir`), so the pool and the test rows are read by the backbone once for the whole grid.

    python benchmarks/semi_supervised_probe.py                        # MiniLM, tweets, 8/32/128 per class, 3 seeds
    python benchmarks/semi_supervised_probe.py --shots 8 --seeds 0 --max_unlabelled_samples 500

Results go to `benchmarks/results/semi_supervised_probe.json`; the last printed lines are the mean test accuracies.
"""

import json
import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from _common import machine_info, run_recipe_for_results

NAME = "semi_supervised_probe"


@dataclass
class BenchmarkArguments:
    model_name_or_path: str = field(default="minilm", metadata={"help": "Backbone (a built-in name or a folder)."})
    dataset_name: str = field(default="tweet_sentiment", metadata={"help": "A built-in data set with a test split."})
    shots: list[int] = field(default_factory=lambda: [8, 32, 128], metadata={"help": "Labelled rows per class."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds of the labelled draws."})
    unlabelled_split_percentage: float = field(default=0.5, metadata={"help": "Share of train set aside as pool."})
    max_unlabelled_samples: int = field(default=2000, metadata={"help": "Pool rows used."})
    self_training_rounds: int = field(default=3, metadata={"help": "Rounds of the self-training runs."})
    max_eval_samples: int = field(default=1000, metadata={"help": "Test rows."})
    max_seq_length: int = field(default=64, metadata={"help": "Tokens per row."})
    extra_flags: str = field(default="", metadata={"help": "More recipe flags for both runs, space separated."})
    feature_cache_dir: str = field(
        default=str(Path(tempfile.gettempdir()) / "hf_transfer_semi_supervised_cache"),
        metadata={"help": "Feature cache shared by every run of the grid."},
    )
    output_file: str = field(default=f"benchmarks/results/{NAME}.json", metadata={"help": "Where results go."})


def main() -> None:
    (args,) = HfArgumentParser(BenchmarkArguments).parse_args_into_dataclasses()
    common = [
        "--model_name_or_path", args.model_name_or_path,
        "--dataset_name", args.dataset_name,
        "--strategy", "linear_probe",
        "--unlabelled_split_percentage", str(args.unlabelled_split_percentage),
        "--max_unlabelled_samples", str(args.max_unlabelled_samples),
        "--max_eval_samples", str(args.max_eval_samples),
        "--max_seq_length", str(args.max_seq_length),
        "--feature_cache_dir", args.feature_cache_dir,
        "--report_to", "none",
        *args.extra_flags.split(),
    ]  # fmt: skip
    rounds = ["--self_training_rounds", str(args.self_training_rounds)]
    runs = {
        "labelled_only": ["--self_training_rounds", "0"],
        "self_training": rounds,  # the defaults: threshold 0.95, per-class floor 0.7
        "self_training_floor_0.5": rounds + ["--pseudo_label_min_threshold", "0.5"],
    }
    cells = []
    with tempfile.TemporaryDirectory() as scratch:
        for shots in args.shots:
            for seed in args.seeds:
                for contestant, contestant_flags in runs.items():
                    flags = common + [
                        "--train_samples_per_class", str(shots),
                        "--train_samples_seed", str(seed),
                        "--seed", str(seed),
                        *contestant_flags,
                    ]  # fmt: skip
                    results = run_recipe_for_results("finetune.py", flags, f"{scratch}/{shots}-{seed}-{contestant}")
                    cell = {
                        "shots": shots,
                        "seed": seed,
                        "contestant": contestant,
                        "test_accuracy": results["test_accuracy"],
                        "test_f1": results["test_f1"],
                        "train_samples": results["train_samples"],
                        "train_runtime": results["train_runtime"],
                        **{k: v for k, v in results.items() if k.startswith("semi_supervised_")},
                    }
                    cells.append(cell)
                    print(json.dumps(cell), flush=True)
    Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output_file).write_text(
        json.dumps({"arguments": asdict(args), "machine": machine_info(), "cells": cells}, indent=2)
    )
    for shots in args.shots:
        means = {}
        for contestant in runs:
            mine = [c for c in cells if c["shots"] == shots and c["contestant"] == contestant]
            accuracies = [c["test_accuracy"] for c in mine]
            spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
            kept = statistics.mean(c["semi_supervised_pseudo_labelled_samples"] for c in mine)
            means[contestant] = f"{statistics.mean(accuracies):.3f} ({spread:.3f}; {kept:.0f} pseudo-labelled)"
        print(f"{shots} per class: " + ", ".join(f"{name} {value}" for name, value in means.items()))


if __name__ == "__main__":
    main()
