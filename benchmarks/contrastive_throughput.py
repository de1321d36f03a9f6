#!/usr/bin/env python
"""Benchmark: `ContrastiveTrainer` vs. sentence-transformers' trainer with MultipleNegativesRankingLoss.

Same model (MiniLM), same data (drug-review texts as SimCSE pairs: each text is its own positive, so
dropout makes the two views), same batch size, same loss (InfoNCE with in-batch negatives, cosine
similarity, temperature 0.05 = MNRL's scale 20, no projection head), same optimizer (AdamW, the same
learning rate), same truncation. Four contestants, interleaved round by round in one process:

- `ours`: `ContrastiveTrainer` + `InBatchNegativesLoss`;
- `sentence_transformers`: `SentenceTransformerTrainer` + `MultipleNegativesRankingLoss`;
- `ours_cached`: `ContrastiveTrainer` with GradCache (`gradient_cache_mini_batch_size`);
- `sentence_transformers_cached`: `CachedMultipleNegativesRankingLoss` with the same mini-batch size.

Throughput is pairs per second from the median optimizer-step time after `--timing_warmup_steps`
(a `TrainerCallback`), per round; ratios are ours / theirs per round, then the median. The last two
printed lines are `cached_ratio_vs_sentence_transformers: Y` and `ratio_vs_sentence_transformers: X`.

`--mode memory` instead measures peak memory of a training step as the batch grows, plain loss vs.
GradCache, each (variant, batch size) in a fresh subprocess: CPU process RSS (peak `ru_maxrss` during
training minus RSS before it), or `torch.cuda.max_memory_allocated` on a GPU.

    python benchmarks/contrastive_throughput.py                       # ~10 minutes on 2 busy CPU cores
    python benchmarks/contrastive_throughput.py --mode memory --batch_sizes 16 32 64 128

Needs `pip install -r requirements-bench.txt` (sentence-transformers) for the throughput mode.
"""

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Literal, Optional

import datasets
import torch
from transformers import HfArgumentParser, TrainingArguments, set_seed

from _common import StepTimer, current_rss_mib, machine_info, peak_rss_mib
from hf_transfer.contrastive import ContrastiveModel, ContrastiveTextCollator, ContrastiveTrainer, InBatchNegativesLoss
from hf_transfer.data import DataArguments, load_transfer_dataset
from hf_transfer.errors import ConfigError
from hf_transfer.models import ModelArguments, create_backbone, resolve_model_path
from hf_transfer.outputs import write_json_atomic
from hf_transfer.recipe import run_recipe, setup_quiet_logging

logger = logging.getLogger(__name__)

NAME = "contrastive_throughput"
DATA_DEFAULTS = {"dataset_name": "drug_reviews"}
CONTESTANTS = ("ours", "sentence_transformers", "ours_cached", "sentence_transformers_cached")


