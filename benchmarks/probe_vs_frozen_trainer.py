#!/usr/bin/env python
"""Benchmark: hf_transfer's cached linear probe vs. `transformers.Trainer` training only the head.

Same model, same data, same batch size. Timed, per repeat, in the order A B A:

- (a) cold probe: `probe_classification_model` with an empty `FeatureCache` (a fresh temporary folder):
  one frozen forward pass over train and validation, then the L-BFGS sweep over the L2 grid.
- (a') warm probe: the same call again on the same cache, so the features are read back from disk.
- (b) the peer: a stock `transformers.Trainer` on a model whose backbone is frozen (`requires_grad_(False)`
  on everything but the head found by `get_classifier`), trained for `--epochs` epochs over the same train
  split (every epoch runs the frozen backbone forward again), then `trainer.evaluate()` on validation.
- (a) and (a') once more, on a new empty cache. Their times are averaged with the first ones, so the probe is
  measured on both sides of the much longer Trainer run and a drift in the machine's load cancels out.

Reported: wall time (and process CPU time) of each, validation accuracy of (a) and (b), speedup =
time(b) / time(a), and, untimed, both models' accuracy on the test split (the probe picks its L2 strength on
validation, so its validation accuracy is slightly optimistic; test accuracy is the fair comparison). Model
loading, data loading and tokenization happen before the clocks start and are shared.

    python benchmarks/probe_vs_frozen_trainer.py                     # MiniLM on tweet_sentiment, E = 5
    python benchmarks/probe_vs_frozen_trainer.py --model_name_or_path efficientnet-lite0 \
        --dataset_name fashion_mnist --max_train_samples 300 --max_eval_samples 200 --epochs 3

The last printed line is `speedup: X (epochs: E)` (median over `--repeats`).
"""

import logging
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed

from _common import machine_info
from hf_transfer.data import DataArguments, infer_modality, load_transfer_dataset
from hf_transfer.errors import ConfigError
from hf_transfer.metrics import compute_classification_metrics, create_compute_metrics
from hf_transfer.models import ModelArguments, count_parameters, get_classifier, model_fingerprint
from hf_transfer.outputs import write_json_atomic
from hf_transfer.probing import (
    DEFAULT_L2_GRID,
    FeatureCache,
    extract_features,
    locate_probe_features,
    probe_classification_model,
)
from hf_transfer.processing import create_collator, describe_preprocessing, preprocess_dataset, sample_inputs
from hf_transfer.recipe import load_transfer_model, run_recipe, setup_quiet_logging

logger = logging.getLogger(__name__)

NAME = "probe_vs_frozen_trainer"
# Defaults of the library's own dataclasses for this benchmark (still overridable by their flags).
DATA_DEFAULTS = {"dataset_name": "tweet_sentiment", "max_train_samples": 2000, "max_eval_samples": 500}


