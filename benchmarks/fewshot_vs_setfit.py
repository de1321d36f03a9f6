#!/usr/bin/env python
"""Benchmark: few-shot classification, SupCon fine-tuning + probe (hf_transfer) vs. SetFit itself.

Both start from the same MiniLM (all-MiniLM-L6-v2) and see the very same K labelled examples per class
(seeded draws from the train split, one per seed), on tweet sentiment (3 classes) and BBC news (5).

- `setfit`: `setfit.Trainer` with its defaults (contrastive pairs by oversampling, CosineSimilarityLoss,
  1 epoch, batch 16, body learning rate 2e-5), then its LogisticRegression head.
- `ours`: `ContrastiveTrainer` + `SupConLoss` on two dropout views of every example (the whole K x C
  examples in one batch, `--steps` steps), then the same LogisticRegression on the normalised mean-pooled
  embeddings of the K x C examples.
- `frozen`: no fine-tuning, LogisticRegression on MiniLM's embeddings (context: what fine-tuning adds).

Training time is the fine-tuning plus the head fit (model loading and test encoding are outside the clock
for both); accuracy is on a seeded stratified subset of the test split (`--max_test_samples`). Contestants
alternate order from seed to seed. Results go to `benchmarks/results/fewshot_vs_setfit.json`; the last
printed lines are per-dataset mean accuracies and time ratios.

    python benchmarks/fewshot_vs_setfit.py                          # ~30 minutes on 2 busy CPU cores
    python benchmarks/fewshot_vs_setfit.py --datasets tweet_sentiment --seeds 0

Needs `pip install -r requirements-bench.txt` (setfit, sentence-transformers).
"""

import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import datasets
import numpy as np
import torch
from transformers import HfArgumentParser, TrainingArguments, set_seed

from hf_transfer.backbones import create_backbone, resolve_model_path
from hf_transfer.cli import run_recipe, setup_quiet_logging
from hf_transfer.contrastive import ContrastiveModel, ContrastiveTextCollator, ContrastiveTrainer, SupConLoss
from hf_transfer.data import DataArguments, load_transfer_dataset
from hf_transfer.errors import ConfigError
from hf_transfer.outputs import write_json_atomic

logger = logging.getLogger(__name__)

NAME = "fewshot_vs_setfit"


@dataclass
class FewShotArguments:
    """What is compared and how.

    Args:
        model_name_or_path (`str`): the shared starting point (a built-in alias or a sentence-transformers folder).
        datasets (`list[str]`): built-in text data sets to run.
        shots (`int`): labelled examples per class (K).
        seeds (`list[int]`): one K-shot draw (and training seed) per value.
        max_seq_length (`int`): tokens per text for both contestants.
        max_test_samples (`int`): seeded stratified subset of the evaluation split used for accuracy.
        eval_split (`str`): `test` for the reported numbers; `validation` to choose `steps` / `temperature`
            without looking at the test split.
        steps (`int`): optimizer steps of `ours` (each over all K x C examples, two views each).
        learning_rate (`float`): learning rate of `ours` (SetFit's body default is 2e-5).
        temperature (`float`): SupCon temperature of `ours`.
        output_file (`str`, *optional*): JSON results file.
    """

    model_name_or_path: str = field(default="minilm", metadata={"help": "Shared starting point (default minilm)."})
    datasets: list[str] = field(
        default_factory=lambda: ["tweet_sentiment", "bbc_news"], metadata={"help": "Built-in text data sets."}
    )
    shots: int = field(default=8, metadata={"help": "Labelled examples per class (K)."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "One K-shot draw per seed."})
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per text (both contestants)."})
    max_test_samples: int = field(default=600, metadata={"help": "Stratified test subset for accuracy."})
    eval_split: str = field(
        default="test", metadata={"help": "test (reported numbers) or validation (for choosing --steps, --temperature)."}
    )
    steps: int = field(default=10, metadata={"help": "Optimizer steps of ours (whole K x C set per step)."})
    learning_rate: float = field(default=2e-5, metadata={"help": "Learning rate of ours."})
    temperature: float = field(default=0.1, metadata={"help": "SupCon temperature of ours."})
    contestants: list[str] = field(
        default_factory=lambda: ["ours", "setfit"],
        metadata={"help": "Who runs (ours, setfit); `--eval_split validation --contestants ours` to tune ours."},
    )
    output_file: Optional[str] = field(default=None, metadata={"help": f"Default: benchmarks/results/{NAME}.json."})

    def __post_init__(self) -> None:
        if not self.contestants or set(self.contestants) - {"ours", "setfit"}:
            raise ConfigError(f"--contestants takes ours and/or setfit; got {self.contestants}.")
        if self.eval_split not in ("test", "validation"):
            raise ConfigError(f"--eval_split must be test or validation; got {self.eval_split!r}.")
        for flag in ("shots", "max_seq_length", "max_test_samples", "steps"):
            if getattr(self, flag) <= 0:
                raise ConfigError(f"--{flag} must be positive; got {getattr(self, flag)}.")
        if self.output_file is None:
            self.output_file = os.path.join("benchmarks", "results", f"{NAME}.json")


def sample_shots(train: datasets.Dataset, shots: int, seed: int) -> datasets.Dataset:
    """K rows per class, drawn with `seed` (the very same rows for every contestant)."""
    labels = np.asarray(train["label"])
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.choice(np.flatnonzero(labels == c), shots, replace=False) for c in np.unique(labels)])
    return train.select(sorted(rows.tolist()))


def logistic_regression():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression()  # SetFit's default head


