#!/usr/bin/env python
"""Benchmark: few-shot classification through the recipes (probe, contrastive_probe) vs. SetFit itself, at several
budgets of labelled rows per class.

Every contestant sees the very same K labelled examples per class (seeded draws from the training pool, one per
seed and budget), written to a file, and is scored on the same test file, exactly as a user with those files would
run the toolkit; with no validation file, every contestant trains on all K x C rows:

- `probe`: `recipes/finetune.py --strategy linear_probe --train_file shots.json --test_file test.json` on the
  pretrained backbone (L2 chosen by cross-validation on the shots, then refitted on all of them).
- `contrastive_probe`: the same command with `--strategy contrastive_probe` (the backbone trained on every pair of
  a class-balanced batch with SetFit's cosine objective, then the probe).
- `supcon_probe` (opt-in): `recipes/contrastive_pretrain.py --contrastive_loss supcon --views dropout` on the shots,
  then the probe on its output folder.
- `setfit`: `setfit.Trainer` with its defaults (contrastive pairs by oversampling, CosineSimilarityLoss, 1 epoch,
  batch 16, body learning rate 2e-5), then its LogisticRegression head, on all K x C rows; `--setfit_max_steps`
  caps its steps (its pair count grows with the square of the rows), and the results say so.

Times are the recipes' own `train_runtime` (for supcon_probe: pretraining plus probe) and SetFit's
`trainer.train()`; process start and model loading are outside the clock for all. Contestants alternate order
from seed to seed. A budget larger than a class of the pool is skipped and recorded as such. Results go to
`benchmarks/results/fewshot_vs_setfit.json`; the last printed lines are each set's and budget's mean accuracies and
time ratios.

    python benchmarks/fewshot_vs_setfit.py                       # tweets, BBC, drug reviews at 8/16/32/64 per class
    python benchmarks/fewshot_vs_setfit.py --shots 8 16 --datasets tweet_sentiment
    python benchmarks/fewshot_vs_setfit.py --train_file pool.csv --test_file test.csv --shots 8 --seeds 0 1 2

Needs `pip install -r requirements-bench.txt` (setfit) for the `setfit` contestant.
"""

import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import datasets
import numpy as np
import torch
from transformers import HfArgumentParser, set_seed

from _common import run_recipe_for_results
from hf_transfer.data import DataArguments, load_transfer_dataset
from hf_transfer.errors import ConfigError
from hf_transfer.models import resolve_model_path
from hf_transfer.outputs import write_json_atomic
from hf_transfer.recipe import run_recipe, setup_quiet_logging

logger = logging.getLogger(__name__)

NAME = "fewshot_vs_setfit"
CONTESTANTS = ("probe", "contrastive_probe", "supcon_probe", "setfit")
DEFAULT_CONTESTANTS = ["probe", "contrastive_probe", "setfit"]


