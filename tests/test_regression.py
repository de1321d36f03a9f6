"""Regression (`--task regression`): numeric targets found and checked, the ridge probe, heads trained on standardised
targets and saved in raw units, every finetune strategy reloading in a fresh process to the numbers it reported."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from hf_transfer.data import DataArguments, infer_task, load_transfer_dataset
from hf_transfer.errors import ConfigError, DataError
from hf_transfer.finetuning import TransferArguments
from hf_transfer.finetuning.targets import TargetScale, fold_target_scale, standardize_target_head, standardized_mse
from hf_transfer.probing import fit_ridge_probe, standardization
from recipe_runner import assert_ok, finetune_and_reload, run_recipe, write_csv
from tiny_models import make_tiny

WORDS = {"good": 1.0, "bad": -1.0, "great": 2.0, "awful": -2.0, "fine": 0.5, "meh": -0.5, "super": 1.5, "poor": -1.5}


def _write_csv(path, rows, header=("text", "score")):
    return write_csv(path, rows, header)


@pytest.fixture(scope="module")
def score_files(tmp_path_factory):
    """Texts whose score is the mean sentiment of their words (+ noise): learnable from words alone."""
    rng = np.random.default_rng(0)
    names = list(WORDS)
    rows = []
    for _ in range(120):
        words = [names[i] for i in rng.integers(0, len(names), rng.integers(2, 7))]
        rows.append((" ".join(words), round(3.0 + np.mean([WORDS[w] for w in words]) + rng.normal(0, 0.1), 3)))
    root = tmp_path_factory.mktemp("scores")
    return _write_csv(root / "train.csv", rows[:80]), _write_csv(root / "test.csv", rows[80:])


# ------------------------------------------------------------------------------------------------ data


def test_auto_reads_numbers_that_are_not_whole_as_a_regression_target(score_files, tmp_path):
    train, test = score_files
    data = DataArguments(train_file=train, test_file=test, label_column="score")
    splits = load_transfer_dataset(data, cache_dir=str(tmp_path), task="auto")
    assert infer_task(splits) == "regression" and splits["train"].features["label"].dtype == "float32"
    assert set(splits) == {"train", "validation", "test"} and len(splits["validation"]) == 8  # seeded, not stratified
    again = load_transfer_dataset(data, cache_dir=str(tmp_path), task="auto")
    assert again["validation"]["label"] == splits["validation"]["label"]
    whole = _write_csv(tmp_path / "whole.csv", [(f"t{i}", i % 3) for i in range(30)])
    classes = load_transfer_dataset(DataArguments(train_file=whole, label_column="score"), task="auto")
    assert infer_task(classes) == "single_label"  # whole numbers stay classes unless --task regression


@pytest.mark.parametrize(
    "rows, message",
    [
        ([(f"t{i}", "high" if i % 2 else "low") for i in range(20)], r"needs one number per row.*'high', 'low'"),
        ([(f"t{i}", "" if i in (3, 7) else i / 2) for i in range(20)], r"2 rows with no target.*rows 3, 7"),
    ],
)
def test_a_target_that_is_not_a_number_is_one_clear_error(rows, message, tmp_path):
    path = _write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError, match=message):
        load_transfer_dataset(DataArguments(train_file=path, label_column="score"), task="regression")


def test_task_is_checked_and_domain_adaptation_refuses_regression():
    from hf_transfer.adaptation import check_transfer_strategy

    with pytest.raises(
        ConfigError,
        match="--task 'ordinal' is not one of auto, single_label, multi_label, regression, token_classification",
    ):
        TransferArguments(task="ordinal")
    with pytest.raises(ConfigError, match="--task regression: domain adaptation adapts classifiers"):
        check_transfer_strategy("full", "regression")


# ------------------------------------------------------------------------------------------------ the pieces


def test_ridge_probe_solves_the_standardised_ridge_problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=gen) * torch.tensor([1.0, 3.0, 0.5, 2.0, 1.0]) + 4.0
    y = x @ torch.tensor([0.5, -1.0, 2.0, 0.0, 0.3]) + 0.1 * torch.randn(60, generator=gen) + 10.0
    probe = fit_ridge_probe(x[:40], y[:40], x[40:], y[40:], l2_grid=[0.01])
    mean, std = standardization(x[:40])
    z = ((x[:40].double() - mean) / std).numpy()
    z_mean = z.mean(0)
    t = (y[:40].double().numpy() - y[:40].double().numpy().mean()) / y[:40].double().numpy().std()
    w = np.linalg.solve((z - z_mean).T @ (z - z_mean) + 40 * 0.01 * np.eye(5), (z - z_mean).T @ t)
    expected = (((x[40:].double() - mean) / std).numpy() - z_mean) @ w * y[:40].double().numpy().std()
    expected += y[:40].double().numpy().mean()
    np.testing.assert_allclose(probe.predict(x[40:]).numpy(), expected, rtol=1e-4, atol=1e-4)
    assert probe.validation_r2 > 0.9 and probe.sweep == {0.01: probe.validation_r2}


def test_target_head_trains_standardised_and_folds_into_a_plain_raw_unit_linear():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.classifier = nn.Linear(4, 1)
    x = torch.randn(8, 4)
    before = model.classifier(x)
    scale = TargetScale(mean=50.0, std=10.0)
    standardize_target_head(model, scale, new_head=False)  # a probe's head: the function is kept
    torch.testing.assert_close(model.classifier(x), before)
    original = model.classifier.parametrizations.weight.original
    torch.testing.assert_close(original, model.classifier.weight / 10.0)  # what the optimiser moves
    fold_target_scale(model)
    assert type(model.classifier) is nn.Linear and set(dict(model.named_parameters())) == {
        "classifier.weight",
        "classifier.bias",
    }
    torch.testing.assert_close(model.classifier(x), before)
    fresh = nn.Sequential()
    fresh.classifier = nn.Linear(4, 1)
    standardize_target_head(fresh, scale, new_head=True)
    torch.testing.assert_close(fresh.classifier.bias, torch.tensor([50.0]))  # a new head predicts the mean
    targets = torch.tensor([40.0, 60.0])
    assert float(standardized_mse(torch.tensor([[50.0], [50.0]]), targets, scale)) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ the recipe

RELOAD = r"""
import json, os, sys, numpy as np, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
from hf_transfer.data import DataArguments, load_transfer_dataset
out, base, train, test = sys.argv[1:5]
rows = load_transfer_dataset(DataArguments(train_file=train, test_file=test, label_column="score"), task="auto")["test"]
texts, targets = list(rows["text"]), np.asarray(list(rows["label"]))
if os.path.isfile(os.path.join(out, "modules.json")):  # a pooled head, in sentence-transformers' format
    from sentence_transformers import SentenceTransformer
    predictions = SentenceTransformer(out).encode(texts)[:, 0]
    print(json.dumps({"rmse": float(np.sqrt(((predictions - targets) ** 2).mean())), "problem_type": "regression",
                      "pipeline_matches": True}))
    sys.exit(0)
