"""End-to-end runs of recipes/maml.py on tiny random backbones and real data (BBC News, digits)."""

import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

from hf_transfer.errors import ConfigError
from hf_transfer.meta import MAML
from recipe_runner import ROOT, assert_ok, run_recipe

# Tiny models run far faster on one thread, above all on a machine shared with other jobs.
ENV = {"OMP_NUM_THREADS": "1"}
TEXT = [
    "--dataset_name",
    "bbc_news",
    "--n_way",
    "2",
    "--k_shot",
    "2",
    "--q_queries",
    "2",
    "--meta_train_classes",
    "business",
    "politics",
    "sports",
    "--meta_test_classes",
    "entertainment",
    "tech",
    "--max_seq_length",
    "16",
    "--inner_steps",
    "1",
    "--inner_lr",
    "0.5",
    "--meta_batch_size",
    "2",
    "--num_validation_episodes",
    "4",
    "--num_test_episodes",
    "12",
    "--learning_rate",
    "1e-3",
    "--probe_l2_grid",
    "1.0",
    "0.01",
    "--logging_steps",
    "1",
]
VISION = [
    "--dataset_name",
    "digits",
    "--class_split",
    "4",
    "3",
    "3",
    "--n_way",
    "3",
    "--k_shot",
    "1",
    "--q_queries",
    "2",
    "--inner_steps",
    "2",
    "--inner_lr",
    "0.5",
    "--meta_batch_size",
    "2",
    "--num_validation_episodes",
    "4",
    "--num_test_episodes",
    "10",
    "--probe_l2_grid",
    "1.0",
]
RESULT_KEYS = (
    "meta_test_accuracy",
    "meta_test_ci95",
    "finetune_baseline_accuracy",
    "finetune_baseline_ci95",
    "probe_baseline_accuracy",
    "probe_baseline_ci95",
    "num_episodes",
    "probe_l2",
    "best_step",
    "meta_validation_accuracy_at_init",
    "maml_minus_finetune",
    "maml_minus_probe",
)


def test_flags_shared_with_finetune_keep_maml_defaults_and_take_finetune_checks():
    """--max_seq_length, --image_size, --pooling, --probe_* are finetune's flags (one definition of each check);
    maml's own defaults of them stay (a probe per meta-test episode: a shorter grid, fewer iterations)."""
    arguments = runpy.run_path(str(ROOT / "recipes" / "maml.py"))["MetaRecipeArguments"]
    defaults = arguments()
    assert defaults.probe_l2_grid == [10.0, 1.0, 0.1, 0.01, 0.001] and defaults.probe_max_iter == 100
    assert defaults.max_seq_length == 128 and defaults.image_size is None and defaults.pooling is None
    with pytest.raises(ConfigError, match="--probe_max_iter"):  # 0 iterations would leave every probe unfitted
        arguments(probe_max_iter=0)
    with pytest.raises(ConfigError, match="--pooling 'average' is not one of head"):
        arguments(pooling="average")


@pytest.fixture(scope="module")
def text_run(tiny_bert, tmp_path_factory):
    """One single-process run, shared: checked for its outputs, then resumed, then compared with 2 processes."""
    out = tmp_path_factory.mktemp("maml-text") / "out"
    return assert_ok(
        run_recipe(
            "maml.py",
            "--model_name_or_path",
            tiny_bert,
            *TEXT,
            "--max_steps",
            "2",
            "--save_steps",
            "1",
            output_dir=out,
            env=ENV,
        )
    )