@dataclass
class BenchmarkArguments:
    """How both contestants are run.

    Args:
        epochs (`int`): epochs of the head-only `Trainer` run (E). The probe always reads the data once.
        batch_size (`int`): batch size of the probe's feature extraction and of the `Trainer` (train and eval).
        head_learning_rate (`float`): AdamW learning rate of the head in the `Trainer` run (linear decay to 0).
        max_seq_length (`int`): tokens per text after truncation (text models only).
        probe_max_iter (`int`): L-BFGS iterations per L2 value of the probe.
        repeats (`int`): how many times the (a a', b, a a') sequence is run; medians are reported.
        test_accuracy (`bool`): also score both models on the test split, outside the timed regions.
        seed (`int`): seed of the head initialisation and of the `Trainer`.
        output_file (`str`, *optional*): where the JSON results go.
    """

    epochs: int = field(default=5, metadata={"help": "Epochs E of the head-only Trainer run (positive)."})
    batch_size: int = field(
        default=64, metadata={"help": "Batch size of the probe's feature extraction and of the Trainer (positive)."}
    )
    head_learning_rate: float = field(
        default=3e-2,
        metadata={"help": "AdamW learning rate of the head in the Trainer run, decayed linearly to 0 (positive)."},
    )
    max_seq_length: int = field(default=64, metadata={"help": "Maximum tokens per text (text models only)."})
    probe_max_iter: int = field(default=200, metadata={"help": "L-BFGS iterations per L2 value of the probe."})
    repeats: int = field(
        default=1,
        metadata={
            "help": "Run the (probe, Trainer, probe) sequence this many times; medians are reported. "
            "1 keeps the default run at a few minutes on 2 CPU cores."
        },
    )
    test_accuracy: bool = field(
        default=True,
        metadata={
            "help": "Also score both models on the test split (untimed), when the data has one. The probe "
            "chooses its L2 strength on validation, so test is the unbiased comparison."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed of the head initialisation and of the Trainer."})
    output_file: Optional[str] = field(
        default=None, metadata={"help": f"JSON results file. Default: benchmarks/results/{NAME}.json."}
    )

    def __post_init__(self) -> None:
        for flag in ("epochs", "batch_size", "max_seq_length", "probe_max_iter", "repeats"):
            if getattr(self, flag) <= 0:
                raise ConfigError(f"--{flag} must be positive; got {getattr(self, flag)}.")
        if self.head_learning_rate <= 0:
            raise ConfigError(f"--head_learning_rate must be positive; got {self.head_learning_rate}.")
        if self.output_file is None:
            self.output_file = os.path.join("benchmarks", "results", f"{NAME}.json")


def freeze_all_but_head(model: torch.nn.Module) -> None:
    """The peer's setup: only the final head layer (`get_classifier`) keeps `requires_grad`."""
    model.requires_grad_(False)
    get_classifier(model).requires_grad_(True)


def timed_probe(model, splits, data_collator, tmp_dir: str, name: str, probe_kwargs: dict):
    """(a) `probe_classification_model` on an empty `FeatureCache`, then (a') the same call on the filled
    cache. Returns the probe, its scores, and wall and CPU seconds of both calls."""
    cache = FeatureCache(os.path.join(tmp_dir, f"features-{name}"))
    times = {}
    for label in ("probe_cold", "probe_warm"):
        start, cpu_start = time.perf_counter(), time.process_time()
        probe, scores = probe_classification_model(model, splits, data_collator, cache=cache, **probe_kwargs)
        times[f"{label}_s"] = time.perf_counter() - start
        times[f"{label}_cpu_s"] = time.process_time() - cpu_start
    return probe, scores, times


def main():
    # 1. Arguments
    parser = HfArgumentParser((ModelArguments, DataArguments, BenchmarkArguments))
    parser.set_defaults(**DATA_DEFAULTS)
    model_args, data_args, bench_args = parser.parse_args_into_dataclasses()

    # 2. Logging: this script's and hf_transfer's steps at INFO; transformers' load reports and Trainer chatter off.
    setup_quiet_logging(logger)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    logger.info(f"Benchmark arguments {bench_args}; device {device}, {torch.get_num_threads()} torch threads")
    load_start = os.getloadavg()

    # 3. Data: canonical `text`/`image` + `label` splits (subsampled, stratified, seeded).
    set_seed(bench_args.seed)
    raw_datasets = load_transfer_dataset(data_args, cache_dir=model_args.cache_dir)
    label_names = raw_datasets["train"].features["label"].names

    # 4. Model and processor through the recipes' loading path (a model of the wrong modality for the data stops
    #    here); each contestant gets a fresh model below, loaded the same way.
    loaded = load_transfer_model(model_args, label_names, infer_modality(raw_datasets))
    modality, processor = loaded.modality, loaded.processor

    def fresh_model():
        set_seed(bench_args.seed)  # the same initial head for both contestants
        return load_transfer_model(model_args, label_names, modality).model.to(device)

    # 5. Preprocessing, shared and untimed: tokenize once (cached map) or attach the image transform.
    processed = preprocess_dataset(raw_datasets, processor, modality, bench_args.max_seq_length)
    data_collator = create_collator(processor, modality)
    splits = {"train": processed["train"], "validation": processed["validation"]}
    cache_identity = {
        "model": model_fingerprint(loaded.path),
        "revision": model_args.model_revision,
        "preprocessing": describe_preprocessing(processor, modality, bench_args.max_seq_length),
    }
    sample = sample_inputs(processed["train"], data_collator)
    if locate_probe_features(loaded.model, loaded.new_modules, sample).has_hidden_layers:
        raise ConfigError(
            f"{model_args.model_name_or_path} has new hidden head layers; the frozen-backbone peer "
            "trains the final Linear alone, another model than the probe. Pick another "
            "--model_name_or_path."
        )

    probe_kwargs = dict(
        cache_identity=cache_identity,
        l2_grid=DEFAULT_L2_GRID,
        max_iter=bench_args.probe_max_iter,
        batch_size=bench_args.batch_size,
    )
    runs = []
    for repeat in range(bench_args.repeats):
        run = {"repeat": repeat, "load_average": {}}
        with tempfile.TemporaryDirectory(prefix="hf_transfer-bench-") as tmp:
            # 6a. Cold probe (a), then warm probe (a') on the cache it filled.
            run["load_average"]["probe_before"] = os.getloadavg()[0]
            probe_model = fresh_model()
            probe, probe_scores, before = timed_probe(probe_model, splits, data_collator, tmp, "before", probe_kwargs)
            run["probe_eval_accuracy"] = probe_scores["validation"]["accuracy"]
            run["probe_train_accuracy"] = probe_scores["train"]["accuracy"]
            run["probe_l2"] = probe.l2

            # 6b. The peer (b): Trainer on a frozen backbone, E epochs of head training, then evaluation.
            run["load_average"]["trainer"] = os.getloadavg()[0]
            trainer_model = fresh_model()
            freeze_all_but_head(trainer_model)
            trainable, total = count_parameters(trainer_model)
            training_args = TrainingArguments(
                output_dir=os.path.join(tmp, "trainer"),
                num_train_epochs=bench_args.epochs,
                per_device_train_batch_size=bench_args.batch_size,
                per_device_eval_batch_size=bench_args.batch_size,
                learning_rate=bench_args.head_learning_rate,
                weight_decay=0.0,
                eval_strategy="no",
                save_strategy="no",
                logging_strategy="no",
                report_to="none",
                disable_tqdm=True,
                seed=bench_args.seed,
                remove_unused_columns=modality == "text",  # the image transform needs the `image` column
                use_cpu=device.type == "cpu",
            )
            start, cpu_start = time.perf_counter(), time.process_time()
            trainer = Trainer(
                model=trainer_model,
                args=training_args,
                train_dataset=processed["train"],
                eval_dataset=processed["validation"],
                processing_class=processor,
                data_collator=data_collator,
                compute_metrics=create_compute_metrics(),
            )
            train_metrics = trainer.train().metrics
            eval_metrics = trainer.evaluate()
            run["trainer_s"] = time.perf_counter() - start
            run["trainer_cpu_s"] = time.process_time() - cpu_start
            run["trainer_train_runtime_s"] = train_metrics["train_runtime"]
            run["trainer_eval_runtime_s"] = eval_metrics["eval_runtime"]
            run["trainer_eval_accuracy"] = eval_metrics["eval_accuracy"]
            run["trainer_trainable_params"], run["total_params"] = trainable, total

            # 6c. Cold and warm probe again, so (a) brackets (b) in time (A B A): a load drift cancels out.
            run["load_average"]["probe_after"] = os.getloadavg()[0]
            _, _, after = timed_probe(fresh_model(), splits, data_collator, tmp, "after", probe_kwargs)
            for key in before:
                run[f"{key}_before"], run[f"{key}_after"] = before[key], after[key]
                run[key] = (before[key] + after[key]) / 2
            run["speedup"] = run["trainer_s"] / run["probe_cold_s"]
            run["speedup_warm"] = run["trainer_s"] / run["probe_warm_s"]
            run["speedup_cpu"] = run["trainer_cpu_s"] / run["probe_cold_cpu_s"]

        # 7. Untimed: both models on the test split, scored the same way.
        if bench_args.test_accuracy and "test" in processed:
            test_x, test_y = extract_features(
                probe_model,
                processed["test"],
                data_collator,
                cache=None,
                cache_key=None,
                batch_size=bench_args.batch_size,
                desc="Extracting test features",
            )
            run["probe_test_accuracy"] = compute_classification_metrics(probe.predict(test_x).numpy(), test_y.numpy())[
                "accuracy"
            ]
            run["trainer_test_accuracy"] = trainer.predict(processed["test"]).metrics["test_accuracy"]
        logger.info(f"Repeat {repeat}: {run}")
        runs.append(run)

    # 8. Results: medians over repeats, the expected ratio of forward passes, and the JSON file.
    def median(key: str) -> Optional[float]:
        values = [run[key] for run in runs if key in run]
        return statistics.median(values) if values else None

    n_train, n_eval = len(processed["train"]), len(processed["validation"])
    results = {
        "benchmark": NAME,
        "model": model_args.model_name_or_path,
        "dataset": data_args.dataset_name,
        "modality": modality,
        "train_samples": n_train,
        "eval_samples": n_eval,
        "test_samples": len(processed["test"]) if "test" in processed else 0,
        "arguments": asdict(bench_args),
        "machine": machine_info(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        # Backbone forward passes of (b) over those of (a): what the speedup would be if nothing else cost time.
        "forward_pass_ratio": (bench_args.epochs * n_train + n_eval) / (n_train + n_eval),
        "runs": runs,
        "median": {key: median(key) for key in runs[0] if key not in ("repeat", "load_average")},
    }
    write_json_atomic(bench_args.output_file, results)

    m = results["median"]
    print(
        f"{NAME}: {results['model']} on {results['dataset']}, {n_train} train / {n_eval} validation, "
        f"batch {bench_args.batch_size}, {bench_args.repeats} repeat(s), {results['machine']['cpu_count']} CPUs, "
        f"load average {load_start[0]:.1f} -> {results['load_average_end'][0]:.1f}"
    )
    print(f"  {'':42} {'wall s':>8} {'CPU s':>8} {'val acc':>8} {'test acc':>9}")
    rows = (
        ("(a)  cold probe (extract + L-BFGS sweep)", "probe_cold", "probe"),
        ("(a') warm probe (cached features)", "probe_warm", None),
        (f"(b)  frozen-backbone Trainer, E={bench_args.epochs}", "trainer", "trainer"),
    )
    for label, timing, scored in rows:
        val = f"{m[f'{scored}_eval_accuracy']:.4f}" if scored else ""
        test = m.get(f"{scored}_test_accuracy") if scored else None
        print(
            f"  {label:42} {m[f'{timing}_s']:>8.1f} {m[f'{timing}_cpu_s']:>8.1f} {val:>8} "
            f"{'' if test is None else f'{test:.4f}':>9}"
        )
    print(
        f"  cold probe before / after the Trainer: {m['probe_cold_s_before']:.1f} s / {m['probe_cold_s_after']:.1f} s"
    )
    print(
        f"  forward-pass ratio (E*N_train + N_val) / (N_train + N_val): {results['forward_pass_ratio']:.2f}; "
        f"CPU-time speedup {m['speedup_cpu']:.2f}; warm speedup {m['speedup_warm']:.1f}"
    )
    print(f"  results: {bench_args.output_file}")
    print(f"speedup: {m['speedup']:.2f} (epochs: {bench_args.epochs})")


if __name__ == "__main__":
    run_recipe(main)