@dataclass
class BenchmarkArguments:
    """How the contestants are run.

    Args:
        mode (`Literal["throughput", "memory", "memory_one"]`): `throughput` (the four contestants,
            interleaved), `memory` (peak memory vs. batch size, one subprocess per point), `memory_one`
            (one point in this process: what each subprocess of `memory` runs).
        batch_size (`int`): pairs per optimizer step (2x rows through the encoder).
        mini_batch_size (`int`): rows embedded at once by both cached variants.
        max_steps (`int`): optimizer steps per contestant and round.
        rounds (`int`): rounds of the four contestants; medians over rounds are reported.
        max_seq_length (`int`): tokens per text after truncation (both libraries).
        learning_rate (`float`): AdamW learning rate of both.
        timing_warmup_steps (`int`): first steps of each run left out of the median step time.
        batch_sizes (`list[int]`): batch sizes of `--mode memory`.
        memory_variant (`Literal["plain", "cached"]`): the variant of `--mode memory_one`.
        seed (`int`): seed of everything.
        output_file (`str`, *optional*): JSON results file.
    """

    mode: Literal["throughput", "memory", "memory_one"] = field(
        default="throughput",
        metadata={
            "help": "throughput: ours vs sentence-transformers (plain and cached), interleaved. memory: peak "
            "memory vs batch size, plain vs GradCache, a subprocess per point. memory_one: one point here."
        },
    )
    batch_size: int = field(default=32, metadata={"help": "Pairs per optimizer step (both views: 2x rows)."})
    mini_batch_size: int = field(default=16, metadata={"help": "Rows embedded at once by both cached variants."})
    max_steps: int = field(default=12, metadata={"help": "Optimizer steps per contestant and round."})
    rounds: int = field(default=3, metadata={"help": "Rounds of the four contestants, interleaved."})
    max_seq_length: int = field(default=64, metadata={"help": "Tokens per text after truncation (both libraries)."})
    learning_rate: float = field(default=2e-5, metadata={"help": "AdamW learning rate (both)."})
    timing_warmup_steps: int = field(default=2, metadata={"help": "Steps per run left out of the median step time."})
    batch_sizes: list[int] = field(
        default_factory=lambda: [16, 32, 64, 128], metadata={"help": "Batch sizes of --mode memory."}
    )
    memory_variant: Literal["plain", "cached"] = field(
        default="plain", metadata={"help": "Variant of --mode memory_one: plain or cached."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of the data order and the models."})
    output_file: Optional[str] = field(default=None, metadata={"help": f"Default: benchmarks/results/{NAME}.json."})

    def __post_init__(self) -> None:
        for flag in ("batch_size", "mini_batch_size", "max_steps", "rounds", "max_seq_length"):
            if getattr(self, flag) <= 0:
                raise ConfigError(f"--{flag} must be positive; got {getattr(self, flag)}.")
        if self.mode == "throughput" and self.timing_warmup_steps >= self.max_steps:
            raise ConfigError(
                f"--timing_warmup_steps {self.timing_warmup_steps} leaves no timed step of --max_steps {self.max_steps}."
            )
        if self.output_file is None:
            suffix = "" if self.mode == "throughput" else "_memory"
            self.output_file = os.path.join("benchmarks", "results", f"{NAME}{suffix}.json")


def training_args(output_dir: str, bench: BenchmarkArguments, batch_size: int, cls=TrainingArguments, **extra):
    return cls(
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        max_steps=bench.max_steps,
        learning_rate=bench.learning_rate,
        warmup_steps=0,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=bench.seed,
        dataloader_drop_last=True,
        **extra,
    )


def train_ours(path: str, texts: datasets.Dataset, bench: BenchmarkArguments, batch_size: int, cached: bool, tmp: str):
    set_seed(bench.seed)
    backbone = create_backbone(path, pooling="mean")
    model = ContrastiveModel(backbone, projection_dim=0)
    timer = StepTimer()
    trainer = ContrastiveTrainer(
        model,
        training_args(tmp, bench, batch_size),
        loss=InBatchNegativesLoss(temperature=0.05),  # MNRL: scale 20, cosine, anchor -> positive
        train_dataset=texts,
        data_collator=ContrastiveTextCollator(backbone.processor, views="pair", max_seq_length=bench.max_seq_length),
        gradient_cache_mini_batch_size=bench.mini_batch_size if cached else None,
        callbacks=[timer],
    )
    trainer.train()
    return timer


def train_sentence_transformers(
    path: str, texts: datasets.Dataset, bench: BenchmarkArguments, batch_size: int, cached: bool, tmp: str
):
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    set_seed(bench.seed)
    model = SentenceTransformer(path, device="cuda" if torch.cuda.is_available() else "cpu")
    model.max_seq_length = bench.max_seq_length
    loss = (
        CachedMultipleNegativesRankingLoss(model, scale=20.0, mini_batch_size=bench.mini_batch_size)
        if cached
        else MultipleNegativesRankingLoss(model, scale=20.0)
    )
    timer = StepTimer()
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_args(tmp, bench, batch_size, cls=SentenceTransformerTrainingArguments),
        train_dataset=texts.rename_columns({"text": "anchor"}).select_columns(["anchor", "positive"]),
        loss=loss,
        callbacks=[timer],
    )
    trainer.train()
    return timer


def load_texts(data_args: DataArguments, bench: BenchmarkArguments, rows: int) -> datasets.Dataset:
    """SimCSE pairs: every text is its own positive (columns `text`, `positive`)."""
    train = load_transfer_dataset(data_args)["train"]
    texts = [t for t in train["text"]]
    while len(texts) < rows:
        texts = texts + texts
    texts = texts[:rows]
    return datasets.Dataset.from_dict({"text": texts, "positive": texts})


def run_throughput(path: str, data_args: DataArguments, bench: BenchmarkArguments) -> dict:
    texts = load_texts(data_args, bench, bench.batch_size * bench.max_steps)
    runners = {
        "ours": lambda tmp: train_ours(path, texts, bench, bench.batch_size, False, tmp),
        "sentence_transformers": lambda tmp: train_sentence_transformers(
            path, texts, bench, bench.batch_size, False, tmp
        ),
        "ours_cached": lambda tmp: train_ours(path, texts, bench, bench.batch_size, True, tmp),
        "sentence_transformers_cached": lambda tmp: train_sentence_transformers(
            path, texts, bench, bench.batch_size, True, tmp
        ),
    }
    per_round: list[dict] = []
    for round_index in range(bench.rounds):
        numbers = {}
        for name, run in runners.items():
            with tempfile.TemporaryDirectory() as tmp:
                timer = run(tmp)
            step = statistics.median(timer.durations[bench.timing_warmup_steps :])
            cpu_step = statistics.median(timer.cpu_durations[bench.timing_warmup_steps :])
            numbers[name] = {
                "median_step_s": step,
                "pairs_per_s": bench.batch_size / step,
                "median_step_cpu_s": cpu_step,
                "steps": len(timer.durations),
            }
            logger.info(
                "round %d %s: %.3f s/step (%.3f CPU s), %.1f pairs/s",
                round_index,
                name,
                step,
                cpu_step,
                bench.batch_size / step,
            )
        for key, ours, theirs in (
            ("ratio", "ours", "sentence_transformers"),
            ("cached_ratio", "ours_cached", "sentence_transformers_cached"),
        ):
            numbers[key] = numbers[ours]["pairs_per_s"] / numbers[theirs]["pairs_per_s"]
            numbers[f"{key}_cpu"] = numbers[theirs]["median_step_cpu_s"] / numbers[ours]["median_step_cpu_s"]
        per_round.append(numbers)
    summary = {name: statistics.median(r[name]["pairs_per_s"] for r in per_round) for name in CONTESTANTS}
    return {
        "pairs_per_s_median": summary,
        "ratio_vs_sentence_transformers": statistics.median(r["ratio"] for r in per_round),
        "cached_ratio_vs_sentence_transformers": statistics.median(r["cached_ratio"] for r in per_round),
        "ratio_cpu_time": statistics.median(r["ratio_cpu"] for r in per_round),
        "cached_ratio_cpu_time": statistics.median(r["cached_ratio_cpu"] for r in per_round),
        "rounds": per_round,
    }


def run_memory_point(path: str, data_args: DataArguments, bench: BenchmarkArguments) -> dict:
    """Peak memory added by `--max_steps` training steps of one (variant, batch size), in this process."""
    texts = load_texts(data_args, bench, bench.batch_size * bench.max_steps)
    cached = bench.memory_variant == "cached"
    gpu = torch.cuda.is_available()
    if gpu:
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = current_rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        durations = train_ours(path, texts, bench, bench.batch_size, cached, tmp).durations
    peak = torch.cuda.max_memory_allocated() / 2**20 if gpu else peak_rss_mib()
    return {
        "variant": bench.memory_variant,
        "batch_size": bench.batch_size,
        "peak_added_mib": peak - before,
        "median_step_s": statistics.median(durations),
        "measure": "cuda_allocated" if gpu else "process_rss",
    }


def run_memory(model_args: ModelArguments, data_args: DataArguments, bench: BenchmarkArguments) -> dict:
    """Every (variant, batch size) point in a fresh subprocess, so each peak starts from a clean process."""
    points = []
    for batch_size in bench.batch_sizes:
        for variant in ("plain", "cached"):
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                command = [
                    sys.executable,
                    __file__,
                    "--mode",
                    "memory_one",
                    "--memory_variant",
                    variant,
                    "--model_name_or_path",
                    model_args.model_name_or_path,
                    "--dataset_name",
                    data_args.dataset_name,
                    "--batch_size",
                    str(batch_size),
                    "--mini_batch_size",
                    str(bench.mini_batch_size),
                    "--max_steps",
                    str(bench.max_steps),
                    "--max_seq_length",
                    str(bench.max_seq_length),
                    "--timing_warmup_steps",
                    "0",
                    "--seed",
                    str(bench.seed),
                    "--output_file",
                    out.name,
                ]
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                with open(out.name) as f:
                    point = json.load(f)
            logger.info("memory %s batch %d: +%.0f MiB", variant, batch_size, point["peak_added_mib"])
            points.append(point)
    return {"points": points, "mini_batch_size": bench.mini_batch_size}


def main():
    parser = HfArgumentParser((ModelArguments, DataArguments, BenchmarkArguments))
    argv = sys.argv[1:]
    if not any(a.startswith("--dataset_name") or a.startswith("--train_file") for a in argv):
        argv = [f"--{k}={v}" for k, v in DATA_DEFAULTS.items()] + argv
    model_args, data_args, bench = parser.parse_args_into_dataclasses(args=argv)
    setup_quiet_logging(logger)
    path = resolve_model_path(model_args.model_name_or_path)

    if bench.mode == "memory_one":
        write_json_atomic(bench.output_file, run_memory_point(path, data_args, bench))
        return
    start = time.time()
    results = (
        run_memory(model_args, data_args, bench) if bench.mode == "memory" else run_throughput(path, data_args, bench)
    )
    results.update(
        arguments={**asdict(bench), "model": model_args.model_name_or_path, "dataset": data_args.dataset_name},
        machine=machine_info("sentence-transformers"),
        wall_time_s=time.time() - start,
    )
    write_json_atomic(bench.output_file, results)
    print(json.dumps({k: v for k, v in results.items() if k not in ("rounds", "points", "machine")}, indent=2))
    if bench.mode == "memory":
        for point in results["points"]:
            print(
                f"{point['variant']:>6} batch {point['batch_size']:>4}: +{point['peak_added_mib']:.0f} MiB, "
                f"{point['median_step_s']:.2f} s/step"
            )
        return
    print(f"cached_ratio_vs_sentence_transformers: {results['cached_ratio_vs_sentence_transformers']:.3f}")
    print(f"ratio_vs_sentence_transformers: {results['ratio_vs_sentence_transformers']:.3f}")


if __name__ == "__main__":
    run_recipe(main)
