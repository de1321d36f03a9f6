#!/usr/bin/env python
"""Benchmark: target accuracy of source-only, DANN, CORAL, MMD and the target oracle, on a text and an image pair.

Every cell is `recipes/domain_adapt.py` run with one of its configs (`recipes/configs/domain_adapt_text.yaml`:
MiniLM, tweet_sentiment -> drug_reviews; `recipes/configs/domain_adapt_vision.yaml`: EfficientNet-Lite0,
digits -> digits_m) and `--method <method> --seed <seed>`, in a fresh subprocess, so the numbers are exactly
what a user of the recipe gets (the pairs and that command are `_domain_runs.py`, shared with
`da_label_shift_check.py`). Seeds change the head initialisation, the discriminator, dropout, the batch
order and the source/target pairing; the data subsets (split_seed 42) are the same for every seed.

Each run's `all_results.json` is kept as `<results_dir>/<pair>-<method>-seed<seed>.json` (models are not kept),
and a run whose JSON exists is skipped, so an interrupted grid resumes where it stopped. The summary (mean and
sample standard deviation over seeds) goes to `<results_dir>/summary.json` and a Markdown table to
`<results_dir>/table.md`.

    python benchmarks/domain_adaptation.py                                   # the whole grid, 2 workers
    python benchmarks/domain_adaptation.py --pairs vision --methods source_only dann --seeds 0
    python benchmarks/domain_adaptation.py --summarize_only true             # rebuild the table from the JSONs

On a shared CPU, each worker runs torch with `--threads_per_worker` threads (1 by default): several spinning
threads per process on an oversubscribed machine are many times slower than one.
"""

import hashlib
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from _domain_runs import PAIRS, ROOT, run_domain_adapt
from hf_transfer.adaptation import METHODS
from hf_transfer.errors import ConfigError
from hf_transfer.outputs import write_json_atomic
from hf_transfer.recipe import run_recipe

logger = logging.getLogger(__name__)