def test_text_maml_writes_results_checkpoints_and_resumes(tiny_bert, text_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(text_run.output_dir, out)  # resumed below: keep the shared run as it was
    results = text_run.results
    for key in RESULT_KEYS:
        assert key in results, key
    assert results["num_episodes"] == 12 and results["meta_iterations"] == 2
    assert results["meta_test_classes"] == ["entertainment", "tech"]
    assert 0.0 <= results["meta_test_accuracy"] <= 1.0 and results["meta_test_ci95"] >= 0.0
    per_episode = json.loads((out / "meta_test_episodes.json").read_text())
    assert {k: len(v) for k, v in per_episode.items()} == {
        "maml": 12,
        "finetune": 12,
        "probe": 12,
        "maml_query_loss": 12,
    }
    assert sum(per_episode["maml"]) / 12 == pytest.approx(results["meta_test_accuracy"])
    assert sum(per_episode["maml_query_loss"]) / 12 == pytest.approx(results["meta_test_query_loss"])
    assert (out / "checkpoint-1" / "trainer_state.json").is_file() and (out / "checkpoint-2").is_dir()
    # The meta-learned model is a plain transformers checkpoint with an N-way head.
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "way_0", 1: "way_1"}
    assert json.loads((out / "maml_config.json").read_text())["inner_steps"] == 1

    # A second run with more meta-iterations resumes from checkpoint-2 instead of starting over.
    again = assert_ok(
        run_recipe(
            "maml.py",
            "--model_name_or_path",
            tiny_bert,
            *TEXT,
            "--max_steps",
            "3",
            "--save_steps",
            "1",
            "--run_baselines",
            "false",
            output_dir=out,
            env=ENV,
        )
    )
    assert "Resuming meta-training from" in again.output and "checkpoint-2" in again.output
    assert again.results["meta_iterations"] == 3 and again.results["resumed_from_step"] == 2
    assert again.results["meta_train_runtime"] > results["meta_train_runtime"]  # the whole run, not the last step
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "meta_loss" in e] == [1, 2, 3]
    assert "finetune_baseline_accuracy" not in again.results


def test_vision_anil_meta_sgd_saves_learned_rates(tiny_vit, tmp_path):
    out = tmp_path / "out"
    run = assert_ok(
        run_recipe(
            "maml.py",
            "--model_name_or_path",
            tiny_vit,
            *VISION,
            "--adapt",
            "head",
            "--learn_inner_lr",
            "true",
            "--max_steps",
            "2",
            "--save_steps",
            "2",
            output_dir=out,
            env=ENV,
        )
    )
    results = run.results
    assert results["adapt"] == "head" and results["meta_sgd"] is True and results["modality"] == "vision"
    assert len(results["meta_train_classes"]) == 4 and len(results["meta_validation_classes"]) == 3
    assert not set(results["meta_train_classes"]) & set(results["meta_test_classes"])
    model = AutoModelForImageClassification.from_pretrained(out)
    maml = MAML.from_pretrained(out, model)
    assert maml.adapted_names == ("classifier.weight", "classifier.bias")
    assert all(lr.shape == model.get_parameter(n).shape for n, lr in maml.named_inner_lrs().items())
    assert any(not torch.allclose(lr, torch.full_like(lr, 0.5)) for lr in maml.inner_lrs)  # they were meta-trained


@pytest.mark.integration  # ~40 s: two interpreters importing transformers on two shared cores
def test_two_processes_split_the_meta_batch_and_match_one_process(tiny_bert, text_run, tmp_path):
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", "2", "--cpu"]
    two = assert_ok(
        run_recipe(
            "maml.py",
            "--model_name_or_path",
            tiny_bert,
            *TEXT,
            "--max_steps",
            "2",
            "--save_steps",
            "1",
            output_dir=tmp_path / "two",
            launcher=launcher,
            env=ENV,
        )
    )
    assert two.results["num_processes"] == 2 and text_run.results["num_processes"] == 1
    # Same tasks, all-reduced gradients: the same meta-learned model, so the same scores on the same episodes.
    a = json.loads((text_run.output_dir / "meta_test_episodes.json").read_text())
    b = json.loads((tmp_path / "two" / "meta_test_episodes.json").read_text())
    assert a["maml"] == pytest.approx(b["maml"]) and a["probe"] == pytest.approx(b["probe"])
    history = lambda d: json.loads((d / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]  # noqa: E731
    losses = lambda h: [e["meta_loss"] for e in h if "meta_loss" in e]  # noqa: E731
    assert losses(history(text_run.output_dir)) == pytest.approx(losses(history(tmp_path / "two")), rel=1e-4)
