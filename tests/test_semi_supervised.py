"""Learning from unlabelled rows: the probe's self-training loop on features with a hand-checkable outcome, FixMatch's
views and loss, and finetune with an unlabelled pool on tiny models of several families, single- and multi-label, the
saved model reloaded in a fresh process to its reported scores; bad input stops with one line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from hf_transfer.probing.logistic import fit_linear_probe
from hf_transfer.probing.one_vs_rest import fit_one_vs_rest_probe
from hf_transfer.pseudo_labels import ClassThresholds
from hf_transfer.semi_supervised import SEMI_SUPERVISED_METHODS, self_train_probe
from hf_transfer.semi_supervised.self_training import align_distribution, balance_to_prior, probe_probabilities
from recipe_runner import assert_ok, run_recipe, write_csv

# ------------------------------------------------------------------------------------------------ the probe loop


def _clusters(rows_per_class: int, seed: int = 0, dims: int = 8, spread: float = 1.0):
    """Two Gaussian clusters at -2 and +2 on the first axis (noise on every axis)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, spread, size=(2 * rows_per_class, dims))
    y = np.repeat([0, 1], rows_per_class)
    x[:, 0] += np.where(y == 1, 2.0, -2.0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def _fit(train, l2_grid=(1.0,)):
    return fit_linear_probe(*train, *train, 2, l2_grid, 200)


def test_two_labelled_rows_pseudo_label_two_clusters_and_the_refit_probe_is_better():
    pool_x, pool_y = _clusters(100, seed=1)
    test_x, test_y = _clusters(500, seed=2)
    # One labelled row per class, on the noisy axes mostly: the labelled-only probe leans on noise.
    labelled = (torch.tensor([[-2.0, 3.0, -3.0, 0, 0, 0, 0, 0], [2.0, -3.0, 3.0, 0, 0, 0, 0, 0]]), torch.tensor([0, 1]))
    probe = _fit(labelled)
    before = float((probe.predict(test_x) == test_y).float().mean())
    thresholds = ClassThresholds(2, len(pool_x), threshold=0.95, min_threshold=0.6)
    refit = lambda split: _fit(split, [probe.l2])  # noqa: E731 - the L2 chosen on the labelled rows
    trained, report = self_train_probe(probe, refit, labelled, pool_x, thresholds, rounds=3, hidden_labels=pool_y)
    after = float((trained.predict(test_x) == test_y).float().mean())
    assert report.unlabelled_rows == 200 and len(report.pseudo_labelled) == 3 and report.trained_on > 100
    assert min(report.pseudo_label_accuracy) > 0.95  # the clusters are pseudo-labelled correctly...
    assert after > before + 0.05 and after > 0.88  # ...and the refit probe is better than the labelled-only one
    assert trained.l2 == probe.l2
    metrics = report.metrics()
    assert metrics["semi_supervised_unlabelled_samples"] == 200
    assert metrics["semi_supervised_pseudo_labelled_samples"] == report.trained_on


def test_without_alignment_or_balance_one_class_takes_the_pool():
    pool_x, pool_y = _clusters(100, seed=1)
    labelled = (torch.tensor([[-2.0, 3.0, -3.0, 0, 0, 0, 0, 0], [2.0, -3.0, 3.0, 0, 0, 0, 0, 0]]), torch.tensor([0, 1]))
    probe = _fit(labelled)
    refit = lambda split: _fit(split, [probe.l2])  # noqa: E731
    accuracy = {}
    for align, balance in ((False, False), (True, False), (False, True), (True, True)):
        thresholds = ClassThresholds(2, len(pool_x), threshold=0.95, min_threshold=0.6)
        _, report = self_train_probe(
            probe, refit, labelled, pool_x, thresholds, 6, hidden_labels=pool_y, align=align, balance=balance
        )
        accuracy[align, balance] = report.pseudo_label_accuracy
    assert accuracy[False, False][-1] < 0.6  # every row pseudo-labelled as one class
    assert all(min(accuracy[key]) > 0.95 for key in ((True, False), (False, True), (True, True))), accuracy


def test_distribution_alignment_by_hand():
    probabilities = torch.tensor([[0.9, 0.1], [0.7, 0.3]])
    aligned = align_distribution(probabilities, torch.tensor([0.5, 0.5]))
    # mean [0.8, 0.2]: rows scaled by [0.625, 2.5] -> [0.5625, 0.25] and [0.4375, 0.75], then normalised.
    expected = [0.5625 / 0.8125, 0.25 / 0.8125, 0.4375 / 1.1875, 0.75 / 1.1875]
    assert aligned.flatten().tolist() == pytest.approx(expected)


def test_class_balanced_selection_by_hand():
    kept = torch.tensor([True, True, True, True, True, False, True])
    targets = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    confidence = torch.tensor([0.9, 0.8, 0.99, 0.7, 0.9, 0.99, 0.8])
    # Prior 1/2, 1/2: class 1 has 2 passing rows, so class 0 keeps its 2 most confident (rows 2 and 0).
    balanced = balance_to_prior(kept, targets, confidence, torch.tensor([0.5, 0.5]))
    assert balanced.nonzero().flatten().tolist() == [0, 2, 4, 6]
    # Prior 2/3, 1/3: class 0 may keep twice as many as class 1.
    balanced = balance_to_prior(kept, targets, confidence, torch.tensor([2 / 3, 1 / 3]))
    assert balanced.nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 6]
    # A class with no passing row: nothing is kept.
    assert not balance_to_prior(kept & (targets == 0), targets, confidence, torch.tensor([0.5, 0.5])).any()


