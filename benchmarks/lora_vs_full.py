#!/usr/bin/env python
"""Benchmark: full fine-tuning vs. LoRA (`create_lora_model`), both through `TransferTrainer`.

Same model, data, batch size and number of steps. For each variant it reports trainable parameters
(count and fraction), peak memory during training, the median time of an optimizer step after a few
warm-up steps, and validation accuracy; then the ratios lora / full.

Each variant runs in a fresh Python subprocess, alternating full, lora, full, lora, ... (`--repeats`
pairs), so both see the same load on a shared machine and neither inherits the other's allocator state.

Memory, by device:
- CPU: process resident set size (RSS). Right before `trainer.train()` the subprocess reads its current
  RSS (`/proc/self/statm`); after training, its peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`).
  `train_peak_mib` is the difference: what training (gradients, optimizer state, activations) added on
  top of the loaded model and data. `ru_maxrss` is a high-water mark over the whole process, so when
  loading peaked higher than training the difference is only a lower bound; `train_peak_is_lower_bound`
  says when that happened. `tracemalloc` would miss torch's allocations, which bypass Python's allocator.
- CUDA: `torch.cuda.max_memory_allocated()` after `reset_peak_memory_stats()`, minus the memory allocated
  before training (tensors only, not the caching allocator's reserve).

Step time: a `TrainerCallback` takes `time.perf_counter()` in `on_step_begin` and `on_step_end` (forward,
backward, clipping, optimizer and scheduler step; batches are fetched before `on_step_begin`), syncing
CUDA when present; the median is taken after `--timing_warmup_steps` steps.

    python benchmarks/lora_vs_full.py                          # MiniLM, tweet_sentiment, 2 x (full, lora)
    python benchmarks/lora_vs_full.py --variant lora           # one variant, in this process
"""

import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Literal, Optional

import torch
from transformers import HfArgumentParser, TrainingArguments, set_seed

from _common import StepTimer, current_rss_mib, machine_info, peak_rss_mib
from hf_transfer.data import DataArguments, infer_modality, load_transfer_dataset
from hf_transfer.errors import ConfigError
from hf_transfer.finetuning import LoraArguments, TransferTrainer, create_lora_model
from hf_transfer.metrics import create_compute_metrics
from hf_transfer.models import ModelArguments, count_parameters
from hf_transfer.outputs import write_json_atomic
from hf_transfer.processing import create_collator, preprocess_dataset
from hf_transfer.recipe import load_transfer_model, run_recipe, setup_quiet_logging

logger = logging.getLogger(__name__)

NAME = "lora_vs_full"
VARIANTS = ("full", "lora")
# Defaults of the library's own dataclasses for this benchmark (still overridable by their flags).
DATA_DEFAULTS = {"dataset_name": "tweet_sentiment", "max_train_samples": 1024, "max_eval_samples": 300}


@dataclass
class BenchmarkArguments:
    """What is compared and how long each variant trains (the adapters' `--lora_r`, `--lora_alpha`,
    `--lora_dropout` are the library's `LoraArguments`, as in recipes/finetune.py).

    Args:
        variant (`Literal["both", "full", "lora"]`): `both` runs every variant in fresh subprocesses,
            alternating, and writes the comparison; `full` or `lora` runs that one variant in this process.
        repeats (`int`): (full, lora) pairs run by `both`; medians and per-pair ratios are reported.
        num_train_epochs (`float`): epochs of each variant (the same number of steps for both).
        batch_size (`int`): training batch size; evaluation uses 64.
        max_seq_length (`int`): tokens per text after truncation.
        full_learning_rate (`float`): learning rate of the backbone in full fine-tuning.
        lora_learning_rate (`float`): learning rate of the LoRA adapters.
        head_learning_rate (`float`): learning rate of the new head, in both variants.
        timing_warmup_steps (`int`): first optimizer steps left out of the median step time.
        seed (`int`): seed of the head, the LoRA initialisation and the data order.
        output_file (`str`, *optional*): where the JSON results go.
    """

    variant: Literal["both", "full", "lora"] = field(
        default="both",
        metadata={
            "help": "both: run full and lora alternately, each in a fresh subprocess, and compare them. "
            "full / lora: run that one variant in this process (what each subprocess does)."
        },
    )
    repeats: int = field(
        default=2, metadata={"help": "(full, lora) pairs run by --variant both, interleaved: full, lora, full, ..."}
    )
    num_train_epochs: float = field(default=1.0, metadata={"help": "Training epochs of each variant."})
    batch_size: int = field(default=32, metadata={"help": "Training batch size (evaluation uses 64)."})
    max_seq_length: int = field(default=64, metadata={"help": "Maximum tokens per text; longer texts are truncated."})
    full_learning_rate: float = field(default=1e-4, metadata={"help": "Backbone learning rate of full fine-tuning."})
    lora_learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate of the LoRA adapters."})
    head_learning_rate: float = field(default=2e-3, metadata={"help": "Learning rate of the new head (both variants)."})
    timing_warmup_steps: int = field(
        default=5, metadata={"help": "Optimizer steps left out of the median step time (allocator and cache warm-up)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of the head, the LoRA initialisation and the data order."})
    output_file: Optional[str] = field(
        default=None, metadata={"help": f"JSON results file. Default: benchmarks/results/{NAME}.json."}
    )

    def __post_init__(self) -> None:
        if self.variant not in ("both", *VARIANTS):
            raise ConfigError(f"--variant {self.variant!r} must be both, full or lora.")
        for flag in ("repeats", "batch_size", "max_seq_length", "num_train_epochs"):
            if getattr(self, flag) <= 0:
                raise ConfigError(f"--{flag} must be positive; got {getattr(self, flag)}.")
        if self.timing_warmup_steps < 0:
            raise ConfigError(f"--timing_warmup_steps must be >= 0; got {self.timing_warmup_steps}.")
        if self.output_file is None:
            self.output_file = os.path.join("benchmarks", "results", f"{NAME}.json")