@dataclass
class FewShotArguments:
    """What is compared and how.

    Args:
        model_name_or_path (`str`): the shared starting point (a built-in alias or a sentence-transformers folder).
        datasets (`list[str]`): built-in text data sets to run (ignored with `--train_file`).
        train_file, test_file, validation_file (`str`, *optional*): your own CSV / JSON files instead: the K-shot
            draws come from `train_file`, accuracy from `test_file`; `validation_file` (optional) is handed to the
            probe for its L2 choice instead of a held-out part of the shots.
        text_column, label_column (`str`, *optional*): column names of your files (default: detected).
        shots (`list[int]`): labelled examples per class (K), one run of every seed per value.
        seeds (`list[int]`): one K-shot draw (and training seed) per value.
        max_seq_length (`int`): tokens per text for every contestant.
        max_test_samples (`int`): seeded stratified subset of the test split used for accuracy.
        setfit_max_steps (`int`): cap on SetFit's steps (-1: its defaults).
        steps, learning_rate, temperature: SupCon pretraining of `supcon_probe`.
        contestants (`list[str]`): who runs (probe, supcon_probe, setfit).
        output_file (`str`, *optional*): JSON results file.
    """

    model_name_or_path: str = field(default="minilm", metadata={"help": "Shared starting point (default minilm)."})
    datasets: list[str] = field(
        default_factory=lambda: ["tweet_sentiment", "bbc_news", "drug_reviews"],
        metadata={"help": "Built-in text data sets."},
    )
    train_file: Optional[str] = field(default=None, metadata={"help": "Your labelled pool (CSV/JSON) to draw from."})
    test_file: Optional[str] = field(default=None, metadata={"help": "Your test rows (CSV/JSON); with --train_file."})
    validation_file: Optional[str] = field(
        default=None,
        metadata={"help": "Optional validation rows for the recipes' choices (else cross-validation on the shots)."},
    )
    text_column: Optional[str] = field(default=None, metadata={"help": "Text column of your files."})
    label_column: Optional[str] = field(default=None, metadata={"help": "Label column of your files."})
    shots: list[int] = field(
        default_factory=lambda: [8, 16, 32, 64], metadata={"help": "Labelled examples per class (K), each a run."}
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "One K-shot draw per seed."})
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per text (every contestant)."})
    max_test_samples: int = field(default=600, metadata={"help": "Stratified test subset for accuracy."})
    setfit_max_steps: int = field(default=-1, metadata={"help": "Cap on SetFit's steps (-1: its defaults)."})
    steps: int = field(default=10, metadata={"help": "SupCon steps of supcon_probe (whole K x C set per step)."})
    learning_rate: float = field(default=2e-5, metadata={"help": "SupCon learning rate of supcon_probe."})
    temperature: float = field(default=0.1, metadata={"help": "SupCon temperature of supcon_probe."})
    contestants: list[str] = field(default_factory=lambda: list(DEFAULT_CONTESTANTS), metadata={"help": "Who runs."})
    output_file: Optional[str] = field(default=None, metadata={"help": f"Default: benchmarks/results/{NAME}.json."})

    def __post_init__(self) -> None:
        if not self.contestants or set(self.contestants) - set(CONTESTANTS):
            raise ConfigError(f"--contestants takes {', '.join(CONTESTANTS)}; got {self.contestants}.")
        if (self.train_file is None) != (self.test_file is None):
            raise ConfigError(
                "--train_file and --test_file go together: the shots are drawn from one, scored on the other."
            )
        if not self.shots or min(self.shots) <= 0:
            raise ConfigError(f"--shots takes positive numbers of rows per class; got {self.shots}.")
        for flag in ("max_seq_length", "max_test_samples", "steps"):
            if getattr(self, flag) <= 0:
                raise ConfigError(f"--{flag} must be positive; got {getattr(self, flag)}.")
        if self.output_file is None:
            self.output_file = os.path.join("benchmarks", "results", f"{NAME}.json")


def load_pool_and_test(
    args: FewShotArguments, name: Optional[str]
) -> tuple[datasets.Dataset, datasets.Dataset, Optional[datasets.Dataset]]:
    """The training pool, the test rows and the optional validation rows, read the way the recipes read them."""
    data_args = DataArguments(
        dataset_name=name,
        train_file=args.train_file,
        test_file=args.test_file,
        validation_file=args.validation_file,
        text_column=args.text_column,
        label_column=args.label_column,
        max_eval_samples=args.max_test_samples,
    )
    data = load_transfer_dataset(data_args)
    validation = data["validation"] if args.validation_file else None
    return data["train"], data["test"], validation


def sample_shots(train: datasets.Dataset, shots: int, seed: int) -> datasets.Dataset:
    """K rows per class, drawn with `seed` (the very same rows for every contestant)."""
    labels = np.asarray(train["label"])
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    small = [train.features["label"].names[c] for c in classes if (labels == c).sum() < shots]
    if small:
        raise ConfigError(f"Classes {small} have fewer than --shots {shots} rows in the training pool; lower --shots.")
    rows = np.concatenate([rng.choice(np.flatnonzero(labels == c), shots, replace=False) for c in classes])
    return train.select(sorted(rows.tolist()))


def write_rows(rows: datasets.Dataset, path: Path) -> str:
    """`text` and `label` (names, as in a user's file) as JSON lines: tweets hold quotes and line breaks that a
    CSV round trip does not keep."""
    names = rows.features["label"].names
    rows.map(
        lambda r: {"label": names[r["label"]]},
        features=datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("string")}),
        remove_columns=[c for c in rows.column_names if c not in ("text", "label")],
    ).to_json(str(path), lines=True)
    return str(path)


