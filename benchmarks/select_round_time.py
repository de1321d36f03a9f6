"""How long `hf-transfer select` takes per round: the first call extracts the pool's features, later calls read them
from the cache and only choose. A pool file of tweets, MiniLM, a fresh feature cache.

    python benchmarks/select_round_time.py                  # 2,000-row pool, rounds of 50, 48 labelled rows later

Each call is a fresh `python -m hf_transfer select` process (interpreter start and imports included), as a user runs
it. Writes benchmarks/results/select_round_time.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from transformers import HfArgumentParser

from _common import machine_info
from hf_transfer.data import DataArguments, load_transfer_dataset

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "select_round_time.json"


@dataclass
class RoundTimeArguments:
    pool_rows: int = field(default=2000, metadata={"help": "Tweets in the pool file."})
    labelled_rows: int = field(default=48, metadata={"help": "Labelled rows given from round 2 on."})
    num_rows: int = field(default=50, metadata={"help": "Rows picked per round."})
    output_file: str = field(default=str(RESULTS), metadata={"help": "Where the times go (JSON)."})


def main() -> None:
    (args,) = HfArgumentParser(RoundTimeArguments).parse_args_into_dataclasses()
    rows = load_transfer_dataset(DataArguments(dataset_name="tweet_sentiment", max_train_samples=args.pool_rows))
    train = rows["train"]
    names = train.features["label"].names
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texts = [" ".join(t.split()) for t in train["text"]]  # one line per tweet in the csv
        pd.DataFrame({"id": range(len(texts)), "text": texts}).to_csv(tmp / "pool.csv", index=False)
        labelled = pd.DataFrame(
            {"text": texts[: args.labelled_rows], "label": [names[y] for y in train["label"]][: args.labelled_rows]}
        )
        labelled.to_csv(tmp / "labelled.csv", index=False)
        base = [sys.executable, "-m", "hf_transfer", "select", "--model_name_or_path", "minilm", "--pool_file"]
        base += [str(tmp / "pool.csv"), "--num_rows", str(args.num_rows), "--output_dir", str(tmp / "out")]
        base += ["--cache_dir", str(tmp / "cache")]
        calls = {
            "round 1: typical, features extracted": base,
            "round 2: badge, features cached": [*base, "--train_file", str(tmp / "labelled.csv")],
            "round 3: kcenter, features cached": [
                *base,
                "--train_file",
                str(tmp / "labelled.csv"),
                "--strategy",
                "kcenter",
            ],
        }
        seconds = {}
        for name, command in calls.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds[name] = round(time.perf_counter() - start, 1)
            print(f"{name}: {seconds[name]}s")
        state = json.loads((tmp / "out" / "selection.json").read_text())
    result = {"args": asdict(args), "seconds": seconds, "select_seconds": [r["seconds"] for r in state["rounds"]]}
    result["machine"] = machine_info("scikit-learn")
    output = Path(args.output_file)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["select_seconds"]))


if __name__ == "__main__":
    main()