if base != "-":
    from peft import PeftModel
    model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, problem_type="regression"), out)
else:
    model = AutoModelForSequenceClassification.from_pretrained(out)
tokenizer = AutoTokenizer.from_pretrained(out)
with torch.no_grad():
    inputs = tokenizer(texts, truncation=True, max_length=128, padding=True, return_tensors="pt")
    predictions = model.eval()(**inputs).logits[:, 0].numpy()
matches = True
if base == "-":  # the pipeline runs one unpadded text at a time: compare it with the model on the same inputs,
    # since padding moves the features by float noise that an ill-conditioned probe amplifies past any fixed atol
    piped = [p["score"] for p in pipeline("text-classification", model=out, function_to_apply="none")(texts)]
    with torch.no_grad():
        alone = [float(model(**tokenizer(text, truncation=True, max_length=128, return_tensors="pt")).logits[0, 0]) for text in texts]
    matches = bool(np.allclose(piped, alone, rtol=1e-5, atol=1e-5))
print(json.dumps({"rmse": float(np.sqrt(((predictions - targets) ** 2).mean())),
                  "problem_type": model.config.problem_type, "pipeline_matches": matches}))
"""

STRATEGIES = {
    "linear_probe": [],
    "full": ["--num_train_epochs", "15", "--learning_rate", "1e-3", "--head_learning_rate", "1e-2"],
    "lora": ["--num_train_epochs", "15", "--learning_rate", "3e-3", "--head_learning_rate", "1e-2", "--lora_r", "8"],
    # The tiny random BERT's pooler outputs nearly constant features, so a probe on them has huge raw-unit weights
    # that any fine-tuning step upsets; its mean-pooled tokens are a well-conditioned start (sentence-transformers
    # format).
    "lp_ft": ["--num_train_epochs", "1", "--learning_rate", "1e-5", "--pooling", "mean"],
}


def _train_and_reload(base, strategy, settings, score_files, out) -> tuple[dict, dict]:
    return finetune_and_reload(RELOAD, base, strategy, score_files, out, "--label_column", "score", *settings)


@pytest.mark.slow  # the second stage (make test-slow)
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_predicts_raw_units_and_reloads_to_its_reported_error(
    strategy, tiny_bert, score_files, tmp_path
):
    results, scores = _train_and_reload(tiny_bert, strategy, STRATEGIES[strategy], score_files, tmp_path / "out")
    assert results["task"] == "regression" and {"test_rmse", "test_mae", "test_r2", "test_spearman"} <= set(results)
    # Far better than predicting a constant (the targets' std is about 0.7) for every strategy that fits the head.
    assert results["test_r2"] > 0.3, results
    assert scores["rmse"] == pytest.approx(results["test_rmse"], abs=1e-4), (scores, results)
    assert scores["problem_type"] == "regression" and scores["pipeline_matches"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert "test_r2" in card and "regression of `score`" in card


@pytest.mark.slow  # the second stage (make test-slow)
@pytest.mark.parametrize("architecture, strategy", [("roberta", "lora"), ("distilbert", "full"), ("electra", "lp_ft")])
def test_other_text_families_reload_to_their_reported_error(architecture, strategy, score_files, tmp_path):
    """Heads that hold more than one Linear (RoBERTa's classifier.dense + out_proj, DistilBERT's pre_classifier):
    the standardised head is the final Linear, also inside peft's trained copy."""
    base = make_tiny(architecture, tmp_path / architecture)
    settings = {**STRATEGIES, "lp_ft": ["--num_train_epochs", "1", "--learning_rate", "1e-5"]}[strategy]
    results, scores = _train_and_reload(base, strategy, settings, score_files, tmp_path / "out")
    assert scores["rmse"] == pytest.approx(results["test_rmse"], abs=1e-4), (scores, results)


