"""finetune's `--hp_search N` (optuna through `Trainer.hyperparameter_search`) on a tiny random BERT, and compare's
`--hp_search`, which reaches the cells of the strategies that fine-tune."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

from hf_transfer.comparison import Cell, CompareArguments
from hf_transfer.comparison.arguments import recipe_flag_values
from hf_transfer.comparison.grid import run_grid
from hf_transfer.comparison.summary import write_cells
from hf_transfer.data import DataArguments, load_transfer_dataset
from hf_transfer.errors import ConfigError
from hf_transfer.finetuning import STRATEGIES, LoraArguments, SearchArguments
from hf_transfer.finetuning.search import SEARCH_FILE, SEARCH_SPACES, SearchResult, choose_hyperparameters
from hf_transfer.tasks import TASKS
from recipe_runner import TINY_TWEETS_RUN, assert_ok, run_recipe, run_recipe_in_process

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LABELS = {0: "negative", 1: "neutral", 2: "positive"}


def _validation_accuracy(model, tokenizer) -> float:
    """The run's validation rows (TINY_TWEETS_RUN's 16), scored by the reloaded model."""
    data = load_transfer_dataset(
        DataArguments(dataset_name="tweet_sentiment", max_train_samples=32, max_eval_samples=16)
    )
    inputs = tokenizer(
        list(data["validation"]["text"]), truncation=True, max_length=128, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        predictions = model.eval()(**inputs).logits.argmax(-1).numpy()
    return float((predictions == np.array(data["validation"]["label"])).mean())


def _search_run(tiny_bert: str, out: Path, strategy: str, *flags: str) -> dict:
    """finetune with a 2-trial search; checks what every search run must show, returns the chosen values."""
    results = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--strategy",
            strategy,
            "--hp_search",
            "2",
            *flags,
            *TINY_TWEETS_RUN,
            output_dir=out,
        )
    ).results
    assert results["hp_search_trials"] == 2
    assert results["hp_search_objective"] == "eval_accuracy" and 0.0 <= results["hp_search_objective_value"] <= 1.0
    assert results["hp_search_runtime"] > 0
    space = SEARCH_SPACES.get(strategy)
    chosen = {name: results[f"hp_search_best_{name}"] for name in space.parameters}
    given = {"num_train_epochs": 1.0}  # TINY_TWEETS_RUN's
    for name, value in chosen.items():
        assert space.parameters[name].contains(value, given.get(name)), (name, value)

    # The run trained with the chosen values: its record says so, and so does the card.
    record = json.loads((out / "transfer_run.json").read_text())
    assert record["hp_search"]["trials"] == 2
    for name in ("learning_rate", "num_train_epochs", "weight_decay"):
        assert record["hyperparameters"][name] == pytest.approx(chosen[name]), name
    card = (out / "README.md").read_text()
    section = card.split("### Hyperparameter search")[1].split("\n#")[0]
    assert "2 optuna trials in " in section and "`eval_accuracy`" in section
    assert f"- learning_rate: {chosen['learning_rate']:.4g}" in section
    # Trials left no checkpoint or tracker folder behind; the choice is kept for a resumed run.
    assert not list(out.glob("checkpoint-*")) and not (out / "runs").exists()
    assert json.loads((out / SEARCH_FILE).read_text())["values"] == chosen
    return results


def test_full_finetuning_searches_two_trials_and_trains_with_the_best(tiny_bert, tmp_path):
    out = tmp_path / "full"
    results = _search_run(tiny_bert, out, "full")
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert _validation_accuracy(model, AutoTokenizer.from_pretrained(out)) == pytest.approx(results["eval_accuracy"])


def test_lora_search_chooses_the_rank_the_adapter_is_saved_with(tiny_bert, tmp_path):
    out = tmp_path / "lora"
    results = _search_run(tiny_bert, out, "lora", "--lora_r", "2")  # a rank outside the space: the search's is used
    assert json.loads((out / "adapter_config.json").read_text())["r"] == results["hp_search_best_lora_r"]
    assert "- lora_r: " in (out / "README.md").read_text()
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3, id2label=LABELS)
    model = PeftModel.from_pretrained(base, out)
    assert _validation_accuracy(model, AutoTokenizer.from_pretrained(out)) == pytest.approx(results["eval_accuracy"])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--strategy", "linear_probe", "--hp_search", "2"], "--strategy linear_probe has no fine-tuning stage"),
        (["--strategy", "full", "--hp_search", "-1"], "--hp_search -1: give the number of trials"),
    ],
)
def test_a_search_the_run_cannot_make_is_one_line_and_exit_2(tiny_bert, tmp_path, flags, message):
    out = tmp_path / "out"
    run = run_recipe_in_process(
        "finetune.py", "--model_name_or_path", tiny_bert, *flags, *TINY_TWEETS_RUN, output_dir=out
    )
    errors = [line for line in run.output.splitlines() if line.startswith("error: ")]
    assert run.returncode == 2 and len(errors) == 1 and message in errors[0], run.output[-3000:]
    assert "Traceback" not in run.output and not (out / "all_results.json").exists()


def test_search_arguments_and_direction_come_from_the_entries():
    with pytest.raises(ConfigError, match="no fine-tuning stage"):
        SearchArguments(hp_search=2).check_run(STRATEGIES.get("linear_probe"), world_size=1)
    SearchArguments(hp_search=2).check_run(STRATEGIES.get("lp_ft"), world_size=1)  # LP-FT fine-tunes: searched
    SearchArguments(hp_search=0).check_run(STRATEGIES.get("linear_probe"), world_size=1)  # no search, nothing to check
    assert TASKS.get("single_label").headline_direction == "maximize"
    assert TASKS.get("regression").headline_direction == "minimize"  # rmse: lower is better
    assert set(SEARCH_SPACES.names()) == {"full", "lora"}


def test_a_resumed_run_trains_on_with_the_values_its_search_chose(tmp_path):
    """The checkpoints were trained with the saved choice: a resumed run reads it back instead of searching again
    (nothing here could run a trial: no model, no data)."""
    saved = SearchResult("eval_accuracy", 0.5, {"learning_rate": 3e-5, "lora_r": 16}, trials=4, runtime=1.0)
    saved.save(str(tmp_path))
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    chosen = choose_hyperparameters(
        4, "lora", task="single_label", model=None, prepare=None, training_args=args, lora_args=LoraArguments(),
        trainer_kwargs={}, resuming=True,
    )  # fmt: skip
    assert chosen == saved
    assert chosen.apply(args, LoraArguments()).lora_r == 16 and args.learning_rate == 3e-5


def test_compare_passes_hp_search_to_the_cells_that_finetune(tmp_path, monkeypatch):
    args = CompareArguments(hp_search=2, recipe_args="--num_train_epochs 1")
    assert args.flags_for("full")[-2:] == ["--hp_search", "2"]
    assert "--hp_search" not in args.flags_for("linear_probe")
    assert recipe_flag_values(args.flags_for("lora"), "cell")["hp_search"] == 2  # the recipe reads it as given
    with pytest.raises(ConfigError, match="--recipe_args sets --hp_search"):
        CompareArguments(recipe_args="--hp_search 2")  # would reach linear_probe's cells too

    # The cells' command lines, as run_grid starts them (the recipe itself replaced by a stand-in).
    commands = {}

    def fake_cell(folder, command, threads, processes):
        commands[folder.name] = command
        (folder / "all_results.json").write_text(
            json.dumps({"test_accuracy": 0.5, "hp_search_best_learning_rate": 1e-4})
        )
        return 0, 1.0, folder / "compare.log"

    monkeypatch.setattr("hf_transfer.comparison.grid._run_cell", fake_cell)
    cells = [Cell("m", strategy, "8", 0) for strategy in ("linear_probe", "lora")]
    results = run_grid(
        cells,
        tmp_path,
        ["--dataset_name", "x"],
        extra_flags=lambda cell: args.flags_for(cell.strategy),
        progress=lambda line: None,
    )
    probe, lora = (commands[cell.folder_name] for cell in cells)
    assert "--hp_search" not in probe and lora[lora.index("--hp_search") + 1] == "2"
    write_cells(results, tmp_path / "cells.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "cells.jsonl").read_text().splitlines()]
    assert rows[1]["hp_search_best_learning_rate"] == 1e-4
