"""`--strategy contrastive_probe`: the backbone trained on pairs of labelled rows (SetFit's objective), then the
probe; text and images, single- and multi-label; the output loads the README's way and reproduces its numbers."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForImageClassification, AutoModelForSequenceClassification

from hf_transfer.pairs import ClassBalancedOrder, PairCosineLoss
from hf_transfer.pairs.arguments import auto_pair_steps
from hf_transfer.pairs.loss import label_agreement
from recipe_runner import assert_ok, run_recipe, write_csv

# ------------------------------------------------------------------------------------------------ pieces


def test_label_agreement_is_class_equality_or_the_jaccard_overlap_of_label_sets():
    assert label_agreement(torch.tensor([0, 1, 0])).tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    sets = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]])
    agreement = label_agreement(sets)
    assert agreement[0, 1] == pytest.approx(0.5) and agreement[0, 2] == 0 and agreement[1, 1] == 1
    assert agreement[3, 3] == 1 and agreement[3, 0] == 0  # two rows without labels agree with each other only


def test_the_loss_is_zero_exactly_when_cosines_match_the_label_agreement():
    loss = PairCosineLoss()
    labels = torch.tensor([0, 0, 1, 2])
    perfect = torch.eye(3)[labels] * torch.tensor([[2.0], [3.0], [1.0], [5.0]])  # class axes, any length
    assert float(loss(perfect, labels)) == pytest.approx(0.0, abs=1e-7)
    mixed = perfect.clone()
    mixed[2] = perfect[0]  # a row of class 1 embedded as class 0
    assert float(loss(mixed, labels)) > 0.1
    embeddings = torch.randn(4, 3, requires_grad=True)
    loss(embeddings, labels).backward()
    assert embeddings.grad is not None and embeddings.grad.abs().sum() > 0


def test_class_balanced_batches_always_hold_pairs_of_a_class():
    classes = np.repeat(np.arange(12), 3)  # 12 classes of 3 rows: random batches of 8 would often have no pair
    order = ClassBalancedOrder(len(classes), 8, classes, seed=0)
    rows = list(order)
    assert len(rows) == len(order) and len(rows) % 8 == 0
    for start in range(0, len(rows), 8):
        counts = np.bincount(classes[rows[start : start + 8]])
        assert counts.max() >= 2
    assert list(ClassBalancedOrder(len(classes), 8, classes, seed=0)) == rows  # seeded
    assert auto_pair_steps(24, 16) < auto_pair_steps(2000, 16)  # the budget grows with the data


# ------------------------------------------------------------------------------------------------ the recipe


def _topic_files(tmp_path, multi_label=False):
    rng = np.random.default_rng(0)
    topics = {
        "sports": ["goal", "match", "team"],
        "food": ["pizza", "bread", "soup"],
        "music": ["song", "band", "drum"],
    }
    rows = []
    for i in range(60):
        chosen = [list(topics)[i % 3]] + ([list(topics)[(i + 1) % 3]] if multi_label and i % 4 == 0 else [])
        words = [str(rng.choice(topics[t])) for t in chosen] + [str(w) for w in rng.choice(["the", "a", "we"], 3)]
        rows.append((" ".join(words), ",".join(chosen)))
    return write_csv(tmp_path / "train.csv", rows[:36]), write_csv(tmp_path / "test.csv", rows[36:])


def _weights(folder):
    return load_file(str(next(folder.glob("*.safetensors"))))


RELOAD_TEXT = """
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
import csv
out, test = sys.argv[1], sys.argv[2]
model = AutoModelForSequenceClassification.from_pretrained(out).eval()
tokenizer = AutoTokenizer.from_pretrained(out)
rows = list(csv.DictReader(open(test)))
with torch.no_grad():
    logits = model(**tokenizer([r["text"] for r in rows], padding=True, truncation=True, max_length=128,
                               return_tensors="pt")).logits
