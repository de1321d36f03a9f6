#!/usr/bin/env python
"""Diagnostic: the toolkit's probe vs scikit-learn's LogisticRegression on the very same few-shot rows.

`fewshot_vs_setfit.py` runs the recipes, whose probe holds out part of the K shots per class to choose its L2
strength. This separates the two effects on the frozen embedding (MiniLM, mean pooling, as the recipe's probe
reads it): the probe's fit (`hf_transfer.probing.fit_linear_probe` on the K - H training shots, L2 chosen on the
H held-out ones) against scikit-learn's default LogisticRegression (C = 1 on L2-normalised embeddings, SetFit's
head) on the same K - H rows, and the same LogisticRegression on all K rows (what is lost by holding out); then what
the recipe now does without a validation split (L2 by 5-fold cross-validation on all K rows, refitted on all of
them), and, as an oracle no user has, the probe on all K rows at each L2 of the grid scored on test.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/fewshot_probe_vs_sklearn.py   # ~3 min

Results go to `benchmarks/results/fewshot_probe_vs_sklearn.json`; the last lines are mean test accuracies.
"""

import logging
import os
import statistics
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
import torch
from transformers import HfArgumentParser

from hf_transfer.constants import DEFAULT_L2_GRID
from hf_transfer.data import DataArguments, load_transfer_dataset
from hf_transfer.models import create_backbone
from hf_transfer.outputs import write_json_atomic
from hf_transfer.probing import fit_linear_probe
from hf_transfer.probing.cross_validation import cross_validate_probe, held_out_rows
from hf_transfer.probing.fitters import fit_logistic
from hf_transfer.recipe import run_recipe, setup_quiet_logging

logger = logging.getLogger(__name__)

NAME = "fewshot_probe_vs_sklearn"


@dataclass
class DiagnosticArguments:
    """Args: the backbone, data sets, shots K, held-out H per class, seeds, tokens, test rows, output file."""

    model_name_or_path: str = field(
        default="minilm", metadata={"help": "Backbone (mean pooling, as the probe reads it)."}
    )
    datasets: list[str] = field(
        default_factory=lambda: ["tweet_sentiment", "bbc_news"], metadata={"help": "Built-ins."}
    )
    shots: int = field(default=8, metadata={"help": "Labelled rows per class (K)."})
    held_out: int = field(default=2, metadata={"help": "Of those, rows per class held out for the L2 choice (H)."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4], metadata={"help": "One draw per seed."})
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per text."})
    max_test_samples: int = field(default=600, metadata={"help": "Stratified test subset."})
    output_file: Optional[str] = field(default=None, metadata={"help": f"Default: benchmarks/results/{NAME}.json."})


@torch.no_grad()
def embed(backbone, texts: list[str], max_seq_length: int) -> torch.Tensor:
    out = []
    for begin in range(0, len(texts), 64):
        inputs = backbone.processor(
            texts[begin : begin + 64], padding=True, truncation=True, max_length=max_seq_length, return_tensors="pt"
        )
        out.append(backbone.embed(**inputs))
    return torch.cat(out)


