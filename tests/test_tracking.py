"""`--report_to tensorboard` in every kind of recipe: Trainer's callbacks for the Trainer recipes, accelerate's
trackers for MAML's own outer loop. The event files are read back: what a user sees in TensorBoard."""

from pathlib import Path

import pytest

from recipe_runner import assert_ok, run_recipe_in_process
from test_recipe_maml import TEXT as MAML_TEXT


def _scalars(logging_dir: Path) -> dict[str, list[float]]:
    """Every scalar series in the event files under `logging_dir`, by tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, list[float]] = {}
    files = sorted(logging_dir.rglob("events.out.tfevents.*"))
    assert files, f"no event file under {logging_dir}"
    for file in files:
        events = EventAccumulator(str(file))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            series.setdefault(tag, []).extend(e.value for e in events.Scalars(tag))
    return series


def test_maml_logs_its_outer_loop_to_tensorboard(tiny_bert, tmp_path):
    logs = tmp_path / "out" / "runs"  # transformers' default, <output_dir>/runs
    run = assert_ok(
        run_recipe_in_process(
            "maml.py",
            "--model_name_or_path",
            tiny_bert,
            *MAML_TEXT,
            "--max_steps",
            "2",
            "--save_steps",
            "1",
            "--run_baselines",
            "false",
            "--report_to",
            "tensorboard",
            output_dir=tmp_path / "out",
        )
    )
    scalars = _scalars(logs / "maml")
    assert len(scalars["meta_train/loss"]) == 2 and len(scalars["meta_train/accuracy"]) == 2
    # meta-validation at the start and after each of the 2 saved meta-iterations
    assert len(scalars["meta_validation/accuracy"]) == 3
    assert max(scalars["meta_validation/accuracy"][1:]) == pytest.approx(run.results["best_meta_validation_accuracy"])


def test_an_unknown_tracker_under_maml_is_one_line(tiny_bert, tmp_path):
    run = run_recipe_in_process(
        "maml.py",
        "--model_name_or_path",
        tiny_bert,
        *MAML_TEXT,
        "--max_steps",
        "1",
        "--report_to",
        "azure_ml",
        output_dir=tmp_path / "out",
    )
    assert run.returncode == 2, run.output[-2000:]
    assert "maml logs through accelerate's trackers" in run.output and "Traceback" not in run.output


def test_finetune_logs_training_and_evaluation_to_tensorboard(tiny_vit, tmp_path):
    logs = tmp_path / "out" / "runs"  # transformers' default, <output_dir>/runs
    assert_ok(
        run_recipe_in_process(
            "finetune.py",
            "--model_name_or_path",
            tiny_vit,
            "--dataset_name",
            "digits",
            "--max_train_samples",
            "48",
            "--max_eval_samples",
            "20",
            "--strategy",
            "full",
            "--num_train_epochs",
            "2",
            "--per_device_train_batch_size",
            "16",
            "--logging_steps",
            "1",
            "--eval_strategy",
            "epoch",
            "--save_strategy",
            "no",
            "--report_to",
            "tensorboard",
            output_dir=tmp_path / "out",
        )
    )
    scalars = _scalars(logs)
    assert len(scalars["train/loss"]) == 6  # 3 steps per epoch, logged every step
    assert len(scalars["eval/accuracy"]) >= 2  # after each epoch (and the final evaluation)
