"""`hf-transfer compare --selection ... --unlabelled ...`: the arms' cells, the rows each cell is given (a
`--train_rows_file`), the recipe reading that file, and real runs on tiny models (text and images)."""

import json

import numpy as np
import pytest
import torch

from hf_transfer.__main__ import main
from hf_transfer.comparison import Cell, CompareArguments, build_grid
from hf_transfer.comparison.arms import LABELLED_ROW_CHOICES, UNLABELLED_POOLS
from hf_transfer.comparison.budgets import choose_labelled_rows, load_train_pool, select_pool
from hf_transfer.comparison.command import _pool_features
from hf_transfer.comparison.grid import _cell_request
from hf_transfer.data import DataArguments, load_transfer_dataset
from hf_transfer.data.splits import SOURCE_ROW
from hf_transfer.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_each_arm_is_a_cell_of_its_own_and_default_cells_keep_their_names():
    cells = build_grid(["m"], ["linear_probe"], ["8"], [0], ["random", "typical"], ["none", "rest"])
    assert len(cells) == 4 and len({c.folder_name for c in cells}) == 4
    plain = Cell("m", "linear_probe", "8", 0)
    assert plain in cells and plain.folder_name == "m--linear_probe--8-per-class--seed0" and plain.arm_label == ""
    assert _cell_request(plain, ["--x"]) == {"cell": {"model": "m", "strategy": "linear_probe", "label_budget": "8",
                                                      "seed": 0}, "flags": ["--x"]}  # fmt: skip
    both = Cell("m", "linear_probe", "8", 0, "typical", "rest")
    assert both.folder_name == "m--linear_probe--selection-typical--unlabelled-rest--8-per-class--seed0"
    assert both.arm_label == "typical-selected + rest unlabelled"
    assert both.recipe_flags(rows_file="r.json")[-2:] == ["--train_rows_file", "r.json"]
    assert "--train_samples_per_class" not in both.recipe_flags(rows_file="r.json")
    assert _cell_request(both, [], {"labelled": [1]})["rows"] != _cell_request(both, [], {"labelled": [2]})["rows"]