@pytest.mark.parametrize("family", ["vit", "timm"])
def test_image_regression_from_a_csv_of_paths(family, tmp_path):
    from PIL import Image

    base = make_tiny(family, tmp_path / family)

    rng = np.random.default_rng(0)
    rows = []
    for i in range(48):
        brightness = float(rng.uniform(0.1, 0.9))
        pixels = np.clip(rng.normal(brightness * 255, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        rows.append((str(tmp_path / f"{i}.png"), round(brightness, 4)))
    train = _write_csv(tmp_path / "train.csv", rows[:36], header=("image_path", "brightness"))
    test = _write_csv(tmp_path / "test.csv", rows[36:], header=("image_path", "brightness"))
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
            "brightness",
            "--strategy",
            "full",
            "--num_train_epochs",
            "5",
            "--learning_rate",
            "1e-3",
            "--per_device_train_batch_size",
            "8",
            "--save_strategy",
            "no",
            *(["--ignore_mismatched_sizes", "true"] if family == "timm" else []),  # timm ships an ImageNet-style head
            output_dir=tmp_path / "out",
        )
    )
    assert run.results["task"] == "regression", run.results
    if family == "vit":  # the tiny random EfficientNet (batch norms, 36 images) barely moves off the mean in 5 epochs
        assert run.results["test_r2"] > 0.5, run.results
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(tmp_path / "out").eval()
    processor = AutoImageProcessor.from_pretrained(tmp_path / "out")
    images = [Image.open(path).convert("RGB") for path, _ in rows[36:]]
    with torch.no_grad():
        predictions = model(**processor(images, return_tensors="pt")).logits[:, 0].numpy()
    rmse = float(np.sqrt(((predictions - np.asarray([t for _, t in rows[36:]])) ** 2).mean()))
    assert rmse == pytest.approx(run.results["test_rmse"], abs=1e-4)


@pytest.mark.integration
def test_minilm_probe_on_drug_review_usefulness(tmp_path):
    """A real target: log(1 + how many readers found a drug review useful), from the review text (measured test
    R² 0.19, Spearman 0.51: informative, far from determined)."""
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            "minilm",
            "--dataset_name",
            "drug_reviews_usefulness",
            "--strategy",
            "linear_probe",
            output_dir=tmp_path / "out",
        )
    )
    assert run.results["task"] == "regression" and run.results["pooling"] == "mean"
    assert run.results["test_r2"] > 0.1 and run.results["test_spearman"] > 0.35, run.results


# ------------------------------------------------------------------------------------------------ several targets


def _write_target_lists(path, n=120, seed=0, broken=None):
    rng = np.random.default_rng(seed)
    names = list(WORDS)
    with open(path, "w") as f:
        for i in range(n):
            words = [names[j] for j in rng.integers(0, len(names), rng.integers(2, 6))]
            mood = float(np.mean([WORDS[w] for w in words]))
            targets = [round(3.0 + mood + rng.normal(0, 0.1), 3), round(10.0 - 2.0 * mood + rng.normal(0, 0.2), 3)]
            if broken is not None and i in broken[0]:
                targets = broken[1](targets)
            f.write(json.dumps({"text": " ".join(words), "scores": targets}) + "\n")
    return str(path)


