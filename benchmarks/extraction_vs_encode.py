#!/usr/bin/env python
"""Benchmark: the probe's text feature extraction against `SentenceTransformer.encode`, in one run, interleaved.

The same model (MiniLM), texts (every drug review of the `drug_reviews` built-in: 979 texts of very different
lengths), batch size (64), maximum length (128 tokens) and torch threads. Timed per pass, tokenization included on
both sides (datasets' map cache is off, so every pass tokenizes again):
- `probe`: what `--strategy linear_probe` runs: `preprocess_dataset` + `create_collator` + `extract_features` on the
  classification model (the head's input hooked), longest rows first;
- `probe_unsorted`: the same rows in data set order (a plain list skips the length sort): the earlier behaviour;
- `encode`: `SentenceTransformer(path).encode(texts, batch_size=64)`, which also sorts by length.
The passes rotate (probe, unsorted, encode, then the next order) so load drifts on the machine hit all three.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/extraction_vs_encode.py   # ~3 min

Results go to `benchmarks/results/extraction_vs_encode.json`; the last line is the ratio of texts/s, probe / encode
(the goal: at least 1.0).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import datasets
import torch
from datasets import DatasetDict, concatenate_datasets
from sentence_transformers import SentenceTransformer
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from _common import machine_info
from hf_transfer.data import DataArguments, load_transfer_dataset
from hf_transfer.models.loading import resolve_model_path
from hf_transfer.outputs import write_json_atomic
from hf_transfer.probing import extract_features
from hf_transfer.processing import create_collator, preprocess_dataset

ROOT = Path(__file__).resolve().parent.parent
BATCH_SIZE = 64
MAX_LENGTH = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="Passes of each variant.")
    parser.add_argument("--output_file", default=str(ROOT / "benchmarks" / "results" / "extraction_vs_encode.json"))
    args = parser.parse_args()
    datasets.disable_caching()
    datasets.disable_progress_bars()

    splits = load_transfer_dataset(DataArguments(dataset_name="drug_reviews"))
    rows = concatenate_datasets(list(splits.values()))
    texts = list(rows["text"])
    path = resolve_model_path("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    classifier = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3).eval()
    collate = create_collator(tokenizer, "text")
    encoder = SentenceTransformer(path, device="cpu")
    encoder.max_seq_length = MAX_LENGTH

    def probe(sort: bool) -> torch.Tensor:
        encoded = preprocess_dataset(DatasetDict({"all": rows}), tokenizer, "text", MAX_LENGTH)["all"]
        data = encoded if sort else list(encoded)
        features, _ = extract_features(classifier, data, collate, cache=None, cache_key=None, batch_size=BATCH_SIZE)
        return features

    variants = {
        "probe": lambda: probe(sort=True),
        "probe_unsorted": lambda: probe(sort=False),
        "encode": lambda: encoder.encode(texts, batch_size=BATCH_SIZE, convert_to_tensor=True, show_progress_bar=False),
    }
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    variants["encode"]()  # warm-up: first calls allocate
    variants["probe"]()
    for repeat in range(args.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            start = time.perf_counter()
            variants[name]()
            seconds[name].append(time.perf_counter() - start)
            print(f"{name}: {len(texts) / seconds[name][-1]:.1f} texts/s", flush=True)

    rate = {name: len(texts) / statistics.median(values) for name, values in seconds.items()}
    result = {
        "machine": machine_info("sentence-transformers"),
        "texts": len(texts),
        "batch_size": BATCH_SIZE,
        "max_length": MAX_LENGTH,
        "seconds": seconds,
        "texts_per_second": rate,
        "ratio_probe_to_encode": rate["probe"] / rate["encode"],
        "ratio_unsorted_to_encode": rate["probe_unsorted"] / rate["encode"],
    }
    write_json_atomic(Path(args.output_file), result)
    print(f"unsorted (data set order) / encode: {result['ratio_unsorted_to_encode']:.2f}")
    print(f"texts/s, probe extraction / SentenceTransformer.encode: {result['ratio_probe_to_encode']:.2f}")


if __name__ == "__main__":
    main()
