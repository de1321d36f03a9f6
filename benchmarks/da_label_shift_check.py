#!/usr/bin/env python
"""Check: on tweet_sentiment -> drug_reviews, is source-only's low target accuracy a label-shift problem that
correcting the class priors would fix?

The pair's class priors differ a lot (tweets 42/39/18% negative/neutral/positive, drug reviews 27/9/64%), so
the natural next step after feature alignment is prior correction: re-weight the source model's posteriors
by pi_target / pi_source. This script trains the source-only model of `benchmarks/domain_adaptation.py`
(same config, seeds and recipe command, from `_domain_runs.py`), then on the target test split reports

- the confusion matrix of the source-only model (what it actually predicts),
- accuracy after EM prior estimation on the unlabelled target posteriors (Saerens et al. 2002),
- accuracy after re-weighting with the *true* target priors: an upper bound for any prior correction.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/da_label_shift_check.py

Results in benchmarks/RESULTS.md (domain adaptation section) and
benchmarks/results/domain_adaptation/label_shift_check.json.
"""

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, HfArgumentParser

from _domain_runs import PAIRS, run_domain_adapt
from hf_transfer.data import DataArguments, load_transfer_dataset
from hf_transfer.outputs import write_json_atomic


@dataclass
class CheckArguments:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Training seeds."})
    max_seq_length: int = field(default=64, metadata={"help": "As in the pair's config."})
    em_iterations: int = field(default=500, metadata={"help": "EM iterations for the target prior."})
    output_file: str = field(default="benchmarks/results/domain_adaptation/label_shift_check.json")


def train_source_only(seed: int, output_dir: str) -> None:
    proc = run_domain_adapt("text", ["--method", "source_only"], seed, output_dir)
    if proc.returncode != 0:
        raise RuntimeError(f"source-only run (seed {seed}) failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


@torch.inference_mode()
def posteriors(model_dir: str, texts: list[str], max_seq_length: int) -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    out = []
    for start in range(0, len(texts), 64):
        batch = tokenizer(
            texts[start : start + 64], truncation=True, max_length=max_seq_length, padding=True, return_tensors="pt"
        )
        out.append(model(**batch).logits.softmax(-1))
    return torch.cat(out).double()  # (N, C)


def reweight(probs: torch.Tensor, target_prior: torch.Tensor, source_prior: torch.Tensor) -> torch.Tensor:
    """Bayes' rule under label shift: p_t(y|x) is proportional to p_s(y|x) * pi_t(y) / pi_s(y)."""
    adjusted = probs * (target_prior / source_prior)
    return adjusted / adjusted.sum(-1, keepdim=True)


def em_target_prior(probs: torch.Tensor, source_prior: torch.Tensor, iterations: int) -> torch.Tensor:
    """Saerens, Latinne & Decaestecker (2002): alternate re-weighting and averaging the adjusted posteriors."""
    prior = source_prior.clone()
    for _ in range(iterations):
        prior = reweight(probs, prior, source_prior).mean(0)
    return prior


def main() -> None:
    (args,) = HfArgumentParser(CheckArguments).parse_args_into_dataclasses()
    source = load_transfer_dataset(DataArguments(dataset_name="tweet_sentiment"))
    target = load_transfer_dataset(DataArguments(dataset_name="drug_reviews"))
    names = target["test"].features["label"].names
    assert names == source["train"].features["label"].names, (names, source["train"].features["label"].names)
    num_classes = len(names)
    source_prior = torch.tensor(np.bincount(source["train"]["label"], minlength=num_classes), dtype=torch.double)
    source_prior /= source_prior.sum()
    labels = np.asarray(target["test"]["label"])
    target_prior = torch.tensor(np.bincount(labels, minlength=num_classes) / len(labels), dtype=torch.double)

    runs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix=f"hf_transfer-label-shift-{seed}-") as tmp:
            train_source_only(seed, tmp)
            probs = posteriors(tmp, target["test"]["text"], args.max_seq_length)
        predictions = probs.argmax(-1).numpy()
        confusion = np.zeros((num_classes, num_classes), dtype=int)
        np.add.at(confusion, (labels, predictions), 1)
        em_prior = em_target_prior(probs, source_prior, args.em_iterations)
        run = {
            "seed": seed,
            "confusion_matrix (rows: true, columns: predicted)": confusion.tolist(),
            "accuracy": float((predictions == labels).mean()),
            "em_target_prior": em_prior.tolist(),
            "accuracy_after_em": float((reweight(probs, em_prior, source_prior).argmax(-1).numpy() == labels).mean()),
            "accuracy_with_true_target_prior": float(
                (reweight(probs, target_prior, source_prior).argmax(-1).numpy() == labels).mean()
            ),
        }
        print(json.dumps(run), flush=True)
        runs.append(run)
    summary = {
        "labels": names,
        "source_prior": source_prior.tolist(),
        "target_test_prior": target_prior.tolist(),
        "config": PAIRS["text"][0],
        "runs": runs,
    }
    write_json_atomic(Path(args.output_file), summary)
    for key in ("accuracy", "accuracy_after_em", "accuracy_with_true_target_prior"):
        values = [run[key] for run in runs]
        print(f"{key}: {np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}")


if __name__ == "__main__":
    main()