def test_arms_are_registries_of_the_select_strategies():
    assert LABELLED_ROW_CHOICES.get("random").select_strategy is None
    assert LABELLED_ROW_CHOICES.get("typical").select_strategy == "typical"
    assert "badge" in LABELLED_ROW_CHOICES and "auto" in LABELLED_ROW_CHOICES
    assert [e.uses_pool for e in UNLABELLED_POOLS.entries()] == [False, True]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"selection": ["best"]}, "--selection 'best' is not one of random, auto, typical"),
        ({"unlabelled": ["all"]}, "--unlabelled 'all' is not one of none, rest"),
        ({"unlabelled": ["rest"], "label_budgets": ["8", "all"]}, "--label_budgets all labels every pool row"),
        ({"unlabelled": ["rest"], "recipe_args": "--unlabelled_split_percentage 0.5"}, "keep one of the two"),
        ({"unlabelled": ["rest"], "strategies": ["full"], "hp_search": 2}, "does not go with --hp_search"),
        ({"recipe_args": "--train_rows_file x.json"}, "sets --train_rows_file"),
        ({"pool_samples": 1}, "--pool_samples 1: give the pool's size"),
    ],
)
def test_bad_arm_values_are_one_line(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CompareArguments(**kwargs)


def test_compare_refuses_a_rows_file_of_its_own(tmp_path, capsys):
    rows = _rows_file(tmp_path, {"labelled": [1]})
    assert main(["compare", "--dataset_name", "digits", "--train_rows_file", rows]) == 2
    assert "compare writes for each cell" in capsys.readouterr().err


def _rows_file(tmp_path, rows):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    return str(path)


def test_a_rows_file_names_the_labelled_rows_and_the_unlabelled_pool(tmp_path):
    full = load_transfer_dataset(DataArguments(dataset_name="digits"), keep_source_rows=True)
    train = full["train"]
    labelled, unlabelled = train[SOURCE_ROW][3:9], train[SOURCE_ROW][20:50]
    args = DataArguments(dataset_name="digits", train_rows_file=_rows_file(tmp_path, {"labelled": labelled,
                                                                                      "unlabelled": unlabelled}))  # fmt: skip
    for hold_out in (True, False):  # the probe holds no validation out: the positions still name the same rows
        splits = load_transfer_dataset(args, hold_out_validation=hold_out)
        assert len(splits["train"]) == 6 and len(splits["unlabelled"]) == 30
        assert splits["train"]["label"] == train["label"][3:9] and SOURCE_ROW not in splits["train"].column_names
        assert splits["unlabelled"]["label"] == train["label"][20:50]
    assert ("validation" in splits) is False and SOURCE_ROW not in full["validation"].column_names
    only = load_transfer_dataset(DataArguments(dataset_name="digits", train_rows_file=_rows_file(tmp_path, {
        "labelled": labelled})))  # fmt: skip
    assert "unlabelled" not in only and len(only["train"]) == 6
    assert args.draws_train_subset  # fine-tuning cells carve their validation before the named rows


def test_bad_rows_files_are_one_line(tmp_path):
    held_out = sorted(set(range(1797)) - set(load_train_pool(DataArguments(dataset_name="digits"), None, "auto")[
        SOURCE_ROW]))[0]  # fmt: skip
    for rows, message in (
        ({"labelled": [1, 1]}, "names some rows twice"),
        ({"labelled": [1], "unlabelled": [1]}, "names some rows twice"),
        ({"labelled": []}, "at least one labelled row"),
        ({"rows": [1]}, "must hold an object with a 'labelled' list"),
        ({"labelled": [10**6]}, "not in its train split"),
        ({"labelled": [held_out]}, "held out as validation"),
    ):
        args = DataArguments(dataset_name="digits", train_rows_file=_rows_file(tmp_path, rows))
        with pytest.raises(DataError, match=message):
            load_transfer_dataset(args)
    with pytest.raises(DataError, match="drop --train_samples_per_class"):
        DataArguments(dataset_name="digits", train_rows_file=_rows_file(tmp_path, {"labelled": [1]}),
                      train_samples_per_class=2)  # fmt: skip


def test_selection_rounds_grow_from_the_smallest_budget_and_the_random_draw_is_per_class():
    train = load_train_pool(DataArguments(dataset_name="digits"), None, "auto")
    pool = select_pool(train, 300, 42)
    features = torch.as_tensor(np.asarray(pool["image"][0]).reshape(1, -1).repeat(len(pool), 0), dtype=torch.float)
    features = features + torch.randn(len(pool), features.shape[1], generator=torch.Generator().manual_seed(0))
    calls = []

    def pool_features():
        calls.append(1)
        return features

    for name in ("typical", "auto"):
        chosen = choose_labelled_rows(pool, ["2", "5"], [0, 1], name, pool_features)
        assert [len(chosen[("2", 0)]), len(chosen[("5", 0)])] == [20, 50]  # budget x 10 classes
        assert set(chosen[("2", 0)]) < set(chosen[("5", 0)]) and set(chosen[("5", 0)]) <= set(pool[SOURCE_ROW])
        assert chosen[("5", 0)] != chosen[("5", 1)]
    random = choose_labelled_rows(pool, ["2", "5"], [0], None, pool_features)
    labels = dict(zip(pool[SOURCE_ROW], pool["label"]))
    assert np.bincount([labels[p] for p in random[("5", 0)]]).tolist() == [5] * 10 and len(calls) == 2


@pytest.mark.integration
def test_compare_runs_the_arms_on_text_with_the_selected_rows_and_the_rest_as_pool(tiny_bert, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--models", tiny_bert, "--strategies", "linear_probe", "--seeds", "0", "--label_budgets", "2",
            "4", "--selection", "random", "typical", "--unlabelled", "none", "rest", "--pool_samples", "60",
            "--dataset_name", "tweet_sentiment", "--max_eval_samples", "24", "--recipe_args",
            "--max_seq_length 32 --self_training_rounds 1", "--output_dir", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "compare: 8 cells, 0 finished earlier, 8 to run" in capsys.readouterr().err
    data = DataArguments(dataset_name="tweet_sentiment", max_eval_samples=24)
    pool = select_pool(load_train_pool(data, None, "auto"), 60, 42)
    typical = choose_labelled_rows(pool, ["2", "4"], [0], "typical",
                                   lambda: _pool_features(tiny_bert, pool, {"max_seq_length": 32}))  # fmt: skip
    for selection in ("random", "typical"):
        for unlabelled in ("none", "rest"):
            cell = out / "cells" / Cell(tiny_bert, "linear_probe", "4", 0, selection, unlabelled).folder_name
            rows = json.loads((cell / "train_rows.json").read_text())
            results = json.loads((cell / "all_results.json").read_text())
            assert results["train_samples"] == len(rows["labelled"]) == 12
            if selection == "typical":  # the rows the selection picked are the rows the cell trained on
                assert rows["labelled"] == typical[("4", 0)]
            if unlabelled == "rest":  # the pool is every other pool row, labels hidden
                assert set(rows["unlabelled"]).isdisjoint(rows["labelled"])
                assert set(rows["unlabelled"]) | set(rows["labelled"]) == set(pool[SOURCE_ROW])
                assert results["semi_supervised_unlabelled_samples"] == 60 - 12
            else:
                assert "unlabelled" not in rows and "semi_supervised_method" not in results
    table = (out / "comparison.md").read_text()
    for label in ("| linear_probe |", "| linear_probe, + rest unlabelled |", "| linear_probe, typical-selected |",
                  "| linear_probe, typical-selected + rest unlabelled |"):  # fmt: skip
        assert table.count(label) == 2  # one row per budget
    cells = [json.loads(line) for line in (out / "comparison_cells.jsonl").read_text().splitlines()]
    assert {(c.get("selection", "random"), c.get("unlabelled", "none")) for c in cells} == {
        ("random", "none"), ("random", "rest"), ("typical", "none"), ("typical", "rest")}  # fmt: skip

    # Rerun: every cell is kept; one missing result reruns that cell alone.
    assert main(args) == 0 and "8 finished earlier, 0 to run" in capsys.readouterr().err
    (
        out / "cells" / Cell(tiny_bert, "linear_probe", "2", 0, "typical", "rest").folder_name / "all_results.json"
    ).unlink()
    assert main(args) == 0 and "7 finished earlier, 1 to run" in capsys.readouterr().err


@pytest.mark.integration
def test_compare_runs_the_arms_on_images(tiny_vit, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--models", tiny_vit, "--strategies", "linear_probe", "--seeds", "0", "1", "--label_budgets",
            "2", "--selection", "random", "kcenter", "--unlabelled", "rest", "--pool_samples", "80", "--dataset_name",
            "digits", "--max_eval_samples", "40", "--recipe_args", "--self_training_rounds 1", "--output_dir",
            str(out)]  # fmt: skip
    assert main(args) == 0
    table = (out / "comparison.csv").read_text().splitlines()[1:]
    assert len(table) == 2 and {r.split(",")[-1] for r in table} == {
        "+ rest unlabelled",
        "kcenter-selected + rest unlabelled",
    }

    def rows(selection, seed):
        cell = Cell(tiny_vit, "linear_probe", "2", seed, selection, "rest")
        return json.loads((out / "cells" / cell.folder_name / "train_rows.json").read_text())

    assert len(rows("kcenter", 0)["labelled"]) == 20 and len(rows("kcenter", 0)["unlabelled"]) == 60
    assert rows("random", 0) != rows("random", 1)
    # k-center's cold start is deterministic: both seeds label the same rows, and the table says so
    assert rows("kcenter", 0) == rows("kcenter", 1)
    assert (
        "(2, same rows)"
        in (out / "comparison.md").read_text().split("| linear_probe, kcenter-selected")[1].split("\n")[0]
    )
    assert (out / "accuracy_vs_labels.png").is_file()


def test_the_arms_config_parses():
    from pathlib import Path

    from hf_transfer.comparison.command import parse_arguments

    config = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "compare_arms.yaml"
    data_args, compare_args, _ = parse_arguments([str(config)])
    assert compare_args.selection == ["random", "typical"] and compare_args.unlabelled == ["none", "rest"]
    assert compare_args.pool_samples == 2000 and compare_args.explicit_rows and data_args.max_eval_samples == 500


# ---- the head-init arm: the text prior of an aligned dual encoder as a curve of its own (issue 30) ----------------


def test_the_head_init_arm_is_a_cell_of_its_own_with_the_recipes_flags(tmp_path):
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    (aligned / "config.json").write_text("{}")
    cells = build_grid(["m"], ["full"], ["4"], [0], head_inits=["new", "text"])
    plain, prior = cells
    assert plain == Cell("m", "full", "4", 0) and plain.folder_name == "m--full--4-per-class--seed0"
    assert prior.folder_name == "m--full--head_init-text--4-per-class--seed0"
    assert prior.arm_label == "+ text head init" and _cell_request(prior, [])["cell"]["head_init"] == "text"
    args = CompareArguments(strategies=["full"], head_init=["new", "text"], head_init_model=str(aligned))
    assert args.flags_for("full") == []  # a `new` cell asks what it asked before the arm existed
    assert args.flags_for("full", "text") == ["--head_init", "text", "--head_init_model", str(aligned)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"head_init": ["warm"]}, "--head_init 'warm' is not one of new, text"),
        ({"head_init": ["new", "text"], "strategies": ["full"]}, "--head_init text needs --head_init_model DIR"),
        ({"head_init_model": "aligned", "strategies": ["full"]}, "--head_init_model applies to --head_init text"),
        (
            {"head_init": ["text"], "head_init_model": "aligned", "strategies": ["full", "linear_probe"]},
            "strategy linear_probe fits its head with the probe",
        ),
        ({"recipe_args": "--head_init text"}, "sets --head_init"),
    ],
)
def test_bad_head_init_arms_are_one_line(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CompareArguments(**kwargs)


@pytest.mark.integration
def test_compare_runs_the_text_prior_beside_a_new_head(tiny, tmp_path, capsys):
    """An aligned tiny timm + BERT dual encoder; compare's `text` cells start the classifier from its class-name
    embeddings, the `new` cells from the stock head, on the same labelled images."""
    from recipe_runner import assert_ok, run_recipe

    aligned = tmp_path / "aligned"
    towers = ["--vision_model_name_or_path", tiny("timm"), "--text_model_name_or_path", tiny("bert")]
    data = ["--dataset_name", "fashion_mnist", "--max_train_samples", "96", "--max_eval_samples", "40"]
    assert_ok(run_recipe("align.py", *towers, *data, "--num_train_epochs", "1", output_dir=aligned))
    out = tmp_path / "cmp"
    args = ["compare", "--models", str(aligned / "vision_tower"), "--strategies", "full", "--seeds", "0",
            "--label_budgets", "2", "--head_init", "new", "text", "--head_init_model", str(aligned),
            "--dataset_name", "fashion_mnist", "--max_eval_samples", "40", "--recipe_args",
            "--num_train_epochs 1 --save_strategy no", "--output_dir", str(out)]  # fmt: skip
    assert main(args) == 0
    table = (out / "comparison.csv").read_text().splitlines()[1:]
    assert len(table) == 2 and {r.split(",")[-1] for r in table} == {"", "+ text head init"}
    cells = {
        c.head_init: c
        for c in build_grid([str(aligned / "vision_tower")], ["full"], ["2"], [0], head_inits=["new", "text"])
    }
    results = {
        name: json.loads((out / "cells" / cell.folder_name / "all_results.json").read_text())
        for name, cell in cells.items()
    }
    assert results["text"]["head_init"] == "text" and results["new"]["head_init"] == "new"
    assert results["text"]["train_samples"] == results["new"]["train_samples"] == 20  # the same draw