def test_nothing_confident_keeps_the_labelled_probe_and_says_so():
    labelled = _clusters(2)
    probe = _fit(labelled, [1e4])  # so strong a penalty that every probability is near 1/2
    pool = _clusters(20, seed=3)[0]
    calls = []
    kept, report = self_train_probe(
        probe, lambda split: calls.append(split), labelled, pool, ClassThresholds(2, 40, 0.95, min_threshold=0.9), 3
    )
    assert kept is probe and calls == [] and report.pseudo_labelled == [0] and report.trained_on == 0


def test_the_loop_stops_once_the_pseudo_labels_repeat():
    labelled, pool = _clusters(5), _clusters(50, seed=4)[0]
    probe = _fit(labelled)
    fits = []

    def refit(split):
        fits.append(len(split[0]))
        return probe  # the same probe: the same pseudo-labels next round

    _, report = self_train_probe(probe, refit, labelled, pool, ClassThresholds(2, 100, 0.95, min_threshold=0.5), 10)
    assert len(fits) == 1 and len(report.pseudo_labelled) == 2


def test_multi_label_rows_join_when_every_label_is_confident():
    x = torch.tensor([[3.0, -3.0], [-3.0, 3.0], [3.0, 3.0], [-3.0, -3.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    probe = fit_one_vs_rest_probe(x, y, x, y, [0.01], 200)
    pool = torch.tensor([[3.0, -3.0], [3.0, 0.0], [-3.0, 3.0]])  # the middle row's second label is a coin toss
    probabilities = probe_probabilities(probe, pool, multi_label=True)
    assert probabilities[1, 1] == pytest.approx(0.5, abs=0.25)
    seen = []

    def refit(split):
        seen.append(split)
        return probe

    thresholds = ClassThresholds(2, 3, threshold=0.9, multi_label=True, min_threshold=0.8)
    self_train_probe(probe, refit, (x, y), pool, thresholds, 1)
    features, labels = seen[0]
    assert len(features) == 4 + 2 and labels[4:].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_every_strategy_names_a_registered_method():
    from hf_transfer.finetuning.strategies import STRATEGIES

    for name in STRATEGIES:
        strategy = STRATEGIES.get(name)
        method = SEMI_SUPERVISED_METHODS.get(strategy.semi_supervised)
        assert method.trains_probe == (strategy.probes and not strategy.finetunes), strategy.name
        assert method.implementation.resolve() is not None


# ------------------------------------------------------------------------------------------------ FixMatch's pieces


def test_the_consistency_loss_counts_kept_rows_over_the_whole_batch():
    from hf_transfer.pseudo_labels import PseudoLabels
    from hf_transfer.semi_supervised.loss import ConsistencyLoss

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    pseudo = PseudoLabels(torch.tensor([0, 0, 1]), torch.tensor([True, True, False]), torch.tensor([0.9, 0.9]))
    expected = (torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log1p(torch.exp(torch.tensor(2.0)))) / 3
    assert float(ConsistencyLoss()(logits, pseudo)) == pytest.approx(float(expected))
    nothing = PseudoLabels(torch.tensor([0, 0, 1]), torch.zeros(3, dtype=torch.bool), torch.tensor([0.9, 0.9]))
    assert float(ConsistencyLoss()(logits, nothing)) == 0.0
    # Multi-label: only the confident (row, label) pairs count.
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    mask = torch.tensor([[True, False], [False, False], [False, False]])
    loss = ConsistencyLoss(multi_label=True)(logits, PseudoLabels(targets, mask, torch.tensor([0.9, 0.9])))
    assert float(loss) == pytest.approx(float(torch.log1p(torch.exp(torch.tensor(-2.0)))) / 6)


class _Tokenizer:
    def __init__(self, mask_token_id):
        self.mask_token_id = mask_token_id
        self.all_special_ids = [0, 1, 2] + ([mask_token_id] if mask_token_id is not None else [])


def test_token_masking_spares_special_tokens_and_padding():
    from hf_transfer.semi_supervised import TokenMasking

    ids = torch.tensor([[1] + list(range(10, 60)) + [2, 0, 0]])  # [CLS] 50 words [SEP] [PAD] [PAD]
    attention = (ids != 0).long()
    masked = TokenMasking(_Tokenizer(3), 0.5, torch.Generator().manual_seed(0))(
        {"input_ids": ids, "attention_mask": attention}
    )
    changed = masked["input_ids"] != ids
    assert (masked["input_ids"][changed] == 3).all() and 10 < int(changed.sum()) < 40
    assert not changed[0, [0, 51, 52, 53]].any()  # [CLS], [SEP] and the padding stay
    # Without a mask token the chosen tokens leave attention instead (token dropout).
    dropped = TokenMasking(_Tokenizer(None), 0.5, torch.Generator().manual_seed(0))(
        {"input_ids": ids, "attention_mask": attention}
    )
    assert torch.equal(dropped["input_ids"], ids)
    assert torch.equal(dropped["attention_mask"] == 0, changed | (attention == 0))


# ------------------------------------------------------------------------------------------------ the recipe

TOPICS = {"sports": ["goal", "match", "team"], "food": ["pizza", "bread", "soup"], "music": ["song", "band", "drum"]}


def _topic_rows(count: int, seed: int, multi_label: bool = False) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        chosen = [list(TOPICS)[i % 3]] + ([list(TOPICS)[(i + 1) % 3]] if multi_label and i % 4 == 0 else [])
        words = [str(rng.choice(TOPICS[t])) for t in chosen] + [str(w) for w in rng.choice(["the", "a", "we"], 3)]
        rows.append((" ".join(words), ",".join(chosen)))
    return rows


def _topic_files(tmp_path, multi_label: bool = False) -> dict[str, str]:
    """Labelled train / validation files and an unlabelled file (a `sentence` column only)."""
    files = {
        "train": write_csv(tmp_path / "train.csv", _topic_rows(12, 0, multi_label)),
        "validation": write_csv(tmp_path / "validation.csv", _topic_rows(18, 1, multi_label)),
    }
    pool = [(text,) for text, _ in _topic_rows(60, 2)]
    files["unlabelled"] = write_csv(tmp_path / "pool.csv", pool, header=("sentence",))
    return files


def _reload_scores(tmp_path, output_dir, strategy: str, modality: str, data: dict) -> dict:
    """The validation scores of the saved model reloaded the README's way in a fresh interpreter
    (`tests/reload_check.py`)."""
    from pathlib import Path

    spec = tmp_path / "reload.json"
    run = {"output_dir": str(output_dir), "base_model": None, "strategy": strategy, "modality": modality, "data": data}
    spec.write_text(json.dumps([run]))
    checker = Path(__file__).resolve().parent / "reload_check.py"
    proc = subprocess.run([sys.executable, str(checker), str(spec)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])[0]


def test_text_probe_self_trains_on_an_unlabelled_file_and_reloads_to_its_score(tiny_bert, tmp_path):
    files = _topic_files(tmp_path)
    out = tmp_path / "out"
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path", tiny_bert,
            "--strategy", "linear_probe",
            "--train_file", files["train"],
            "--validation_file", files["validation"],
            "--unlabelled_file", files["unlabelled"],
            "--pseudo_label_min_threshold", "0.4",
            output_dir=out,
        )
    )  # fmt: skip
    results = run.results
    assert results["semi_supervised_method"] == "self_training"
    assert results["semi_supervised_unlabelled_samples"] == 60 and results["train_samples"] == 12
    assert 1 <= results["semi_supervised_rounds"] <= 3
    assert len(results["semi_supervised_pseudo_labelled_per_round"]) == results["semi_supervised_rounds"]
    assert 0 <= results["semi_supervised_pseudo_labelled_samples"] <= 60
    assert len(results["semi_supervised_thresholds"]) == 3
    assert "semi_supervised_pseudo_label_accuracy" not in results  # a file's rows have no hidden labels
    reloaded = _reload_scores(
        tmp_path,
        out,
        "probe",
        "text",
        {"train_file": files["train"], "validation_file": files["validation"]},
    )
    assert reloaded["model"]["accuracy"] == pytest.approx(results["eval_accuracy"])
    card = (out / "README.md").read_text()
    assert "### Unlabelled rows" in card and "60 rows from --unlabelled_file" in card
    assert json.loads((out / "transfer_run.json").read_text())["semi_supervised"]["unlabelled_samples"] == 60


def test_image_fixmatch_on_a_share_of_train_reloads_to_its_score(tiny_vit, tmp_path):
    out = tmp_path / "out"
    data = {"dataset_name": "digits", "max_eval_samples": 30}
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path", tiny_vit,
            "--strategy", "full",
            "--dataset_name", "digits",
            "--max_eval_samples", "30",
            "--unlabelled_split_percentage", "0.5",
            "--max_unlabelled_samples", "40",
            "--train_samples_per_class", "2",
            "--pseudo_label_threshold", "0.5",
            "--pseudo_label_min_threshold", "0.05",
            "--num_train_epochs", "1",
            "--per_device_train_batch_size", "10",
            "--save_strategy", "no",
            output_dir=out,
        )
    )  # fmt: skip
    results = run.results
    assert results["semi_supervised_method"] == "fixmatch" and results["train_samples"] == 20
    assert results["semi_supervised_unlabelled_samples"] == 40
    # 2 steps of 10 labelled rows, each with 2 x 10 pool rows; the low threshold keeps some of them.
    assert results["semi_supervised_unlabelled_rows_seen"] == 40
    assert results["semi_supervised_pseudo_labelled_samples"] > 0
    assert 0 <= results["semi_supervised_pseudo_label_accuracy"] <= 1  # the hidden labels score them
    assert "RandAugment" in results["semi_supervised_views"] or "rand" in results["semi_supervised_views"]
    reloaded = _reload_scores(tmp_path, out, "full", "vision", data)
    assert reloaded["model"]["accuracy"] == pytest.approx(results["eval_accuracy"])
    assert "FixMatch: weight 1.0" in (out / "README.md").read_text()


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_multi_label_text_fixmatch_trains_with_label_wise_pseudo_labels(strategy, tiny, tmp_path):
    files = _topic_files(tmp_path, multi_label=True)
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path", tiny("distilbert"),
            "--strategy", strategy,
            "--task", "multi_label",
            "--train_file", files["train"],
            "--validation_file", files["validation"],
            "--unlabelled_file", files["unlabelled"],
            "--pseudo_label_threshold", "0.6",
            "--pseudo_label_min_threshold", "0.5",
            "--num_train_epochs", "2",
            "--per_device_train_batch_size", "6",
            "--save_strategy", "no",
            output_dir=tmp_path / "out",
        )
    )  # fmt: skip
    results = run.results
    assert results["task"] == "multi_label" and "eval_micro_f1" in results
    assert results["semi_supervised_unlabelled_rows_seen"] == 4 * 12  # 4 steps of 2 x 6 pool rows
    assert len(results["semi_supervised_thresholds"]) == 3 and "mask token" in results["semi_supervised_views"]


