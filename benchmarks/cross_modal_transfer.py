#!/usr/bin/env python
"""Cross-modal transfer, text -> images: what a language-pretrained transformer body brings to image classification
(Lu et al. 2021, frozen pretrained transformers), against the same architecture at random init.

Per seed, label budget (images per class, drawn with the seed), body tuning (frozen: Lu et al.'s LayerNorms +
positions; full) and body init (pretrained MiniLM, or random): one `recipes/cross_modal.py` run with the command line
a user gives it, each cell with the same schedule (a fixed number of steps), scored on the same fixed test subset.
The cells run inside this process (`runpy`, the script as `__main__`; the recipe seeds itself), so the interpreter
and the library imports are paid once, not once per cell, on a 2-core machine. The numbers go to `--output_file`; the summary is the mean ± std over seeds of test accuracy, and the gain
of pretrained over random init per (budget, tuning).

    flock /work/heavy.lock python benchmarks/cross_modal_transfer.py --seeds 0 1 2
"""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from _common import ONE_FINAL_EVALUATION, ROOT, machine_info

RECIPE = ROOT / "recipes" / "cross_modal.py"


def run_cell(flags: list[str], output_dir: str) -> dict:
    """`python recipes/cross_modal.py FLAGS --output_dir DIR`, in this process; its `all_results.json`. A failed run
    stops the benchmark with the run's last output."""
    saved_argv, sys.argv = sys.argv, [str(RECIPE), *flags, "--output_dir", output_dir]
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            runpy.run_path(str(RECIPE), run_name="__main__")
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise SystemExit(f"cross_modal.py {' '.join(flags)} failed:\n{output.getvalue()[-3000:]}") from None
    finally:
        sys.argv = saved_argv
    return json.loads((Path(output_dir) / "all_results.json").read_text())


@dataclass
class BenchmarkArguments:
    model: str = field(default="minilm", metadata={"help": "The text encoder whose body is transferred."})
    dataset_name: str = field(default="fashion_mnist", metadata={"help": "A built-in single-label image set."})
    image_size: int = field(default=28, metadata={"help": "Image side."})
    patch_size: int = field(default=7, metadata={"help": "Patch side (28 / 7: 16 patches + [CLS])."})
    shots: list[int] = field(default_factory=lambda: [4, 16, 64], metadata={"help": "Labelled images per class."})
    tunings: list[str] = field(default_factory=lambda: ["frozen", "full"], metadata={"help": "Body tunings."})
    inits: list[str] = field(default_factory=lambda: ["pretrained", "random"], metadata={"help": "Body inits."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds (label draws and init)."})
    max_steps: int = field(default=60, metadata={"help": "Optimizer steps of every cell (the same schedule)."})
    batch_size: int = field(default=32, metadata={"help": "Training batch size."})
    frozen_learning_rate: float = field(default=1e-3, metadata={"help": "Everything trainable, frozen body (FPT's)."})
    full_learning_rate: float = field(default=1e-4, metadata={"help": "The body's learning rate, full tuning."})
    head_learning_rate: float = field(default=1e-3, metadata={"help": "Patch embedder, [CLS], classifier."})
    eval_samples: int = field(default=300, metadata={"help": "Test rows scored (the same subset in every cell)."})
    output_file: str = field(default="benchmarks/results/cross_modal_transfer.json", metadata={"help": "Where."})
    time_budget_minutes: float = field(
        default=35.0,
        metadata={"help": "Start no new cell after this long (seeds run in turn, so a cut run has whole seeds first)."},
    )


def markdown_table(records: dict, args: BenchmarkArguments) -> str:
    """The summary as the RESULTS.md table: one row per (budget, tuning), test accuracy per init and the paired gain."""
    summary = records["summary"]
    lines = [
        "| images per class | body | " + " | ".join(f"{init} init" for init in args.inits) + " | pretrained - random |",
        "|---|---|" + "---|" * (len(args.inits) + 1),
    ]
    for shots in args.shots:
        for tuning in args.tunings:
            cells = [summary.get(f"{shots}_{tuning}_{init}", "not run") for init in args.inits]
            gain = summary.get(f"{shots}_{tuning}_gain", "-")
            seeds = len({r["seed"] for r in records["runs"] if (r["shots"], r["tuning"]) == (shots, tuning)})
            lines.append(f"| {shots} | {tuning} ({seeds} seeds) | " + " | ".join(cells) + f" | {gain} |")
    return "\n".join(lines)


def main() -> None:
    (args,) = HfArgumentParser(BenchmarkArguments).parse_args_into_dataclasses()

    def write(records: dict) -> None:
        Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_file).write_text(json.dumps(records, indent=2))

    records = {"arguments": vars(args), "machine": machine_info("peft"), "runs": []}
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for shots in args.shots:
                for tuning in args.tunings:
                    for init in args.inits:
                        if time.time() - start > 60 * args.time_budget_minutes:  # the first cell not run
                            records.setdefault("cut_at", {"seed": seed, "shots": shots, "tuning": tuning, "init": init})
                            continue
                        cell_start = time.time()
                        learning_rate = args.frozen_learning_rate if tuning == "frozen" else args.full_learning_rate
                        results = run_cell(
                            [
                                "--model_name_or_path", args.model, "--dataset_name", args.dataset_name,
                                "--train_samples_per_class", str(shots), "--train_samples_seed", str(seed),
                                "--max_eval_samples", str(args.eval_samples),
                                "--image_size", str(args.image_size), "--patch_size", str(args.patch_size),
                                "--body_tuning", tuning, "--body_init", init,
                                "--max_steps", str(args.max_steps), "--per_device_train_batch_size", str(args.batch_size),
                                "--per_device_eval_batch_size", "128",
                                "--learning_rate", str(learning_rate), "--head_learning_rate", str(args.head_learning_rate),
                                "--warmup_steps", "5", "--seed", str(seed), *ONE_FINAL_EVALUATION,
                            ],
                            f"{tmp}/{seed}-{shots}-{tuning}-{init}",
                        )  # fmt: skip
                        row = {
                            "seed": seed,
                            "shots": shots,
                            "tuning": tuning,
                            "init": init,
                            "test_accuracy": results["test_accuracy"],
                            "train_samples": results["train_samples"],
                            "trainable_params": results["trainable_params"],
                            "train_runtime": results["train_runtime"],
                            "cell_seconds": time.time() - cell_start,
                        }
                        records["runs"].append(row)
                        print(json.dumps(row), flush=True)
                        write(records)  # a cut run keeps every finished cell

    def mean_std(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {spread:.3f}"

    summary = {}
    for shots in args.shots:
        for tuning in args.tunings:
            by_init = {
                init: [r for r in records["runs"] if (r["shots"], r["tuning"], r["init"]) == (shots, tuning, init)]
                for init in args.inits
            }
            for init, rows in by_init.items():
                if rows:
                    summary[f"{shots}_{tuning}_{init}"] = mean_std([r["test_accuracy"] for r in rows])
            if {"pretrained", "random"} <= set(by_init):  # paired by seed: the same labelled images
                random_of = {r["seed"]: r for r in by_init["random"]}
                pairs = [(p, random_of[p["seed"]]) for p in by_init["pretrained"] if p["seed"] in random_of]
                if pairs:
                    summary[f"{shots}_{tuning}_gain"] = mean_std(
                        [p["test_accuracy"] - r["test_accuracy"] for p, r in pairs]
                    )
    records["summary"] = summary
    records["wall_time"] = time.time() - start
    write(records)
    print(markdown_table(records, args))
    print(f"wall time: {records['wall_time']:.0f} s")


if __name__ == "__main__":
    main()