@torch.no_grad()
def encode(backbone, texts: list[str], max_seq_length: int, batch_size: int = 64) -> np.ndarray:
    backbone.eval()
    out = []
    for begin in range(0, len(texts), batch_size):
        inputs = backbone.processor(texts[begin:begin + batch_size], padding=True, truncation=True,
                                    max_length=max_seq_length, return_tensors="pt")  # fmt: skip
        out.append(torch.nn.functional.normalize(backbone.embed(**inputs), dim=-1))
    return torch.cat(out).numpy()


def run_setfit(path: str, shots: datasets.Dataset, test: datasets.Dataset, args: FewShotArguments, seed: int) -> dict:
    from setfit import SetFitModel, Trainer
    from setfit import TrainingArguments as SetFitArguments

    set_seed(seed)
    model = SetFitModel.from_pretrained(path)
    model.model_body.max_seq_length = args.max_seq_length
    with tempfile.TemporaryDirectory() as tmp:
        setfit_args = SetFitArguments(output_dir=tmp, seed=seed, save_strategy="no", report_to="none",
                                      show_progress_bar=False)  # fmt: skip
        trainer = Trainer(model=model, args=setfit_args, train_dataset=shots)
        start = time.perf_counter()
        trainer.train()
        train_time = time.perf_counter() - start
    predictions = np.asarray(model.predict(list(test["text"]), batch_size=64, show_progress_bar=False))
    return {"accuracy": float((predictions == np.asarray(test["label"])).mean()), "train_time_s": train_time}


def run_ours(path: str, shots: datasets.Dataset, test: datasets.Dataset, args: FewShotArguments, seed: int) -> dict:
    set_seed(seed)
    backbone = create_backbone(path, pooling="mean")
    model = ContrastiveModel(backbone, projection_dim=0)
    with tempfile.TemporaryDirectory() as tmp:
        training_args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=len(shots), max_steps=args.steps,
            learning_rate=args.learning_rate, warmup_steps=0, save_strategy="no", logging_strategy="no",
            report_to="none", disable_tqdm=True, seed=seed,
        )  # fmt: skip
        trainer = ContrastiveTrainer(
            model, training_args, loss=SupConLoss(temperature=args.temperature), train_dataset=shots,
            data_collator=ContrastiveTextCollator(backbone.processor, views="dropout",
                                                  max_seq_length=args.max_seq_length, return_labels=True),
        )  # fmt: skip
        start = time.perf_counter()
        trainer.train()
        head = logistic_regression().fit(encode(backbone, list(shots["text"]), args.max_seq_length), shots["label"])
        train_time = time.perf_counter() - start
    predictions = head.predict(encode(backbone, list(test["text"]), args.max_seq_length))
    return {"accuracy": float((predictions == np.asarray(test["label"])).mean()), "train_time_s": train_time}


def main():
    (args,) = HfArgumentParser((FewShotArguments,)).parse_args_into_dataclasses()
    setup_quiet_logging(logger)
    logging.getLogger("setfit").setLevel(logging.WARNING)
    path = resolve_model_path(args.model_name_or_path)
    start = time.time()
    results: dict = {"arguments": asdict(args), "datasets": {}}
    for name in args.datasets:
        data = load_transfer_dataset(DataArguments(dataset_name=name, max_eval_samples=args.max_test_samples))
        test = data[args.eval_split]
        frozen = create_backbone(path, pooling="mean")
        test_features = encode(frozen, list(test["text"]), args.max_seq_length)
        runs = []
        for index, seed in enumerate(args.seeds):
            shots = sample_shots(data["train"], args.shots, seed)
            row = {"seed": seed, "rows": len(shots)}
            start_frozen = time.perf_counter()
            head = logistic_regression().fit(encode(frozen, list(shots["text"]), args.max_seq_length), shots["label"])
            row["frozen"] = {"accuracy": float((head.predict(test_features) == np.asarray(test["label"])).mean()),
                             "train_time_s": time.perf_counter() - start_frozen}  # fmt: skip
            order = [(c, run) for c, run in (("ours", run_ours), ("setfit", run_setfit)) if c in args.contestants]
            for contestant, run in order if index % 2 == 0 else order[::-1]:
                row[contestant] = run(path, shots, test, args, seed)
                logger.info("%s seed %d %s: %s", name, seed, contestant, row[contestant])
            runs.append(row)
        summary = {
            contestant: {
                "accuracy_mean": statistics.mean(r[contestant]["accuracy"] for r in runs),
                "accuracy_std": statistics.pstdev(r[contestant]["accuracy"] for r in runs),
                "train_time_s_mean": statistics.mean(r[contestant]["train_time_s"] for r in runs),
            }
            for contestant in (*args.contestants, "frozen")
        }
        if len(args.contestants) == 2:
            summary["time_ratio_ours_over_setfit"] = (
                summary["ours"]["train_time_s_mean"] / summary["setfit"]["train_time_s_mean"]
            )
        results["datasets"][name] = {"test_samples": len(test), "runs": runs, "summary": summary}
    results["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                          "python": sys.version.split()[0]}  # fmt: skip
    results["wall_time_s"] = time.time() - start
    write_json_atomic(args.output_file, results)
    for name, result in results["datasets"].items():
        s = result["summary"]
        parts = [f"{c} {s[c]['accuracy_mean']:.3f} +- {s[c]['accuracy_std']:.3f} in {s[c]['train_time_s_mean']:.0f} s"
                 for c in args.contestants]  # fmt: skip
        parts.append(f"frozen {s['frozen']['accuracy_mean']:.3f}")
        if "time_ratio_ours_over_setfit" in s:
            parts.append(f"time ratio ours/setfit {s['time_ratio_ours_over_setfit']:.2f}")
        print(f"{name} ({args.shots}-shot, {len(args.seeds)} seeds, {args.eval_split} {result['test_samples']} rows): "
              + " | ".join(parts))

if __name__ == "__main__":
    run_recipe(main)