def test_multi_label_probe_self_training_on_timm_features(tiny, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):  # red, green, both: a colour per label
        labels = [["red"], ["green"], ["red", "green"]][i % 3]
        pixels = rng.integers(0, 40, size=(32, 32, 3), dtype=np.uint8)
        for label in labels:
            pixels[..., 0 if label == "red" else 1] += 200
        path = tmp_path / f"{i}.png"
        Image.fromarray(pixels).save(path)
        rows.append((str(path), ",".join(labels)))
    train = write_csv(tmp_path / "train.csv", rows[:15], header=("image", "label"))
    validation = write_csv(tmp_path / "validation.csv", rows[15:24], header=("image", "label"))
    pool = write_csv(tmp_path / "pool.csv", [(path,) for path, _ in rows[24:]], header=("image",))
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path", tiny("timm"),
            "--ignore_mismatched_sizes", "true",
            "--strategy", "linear_probe",
            "--task", "multi_label",
            "--train_file", train,
            "--validation_file", validation,
            "--unlabelled_file", pool,
            "--pseudo_label_threshold", "0.6",
            "--pseudo_label_min_threshold", "0.5",
            output_dir=tmp_path / "out",
        )
    )  # fmt: skip
    results = run.results
    assert results["semi_supervised_method"] == "self_training" and results["semi_supervised_unlabelled_samples"] == 16
    assert len(results["semi_supervised_thresholds"]) == 2 and "eval_micro_f1" in results


