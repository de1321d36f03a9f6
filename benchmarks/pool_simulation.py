#!/usr/bin/env python
"""Does it pay to choose what to label (`hf-transfer select`), and to hand the rest of the pool over unlabelled
(probe self-training)? `hf-transfer compare`'s arms (`--selection random typical --unlabelled none rest`), simulated
on built-in data whose labels are hidden and revealed only for the rows picked, on cached features.

For each data set: the pool is compare's (`--pool_samples` rows of train, `budgets.select_pool`), each (arm, budget,
seed)'s labelled rows are the ones compare hands its cells (`budgets.choose_labelled_rows`: a per-class random draw,
or the selection strategy in rounds 8 -> 32 -> 128 per class, the picked rows' labels revealed), and the cell is the
linear probe the recipe fits (`fit_logistic`, L2 chosen on the held-out validation rows, as compare's cells with rows
do) with or without `ProbeSelfTraining` (the recipe's defaults) on the pool's other rows. Only the features differ
from a compare run: each row is read by the backbone once (`hf-transfer select`'s extraction), where compare's cells
each read their own rows again (about 90 s per MiniLM cell on 2 cores, too slow for 72 cells here).

    python benchmarks/pool_simulation.py                         # text and images, 8/32/128 per class, 3 seeds
    python benchmarks/pool_simulation.py --sets text --seeds 0   # one data set, one seed

Writes, per data set, compare's own files (comparison.md / .csv, comparison_cells.jsonl, accuracy_vs_labels.png)
under benchmarks/results/pool_simulation/<set>/, and the timings and machine to .../pool_simulation.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from datasets import DatasetDict
from sklearn.metrics import f1_score
from transformers import HfArgumentParser

from _common import machine_info
from hf_transfer.comparison import Cell, CellResult, recommend, summarize
from hf_transfer.comparison.arms import LABELLED_ROW_CHOICES, UNLABELLED_POOLS
from hf_transfer.comparison.budgets import choose_labelled_rows, labelled_rows_of, load_train_pool, select_pool
from hf_transfer.comparison.plots import plot_accuracy_vs_labels
from hf_transfer.comparison.summary import write_cells, write_csv, write_markdown
from hf_transfer.constants import DEFAULT_L2_GRID
from hf_transfer.data import DataArguments, load_transfer_dataset
from hf_transfer.data.splits import SOURCE_ROW
from hf_transfer.probing import FeatureCache
from hf_transfer.probing.fitters import fit_logistic
from hf_transfer.semi_supervised.arguments import SemiSupervisedArguments
from hf_transfer.semi_supervised.self_training import ProbeSelfTraining, probe_probabilities
from hf_transfer.transferability.candidates import CandidateRequest, extract_candidate_features

ROOT = Path(__file__).resolve().parent.parent
# data set name -> (backbone, built-in data set)
SETS = {"text": ("minilm", "tweet_sentiment"), "images": ("efficientnet-lite0", "fashion_mnist")}


@dataclass
class SimulationArguments:
    sets: list[str] = field(default_factory=lambda: list(SETS), metadata={"help": f"Of {', '.join(SETS)}."})
    budgets: list[str] = field(default_factory=lambda: ["8", "32", "128"], metadata={"help": "Rows per class."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds (draws, k-means, probe)."})
    selection: list[str] = field(default_factory=lambda: ["random", "typical"], metadata={"help": "compare's arms."})
    unlabelled: list[str] = field(default_factory=lambda: ["none", "rest"], metadata={"help": "compare's arms."})
    pool_samples: int = field(default=2000, metadata={"help": "Pool rows (labels hidden)."})
    max_eval_samples: int = field(default=1000, metadata={"help": "Validation rows (the probe's L2) and test rows."})
    max_seq_length: int = field(default=64, metadata={"help": "Tokens per text row."})
    output_dir: str = field(default=str(ROOT / "benchmarks" / "results" / "pool_simulation"))


def _score(probe, features: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    predicted = probe_probabilities(probe, features.float(), multi_label=False).argmax(1).numpy()
    return float((predicted == labels.numpy()).mean()), float(f1_score(labels.numpy(), predicted, average="macro"))


def simulate(name: str, args: SimulationArguments, output: Path) -> dict:
    model, dataset = SETS[name]
    data_args = DataArguments(dataset_name=dataset, max_eval_samples=args.max_eval_samples)
    pool = select_pool(load_train_pool(data_args, None, "auto"), args.pool_samples, data_args.split_seed)
    held_out = load_transfer_dataset(data_args)  # validation and test as compare's cells with rows see them
    start = time.perf_counter()
    (candidate,) = extract_candidate_features(
        CandidateRequest(model, source_head=False),
        DatasetDict(
            {"pool": pool.remove_columns(SOURCE_ROW), "validation": held_out["validation"], "test": held_out["test"]}
        ),
        max_seq_length=args.max_seq_length,
        cache=FeatureCache(),
    )
    extraction = time.perf_counter() - start
    x, y = candidate.features, candidate.labels
    where = {position: index for index, position in enumerate(pool[SOURCE_ROW])}
    num_classes = len(pool.features["label"].names)
    print(f"{name}: features of {len(pool)} pool, {len(y['validation'])} validation, {len(y['test'])} test rows: "
          f"{extraction:.1f}s", flush=True)  # fmt: skip

    results, timings = [], {"extraction_seconds": extraction, "selection_seconds": {}}
    for selection in args.selection:
        begin = time.perf_counter()
        strategy = LABELLED_ROW_CHOICES.get(selection).select_strategy
        chosen = choose_labelled_rows(pool, args.budgets, args.seeds, strategy, lambda: x["pool"])
        timings["selection_seconds"][selection] = time.perf_counter() - begin
        for (budget, seed), positions in chosen.items():
            rows = torch.as_tensor([where[p] for p in positions])
            rest = torch.as_tensor(sorted(set(range(len(pool))) - set(rows.tolist())))
            labelled = (x["pool"][rows], y["pool"][rows])
            for unlabelled in args.unlabelled:
                torch.manual_seed(seed)
                begin = time.perf_counter()
                probe = fit_logistic(
                    labelled, (x["validation"], y["validation"]), num_classes=num_classes, l2_grid=DEFAULT_L2_GRID,
                    max_iter=200,
                )  # fmt: skip
                metrics = {}
                if UNLABELLED_POOLS.get(unlabelled).uses_pool:
                    self_training = ProbeSelfTraining(SemiSupervisedArguments(), multi_label=False, hidden_labels=True)
                    probe = self_training(
                        probe,
                        lambda split, l2=probe.l2: fit_logistic(
                            split,
                            (x["validation"], y["validation"]),
                            num_classes=num_classes,
                            l2_grid=[l2],
                            max_iter=200,
                        ),  # fmt: skip
                        labelled,
                        (x["pool"][rest], y["pool"][rest]),
                    )
                    metrics = self_training.report.metrics()
                seconds = time.perf_counter() - begin
                accuracy, f1 = _score(probe, x["test"], y["test"])
                cell = Cell(model, "linear_probe", budget, seed, selection, unlabelled)
                numbers = {"test_accuracy": accuracy, "test_f1": f1, "train_runtime": seconds, **metrics}
                numbers["train_samples"] = len(positions)
                results.append(CellResult(cell, numbers, None, Path("-"), labelled_rows_of(pool, positions)))
                print(json.dumps({"set": name, **cell.arms, "budget": budget, "seed": seed, "accuracy": accuracy}),
                      flush=True)  # fmt: skip

    output.mkdir(parents=True, exist_ok=True)
    rows = summarize(results)
    plot_accuracy_vs_labels(rows, output / "accuracy_vs_labels.png", f"{model} probe on {dataset}: simulated arms")
    write_csv(rows, output / "comparison.csv")
    write_cells(results, output / "comparison_cells.jsonl")
    print(write_markdown(rows, recommend(rows), ["accuracy_vs_labels.png"], output / "comparison.md"))
    return timings


def main() -> None:
    (args,) = HfArgumentParser(SimulationArguments).parse_args_into_dataclasses()
    torch.set_num_threads(2)
    output = Path(args.output_dir)
    timings = {}
    for name in args.sets:
        begin = time.perf_counter()
        timings[name] = simulate(name, args, output / name)
        timings[name]["total_seconds"] = time.perf_counter() - begin
    (output / "pool_simulation.json").write_text(
        json.dumps({"args": asdict(args), "timings": timings, "machine": machine_info("scikit-learn")}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