# Extra cells (not run by default; `--methods` may name them) and the recipe flags that define them.
EXTRA_CELLS = {
    # The target half of each batch goes through the network but no alignment gradient does: what
    # passing target rows through BatchNorm in training mode alone does (EfficientNet has BatchNorm; BERT's
    # LayerNorm is per row, so on text this control is the same as source_only).
    "bn_control": ["--method", "coral", "--alignment_weight", "1e-9"],
    # The oracle trained three times as long: with the pair's default schedule (one epoch over the 540 drug
    # reviews, 34 steps) it learns little beyond the class prior.
    "target_oracle_3x": ["--method", "target_oracle", "--num_train_epochs", "3"],
    # Target self-training (per-class thresholds, from half-way through training) on top of a method.
    "mcc_self_training": [
        "--method",
        "mcc",
        "--alignment_schedule",
        "constant",
        "--target_self_training",
        "true",
        "--self_training_start",
        "0.5",
    ],
    "cdan_self_training": ["--method", "cdan", "--target_self_training", "true", "--self_training_start", "0.5"],
    "mmd_self_training": ["--method", "mmd", "--target_self_training", "true", "--self_training_start", "0.5"],
    # FixMatch's fixed threshold: the floor at the threshold turns the per-class scaling off.
    "mmd_self_training_fixed": [
        "--method",
        "mmd",
        "--target_self_training",
        "true",
        "--self_training_start",
        "0.5",
        "--self_training_min_threshold",
        "0.95",
    ],
    # MCC with the Ganin warm-up (the pair default) instead of the paper's constant weight.
    "mcc_ganin": ["--method", "mcc", "--alignment_schedule", "ganin"],
    # Class-balanced target self-training: distribution alignment of the target predictions towards a uniform
    # prior (ReMixMatch), with or without CBST's per-class quota (at most half the pool, split evenly by class).
    "mmd_self_training_da": [
        "--method",
        "mmd",
        "--target_self_training",
        "true",
        "--self_training_start",
        "0.5",
        "--self_training_distribution_alignment",
        "true",
    ],
    "mmd_self_training_da_quota": [
        "--method",
        "mmd",
        "--target_self_training",
        "true",
        "--self_training_start",
        "0.5",
        "--self_training_distribution_alignment",
        "true",
        "--self_training_class_quota",
        "0.5",
    ],
    "mcc_self_training_da_quota": [
        "--method",
        "mcc",
        "--alignment_schedule",
        "constant",
        "--target_self_training",
        "true",
        "--self_training_start",
        "0.5",
        "--self_training_distribution_alignment",
        "true",
        "--self_training_class_quota",
        "0.5",
    ],
    "bn_control_self_training_da": [
        "--method",
        "coral",
        "--alignment_weight",
        "1e-9",
        "--target_self_training",
        "true",
        "--self_training_start",
        "0.5",
        "--self_training_distribution_alignment",
        "true",
    ],
    "source_only_self_training": [
        "--method",
        "source_only",
        "--target_self_training",
        "true",
        "--self_training_start",
        "0.5",
    ],
}
# Per-pair alignment weights. Deep CORAL's λ follows the paper's rule, which needs no target labels: make
# λ·L_CORAL about equal to the task loss at the end of training (read from a λ = 1 run's logged losses).
# DANN and MMD keep λ = 1 (the papers' setting with the Ganin warm-up).
PAIR_FLAGS = {
    ("vision", "coral"): ["--alignment_weight", "10"],
    ("text", "coral"): ["--alignment_weight", "1e5"],
    # MCC is a weighted confusion of the target predictions, not an alignment that must wait for a trained head:
    # the paper adds it at full weight from the first step.
    ("vision", "mcc"): ["--alignment_schedule", "constant"],
    ("text", "mcc"): ["--alignment_schedule", "constant"],
}
METHOD_NAMES = {
    "source_only": "source only",
    "dann": "DANN",
    "coral": "Deep CORAL",
    "mmd": "MK-MMD (DAN)",
    "mcc": "MCC",
    "cdan": "CDAN+E",
    "mcc_self_training": "MCC + target self-training",
    "cdan_self_training": "CDAN+E + target self-training",
    "mmd_self_training": "MK-MMD (DAN) + target self-training",
    "mmd_self_training_fixed": "MK-MMD (DAN) + target self-training, fixed threshold 0.95",
    "mcc_ganin": "MCC, Ganin warm-up",
    "source_only_self_training": "source only + target self-training",
    "mmd_self_training_da": "MK-MMD (DAN) + target self-training, distribution alignment",
    "mmd_self_training_da_quota": "MK-MMD (DAN) + target self-training, distribution alignment + class quota 0.5",
    "bn_control_self_training_da": "BatchNorm control + target self-training, distribution alignment",
    "mcc_self_training_da_quota": "MCC + target self-training, distribution alignment + class quota 0.5",
    "target_oracle": "target oracle (labelled target)",
    "target_oracle_3x": "target oracle, 3 epochs",
    "bn_control": "control: target rows through BatchNorm, no alignment",
}