def test_vit_probe_self_trains_on_an_image_folder(tiny_vit, tmp_path):
    from hf_transfer.data import DataArguments, load_transfer_dataset

    folder = tmp_path / "pool" / "any_name"
    folder.mkdir(parents=True)
    digits = load_transfer_dataset(DataArguments(dataset_name="digits"))
    for i, image in enumerate(digits["test"]["image"][-12:]):  # test rows the run does not score (it reads 20)
        image.convert("RGB").save(folder / f"{i}.png")
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path", tiny_vit,
            "--strategy", "linear_probe",
            "--dataset_name", "digits",
            "--train_samples_per_class", "3",
            "--max_eval_samples", "20",
            "--unlabelled_dir", str(tmp_path / "pool"),
            "--pseudo_label_min_threshold", "0.1",
            "--balance_pseudo_labels", "false",  # 12 pool images cannot hold every one of 10 classes
            output_dir=tmp_path / "out",
        )
    )  # fmt: skip
    results = run.results
    assert (
        results["semi_supervised_unlabelled_samples"] == 12 and results["semi_supervised_source"] == "--unlabelled_dir"
    )
    assert results["semi_supervised_pseudo_labelled_per_round"][0] > 0  # a floor of 0.1 lets ten classes in
    assert results["semi_supervised_balanced"] is False


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--task", "regression", "--strategy", "linear_probe"], "regression rows have none"),
        (["--unlabelled_split_percentage", "0.5"], "Give one unlabelled pool"),
        (["--strategy", "full", "--hp_search", "2"], "--hp_search trials train on the labelled rows only"),
        (["--text_column", "missing"], "'missing'"),
        (["--unlabelled_dir", "/nonexistent"], "Give one unlabelled pool"),
    ],
)
def test_bad_input_stops_with_one_line(flags, message, tiny_bert, tmp_path):
    rows = [(f"word{i % 3} text", str(i % 3)) for i in range(12)]
    train = write_csv(tmp_path / "train.csv", rows)
    pool = write_csv(tmp_path / "pool.csv", [("a text",), ("another",)], header=("text",))
    run = run_recipe(
        "finetune.py",
        "--model_name_or_path", tiny_bert,
        "--train_file", train,
        "--unlabelled_file", pool,
        *flags,
        output_dir=tmp_path / "out",
    )  # fmt: skip
    assert run.returncode == 2, run.output[-3000:]
    errors = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in run.output, errors