def test_mosaic_counts_are_a_derived_image_regression_of_the_multi_label_mosaics(tmp_path):
    """The same mosaics as `fashion_mnist_mosaics`: each counts at least as many items as it has distinct classes."""
    counts = load_transfer_dataset(
        DataArguments(dataset_name="fashion_mnist_mosaic_counts", max_eval_samples=50), str(tmp_path), task="auto"
    )
    classes = load_transfer_dataset(
        DataArguments(dataset_name="fashion_mnist_mosaics", max_eval_samples=50), str(tmp_path), task="auto"
    )
    assert infer_task(counts) == "regression" and infer_task(classes) == "multi_label"
    items, names = np.asarray(counts["test"]["label"]), classes["test"]["label"]
    assert set(np.unique(items)) <= {1.0, 2.0, 3.0, 4.0} and len(np.unique(items)) > 1
    assert all(n >= len(c) for n, c in zip(items, names))
    first = (np.asarray(counts["test"][0]["image"]), np.asarray(classes["test"][0]["image"]))
    np.testing.assert_array_equal(*first)


def test_a_list_of_numbers_is_several_targets_checked_row_by_row(tmp_path):
    from hf_transfer.data import label_names_of

    path = _write_target_lists(tmp_path / "t.jsonl")
    data = DataArguments(train_file=path, label_column="scores")
    splits = load_transfer_dataset(data, task="auto")
    assert infer_task(splits) == "regression" and label_names_of(splits, data) == ["scores_0", "scores_1"]
    ragged = _write_target_lists(tmp_path / "r.jsonl", broken=([3, 8], lambda t: t[:1]))
    with pytest.raises(DataError, match=r"same number of targets \(2 in the first row.*rows 3, 8"):
        load_transfer_dataset(DataArguments(train_file=ragged, label_column="scores"), task="auto")
    missing = _write_target_lists(tmp_path / "m.jsonl", broken=([5], lambda t: [t[0], None]))
    with pytest.raises(DataError, match=r"1 rows with a missing, NaN or infinite target \(rows 5"):
        load_transfer_dataset(DataArguments(train_file=missing, label_column="scores"), task="auto")


def test_ridge_and_target_scale_treat_each_target_on_its_own():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(80, 5, generator=gen)
    y = torch.stack([x @ torch.randn(5, generator=gen) + 3.0, 100.0 * (x @ torch.randn(5, generator=gen))], 1)
    both = fit_ridge_probe(x[:60], y[:60], x[60:], y[60:], l2_grid=[0.01])
    for k in range(2):
        one = fit_ridge_probe(x[:60], y[:60, k], x[60:], y[60:, k], l2_grid=[0.01])
        torch.testing.assert_close(both.predict(x[60:])[:, k], one.predict(x[60:]), rtol=1e-4, atol=1e-3)
    scale = TargetScale.of(y.numpy())
    assert scale.std[1] > 20 * scale.std[0]
    model = nn.Sequential()
    model.classifier = nn.Linear(5, 2)
    before = model.classifier(x)
    standardize_target_head(model, scale, new_head=False)
    torch.testing.assert_close(model.classifier(x), before)
    assert float(standardized_mse(y.mean(0).expand_as(y), y, scale)) == pytest.approx(1.0, rel=1e-4)
    fold_target_scale(model)
    torch.testing.assert_close(model.classifier(x), before)


def test_several_targets_train_and_reload_to_the_reported_error(tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train = _write_target_lists(tmp_path / "train.jsonl", n=100)
    test = _write_target_lists(tmp_path / "test.jsonl", n=40, seed=1)
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--train_file",
            train,
            "--test_file",
            test,
            "--label_column",
            "scores",
            "--strategy",
            "full",
            "--num_train_epochs",
            "15",
            "--learning_rate",
            "1e-3",
            "--head_learning_rate",
            "1e-2",
            "--per_device_train_batch_size",
            "8",
            "--save_strategy",
            "no",
            output_dir=tmp_path / "out",
        )
    )
    results = run.results
    assert results["test_r2_scores_0"] > 0.3 and results["test_r2_scores_1"] > 0.3, results
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    rows = [json.loads(line) for line in open(test)]
    with torch.no_grad():
        inputs = tokenizer([r["text"] for r in rows], padding=True, return_tensors="pt")
        predictions = model(**inputs).logits.numpy()  # raw units, both targets
    errors = np.sqrt(((predictions - np.asarray([r["scores"] for r in rows])) ** 2).mean(0))
    assert errors == pytest.approx([results["test_rmse_scores_0"], results["test_rmse_scores_1"]], abs=1e-4)
    assert results["test_rmse"] == pytest.approx(errors.mean(), abs=1e-4)