def run_script(script: str, *flags: str) -> dict:
    """One recipe run in its own process, as a user starts it; its `all_results.json`."""
    with tempfile.TemporaryDirectory(prefix=f"hf_transfer-{NAME}-") as out:
        quiet = ["--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true"]
        return run_recipe_for_results(script, [*flags, *quiet], out)


def validation_flags(files: dict) -> list[str]:
    """The validation file when there is one; else nothing: the recipes cross-validate on the shots."""
    return ["--validation_file", files["validation"]] if "validation" in files else []


def recipe_flags(model: str, strategy: str, files: dict, args: FewShotArguments, seed: int) -> list[str]:
    return [
        "--model_name_or_path",
        model,
        "--strategy",
        strategy,
        "--train_file",
        files["shots"],
        "--test_file",
        files["test"],
        "--max_seq_length",
        str(args.max_seq_length),
        "--seed",
        str(seed),
        "--per_device_eval_batch_size",
        "64",
        *validation_flags(files),
    ]


def run_finetune(strategy: str, path: str, files: dict, args: FewShotArguments, seed: int) -> dict:
    results = run_script("finetune.py", *recipe_flags(path, strategy, files, args, seed))
    keys = ("pooling", "probe_l2", "pair_steps", "pair_runtime")
    return {
        "accuracy": results["test_accuracy"],
        "train_time_s": results["train_runtime"],
        **{key: results[key] for key in keys if key in results},
    }


def run_probe(path: str, files: dict, shots: datasets.Dataset, args: FewShotArguments, seed: int) -> dict:
    return run_finetune("linear_probe", path, files, args, seed)


def run_contrastive_probe(path: str, files: dict, shots: datasets.Dataset, args: FewShotArguments, seed: int) -> dict:
    return run_finetune("contrastive_probe", path, files, args, seed)


def run_supcon_probe(path: str, files: dict, shots: datasets.Dataset, args: FewShotArguments, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"hf_transfer-{NAME}-supcon-") as encoder:
        flags = [
            "--model_name_or_path",
            path,
            "--train_file",
            files["shots"],
            "--contrastive_loss",
            "supcon",
            "--views",
            "dropout",
            "--temperature",
            str(args.temperature),
            "--projection_dim",
            "0",
            "--max_seq_length",
            str(args.max_seq_length),
            "--learning_rate",
            str(args.learning_rate),
            "--max_steps",
            str(args.steps),
            "--per_device_train_batch_size",
            str(len(shots)),
            "--eval_strategy",
            "no",
            "--save_strategy",
            "no",
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            "--seed",
            str(seed),
            *validation_flags(files),
        ]
        pretrain = run_recipe_for_results("contrastive_pretrain.py", flags, encoder)
        probe = run_probe(encoder, files, shots, args, seed)
    return {
        **probe,
        "train_time_s": pretrain["train_runtime"] + probe["train_time_s"],
        "pretrain_time_s": pretrain["train_runtime"],
        "pretrain_rows": pretrain.get("train_samples"),
    }


def run_setfit(path: str, files: dict, shots: datasets.Dataset, args: FewShotArguments, seed: int) -> dict:
    from setfit import SetFitModel, Trainer
    from setfit import TrainingArguments as SetFitArguments

    set_seed(seed)
    test = datasets.load_dataset("json", data_files=files["test"], split="train")
    names = shots.features["label"].names
    model = SetFitModel.from_pretrained(path)
    model.model_body.max_seq_length = args.max_seq_length
    with tempfile.TemporaryDirectory() as tmp:
        setfit_args = SetFitArguments(
            output_dir=tmp,
            seed=seed,
            save_strategy="no",
            report_to="none",
            show_progress_bar=False,
            max_steps=args.setfit_max_steps,
        )
        trainer = Trainer(model=model, args=setfit_args, train_dataset=shots.select_columns(["text", "label"]))
        start = time.perf_counter()
        trainer.train()
        train_time = time.perf_counter() - start
    predictions = np.asarray(model.predict(list(test["text"]), batch_size=64, show_progress_bar=False))
    truth = np.asarray([names.index(label) for label in test["label"]])
    return {"accuracy": float((predictions == truth).mean()), "train_time_s": train_time}