def sklearn_accuracy(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> float:
    from sklearn.linear_model import LogisticRegression

    normalise = lambda a: torch.nn.functional.normalize(a, dim=-1).numpy()  # noqa: E731
    head = LogisticRegression().fit(normalise(x), y.numpy())
    return float((head.predict(normalise(x_test)) == y_test.numpy()).mean())


def main() -> None:
    (args,) = HfArgumentParser((DiagnosticArguments,)).parse_args_into_dataclasses()
    setup_quiet_logging(logger)
    backbone = create_backbone(args.model_name_or_path, pooling="mean").eval()
    results: dict = {"arguments": asdict(args), "datasets": {}}
    for name in args.datasets:
        data = load_transfer_dataset(DataArguments(dataset_name=name, max_eval_samples=args.max_test_samples))
        x_test, y_test = (
            embed(backbone, list(data["test"]["text"]), args.max_seq_length),
            torch.tensor(data["test"]["label"]),
        )
        labels = np.asarray(data["train"]["label"])
        runs = []
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            draws = [rng.choice(np.flatnonzero(labels == c), args.shots, replace=False) for c in np.unique(labels)]
            fit_rows = np.concatenate([d[args.held_out :] for d in draws])
            held_rows = np.concatenate([d[: args.held_out] for d in draws])
            rows = np.concatenate([fit_rows, held_rows]).tolist()
            x = embed(backbone, [data["train"][int(i)]["text"] for i in rows], args.max_seq_length)
            y = torch.tensor(labels[rows])
            n = len(fit_rows)
            probe = fit_linear_probe(x[:n], y[:n], x[n:], y[n:], num_classes=len(draws))
            folds = held_out_rows(len(y), 5, seed, classes=y.numpy())
            classes = len(draws)
            chosen, by_loss = (
                cross_validate_probe(
                    lambda t, v, grid, _, c=classes: fit_logistic(t, v, num_classes=c, l2_grid=grid, max_iter=200),
                    (x, y),
                    folds,
                    lambda r: r,
                    DEFAULT_L2_GRID,
                    criterion=criterion,
                )
                for criterion in ("score", "loss")
            )
            by_1se = cross_validate_probe(
                lambda t, v, grid, _, c=classes: fit_logistic(t, v, num_classes=c, l2_grid=grid, max_iter=200),
                (x, y),
                folds,
                lambda r: r,
                DEFAULT_L2_GRID,
                criterion="loss_1se",
            )
            by_l2 = {
                l2: float((fit_linear_probe(x, y, x, y, len(draws), [l2]).predict(x_test) == y_test).float().mean())
                for l2 in DEFAULT_L2_GRID
            }
            run = {
                "seed": seed,
                "probe_on_fit_rows": float((probe.predict(x_test) == y_test).float().mean()),
                "probe_l2": probe.l2,
                "sklearn_on_fit_rows": sklearn_accuracy(x[:n], y[:n], x_test, y_test),
                "sklearn_on_all_rows": sklearn_accuracy(x, y, x_test, y_test),
                "probe_cross_validated_all_rows": float((chosen.probe.predict(x_test) == y_test).float().mean()),
                "probe_cross_validated_l2": chosen.l2,
                "probe_cross_validated_by_loss": float((by_loss.probe.predict(x_test) == y_test).float().mean()),
                "probe_cross_validated_by_loss_l2": by_loss.l2,
                "probe_cross_validated_1se": float((by_1se.probe.predict(x_test) == y_test).float().mean()),
                "probe_cross_validated_1se_l2": by_1se.l2,
                "probe_all_rows_test_by_l2": by_l2,
            }
            logger.info("%s %s", name, run)
            runs.append(run)
        summary = {
            key: statistics.mean(r[key] for r in runs)
            for key in (
                "probe_on_fit_rows",
                "sklearn_on_fit_rows",
                "sklearn_on_all_rows",
                "probe_cross_validated_all_rows",
                "probe_cross_validated_by_loss",
                "probe_cross_validated_1se",
            )
        }
        summary["probe_all_rows_test_by_l2"] = {
            str(l2): statistics.mean(r["probe_all_rows_test_by_l2"][l2] for r in runs) for l2 in DEFAULT_L2_GRID
        }
        results["datasets"][name] = {"runs": runs, "summary": summary, "test_samples": len(y_test)}
        print(
            f"{name} ({args.shots}-shot, {args.held_out} held out, {len(args.seeds)} seeds): "
            + ", ".join(f"{k} {v:.3f}" for k, v in summary.items() if not isinstance(v, dict))
            + " | test by l2: "
            + ", ".join(f"{k} {v:.3f}" for k, v in summary["probe_all_rows_test_by_l2"].items())
        )
    write_json_atomic(args.output_file or os.path.join("benchmarks", "results", f"{NAME}.json"), results)


if __name__ == "__main__":
    run_recipe(main)
