"""Does ranking work here? Kendall's tau between each transferability score and the test accuracy of a linear probe
on the same features, over the candidates of one backbone (its layers, its embedding, random weights; for text also
the MiniLM the toolkit pretrains with SimCSE on the drug-review texts), per data set.

    python benchmarks/transferability_ranking.py                     # MiniLM on tweets and drug reviews,
                                                                     # EfficientNet-Lite0 on digits and Fashion-MNIST
    python benchmarks/transferability_ranking.py --cells text        # one modality

Each cell is one `hf-transfer rank ... --check_with_probes true` run (features cached, so a rerun only rescores);
its ranking.json goes to benchmarks/results/transferability/<cell>/. The last line is the mean tau of LogME over the
cells (the score the table is ranked by).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import machine_info
from hf_transfer.__main__ import main as hf_transfer_main

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "transferability"
# recipes/contrastive_pretrain.py's SimCSE run (README: 169 s on 2 cores), made once and kept under outputs/.
SIMCSE_MINILM = ROOT / "outputs" / "minilm-drug_reviews-simcse-mean"
SIMCSE_COMMAND = [
    sys.executable,
    str(ROOT / "recipes" / "contrastive_pretrain.py"),
    str(ROOT / "recipes" / "configs" / "contrastive_simcse_drug_reviews.yaml"),
    "--pooling",
    "mean",
    "--report_to",
    "none",
    "--output_dir",
    str(SIMCSE_MINILM),
]

CELLS = {
    "minilm-tweet_sentiment": (
        "text",
        ["minilm", "minilm@all", "random:minilm", str(SIMCSE_MINILM)],
        ["--dataset_name", "tweet_sentiment", "--max_train_samples", "2000", "--max_eval_samples", "1000"],
    ),
    "minilm-drug_reviews": (
        "text",
        ["minilm", "minilm@all", "random:minilm", str(SIMCSE_MINILM)],
        ["--dataset_name", "drug_reviews", "--max_train_samples", "2000", "--max_eval_samples", "1000"],
    ),
    "efficientnet-digits": (
        "vision",
        ["efficientnet-lite0", "efficientnet-lite0@all", "random:efficientnet-lite0"],
        ["--dataset_name", "digits"],
    ),
    "efficientnet-fashion_mnist": (
        "vision",
        ["efficientnet-lite0", "efficientnet-lite0@all", "random:efficientnet-lite0"],
        ["--dataset_name", "fashion_mnist", "--max_train_samples", "1000", "--max_eval_samples", "500"],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="all", help="all, text, vision, or comma-separated cell names")
    args = parser.parse_args()
    chosen = [
        name
        for name, (modality, _, _) in CELLS.items()
        if args.cells in ("all", modality) or name in args.cells.split(",")
    ]
    if any(CELLS[name][0] == "text" for name in chosen) and not (SIMCSE_MINILM / "config.json").is_file():
        print(f"Pretraining {SIMCSE_MINILM} (SimCSE)", flush=True)
        subprocess.run(SIMCSE_COMMAND, check=True)
    # Cells of earlier runs stay in the summary: `--cells text` reruns only those.
    previous = json.loads((RESULTS / "summary.json").read_text()) if (RESULTS / "summary.json").is_file() else {}
    summary = {"machine": machine_info(), "cells": previous.get("cells", {})}
    for name in chosen:
        _, candidates, data = CELLS[name]
        out = RESULTS / name
        start = time.perf_counter()
        code = hf_transfer_main(
            ["rank", "--candidates", *candidates, *data, "--check_with_probes", "true", "--output_dir", str(out)]
        )
        if code != 0:
            sys.exit(f"{name}: hf-transfer rank exited {code}")
        ranking = json.loads((out / "ranking.json").read_text())
        summary["cells"][name] = {
            "seconds": time.perf_counter() - start,
            "candidates": len(ranking["rows"]),
            "kendall_tau": ranking["kendall_tau"],
            "rows": [
                {"name": r["name"], **r["scores"], "probe_test_accuracy": r["probe_test_accuracy"]}
                for r in ranking["rows"]
            ],
        }
        taus = {k: round(v["tau"], 3) for k, v in ranking["kendall_tau"].items()}
        print(f"{name}: {len(ranking['rows'])} candidates, tau {taus}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logme = [c["kendall_tau"]["logme"]["tau"] for c in summary["cells"].values() if "logme" in c["kendall_tau"]]
    print(f"mean Kendall tau of LogME over {len(logme)} cells: {sum(logme) / max(len(logme), 1):.3f}")


if __name__ == "__main__":
    main()