RUNNERS = {
    "probe": run_probe,
    "contrastive_probe": run_contrastive_probe,
    "supcon_probe": run_supcon_probe,
    "setfit": run_setfit,
}


def summarize(runs: list[dict], contestants: list[str]) -> dict:
    """Mean and population std of accuracy, mean train time, and each of ours against SetFit."""
    summary: dict = {
        contestant: {
            "accuracy_mean": statistics.mean(r[contestant]["accuracy"] for r in runs),
            "accuracy_std": statistics.pstdev(r[contestant]["accuracy"] for r in runs),
            "train_time_s_mean": statistics.mean(r[contestant]["train_time_s"] for r in runs),
        }
        for contestant in contestants
    }
    if "setfit" in summary:
        for ours in (c for c in contestants if c != "setfit"):
            summary[f"{ours}_minus_setfit"] = summary[ours]["accuracy_mean"] - summary["setfit"]["accuracy_mean"]
            summary[f"time_ratio_{ours}_over_setfit"] = (
                summary[ours]["train_time_s_mean"] / summary["setfit"]["train_time_s_mean"]
            )
    return summary


def main():
    (args,) = HfArgumentParser((FewShotArguments,)).parse_args_into_dataclasses()
    setup_quiet_logging(logger)
    logging.getLogger("setfit").setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    path = resolve_model_path(args.model_name_or_path)
    start = time.time()
    results: dict = {"arguments": asdict(args), "datasets": {}}
    for name in [None] if args.train_file else args.datasets:
        label = name or Path(args.train_file).name
        pool, test, validation = load_pool_and_test(args, name)
        results["datasets"][label] = {"test_samples": len(test), "budgets": {}}
        with tempfile.TemporaryDirectory(prefix=f"hf_transfer-{NAME}-data-") as tmp:
            files = {"test": write_rows(test, Path(tmp) / "test.json")}
            if validation is not None:
                files["validation"] = write_rows(validation, Path(tmp) / "validation.json")
            for shots_per_class in args.shots:
                budget: dict = {"runs": []}
                results["datasets"][label]["budgets"][str(shots_per_class)] = budget
                for index, seed in enumerate(args.seeds):
                    try:
                        shots = sample_shots(pool, shots_per_class, seed)
                    except ConfigError as err:
                        budget["skipped"] = str(err)
                        logger.info("%s %d-shot skipped: %s", label, shots_per_class, err)
                        break
                    files["shots"] = write_rows(shots, Path(tmp) / f"shots_{shots_per_class}_{seed}.json")
                    row: dict = {"seed": seed, "rows": len(shots)}
                    order = [c for c in CONTESTANTS if c in args.contestants]
                    for contestant in order if index % 2 == 0 else order[::-1]:
                        row[contestant] = RUNNERS[contestant](path, files, shots, args, seed)
                        logger.info(
                            "%s %d-shot seed %d %s: %s", label, shots_per_class, seed, contestant, row[contestant]
                        )
                    budget["runs"].append(row)
                    write_json_atomic(args.output_file, results)  # a long run keeps what it has measured
                if budget["runs"]:
                    budget["summary"] = summarize(budget["runs"], args.contestants)
    results["machine"] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }
    results["wall_time_s"] = time.time() - start
    write_json_atomic(args.output_file, results)
    for label, result in results["datasets"].items():
        for shots_per_class, budget in result["budgets"].items():
            if "summary" not in budget:
                print(f"{label} {shots_per_class}-shot: skipped ({budget.get('skipped')})")
                continue
            s = budget["summary"]
            parts = [
                f"{c} {s[c]['accuracy_mean']:.3f} +- {s[c]['accuracy_std']:.3f} in {s[c]['train_time_s_mean']:.0f} s"
                for c in args.contestants
            ]
            parts += [
                f"{k} {v:+.3f}" if k.endswith("setfit") and not k.startswith("time") else f"{k} {v:.2f}"
                for k, v in s.items()
                if not isinstance(v, dict)
            ]
            print(
                f"{label} ({shots_per_class}-shot, {len(budget['runs'])} seeds, test {result['test_samples']} rows): "
                + " | ".join(parts)
            )


if __name__ == "__main__":
    run_recipe(main)
