"""`hf-transfer compare`: the grid, resume, the table's arithmetic, the recommendation, the plots, and one real run
on tiny models and real tweets."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from hf_transfer.__main__ import main
from hf_transfer.comparison import Cell, CellResult, CompareArguments, build_grid, recommend, summarize
from hf_transfer.comparison.command import data_flags
from hf_transfer.data import DataArguments
from hf_transfer.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _result(strategy, budget, seed, accuracy, seconds=10.0, f1=None):
    results = {"test_accuracy": accuracy, "test_f1": f1 if f1 is not None else accuracy - 0.1, "train_runtime": seconds}
    return CellResult(Cell("m", strategy, budget, seed), {**results, "trainable_params": 5}, 100.0, Path("log"))


def test_grid_runs_small_budgets_first_and_names_each_cell():
    cells = build_grid(["org/model", "b"], ["lora", "full"], ["all", "32", "8"], [0, 1])
    assert len(cells) == 2 * 2 * 3 * 2 and [c.label_budget for c in cells[:8]] == ["8"] * 8
    assert cells[0].folder_name.startswith("model-") and cells[0].folder_name.endswith("--lora--8-per-class--seed0")
    assert cells[-1].folder_name == "b--full--all--seed1"  # an alias keeps its name
    assert cells[0].recipe_flags() == [
        "--model_name_or_path", "org/model", "--strategy", "lora", "--seed", "0", "--train_samples_seed", "0",
        "--train_samples_per_class", "8",
    ]  # fmt: skip
    assert "--train_samples_per_class" not in cells[-1].recipe_flags()


def test_summary_is_the_mean_and_sample_std_over_seeds():
    rows = summarize([_result("lora", "8", 0, 0.6), _result("lora", "8", 1, 0.8), _result("full", "8", 0, 0.5)])
    lora, full = rows
    assert lora.score("accuracy") == (pytest.approx(0.7), pytest.approx(math.sqrt(0.02)))
    assert lora.score("f1")[0] == pytest.approx(0.6) and lora.seeds == 2 and lora.peak_memory_mib == 100.0
    assert full.score("accuracy")[1] == 0.0 and full.seeds == 1


def test_recommendation_needs_a_margin_beyond_the_spread():
    clear = [_result("lora", "32", s, 0.80 + 0.01 * s) for s in range(3)]
    clear += [_result("full", "32", s, 0.60 + 0.01 * s, seconds=50) for s in range(3)]
    clear += [_result("full", "8", s, 0.9) for s in range(3)]  # a smaller budget does not decide
    line = recommend(summarize(clear))
    assert line.startswith("Recommended with 32 labelled rows per class: m lora (0.810 ± 0.010 against 0.610")
    assert "margin 0.200, 14.1x the spread" in line
    close = [_result("lora", "all", s, acc, seconds=40) for s, acc in enumerate((0.70, 0.80))]
    close += [_result("linear_probe", "all", s, acc, seconds=2) for s, acc in enumerate((0.72, 0.74))]
    line = recommend(summarize(close))
    assert line.startswith("No clear winner with all labelled rows: m lora leads by 0.020")
    assert line.endswith("m linear_probe is the cheaper (2 s per run).")


def test_strategy_args_follow_the_shared_recipe_args():
    args = CompareArguments(recipe_args="--num_train_epochs 3", strategy_args=["lora: --learning_rate 5e-4"])
    assert args.flags_for("lora") == ["--num_train_epochs", "3", "--learning_rate", "5e-4"]
    assert args.flags_for("full") == ["--num_train_epochs", "3"]


def test_data_flags_repeat_only_what_the_user_set():
    args = DataArguments(dataset_name="tweet_sentiment", max_eval_samples=50)
    assert data_flags(args) == ["--dataset_name", "tweet_sentiment", "--max_eval_samples", "50"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategies": ["probe"]}, "--strategies probe: unknown"),
        ({"label_budgets": ["0"]}, "--label_budgets 0: use positive integers"),
        ({"recipe_args": "--seed 3"}, "--recipe_args sets --seed"),
        ({"parallel": 0}, "--parallel must be at least 1"),
        ({"recipe_args": "--task regression"}, "compare scores single-label classification"),
        ({"strategy_args": ["probe: --x 1"]}, "--strategy_args 'probe: --x 1': write STRATEGY: FLAGS"),
    ],
)
def test_compare_arguments_reject_bad_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CompareArguments(**kwargs)


@pytest.mark.integration
def test_compare_runs_the_grid_writes_table_and_plots_and_resumes(tiny_bert, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--models", tiny_bert, "--strategies", "linear_probe", "full", "--seeds", "0", "1"]
    args += ["--label_budgets", "4", "8", "--dataset_name", "tweet_sentiment", "--max_eval_samples", "24"]
    args += ["--recipe_args", "--num_train_epochs 1 --per_device_train_batch_size 8 --max_seq_length 32"]
    args += ["--output_dir", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "compare: 8 cells, 0 finished earlier, 8 to run" in captured.err and "[8/8]" in captured.err
    table = (out / "comparison.md").read_text()
    assert "Recommended with 8 labelled rows" in table or "No clear winner with 8 labelled rows" in table
    rows = (out / "comparison.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and rows[0].startswith("model,strategy,label_budget,train_rows,seeds,accuracy_mean")
    for png in ("accuracy_vs_labels.png", "accuracy_vs_time.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png})" in table
    cell = out / "cells" / Cell(tiny_bert, "full", "4", 1).folder_name
    results = json.loads((cell / "all_results.json").read_text())
    assert results["train_samples"] == 3 * 4 and results["strategy"] == "full"  # 3 classes x 4 rows
    assert f"| {Path(tiny_bert).name} | linear_probe | 4 | 12 |" in table
    assert "± 0.000 (2)" not in table.split("| linear_probe | 4 |")[1].split("\n")[0]  # each seed labels other rows

    # Rerun: nothing runs again. One missing result: only that cell runs.
    assert main(args) == 0 and "8 finished earlier, 0 to run" in capsys.readouterr().err
    (cell / "all_results.json").unlink()
    assert main(args) == 0 and "7 finished earlier, 1 to run" in capsys.readouterr().err
    assert (out / "comparison.md").read_text().count("| ") == table.count("| ")
    assert "|  |" not in (out / "comparison.md").read_text().split("| full | 4 |")[1].split("\n")[0]  # memory kept

    # The same folder with other data is refused, not mixed in.
    other = [a if a != "24" else "20" for a in args]
    assert main(other) == 2 and "holds a cell of another comparison" in capsys.readouterr().err


def test_a_cell_that_rejects_its_input_stops_the_comparison_with_its_line(tiny_bert, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hf_transfer", "compare", "--models", tiny_bert, "--strategies", "full", "--seeds", "0",
         "--label_budgets", "4", "--dataset_name", "tweet_sentiment", "--recipe_args", "--num_train_epochs -1",
         "--output_dir", str(tmp_path / "cmp")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cell ") and "--num_train_epochs" in last and "Traceback" not in result.stderr


def test_the_comparison_is_pushed_as_a_dataset_repo(tmp_path, hub_server):
    from hf_transfer.comparison.plots import plot_accuracy_vs_labels, plot_accuracy_vs_time
    from hf_transfer.comparison.publish import push_comparison
    from hf_transfer.comparison.summary import write_cells, write_csv, write_markdown

    cells = [_result(s, b, seed, 0.5 + 0.1 * seed) for s in ("lora", "full") for b in ("8", "all") for seed in (0, 1)]
    rows = summarize(cells)
    plot_accuracy_vs_labels(rows, tmp_path / "accuracy_vs_labels.png", "m on data")
    plot_accuracy_vs_time(rows, tmp_path / "accuracy_vs_time.png", "m on data")
    write_csv(rows, tmp_path / "comparison.csv")
    write_cells(cells, tmp_path / "comparison_cells.jsonl")
    write_markdown(rows, recommend(rows), ["accuracy_vs_labels.png"], tmp_path / "comparison.md")
    url = push_comparison(tmp_path, "test-user/compare")
    assert "test-user/compare" in url
    card = hub_server.read_file("test-user/compare", "README.md", repo_type="dataset").decode()
    assert card.startswith("---\ntags:\n- hf-transfer") and "No clear winner with all labelled rows" in card
    for name in ("comparison.csv", "comparison_cells.jsonl", "accuracy_vs_labels.png", "accuracy_vs_time.png"):
        assert hub_server.read_file("test-user/compare", name, repo_type="dataset") == (tmp_path / name).read_bytes()
    lines = (tmp_path / "comparison_cells.jsonl").read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[1])["seed"] == 1 and json.loads(lines[1])["test_accuracy"] == 0.6


def test_push_needs_a_repo_id_before_anything_runs():
    with pytest.raises(ConfigError, match="--push_to_hub true needs --hub_repo_id"):
        CompareArguments(push_to_hub=True)