def run_variant(
    variant: str,
    model_args: ModelArguments,
    data_args: DataArguments,
    lora_args: LoraArguments,
    bench_args: BenchmarkArguments,
) -> dict:
    """Train and evaluate one variant in this process; return its numbers."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    set_seed(bench_args.seed)

    # Data, model, preprocessing: exactly as recipes/finetune.py does them (`load_transfer_model`).
    raw_datasets = load_transfer_dataset(data_args, cache_dir=model_args.cache_dir)
    label_names = raw_datasets["train"].features["label"].names
    loaded = load_transfer_model(model_args, label_names, infer_modality(raw_datasets))
    model, processor, modality = loaded.model, loaded.processor, loaded.modality
    processed = preprocess_dataset(raw_datasets, processor, modality, bench_args.max_seq_length)

    # The only difference between the variants: LoRA adapters (and the head) vs. every weight.
    if variant == "lora":
        model = create_lora_model(model, lora_args, new_modules=loaded.new_modules)
    trainable, total = count_parameters(model)

    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="hf_transfer-bench-") as tmp:
        training_args = TrainingArguments(
            output_dir=tmp,
            num_train_epochs=bench_args.num_train_epochs,
            per_device_train_batch_size=bench_args.batch_size,
            per_device_eval_batch_size=64,
            learning_rate=bench_args.lora_learning_rate if variant == "lora" else bench_args.full_learning_rate,
            weight_decay=0.01,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=bench_args.seed,
            remove_unused_columns=modality == "text",  # the image transform needs the `image` column
            use_cpu=device.type == "cpu",
            # peft hides the forward signature Trainer reads label names from
            label_names=["labels"] if variant == "lora" else None,
        )
        trainer = TransferTrainer(
            model=model,
            args=training_args,
            train_dataset=processed["train"],
            eval_dataset=processed["validation"],
            processing_class=processor,
            data_collator=create_collator(processor, modality),
            compute_metrics=create_compute_metrics(),
            callbacks=[timer],
            head_learning_rate=bench_args.head_learning_rate,
            head_modules=loaded.head_modules,
        )

        # Memory before training: what the loaded model and data hold.
        gc.collect()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before_mib = torch.cuda.memory_allocated() / 2**20
        else:
            before_mib = current_rss_mib()
        peak_before_mib = peak_rss_mib()

        train_metrics = trainer.train().metrics

        if device.type == "cuda":
            peak_mib = torch.cuda.max_memory_allocated() / 2**20
            lower_bound = False
        else:
            peak_mib = peak_rss_mib()
            lower_bound = peak_mib <= peak_before_mib  # training never raised the process high-water mark
        eval_metrics = trainer.evaluate()

    skip = bench_args.timing_warmup_steps if len(timer.durations) > bench_args.timing_warmup_steps else 0
    timed, timed_cpu = timer.durations[skip:], timer.cpu_durations[skip:]
    return {
        "variant": variant,
        "trainable_params": trainable,
        "total_params": total,
        "trainable_fraction": trainable / total,
        "memory_method": "cuda max_memory_allocated" if device.type == "cuda" else "process RSS (ru_maxrss)",
        "memory_before_train_mib": before_mib,
        "peak_before_train_mib": peak_before_mib,
        "peak_mib": peak_mib,
        "train_peak_mib": peak_mib - before_mib,
        "train_peak_is_lower_bound": lower_bound,
        "steps": len(timer.durations),
        "timed_steps": len(timed),
        "median_step_s": statistics.median(timed),
        "min_step_s": min(timed),
        "median_step_cpu_s": statistics.median(timed_cpu),
        "step_s": timer.durations,
        "step_cpu_s": timer.cpu_durations,
        "train_runtime_s": train_metrics["train_runtime"],
        "eval_accuracy": eval_metrics["eval_accuracy"],
        "eval_f1": eval_metrics["eval_f1"],
        "load_average": os.getloadavg(),
    }


def run_in_subprocess(variant: str, tmp_dir: str, index: int) -> dict:
    """This script again, in a fresh interpreter, with `--variant <variant>`; returns its JSON."""
    output_file = os.path.join(tmp_dir, f"{index}-{variant}.json")
    # Later flags win in argparse, so appending overrides whatever the user passed.
    command = [
        sys.executable,
        os.path.abspath(__file__),
        *sys.argv[1:],
        "--variant",
        variant,
        "--output_file",
        output_file,
    ]
    logger.info(f"Run {index}: {variant} in a fresh subprocess")
    subprocess.run(command, check=True)
    with open(output_file) as f:
        return json.load(f)


def main():
    # 1. Arguments
    parser = HfArgumentParser((ModelArguments, DataArguments, LoraArguments, BenchmarkArguments))
    parser.set_defaults(**DATA_DEFAULTS)
    model_args, data_args, lora_args, bench_args = parser.parse_args_into_dataclasses()

    # 2. Logging: this script's and hf_transfer's steps at INFO; transformers' load reports and Trainer chatter off.
    setup_quiet_logging(logger)

    # 3. One variant: run it here and write its numbers (this is what each subprocess does).
    if bench_args.variant != "both":
        result = run_variant(bench_args.variant, model_args, data_args, lora_args, bench_args)
        write_json_atomic(bench_args.output_file, result)
        logger.info(
            f"{bench_args.variant}: {result['median_step_s']:.3f} s/step, peak +{result['train_peak_mib']:.0f} "
            f"MiB, accuracy {result['eval_accuracy']:.4f}"
        )
        return

    # 4. Both: alternate fresh subprocesses, full, lora, full, lora, ...
    logger.info(f"Benchmark arguments {bench_args}, {lora_args}")
    load_start = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory(prefix="hf_transfer-bench-") as tmp:
        for repeat in range(bench_args.repeats):
            for variant in VARIANTS:
                runs.append({"repeat": repeat, **run_in_subprocess(variant, tmp, len(runs))})

    # 5. Summary: per-variant medians and per-pair ratios lora / full.
    keys = (
        "trainable_params",
        "trainable_fraction",
        "train_peak_mib",
        "peak_mib",
        "median_step_s",
        "min_step_s",
        "median_step_cpu_s",
        "train_runtime_s",
        "eval_accuracy",
    )
    median = {v: {k: statistics.median(r[k] for r in runs if r["variant"] == v) for k in keys} for v in VARIANTS}
    ratio_keys = ("train_peak_mib", "peak_mib", "median_step_s", "min_step_s", "median_step_cpu_s", "train_runtime_s")
    pairs = [{k: lora[k] / full[k] for k in ratio_keys} for full, lora in zip(runs[0::2], runs[1::2])]
    ratios = {k: statistics.median(p[k] for p in pairs) for k in ratio_keys}
    ratios["trainable_params"] = median["lora"]["trainable_params"] / median["full"]["trainable_params"]
    ratios["eval_accuracy_difference"] = median["lora"]["eval_accuracy"] - median["full"]["eval_accuracy"]
    results = {
        "benchmark": NAME,
        "model": model_args.model_name_or_path,
        "dataset": data_args.dataset_name,
        "train_samples": data_args.max_train_samples,
        "eval_samples": data_args.max_eval_samples,
        "arguments": {**asdict(bench_args), **asdict(lora_args)},
        "machine": machine_info("peft"),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "runs": runs,
        "median": median,
        "pair_ratios_lora_over_full": pairs,
        "ratios_lora_over_full": ratios,
    }
    write_json_atomic(bench_args.output_file, results)

    print(
        f"{NAME}: {results['model']} on {results['dataset']}, {runs[0]['steps']} steps of batch "
        f"{bench_args.batch_size}, {bench_args.repeats} x (full, lora) in fresh subprocesses, "
        f"{results['machine']['cpu_count']} CPUs, load average {load_start[0]:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  {'':6} {'trainable':>12} {'fraction':>9} {'train peak MiB':>15} {'peak MiB':>9} {'s/step':>7} "
        f"{'min s':>6} {'CPU s/step':>10} {'val acc':>8}"
    )
    for v in VARIANTS:
        m = median[v]
        print(
            f"  {v:6} {m['trainable_params']:>12,.0f} {m['trainable_fraction']:>9.4f} {m['train_peak_mib']:>15.0f} "
            f"{m['peak_mib']:>9.0f} {m['median_step_s']:>7.2f} {m['min_step_s']:>6.2f} {m['median_step_cpu_s']:>10.2f} "
            f"{m['eval_accuracy']:>8.4f}"
        )
    print(
        "  (medians over runs; s/step is the median wall time of a step, CPU s/step the process CPU time, all threads)"
    )
    if any(r["train_peak_is_lower_bound"] for r in runs):
        print("  note: in some runs training did not exceed the loading peak; their train peak is a lower bound")
    print(f"  results: {bench_args.output_file}")
    print(
        f"lora/full: params {ratios['trainable_params']:.4f}, train peak memory {ratios['train_peak_mib']:.2f}, "
        f"step time {ratios['median_step_s']:.2f} (CPU {ratios['median_step_cpu_s']:.2f}), "
        f"accuracy {ratios['eval_accuracy_difference']:+.4f} (lora - full)"
    )


if __name__ == "__main__":
    run_recipe(main)
