"""Reload recipe outputs the way the README tells users to, in this fresh process, and score them.

    python tests/reload_check.py SPEC.json     # one spec, results on the last line
    python tests/reload_check.py --serve       # one spec per stdin line, one result line each (`ReloadChecker`)

SPEC is a list of runs: `{"output_dir", "base_model", "strategy" (what was saved: "probe", "full", "lora", or
"sentence_transformers" for a classifier saved in that format),
"modality", "data": {DataArguments fields}}`. For each run it prints (as one JSON list on the last line) the
validation accuracy and macro-F1 of every way of loading it back:
- plain models (probe, full): `AutoModelFor...Classification.from_pretrained(output_dir)` and `pipeline(...)`;
- LoRA: `PeftModel.from_pretrained(AutoModelFor...(base, num_labels=...), output_dir)`, then `merged/` with
  `AutoModelFor...` and `pipeline(...)`;
- sentence-transformers classifiers: `SentenceTransformer(output_dir).encode(texts)` as logits.
Only the rows come from the toolkit (`load_transfer_dataset`, so they are the run's validation rows);
everything that loads or runs the model is plain transformers / peft.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from peft import PeftModel
from sklearn.metrics import f1_score
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    pipeline,
)

from hf_transfer.data import DataArguments, load_transfer_dataset


def _scores(predictions, labels) -> dict[str, float]:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return {
        "accuracy": float((predictions == labels).mean()),
        "f1": float(f1_score(labels, predictions, average="macro")),
    }


@torch.no_grad()
def _model_predictions(model, processor, rows, modality: str) -> list[int]:
    model.eval()
    predictions = []
    for start in range(0, len(rows), 16):
        batch = rows[start : start + 16]
        if modality == "text":
            inputs = processor(batch["text"], truncation=True, max_length=128, padding=True, return_tensors="pt")
        else:
            inputs = processor([image.convert("RGB") for image in batch["image"]], return_tensors="pt")
        predictions += model(**inputs).logits.argmax(-1).tolist()
    return predictions


def _pipeline_predictions(directory: str, rows, modality: str, label2id: dict) -> list[int]:
    if modality == "text":
        classify = pipeline("text-classification", model=directory, device="cpu")
        outputs = classify(list(rows["text"]), truncation=True, max_length=128)
    else:
        classify = pipeline("image-classification", model=directory, device="cpu")
        outputs = [o[0] for o in classify([image.convert("RGB") for image in rows["image"]], top_k=1)]
    return [label2id[o["label"]] for o in outputs]


def check(run: dict) -> dict:
    data = load_transfer_dataset(DataArguments(**run["data"]))
    rows = data["validation"]
    labels = list(rows["label"])
    names = rows.features["label"].names
    modality = run["modality"]
    auto_cls = AutoModelForSequenceClassification if modality == "text" else AutoModelForImageClassification
    load_processor = AutoTokenizer if modality == "text" else AutoImageProcessor
    out = run["output_dir"]
    result = {"output_dir": out}
    if run["strategy"] == "sentence_transformers":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(out, device="cpu")
        logits = model.encode(list(rows["text"]), convert_to_tensor=True, batch_size=16)
        result["sentence_transformers"] = _scores(logits.argmax(-1).tolist(), labels)
        return result
    if run["strategy"] == "lora":
        base = auto_cls.from_pretrained(
            run["base_model"],
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)},
            ignore_mismatched_sizes=True,
        )
        model = PeftModel.from_pretrained(base, out)
        try:
            processor = load_processor.from_pretrained(out)
        except OSError:  # a timm image processor lives in the model's config.json, which an adapter folder lacks
            processor = load_processor.from_pretrained(run["base_model"])
        result["peft"] = _scores(_model_predictions(model, processor, rows, modality), labels)
        out = f"{out}/merged"
    model = auto_cls.from_pretrained(out)
    label2id = {name: i for i, name in model.config.id2label.items()}
    result["model"] = _scores(_model_predictions(model, load_processor.from_pretrained(out), rows, modality), labels)
    result["pipeline"] = _scores(_pipeline_predictions(out, rows, modality, label2id), labels)
    return result


def _check_all(runs: list[dict]) -> list[dict]:
    try:
        return [check(run) for run in runs]
    except Exception as err:  # reported to the test, which fails with it
        import traceback

        return [{"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}]


class ReloadChecker:
    """A long-lived `reload_check.py --serve` interpreter: fresh with respect to the recipe runs it checks (it never
    ran one), and started once per test worker instead of once per check."""

    def __init__(self):
        import subprocess
        from pathlib import Path

        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )

    def __call__(self, runs: list[dict]) -> list[dict]:
        self.process.stdin.write(json.dumps(runs) + "\n")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"reload_check.py --serve ended (exit code {self.process.poll()})")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1:] == ["--serve"]:
        for request in sys.stdin:
            print(json.dumps(_check_all(json.loads(request))), flush=True)
    else:
        print(json.dumps(_check_all(json.loads(open(sys.argv[1]).read()))))
