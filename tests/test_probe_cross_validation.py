"""Few labels, no validation split: the probe chooses its L2 by k-fold cross-validation on train, refits on every
row and reports out-of-fold scores; fine-tuning trains on every row, holding a share out only for a search (then
refitting on all rows) or for what must be chosen on unseen rows (issue: few labels, "use every labelled row")."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_transfer.errors import DataError
from hf_transfer.probing.cross_validation import cross_validate_probe, held_out_rows
from hf_transfer.probing.fitters import fit_logistic, fit_one_vs_rest, fit_ridge
from hf_transfer.probing.logistic import fit_linear_probe
from recipe_runner import assert_ok, run_recipe, write_csv

GRID = [10.0, 1.0, 1e-1, 1e-2]


def _blobs(n, d=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, d, generator=g) * 1.5
    y = torch.arange(n) % classes
    return centers[y] + torch.randn(n, d, generator=g), y


def _logistic(train, validation, grid, rows):
    return fit_logistic(train, validation, num_classes=3, l2_grid=grid, max_iter=300)


def test_l2_is_the_folds_best_mean_and_the_probe_is_refitted_on_every_row():
    x, y = _blobs(24)  # 8 rows per class
    folds = held_out_rows(24, 4, seed=0, classes=y.numpy())
    assert sorted(np.concatenate(folds).tolist()) == list(range(24))
    for rows in folds:  # stratified: two of each class in every fold
        assert np.bincount(y.numpy()[rows], minlength=3).tolist() == [2, 2, 2]

    chosen = cross_validate_probe(_logistic, (x, y), folds, lambda rows: rows, GRID)

    # The choice: the strongest L2 whose mean held-out log-loss is within one standard error of the lowest (the
    # one-standard-error rule); the fold accuracy of a few rows ties across the grid.
    per_fold = []
    for rows in folds:
        kept = np.setdiff1d(np.arange(24), rows)
        per_fold.append(fit_linear_probe(x[kept], y[kept], x[rows], y[rows], 3, GRID, 300))
    common = set.intersection(*(set(p.sweep) for p in per_fold))
    loss = {l2: np.mean([p.sweep_loss[l2] for p in per_fold]) for l2 in common}
    accuracy = {l2: np.mean([p.sweep[l2] for p in per_fold]) for l2 in common}
    best = min(common, key=lambda l2: loss[l2])
    spread = np.std([p.sweep_loss[best] for p in per_fold], ddof=1) / np.sqrt(len(folds))
    assert chosen.l2 == max(l2 for l2 in common if loss[l2] <= loss[best] + spread)
    assert chosen.l2 >= best
    assert chosen.probe.validation_accuracy == pytest.approx(accuracy[chosen.l2])
    assert chosen.probe.validation_loss == pytest.approx(loss[chosen.l2])
    assert chosen.probe.validation_folds == 4
    by_accuracy = cross_validate_probe(_logistic, (x, y), folds, lambda rows: rows, GRID, criterion="score")
    assert by_accuracy.l2 == max(common, key=lambda l2: (accuracy[l2], -loss[l2]))
    by_loss = cross_validate_probe(_logistic, (x, y), folds, lambda rows: rows, GRID, criterion="loss")
    assert by_loss.l2 == best

    # The saved probe saw every row: it is the fit on all 24 rows at that L2, nothing held out.
    everything = fit_linear_probe(x, y, x, y, 3, [chosen.l2], 300)
    torch.testing.assert_close(chosen.probe.weight, everything.weight)
    torch.testing.assert_close(chosen.probe.bias, everything.bias)

    # Each row's out-of-fold logits come from the fold model that never saw it.
    for rows in folds:
        kept = np.setdiff1d(np.arange(24), rows)
        fold = fit_linear_probe(x[kept], y[kept], x[rows], y[rows], 3, [chosen.l2], 300)
        torch.testing.assert_close(chosen.out_of_fold_logits[rows], x[rows] @ fold.weight.T + fold.bias)


def test_multi_label_and_ridge_probes_cross_validate_too():
    x, y = _blobs(30)
    labels = torch.nn.functional.one_hot(y, 3).float()
    labels[::4, 0] = 1.0  # a second label on some rows
    folds = held_out_rows(30, 5, seed=1)
    one_vs_rest = cross_validate_probe(
        lambda t, v, grid, rows: fit_one_vs_rest(t, v, l2_grid=grid, max_iter=300),
        (x, labels),
        folds,
        lambda r: r,
        GRID,
    )
    assert one_vs_rest.out_of_fold_logits.shape == (30, 3) and one_vs_rest.probe.validation_folds == 5
    targets = x[:, 0] * 2.0 + 0.1 * torch.randn(30, generator=torch.Generator().manual_seed(3))
    ridge = cross_validate_probe(
        lambda t, v, grid, rows: fit_ridge(t, v, l2_grid=grid), (x, targets), folds, lambda r: r, GRID
    )
    assert ridge.probe.validation_r2 > 0.9  # out-of-fold R² of an almost linear target
    assert ridge.l2 == min(GRID)


def test_a_class_with_one_row_cannot_be_cross_validated():
    with pytest.raises(DataError, match=r"Class 'positive' has 1 training row.*--validation_file"):
        held_out_rows(5, 5, seed=0, classes=np.array([0, 0, 1, 1, 2]), class_names=["negative", "neutral", "positive"])


def _few_shot_csv(tmp_path, per_class=8):
    from hf_transfer.data import DataArguments, load_transfer_dataset

    data = load_transfer_dataset(DataArguments(dataset_name="tweet_sentiment", train_samples_per_class=per_class))
    names = data["train"].features["label"].names
    train = write_csv(
        tmp_path / "train.csv", [(t, names[c]) for t, c in zip(data["train"]["text"], data["train"]["label"])]
    )
    test_rows = data["test"].select(range(60))
    test = write_csv(tmp_path / "test.csv", [(t, names[c]) for t, c in zip(test_rows["text"], test_rows["label"])])
    return train, test, test_rows


def _few_shot_run(model: str, strategy: str, train, test, out, *flags: str) -> dict:
    """finetune on the few-shot csv, no validation file; its results."""
    command = ("--model_name_or_path", model, "--strategy", strategy, "--train_file", train, "--test_file", test)
    return assert_ok(run_recipe("finetune.py", *command, *flags, output_dir=out)).results


def _test_accuracy_of_reload(out, test_rows) -> float:
    """The saved classifier's test accuracy, loaded the README's way."""
    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    inputs = tokenizer(list(test_rows["text"]), truncation=True, max_length=128, padding=True, return_tensors="pt")
    with torch.no_grad():
        predicted = loaded(**inputs).logits.argmax(-1).numpy()
    return float((predicted == np.asarray(test_rows["label"])).mean())


@pytest.mark.parametrize("architecture", ["bert", "distilbert"])
def test_probe_recipe_keeps_every_shot_and_reports_out_of_fold_validation(architecture, tiny, tmp_path):
    train, test, test_rows = _few_shot_csv(tmp_path)
    out = tmp_path / "out"
    results = _few_shot_run(tiny(architecture), "linear_probe", train, test, out)
    # No held-out shots: 24 rows trained, the same 24 scored out of fold.
    assert results["train_samples"] == results["eval_samples"] == 24
    assert "5-fold cross-validation" in results["validation_source"]
    assert 0.0 <= results["eval_accuracy"] <= 1.0
    card = (out / "README.md").read_text()
    assert "cross-validation on the training rows" in card
    assert json.loads((out / "transfer_run.json").read_text())["validation_source"] == results["validation_source"]
    # The saved model (refitted on all rows) reproduces the reported test accuracy, loaded the README's way.
    assert _test_accuracy_of_reload(out, test_rows) == pytest.approx(results["test_accuracy"])


def test_an_asked_for_held_out_split_is_kept(tiny_bert, tmp_path):
    train, test, _ = _few_shot_csv(tmp_path)
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--strategy",
            "linear_probe",
            "--train_file",
            train,
            "--test_file",
            test,
            "--validation_split_percentage",
            "0.25",
            output_dir=tmp_path / "out",
        )
    )
    assert run.results["train_samples"] == 18 and run.results["eval_samples"] == 6
    assert "validation_source" not in run.results


@pytest.mark.parametrize(("architecture", "strategy"), [("distilbert", "full"), ("roberta", "lp_ft")])
def test_finetuning_without_validation_trains_on_every_row(architecture, strategy, tiny, tmp_path):
    train, test, test_rows = _few_shot_csv(tmp_path)
    out = tmp_path / "out"
    flags = ("--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--eval_strategy", "epoch")
    results = _few_shot_run(tiny(architecture), strategy, train, test, out, *flags)
    assert results["train_samples"] == 24 and "eval_samples" not in results
    assert not [key for key in results if key.startswith("eval_")]  # nothing held out, so no held-out scores
    assert "trained on every labelled row" in results["validation_source"]
    assert "trained on every labelled row" in (out / "README.md").read_text()
    # Three steps of 8 rows: all 24 rows trained (a held-out tenth would have left 21, three steps of 8, 8 and 5).
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 3
    assert _test_accuracy_of_reload(out, test_rows) == pytest.approx(results["test_accuracy"])


def test_a_search_without_validation_holds_out_for_its_trials_then_refits_on_every_row(tiny, tmp_path):
    train, test, test_rows = _few_shot_csv(tmp_path)
    out = tmp_path / "out"
    results = _few_shot_run(tiny("bert"), "full", train, test, out, "--hp_search", "2", "--num_train_epochs", "1")
    assert results["hp_search_trials"] == 2 and 0.0 <= results["hp_search_objective_value"] <= 1.0
    assert results["train_samples"] == 24 and "eval_accuracy" not in results
    assert "2 search trials were scored on a held-out 0.1" in results["validation_source"]
    assert _test_accuracy_of_reload(out, test_rows) == pytest.approx(results["test_accuracy"])


def test_the_validation_plan_holds_rows_out_only_for_what_is_chosen_on_them():
    from hf_transfer.finetuning.validation import plan_validation
    from hf_transfer.tasks import TASKS

    def plan(task="single_label", **given):
        settings = dict(has_validation=False, finetunes=True, hp_search=0, load_best_model_at_end=False)
        return plan_validation(task=TASKS.get(task), fraction=0.1, **{"rows_per_label": 8, **settings, **given})

    assert plan(has_validation=True) == plan(finetunes=False) == plan(has_validation=True, hp_search=4)
    assert not plan(has_validation=True).carve and plan(has_validation=True).source is None
    trains_on_all = plan()
    assert (
        not trains_on_all.carve and not trains_on_all.refit_on_all_rows and "every labelled row" in trains_on_all.source
    )
    searched = plan(hp_search=4)
    assert searched.carve and searched.refit_on_all_rows and "4 search trials" in searched.source
    for kept in (plan("multi_label"), plan("multi_label", hp_search=4), plan(load_best_model_at_end=True)):
        assert kept.carve and not kept.refit_on_all_rows and kept.source is None
    assert not plan("regression").carve and not plan("token_classification").carve
    # Enough rows: a held-out tenth costs little and gives the run its validation scores.
    assert plan(rows_per_label=100) == plan(rows_per_label=500, hp_search=4) == plan(load_best_model_at_end=True)
