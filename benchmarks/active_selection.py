"""Does choosing what to label beat labelling at random? A simulation on a labelled data set whose labels are hidden
and revealed only for the rows a strategy picks: MiniLM's features of a tweet_sentiment pool, rounds that double the
labelled rows, and after each round the test accuracy of the probe `hf-transfer select` itself fits (logistic
regression, L2 by cross-validation) on the rows labelled so far.

    python benchmarks/active_selection.py                       # 2,000-row pool, 1,000 test rows, 3 seeds
    python benchmarks/active_selection.py --budgets 10 20 40    # other label budgets

Features are extracted once (`hf-transfer rank`'s extraction and cache); each strategy then runs on them through
`hf_transfer.selection` exactly as the command does (`SelectionProblem`, the registry's functions). The uncertainty
strategies (margin, badge) need labelled rows: their first round is `typical`'s, as `--strategy auto` does. Writes
benchmarks/results/active_selection.json and prints a markdown table (mean ± std over the seeds).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import DatasetDict
from sklearn.preprocessing import normalize
from transformers import HfArgumentParser

from _common import machine_info
from hf_transfer.data import DataArguments, load_transfer_dataset
from hf_transfer.probing import FeatureCache
from hf_transfer.selection import SELECTION_STRATEGIES, SelectionProblem
from hf_transfer.selection.uncertainty import fit_selection_probe
from hf_transfer.transferability.candidates import CandidateRequest, extract_candidate_features

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "active_selection.json"
# strategy -> (first round, later rounds): uncertainty needs labels, so its cold start is typical's (auto's path)
PLANS = {
    "random": ("random", "random"),
    "typical": ("typical", "typical"),
    "kcenter": ("kcenter", "kcenter"),
    "margin": ("typical", "margin"),
    "badge (auto)": ("typical", "badge"),
}


@dataclass
class SimulationArguments:
    model: str = field(default="minilm", metadata={"help": "Backbone whose features the strategies choose on."})
    dataset: str = field(default="tweet_sentiment", metadata={"help": "A built-in single-label data set."})
    pool_rows: int = field(default=2000, metadata={"help": "Rows of the pool (train split), labels hidden."})
    test_rows: int = field(default=1000, metadata={"help": "Test rows the probe is scored on."})
    budgets: list[int] = field(default_factory=lambda: [12, 24, 48, 96], metadata={"help": "Labelled rows per round."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds of the strategies."})
    strategies: list[str] = field(default_factory=lambda: list(PLANS), metadata={"help": f"Of {', '.join(PLANS)}."})
    output_file: str = field(default=str(RESULTS), metadata={"help": "Where the cells go (JSON)."})


def main() -> None:
    (args,) = HfArgumentParser(SimulationArguments).parse_args_into_dataclasses()
    torch.set_num_threads(2)
    data = load_transfer_dataset(
        DataArguments(dataset_name=args.dataset, max_train_samples=args.pool_rows, max_eval_samples=args.test_rows),
        hold_out_validation=False,
    )
    names = data["train"].features["label"].names
    start = time.perf_counter()
    (candidate,) = extract_candidate_features(
        CandidateRequest(args.model, source_head=False),
        DatasetDict({"pool": data["train"], "test": data["test"]}),
        cache=FeatureCache(),
    )
    extraction = time.perf_counter() - start
    pool, hidden = candidate.features["pool"], candidate.labels["pool"]
    test, test_labels = candidate.features["test"], candidate.labels["test"].numpy()
    unit = normalize(pool.double().numpy())
    print(f"features of {len(pool)} pool and {len(test)} test rows: {extraction:.1f}s")

    def accuracy(rows: list[int]) -> float:
        probe = fit_selection_probe(pool[rows], hidden[rows], test, "single_label", names, "margin")
        return float((probe.probabilities.argmax(1) == test_labels).mean())

    cells = []
    for name in args.strategies:
        first, later = PLANS[name]
        for seed in args.seeds:
            picked: list[int] = []
            for budget in args.budgets:
                strategy = SELECTION_STRATEGIES.get(first if not picked else later)
                probe = None
                if strategy.needs_probe:
                    probe = fit_selection_probe(
                        pool[picked], hidden[picked], pool, "single_label", names, strategy.name, seed
                    )
                begin = time.perf_counter()
                problem = SelectionProblem(
                    unit, np.ones(len(unit), bool), budget - len(picked), picked_before=picked, seed=seed, probe=probe
                )
                picked += [p.row for p in strategy.select(problem)]
                seconds = time.perf_counter() - begin
                cell = {"strategy": name, "seed": seed, "budget": budget, "accuracy": accuracy(picked)}
                cell.update(select_seconds=seconds, classes=np.bincount(hidden[picked].numpy(), minlength=3).tolist())
                cells.append(cell)
                print(json.dumps(cell))

    output = Path(args.output_file)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "args": asdict(args),
                "extraction_seconds": extraction,
                "cells": cells,
                "machine": machine_info("scikit-learn"),
            },
            indent=2,
        )
        + "\n"
    )
    header = "| strategy | " + " | ".join(f"{b} rows" for b in args.budgets) + " | selection s (largest round) |"
    lines = [header, "|---" * (len(args.budgets) + 2) + "|"]
    for name in args.strategies:
        row = [name]
        for budget in args.budgets:
            values = [c["accuracy"] for c in cells if c["strategy"] == name and c["budget"] == budget]
            row.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}")
        last = [c["select_seconds"] for c in cells if c["strategy"] == name and c["budget"] == args.budgets[-1]]
        row.append(f"{np.mean(last):.2f}")
        lines.append("| " + " | ".join(row) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