@dataclass
class BenchmarkArguments:
    """Which cells of the grid to run, and how.

    Args:
        pairs (`list[str]`): domain pairs, from `text` and `vision`.
        methods (`list[str]`): methods, from source_only, dann, coral, mmd, mcc, cdan, target_oracle.
        seeds (`list[int]`): training seeds; mean and standard deviation are taken over them.
        workers (`int`): runs in parallel.
        threads_per_worker (`int`): torch threads of each run (OMP_NUM_THREADS).
        results_dir (`str`): where the per-run JSONs, the summary and the table go.
        summarize_only (`bool`): only rebuild the summary and table from the JSONs already there.
        extra_args (`str`): flags appended to every recipe run, as one string (e.g. `"--max_steps 5"`).
        warm_start (`bool`): two-stage runs: each cell starts from the source-only model of its seed (trained once
            per seed with the same flags, kept under `outputs/domain_adaptation_source_models/`) instead of the
            ImageNet / pretrained weights, as the methods' papers do.
    """

    pairs: list[str] = field(default_factory=lambda: list(PAIRS), metadata={"help": "Domain pairs: text, vision."})
    methods: list[str] = field(
        default_factory=lambda: list(METHODS),
        metadata={
            "help": f"Methods: {', '.join(METHODS)}, and the extra cells {', '.join(EXTRA_CELLS)} (not run by default)."
        },
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Training seeds (at least one)."})
    workers: int = field(default=2, metadata={"help": "Recipe runs in parallel."})
    threads_per_worker: int = field(default=1, metadata={"help": "torch threads per run (OMP_NUM_THREADS)."})
    results_dir: str = field(
        default="benchmarks/results/domain_adaptation", metadata={"help": "Per-run JSONs, summary.json, table.md."}
    )
    summarize_only: bool = field(default=False, metadata={"help": "Only rebuild summary.json and table.md."})
    extra_args: str = field(
        default="",
        metadata={"help": 'Flags appended to every run, e.g. --extra_args="--max_steps 5" for a smoke test.'},
    )

    warm_start: bool = field(
        default=False,
        metadata={"help": "Start each cell from the source-only model of its seed (trained first, then kept)."},
    )

    def __post_init__(self) -> None:
        unknown = [p for p in self.pairs if p not in PAIRS] + [m for m in self.methods if m not in METHOD_NAMES]
        if unknown:
            raise ConfigError(
                f"Unknown pairs or methods {unknown}: pairs are {list(PAIRS)}, methods {list(METHOD_NAMES)}."
            )
        if not self.seeds or self.workers < 1 or self.threads_per_worker < 1:
            raise ConfigError("--seeds needs at least one seed; --workers and --threads_per_worker must be positive.")


# Where --warm_start keeps each seed's source-only model (git-ignored; a model per pair, seed and extra_args).
SOURCE_MODELS_DIR = ROOT / "outputs" / "domain_adaptation_source_models"


def source_model(pair: str, seed: int, bench_args: BenchmarkArguments) -> Path:
    """The source-only model `--warm_start` cells start from: trained once per (pair, seed, extra_args), then kept."""
    tag = hashlib.sha1(bench_args.extra_args.encode()).hexdigest()[:8]
    model_dir = SOURCE_MODELS_DIR / f"{pair}-seed{seed}-{tag}"
    if (model_dir / "all_results.json").is_file():
        return model_dir
    logger.info(f"{pair} seed {seed}: training the source-only warm start into {model_dir}")
    proc = run_domain_adapt(
        pair, ["--method", "source_only"], seed, str(model_dir), bench_args.threads_per_worker, bench_args.extra_args
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{pair} source-only warm start seed {seed} failed:\n{proc.stderr[-2000:]}")
    return model_dir


def run_cell(pair: str, method: str, seed: int, bench_args: BenchmarkArguments) -> dict:
    """One recipe run in a fresh subprocess; returns its results (and keeps them as JSON)."""
    result_file = Path(bench_args.results_dir) / f"{pair}-{method}-seed{seed}.json"
    if result_file.is_file():
        logger.info(f"{result_file.name}: already done")
        return json.loads(result_file.read_text())
    with tempfile.TemporaryDirectory(prefix=f"hf_transfer-da-{pair}-{method}-{seed}-") as tmp:
        method_flags = EXTRA_CELLS.get(method, ["--method", method]) + PAIR_FLAGS.get((pair, method), [])
        if bench_args.warm_start:
            method_flags += ["--model_name_or_path", str(source_model(pair, seed, bench_args).resolve())]
        start = time.time()
        logger.info(f"{pair} {method} seed {seed}: starting")
        proc = run_domain_adapt(pair, method_flags, seed, tmp, bench_args.threads_per_worker, bench_args.extra_args)
        if proc.returncode != 0:
            log_file = result_file.with_suffix(".log")
            log_file.write_text(proc.stdout + proc.stderr)
            raise RuntimeError(f"{pair} {method} seed {seed} failed (exit {proc.returncode}); log: {log_file}")
        results = json.loads((Path(tmp) / "all_results.json").read_text())
    results.update(pair=pair, method=method, seed=seed, flags=method_flags, wall_time_s=time.time() - start)
    write_json_atomic(result_file, results)
    logger.info(
        f"{pair} {method} seed {seed}: target test accuracy {results.get('target_test_accuracy'):.4f} "
        f"({results['wall_time_s']:.0f} s)"
    )
    return results


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(runs: list[dict]) -> dict:
    """Mean and sample standard deviation over seeds, per (pair, method)."""
    keys = (
        "target_test_accuracy",
        "target_eval_accuracy",
        "target_test_f1",
        "source_test_accuracy",
        "a_distance_before",
        "a_distance_after",
        "train_runtime",
        "target_pseudo_labelled_rows",
        "target_pseudo_label_accuracy",
    )
    summary: dict[str, dict] = {}
    for pair in PAIRS:
        for method in METHOD_NAMES:
            cell = [r for r in runs if r["pair"] == pair and r["method"] == method]
            if not cell:
                continue
            summary.setdefault(pair, {})[method] = {
                "seeds": sorted(r["seed"] for r in cell),
                "flags": cell[0]["flags"],
                **{k: _mean_std([r[k] for r in cell]) for k in keys if all(k in r for r in cell)},
            }
    return summary


def _cell(stats: dict, key: str, digits: int = 3) -> str:
    if key not in stats:
        return "-"
    mean, std = stats[key]
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _shown_flags(flags: list[str]) -> list[str]:
    """The flags as a table shows them: a warm start's model path (per machine and seed) by what it is."""
    return ["<the seed's source-only model>" if f.startswith(str(SOURCE_MODELS_DIR)) else f for f in flags]


def markdown_table(summary: dict, runs: list[dict]) -> str:
    lines = []
    for pair, methods in summary.items():
        example = next(r for r in runs if r["pair"] == pair)
        lines += [
            f"**{PAIRS[pair][1]}** (`{PAIRS[pair][0]}`; {example['source_train_samples']} labelled source rows, "
            f"{example['target_train_samples']} unlabelled target rows; target test split scored)",
            "",
            "| method | target test acc | target test macro-F1 | target val acc | source test acc "
            "| A-distance before → after | seeds | recipe flags |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for method, stats in methods.items():
            a_distance = (
                f"{stats['a_distance_before'][0]:.2f} → {stats['a_distance_after'][0]:.2f}"
                if "a_distance_after" in stats
                else "-"
            )
            lines.append(
                f"| {METHOD_NAMES[method]} | {_cell(stats, 'target_test_accuracy')} | {_cell(stats, 'target_test_f1')} "
                f"| {_cell(stats, 'target_eval_accuracy')} | {_cell(stats, 'source_test_accuracy')} | {a_distance} "
                f"| {len(stats['seeds'])} | `{' '.join(_shown_flags(stats['flags']))}` |"
            )
        lines.append("")
    return "\n".join(lines)


def main():
    # 1. Arguments
    (bench_args,) = HfArgumentParser(BenchmarkArguments).parse_args_into_dataclasses()

    # 2. Logging: this script's progress only (each recipe run logs to its own captured output).
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S", level=logging.INFO
    )
    results_dir = Path(bench_args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)

    # 3. The grid: every (pair, seed, method), `workers` runs at a time.
    cells = [(p, m, s) for p in bench_args.pairs for s in bench_args.seeds for m in bench_args.methods]
    if not bench_args.summarize_only:
        logger.info(f"Running {len(cells)} cells with {bench_args.workers} workers: {asdict(bench_args)}")
        with ThreadPoolExecutor(bench_args.workers) as pool:
            if bench_args.warm_start:  # the source-only models first, so two cells never train the same one
                pairs_seeds = sorted({(p, s) for p, _, s in cells})
                list(pool.map(lambda ps: source_model(*ps, bench_args), pairs_seeds))
            list(pool.map(lambda cell: run_cell(*cell, bench_args), cells))

    # 4. Summary and table from every run JSON present.
    runs = [json.loads(f.read_text()) for f in sorted(results_dir.glob("*-seed*.json"))]
    summary = summarize(runs)
    write_json_atomic(
        results_dir / "summary.json",
        {
            "benchmark": "domain_adaptation",
            "summary": summary,
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0]},
            "arguments": asdict(bench_args),
        },
    )
    table = markdown_table(summary, runs)
    (results_dir / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    run_recipe(main)
