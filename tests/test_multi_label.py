"""Multi-label (`--task multi_label`): label lists and separated names found and checked, the one-vs-rest probe,
decision thresholds chosen on validation and saved with the model, and every finetune strategy reloading in a fresh
process (transformers, peft, sentence-transformers, pipeline) to the F1 it reported."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score

from hf_transfer.data import DataArguments, infer_task, label_names_of, load_transfer_dataset
from hf_transfer.errors import DataError
from hf_transfer.metrics import DecisionThresholds, choose_decision_thresholds, compute_multi_label_metrics
from hf_transfer.probing import fit_one_vs_rest_probe, standardization
from recipe_runner import assert_ok, finetune_and_reload, run_recipe, write_csv
from tiny_models import make_tiny

TOPICS = {
    "sports": ["goal", "match", "team", "score"],
    "food": ["pizza", "bread", "soup", "cake"],
    "music": ["song", "band", "guitar", "drum"],
}
FILLER = ["the", "a", "today", "really", "we", "saw", "good", "fine"]


def _write_csv(path, rows, header=("text", "topics")):
    return write_csv(path, rows, header)


def _topic_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Texts that name 0-3 topics with one word each, plus filler and (in 30% of rows) a stray topic word."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        chosen = [t for t in TOPICS if rng.random() < 0.4]
        words = [str(rng.choice(TOPICS[t])) for t in chosen] + [str(w) for w in rng.choice(FILLER, 4)]
        if rng.random() < 0.3:
            words.append(str(rng.choice(TOPICS[str(rng.choice(list(TOPICS)))])))
        rng.shuffle(words)
        rows.append((" ".join(words), ",".join(chosen)))
    return rows


@pytest.fixture(scope="module")
def topic_files(tmp_path_factory):
    rows = _topic_rows(160)
    root = tmp_path_factory.mktemp("topics")
    return _write_csv(root / "train.csv", rows[:120]), _write_csv(root / "test.csv", rows[120:])


# ------------------------------------------------------------------------------------------------ data


def test_separated_names_and_label_lists_are_multi_label(topic_files, tmp_path):
    """Names joined by the separator are several labels under --task multi_label; under auto they stop the run (a
    comma can as well be part of a name), while real lists are multi-label under auto."""
    train, test = topic_files
    data = DataArguments(train_file=train, test_file=test, label_column="topics")
    with pytest.raises(DataError, match=r"cells holding ','.*pass --task multi_label if .* or --task single_label"):
        load_transfer_dataset(data, task="auto")
    splits = load_transfer_dataset(data, task="multi_label")
    assert infer_task(splits) == "multi_label"
    assert label_names_of(splits, DataArguments(train_file=train)) == ["food", "music", "sports"]
    empty = sum(1 for labels in splits["train"]["label"] if not labels)
    assert 0 < empty < len(splits["train"])  # rows with none of the labels stay (an empty csv cell)
    lists = tmp_path / "lists.jsonl"
    with open(lists, "w") as f:
        for i in range(30):
            f.write(json.dumps({"text": f"t{i}", "tags": [["x"], ["x", "y"], []][i % 3]}) + "\n")
    listed = load_transfer_dataset(DataArguments(train_file=str(lists), label_column="tags"), task="auto")
    assert infer_task(listed) == "multi_label" and sorted(map(len, listed["train"]["label"]))[-1] == 2
    pipes = _write_csv(tmp_path / "pipes.csv", [(f"t{i}", ["a|b", "b", "a"][i % 3]) for i in range(30)])
    piped = load_transfer_dataset(DataArguments(train_file=pipes, label_column="topics", label_separator="|"))
    assert infer_task(piped) == "single_label"  # the default task of other recipes is one class per row
    with pytest.raises(DataError, match=r"pass --task multi_label --label_separator '\|' if"):
        load_transfer_dataset(DataArguments(train_file=pipes, label_column="topics", label_separator="|"), task="auto")
    piped = load_transfer_dataset(
        DataArguments(train_file=pipes, label_column="topics", label_separator="|"), task="multi_label"
    )
    assert label_names_of(piped, DataArguments(train_file=pipes)) == ["a", "b"]


@pytest.mark.parametrize(
    "rows, task, message",
    [
        ([(f"t{i}", "x" if i % 2 else "y") for i in range(20)] + [("u", "z")], "multi_label", r"never seen in train"),
        ([(f"t{i}", "x") for i in range(20)], "multi_label", r"1 distinct label\(s\) \['x'\]"),
    ],
)
def test_bad_multi_label_columns_are_one_clear_error(rows, task, message, tmp_path):
    train = _write_csv(tmp_path / "train.csv", rows[:-1] if "never" in message else rows)
    test = _write_csv(tmp_path / "test.csv", rows[-1:])
    with pytest.raises(DataError, match=message):
        load_transfer_dataset(DataArguments(train_file=train, test_file=test, label_column="topics"), task=task)


def test_a_label_list_is_refused_by_regression_and_single_label_and_null_lists_are_named(tmp_path):
    path = tmp_path / "lists.jsonl"
    with open(path, "w") as f:
        for i in range(20):
            f.write(json.dumps({"text": f"t{i}", "tags": None if i in (4, 9) else [["x"], ["y"]][i % 2]}) + "\n")
    args = DataArguments(train_file=str(path), label_column="tags")
    with pytest.raises(DataError, match=r"holds lists of labels; that is --task multi_label"):
        load_transfer_dataset(args, task="regression")
    with pytest.raises(DataError, match=r"Several labels per row are --task multi_label"):
        load_transfer_dataset(args, task="single_label")
    with pytest.raises(DataError, match=r"2 rows with no label cell \(rows 4, 9"):
        load_transfer_dataset(args, task="multi_label")


# ------------------------------------------------------------------------------------------------ the pieces


def test_metrics_match_scikit_learn_and_thresholds_beat_one_half():
    rng = np.random.default_rng(0)
    truth = rng.random((200, 4)) < np.array([0.5, 0.3, 0.1, 0.05])
    # Label 2's scores are informative but low: its best cut is far below 0.5.
    logits = np.where(truth, 1.0, -1.0) * np.array([2.0, 1.5, 1.0, 0.5]) + rng.normal(0, 1, truth.shape)
    logits[:, 2] -= 2.5
    metrics = compute_multi_label_metrics(logits, truth.astype(float), label_names=["a", "b", "c", "d"])
    predicted = logits >= 0.0  # sigmoid(x) >= 0.5
    assert metrics["micro_f1"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert metrics["f1_c"] == pytest.approx(f1_score(truth[:, 2], predicted[:, 2]))
    assert metrics["map"] == pytest.approx(
        np.mean([average_precision_score(truth[:, k], logits[:, k]) for k in range(4)])
    )
    assert metrics["subset_accuracy"] == pytest.approx((predicted == truth).all(1).mean())
    thresholds = choose_decision_thresholds(logits, truth)
    assert thresholds.own[2] and thresholds.per_label[2] < 0.3  # enough rows: label 2 got its own, lower cut
    tuned = compute_multi_label_metrics(logits, truth, thresholds, ["a", "b", "c", "d"])
    assert tuned["f1_c"] > metrics["f1_c"] + 0.1 and tuned["micro_f1"] >= metrics["micro_f1"]
    few = choose_decision_thresholds(logits[:40], truth[:40])  # label 3 has < 5 positives in 40 rows
    assert not few.own[3] and few.per_label[3] == few.global_threshold
    assert DecisionThresholds.fixed(2).to_dict(["p", "q"])["thresholds"] == {"p": 0.5, "q": 0.5}


def test_one_vs_rest_probe_is_scikit_learns_per_label_logistic_regression():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=gen) * 2.0 + 1.0
    logits = x @ torch.randn(6, 3, generator=gen)
    y = (logits + 0.5 * torch.randn(300, 3, generator=gen) > 0).float()
    l2 = 1e-2
    probe = fit_one_vs_rest_probe(x[:200], y[:200], x[200:], y[200:], l2_grid=[l2], max_iter=500)
    mean, std = standardization(x[:200])
    z_train, z_val = ((x[:200].double() - mean) / std).numpy(), ((x[200:].double() - mean) / std).numpy()
    for k in range(3):  # sklearn: C * sum log-loss + ||w||^2 / 2, i.e. mean log-loss + ||w||^2 / (2 C N)
        reference = LogisticRegression(C=1.0 / (200 * l2), tol=1e-10, max_iter=10000).fit(z_train, y[:200, k].numpy())
        np.testing.assert_allclose(
            probe.logits(x[200:])[:, k].numpy(), reference.decision_function(z_val), rtol=1e-3, atol=1e-3
        )
    assert 0.8 < probe.validation_map <= 1.0 and probe.sweep == {l2: probe.validation_map}


# ------------------------------------------------------------------------------------------------ the recipe

RELOAD = r"""
import json, os, sys, numpy as np, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
from hf_transfer.data import DataArguments, load_transfer_dataset
out, base, train, test = sys.argv[1:5]
rows = load_transfer_dataset(DataArguments(train_file=train, test_file=test, label_column="topics"), task="multi_label")["test"]
texts, names = list(rows["text"]), rows.features["label"].feature.names
truth = np.zeros((len(rows), len(names)), dtype=bool)
for i, labels in enumerate(rows["label"]):
    truth[i, labels] = True