names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
print(json.dumps({"predicted": [names[i] for i in logits.argmax(-1).tolist()], "truth": [r["label"] for r in rows]}))
"""


@pytest.mark.parametrize("architecture", ["bert", "electra", "roberta", "deberta-v2"])
def test_text_contrastive_probe_trains_the_backbone_and_reloads(architecture, tiny, tmp_path):
    import subprocess
    import sys

    train, test = _topic_files(tmp_path)
    out = tmp_path / "out"
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny(architecture),
            "--strategy",
            "contrastive_probe",
            "--train_file",
            train,
            "--test_file",
            test,
            "--pair_steps",
            "6",
            "--pair_batch_size",
            "8",
            "--pair_learning_rate",
            "1e-3",
            output_dir=out,
        )
    )
    results = run.results
    assert results["pair_steps"] == 6 and np.isfinite(results["pair_loss"])
    assert results["train_samples"] == 36  # every labelled row: nothing held out
    assert not {"eval_accuracy", "eval_f1"} & set(results)  # no flattering out-of-fold scores
    assert results["validation_source"].startswith("none: ")
    assert results["trainable_params"] == results["total_params"]
    # The backbone moved away from the pretrained weights.
    pretrained = AutoModel.from_pretrained(tiny(architecture))
    trained = AutoModelForSequenceClassification.from_pretrained(out)
    base = getattr(trained, trained.base_model_prefix)
    trained_weights = base.state_dict()  # a classifier's backbone may drop the pooler (RoBERTa's head has its own)
    changed = [
        name
        for name, value in pretrained.state_dict().items()
        if name in trained_weights and not torch.equal(value, trained_weights[name])
    ]
    assert changed, "pair training left the backbone as it was"
    # A fresh interpreter, the README's way, reproduces the reported test accuracy.
    reloaded = subprocess.run(
        [sys.executable, "-c", RELOAD_TEXT, str(out), test], capture_output=True, text=True, check=True
    )
    seen = json.loads(reloaded.stdout.strip().splitlines()[-1])
    accuracy = np.mean([p == t for p, t in zip(seen["predicted"], seen["truth"])])
    assert accuracy == pytest.approx(results["test_accuracy"])
    assert "contrastive_probe" in (out / "README.md").read_text()


def test_multi_label_rows_are_paired_by_their_label_overlap(tiny, tmp_path):
    train, test = _topic_files(tmp_path, multi_label=True)
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny("distilbert"),
            "--strategy",
            "contrastive_probe",
            "--task",
            "multi_label",
            "--train_file",
            train,
            "--test_file",
            test,
            "--pair_steps",
            "4",
            "--pair_batch_size",
            "8",
            output_dir=tmp_path / "out",
        )
    )
    assert run.results["task"] == "multi_label" and "test_micro_f1" in run.results
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    assert model.config.problem_type == "multi_label_classification"


@pytest.mark.parametrize("architecture", ["vit", "timm"])
def test_image_contrastive_probe_reloads_and_reproduces_its_test_accuracy(architecture, tiny, tmp_path):
    from PIL import Image
    from transformers import AutoImageProcessor

    from hf_transfer.data import DataArguments, load_transfer_dataset

    out = tmp_path / "out"
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny(architecture),
            "--strategy",
            "contrastive_probe",
            "--dataset_name",
            "digits",
            "--train_samples_per_class",
            "4",
            "--max_eval_samples",
            "30",
            "--pair_steps",
            "3",
            "--pair_batch_size",
            "10",
            "--ignore_mismatched_sizes",  # the tiny timm checkpoint carries an ImageNet-style head of its own
            "true",
            output_dir=out,
        )
    )
    results = run.results
    assert results["modality"] == "vision" and results["train_samples"] == 40
    test = load_transfer_dataset(DataArguments(dataset_name="digits", max_eval_samples=30))["test"]
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    processor = AutoImageProcessor.from_pretrained(out)
    images = [image if isinstance(image, Image.Image) else Image.open(image) for image in test["image"]]
    with torch.no_grad():
        predicted = model(**processor([i.convert("RGB") for i in images], return_tensors="pt")).logits.argmax(-1)
    assert float((predicted.numpy() == np.asarray(test["label"])).mean()) == pytest.approx(results["test_accuracy"])


def test_pairs_need_classes(tiny_bert, tmp_path):
    train = write_csv(tmp_path / "train.csv", [(f"text {i}", str(i * 0.5)) for i in range(12)])
    run = run_recipe(
        "finetune.py",
        "--model_name_or_path",
        tiny_bert,
        "--strategy",
        "contrastive_probe",
        "--task",
        "regression",
        "--train_file",
        train,
        output_dir=tmp_path / "out",
    )
    assert run.returncode == 2
    errors = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pairs rows by their classes" in errors[0] and "Traceback" not in run.output


def test_contrastive_probe_is_a_compare_cell(tiny_bert, tmp_path, capsys):
    from hf_transfer.__main__ import main

    out = tmp_path / "cmp"
    args = ["compare", "--model_name_or_path", tiny_bert, "--strategy", "linear_probe", "contrastive_probe"]
    args += ["--seed", "0", "--label_budgets", "4", "--dataset_name", "tweet_sentiment", "--max_eval_samples", "24"]
    args += ["--recipe_args", "--max_seq_length 32", "--strategy_args", "contrastive_probe: --pair_steps 3"]
    args += ["--output_dir", str(out)]
    assert main(args) == 0
    table = (out / "comparison.md").read_text()
    name = Path(tiny_bert).name
    assert f"| {name} | contrastive_probe | 4 | 12 |" in table and f"| {name} | linear_probe | 4 | 12 |" in table
    cells = [json.loads(line) for line in (out / "comparison_cells.jsonl").read_text().splitlines()]
    pair_cell = next(c for c in cells if c.get("strategy") == "contrastive_probe")
    assert pair_cell, cells