saved = json.load(open(os.path.join(out, "decision_thresholds.json")))
thresholds = np.asarray([saved["thresholds"][n] for n in names])
piped = None
if os.path.isfile(os.path.join(out, "modules.json")):  # a pooled head, in sentence-transformers' format
    from sentence_transformers import SentenceTransformer
    logits = SentenceTransformer(out).encode(texts, convert_to_tensor=True).numpy()
    problem_type = "multi_label_classification"
else:
    if base != "-":
        from peft import PeftModel
        model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=len(names), problem_type="multi_label_classification"), out)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(out)
        assert model.config.decision_thresholds == saved["thresholds"]
        classify = pipeline("text-classification", model=out, top_k=None)
        piped = [{d["label"]: d["score"] for d in row} for row in classify(texts)]
    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        inputs = tokenizer(texts, truncation=True, max_length=128, padding=True, return_tensors="pt")
        logits = model.eval()(**inputs).logits.numpy()
    problem_type = model.config.problem_type
probabilities = 1 / (1 + np.exp(-logits))
predicted = probabilities >= thresholds
tp = (predicted & truth).sum()
micro = 2 * tp / (predicted.sum() + truth.sum())
gap = 0.0
if piped is not None:  # the pipeline reads one text at a time: compare with unpadded single-text logits
    with torch.no_grad():
        single = np.concatenate([model(**tokenizer([t], return_tensors="pt")).logits.numpy() for t in texts])
    gap = float(np.abs(np.asarray([[p[n] for n in names] for p in piped]) - 1 / (1 + np.exp(-single))).max())
print(json.dumps({"micro_f1": float(micro), "problem_type": problem_type, "pipeline_gap": gap}))
"""

STRATEGIES = {
    "linear_probe": [],
    "full": ["--num_train_epochs", "15", "--learning_rate", "1e-3"],
    "lora": ["--num_train_epochs", "15", "--learning_rate", "1e-2", "--head_learning_rate", "1e-2", "--lora_r", "8"],
    # The tiny random BERT's pooler gives near-constant features, so the probe's weights are huge and fine-tuning
    # upsets them (as for regression): mean-pooled tokens are the well-conditioned start (sentence-transformers format).
    "lp_ft": ["--num_train_epochs", "2", "--learning_rate", "1e-4", "--pooling", "mean"],
}


TWO_PROCESSES = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", "2", "--cpu"]


def _train_and_reload(base, strategy, settings, topic_files, out, launcher=None) -> tuple[dict, dict]:
    return finetune_and_reload(
        RELOAD,
        base,
        strategy,
        topic_files,
        out,
        "--label_column",
        "topics",
        "--task",
        "multi_label",
        *settings,
        launcher=launcher,
    )


@pytest.mark.slow  # the second stage (make test-slow)
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_saves_its_thresholds_and_reloads_to_its_reported_f1(strategy, tiny_bert, topic_files, tmp_path):
    """`full` runs in 2 processes: the thresholds come from gathered validation predictions, the scores from gathered
    test predictions, and both must be those of the saved model on all rows."""
    launcher = TWO_PROCESSES if strategy == "full" else None
    results, scores = _train_and_reload(
        tiny_bert, strategy, STRATEGIES[strategy], topic_files, tmp_path / "out", launcher
    )
    assert results["task"] == "multi_label" and results["num_processes"] == (2 if strategy == "full" else 1)
    assert {"test_micro_f1", "test_macro_f1", "test_map", "test_subset_accuracy", "test_f1_sports"} <= set(results)
    assert results["test_micro_f1"] > 0.55 and results["test_map"] > 0.6, results  # chance is about 0.4 / 0.4
    assert scores["micro_f1"] == pytest.approx(results["test_micro_f1"], abs=1e-6), (scores, results)
    assert scores["problem_type"] == "multi_label_classification" and scores["pipeline_gap"] < 1e-5, scores
    card = (tmp_path / "out" / "README.md").read_text()
    assert "multi-label, any of 3 labels" in card and "### F1 per label" in card and "decision_thresholds.json" in card
    assert "type: micro_f1" in card and "name: test_micro_f1" in card


@pytest.mark.slow  # the second stage (make test-slow)
@pytest.mark.parametrize("architecture, strategy", [("roberta", "lora"), ("distilbert", "full"), ("electra", "lp_ft")])
def test_other_text_families_reload_to_their_reported_f1(architecture, strategy, topic_files, tmp_path):
    base = make_tiny(architecture, tmp_path / architecture)
    settings = {**STRATEGIES, "lp_ft": ["--num_train_epochs", "1", "--learning_rate", "1e-5"]}[strategy]
    results, scores = _train_and_reload(base, strategy, settings, topic_files, tmp_path / "out")
    assert scores["micro_f1"] == pytest.approx(results["test_micro_f1"], abs=1e-6), (scores, results)


@pytest.mark.parametrize("family, strategy", [("vit", "full"), ("timm", "linear_probe")])
def test_image_multi_label_from_a_csv_of_paths(family, strategy, tmp_path):
    """Images holding a red and/or a blue square; labels `red`, `blue`, joined by ';'."""
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    base = make_tiny(family, tmp_path / family)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        pixels = np.full((16, 16, 3), 128, dtype=np.uint8)
        labels = [name for name in ("red", "blue") if rng.random() < 0.5]
        if "red" in labels:
            pixels[:8, :8] = (255, 0, 0)
        if "blue" in labels:
            pixels[8:, 8:] = (0, 0, 255)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        rows.append((str(tmp_path / f"{i}.png"), ";".join(labels)))
    train = _write_csv(tmp_path / "train.csv", rows[:44], header=("image_path", "colours"))
    test = _write_csv(tmp_path / "test.csv", rows[44:], header=("image_path", "colours"))
    settings = ["--num_train_epochs", "8", "--learning_rate", "1e-3"] if strategy == "full" else []
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            base,
            "--train_file",
            train,
            "--test_file",
            test,
            "--label_column",
            "colours",
            "--label_separator",
            ";",
            "--task",
            "multi_label",
            "--strategy",
            strategy,
            "--per_device_train_batch_size",
            "8",
            "--save_strategy",
            "no",
            *settings,
            *(["--ignore_mismatched_sizes", "true"] if family == "timm" else []),
            output_dir=tmp_path / "out",
        )
    )
    assert run.results["task"] == "multi_label", run.results
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "out").eval()
    processor = AutoImageProcessor.from_pretrained(tmp_path / "out")
    names = [model.config.id2label[i] for i in range(2)]
    thresholds = np.asarray([model.config.decision_thresholds[n] for n in names])
    with torch.no_grad():
        images = [Image.open(path).convert("RGB") for path, _ in rows[44:]]
        probabilities = torch.sigmoid(model(**processor(images, return_tensors="pt")).logits).numpy()
    truth = np.asarray([[n in labels.split(";") for n in names] for _, labels in rows[44:]])
    predicted = probabilities >= thresholds
    micro = 2 * (predicted & truth).sum() / (predicted.sum() + truth.sum())
    assert micro == pytest.approx(run.results["test_micro_f1"], abs=1e-6)
    if family == "vit":
        assert run.results["test_map"] > 0.8, run.results


@pytest.mark.integration
def test_minilm_probe_on_tweet_entity_types(tmp_path):
    """Real multi-label data: which entity types a WNUT-16 tweet mentions, from its human NER annotation."""
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            "minilm",
            "--dataset_name",
            "twitter_entity_types",
            "--strategy",
            "linear_probe",
            output_dir=tmp_path / "out",
        )
    )
    assert run.results["task"] == "multi_label" and run.results["pooling"] == "mean"
    # Chance mAP is the labels' base rates (2-19%); a probe on frozen sentence embeddings is far above it.
    assert run.results["test_map"] > 0.3 and run.results["test_micro_f1"] > 0.3, run.results
    saved = json.loads((tmp_path / "out" / "decision_thresholds.json").read_text())
    assert len(saved["thresholds"]) == 10 and {"person", "geo-loc", "company"} <= set(saved["thresholds"])
