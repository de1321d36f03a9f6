"""End-to-end runs of recipes/domain_adapt.py on tiny random backbones and small slices of real data."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_transfer.adaptation import ALIGNMENT_STATE_NAME
from hf_transfer.data import DataArguments, load_transfer_dataset
from recipe_runner import assert_ok, run_recipe

# One torch thread per recipe process: on a shared, oversubscribed CPU two spinning threads are many times slower.
ENV = {"OMP_NUM_THREADS": "1"}
TEXT = [
    "--source_dataset_name",
    "tweet_sentiment",
    "--source_max_train_samples",
    "48",
    "--source_max_eval_samples",
    "30",
    "--target_dataset_name",
    "drug_reviews",
    "--target_max_train_samples",
    "40",
    "--target_max_eval_samples",
    "30",
]
# digits -> digits_m, small: the vision pair of the tests.
DIGITS = [
    "--source_dataset_name",
    "digits",
    "--source_max_train_samples",
    "40",
    "--source_max_eval_samples",
    "30",
    "--target_dataset_name",
    "digits_m",
    "--target_max_train_samples",
    "40",
    "--target_max_eval_samples",
    "30",
    "--image_size",
    "32",
]
TRAIN = [
    "--num_train_epochs",
    "1",
    "--per_device_train_batch_size",
    "8",
    "--per_device_eval_batch_size",
    "32",
    "--save_strategy",
    "epoch",
    "--learning_rate",
    "1e-3",
    "--logging_steps",
    "2",
    "--max_seq_length",
    "48",
    "--a_distance_max_samples",
    "40",
]


def test_text_dann_writes_results_checkpoint_and_a_plain_model(tiny_bert, tmp_path):
    out = tmp_path / "out"
    run = assert_ok(
        run_recipe(
            "domain_adapt.py",
            "--model_name_or_path",
            tiny_bert,
            "--method",
            "dann",
            "--strategy",
            "full",
            *TEXT,
            *TRAIN,
            output_dir=out,
            env=ENV,
        )
    )
    results = run.results
    assert results["method"] == "dann" and results["modality"] == "text"
    for key in (
        "target_eval_accuracy",
        "target_test_accuracy",
        "source_eval_accuracy",
        "a_distance_before",
        "a_distance_after",
        "alignment_params",
        "train_runtime",
    ):
        assert key in results, key
    assert 0.0 <= results["a_distance_before"] <= 2.0 and results["source_train_samples"] == 48
    assert results["alignment_loss_config"]["name"] == "DANNLoss"
    assert "'alignment_loss':" in run.output and "'alignment_coefficient':" in run.output  # logged per step
    assert (out / "checkpoint-6" / ALIGNMENT_STATE_NAME).is_file()
    assert not (out / ALIGNMENT_STATE_NAME).exists()  # the final model folder is a plain checkpoint

    _assert_reload_reproduces_target_accuracy(out, results)


def _assert_reload_reproduces_target_accuracy(out, results):
    """The saved model, reloaded in this process, scores the reported target accuracy (target labels only score)."""
    target = load_transfer_dataset(
        DataArguments(dataset_name="drug_reviews", max_train_samples=40, max_eval_samples=30)
    )
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    inputs = AutoTokenizer.from_pretrained(out)(
        list(target["validation"]["text"]), truncation=True, max_length=48, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        predictions = model(**inputs).logits.argmax(-1).numpy()
    assert float((predictions == np.array(target["validation"]["label"])).mean()) == pytest.approx(
        results["target_eval_accuracy"]
    )


def test_text_cdan_with_target_self_training_reports_its_pseudo_labels_and_reloads(tiny_bert, tmp_path):
    out = tmp_path / "out"
    run = assert_ok(
        run_recipe(
            "domain_adapt.py",
            "--model_name_or_path",
            tiny_bert,
            "--method",
            "cdan",
            "--strategy",
            "full",
            "--target_self_training",
            "true",
            "--self_training_threshold",
            "0.3",
            "--self_training_min_threshold",
            "0.0",
            *TEXT,
            *TRAIN,
            "--compute_a_distance",
            "false",
            output_dir=out,
            env=ENV,
        )
    )
    results = run.results
    assert results["alignment_loss_config"]["name"] == "CDANLoss" and results["alignment_params"] > 0
    assert results["alignment_loss_config"]["num_labels"] == 3 and not results["alignment_loss_config"]["randomized"]
    assert "'self_training_loss':" in run.output and "'pseudo_label_rate':" in run.output  # logged per step
    assert results["target_pseudo_label_pool_rows"] == 40
    assert 0 < results["target_pseudo_labelled_rows"] <= 40
    assert sum(results["target_pseudo_labelled_per_class"]) == results["target_pseudo_labelled_rows"]
    assert len(results["target_pseudo_label_thresholds"]) == 3
    assert 0.0 <= results["target_pseudo_label_accuracy"] <= 1.0
    card = (out / "README.md").read_text()
    assert f"- Target self-training: {results['target_pseudo_labelled_rows']} of 40 unlabelled target rows" in card
    assert "cdan + target self-training (full)" in card
    _assert_reload_reproduces_target_accuracy(out, results)


def test_vision_mcc_and_self_training_without_alignment_on_digits_m(tiny_vit, tmp_path):
    vision = [
        "--model_name_or_path",
        tiny_vit,
        "--strategy",
        "full",
        *DIGITS,
        "--compute_a_distance",
        "false",
        *TRAIN,
    ]
    out = tmp_path / "mcc"
    run = assert_ok(run_recipe("domain_adapt.py", *vision, "--method", "mcc", output_dir=out, env=ENV))
    assert run.results["alignment_loss_config"] == {"name": "MCCLoss", "temperature": 2.5}
    assert run.results["alignment_params"] == 0 and "target_pseudo_labelled_rows" not in run.results
    assert "Target self-training" not in (out / "README.md").read_text()

    # Self-training on top of source_only: the batches pair source with target rows, no alignment loss.
    run = assert_ok(
        run_recipe(
            "domain_adapt.py",
            *vision,
            "--method",
            "source_only",
            "--target_self_training",
            "true",
            "--self_training_start",
            "0.5",
            "--self_training_distribution_alignment",
            "true",
            "--self_training_class_quota",
            "0.5",
            "--self_training_class_prior",
            "source",
            output_dir=tmp_path / "st",
            env=ENV,
        )
    )
    assert "alignment_loss_config" not in run.results and run.results["target_pseudo_label_pool_rows"] == 40
    # The class-balanced selection reached the thresholds, with the source train split's label frequencies.
    source_train = load_transfer_dataset(
        DataArguments(dataset_name="digits", max_train_samples=40, max_eval_samples=30)
    )["train"]
    counts = np.bincount(source_train["label"], minlength=10)
    assert run.results["pseudo_label_distribution_alignment"] is True
    assert run.results["pseudo_label_class_quota"] == 0.5
    assert run.results["pseudo_label_class_prior"] == pytest.approx(
        np.maximum(counts, 1) / np.maximum(counts, 1).sum(), abs=1e-4
    )
    assert "'self_training_loss':" in run.output


def test_self_training_with_the_oracle_fails_with_the_fix(tiny_bert, tmp_path):
    run = run_recipe(
        "domain_adapt.py",
        "--model_name_or_path",
        tiny_bert,
        "--method",
        "target_oracle",
        "--target_self_training",
        "true",
        *TEXT,
        output_dir=tmp_path / "out",
        env=ENV,
    )
    assert run.returncode == 2 and "Traceback" not in run.output, run.output[-3000:]
    assert "--target_self_training has no unlabelled target rows to pseudo-label with --method target_oracle" in (
        run.output
    )


def test_vision_mmd_with_lora_on_digits_m(tiny_vit, tmp_path):
    out = tmp_path / "out"
    run = assert_ok(
        run_recipe(
            "domain_adapt.py",
            "--model_name_or_path",
            tiny_vit,
            "--method",
            "mmd",
            "--strategy",
            "lora",
            *DIGITS,
            *TRAIN,
            output_dir=out,
            env=ENV,
        )
    )
    results = run.results
    assert results["modality"] == "vision" and results["method"] == "mmd" and results["strategy"] == "lora"
    assert results["alignment_params"] == 0 and 0.0 <= results["target_test_accuracy"] <= 1.0
    assert (out / "adapter_config.json").is_file()
    assert json.loads((out / "preprocessor_config.json").read_text())["size"] == {"height": 32, "width": 32}


def test_target_oracle_trains_on_target_rows_and_pushes_a_card_per_domain(tiny_bert, tmp_path, hub_server):
    run = assert_ok(
        run_recipe(
            "domain_adapt.py",
            "--model_name_or_path",
            tiny_bert,
            "--method",
            "target_oracle",
            "--strategy",
            "full",
            *TEXT,
            *TRAIN,
            "--compute_a_distance",
            "false",
            "--push_to_hub",
            "true",
            "--hub_model_id",
            "test-user/tweets-to-drugs",
            output_dir=tmp_path / "out",
            env={**ENV, "HF_HUB_OFFLINE": "0"},
        )
    )
    results = run.results
    assert results["method"] == "target_oracle" and "a_distance_before" not in results
    assert "Num examples = 40" in run.output  # the 40 target train rows, not the 48 source rows
    assert "alignment_loss_config" not in results
    assert {"model.safetensors", "README.md", "all_results.json"} <= set(
        hub_server.list_files("test-user/tweets-to-drugs")
    )
    card = ModelCard.load("test-user/tweets-to-drugs")
    by_name = {r.metric_name: r for r in card.data.eval_results}
    assert by_name["target_eval_accuracy"].dataset_name == "drug_reviews"
    assert by_name["target_eval_accuracy"].dataset_split == "validation"
    assert by_name["source_eval_accuracy"].dataset_name == "tweet_sentiment"
    assert by_name["target_eval_accuracy"].metric_value == pytest.approx(results["target_eval_accuracy"])
    assert "adapted from the labelled domain tweet_sentiment to the unlabelled domain drug_reviews" in card.content
    assert "target_oracle" in card.data.tags and "domain_adapt" in card.data.tags


def test_mismatched_domains_fail_early_with_the_fix(tiny_bert, tmp_path):
    cases = {
        "labels": (
            ["--source_dataset_name", "tweet_sentiment", "--target_dataset_name", "bbc_news"],
            "The source and target label sets differ",
        ),
        "modalities": (
            ["--source_dataset_name", "digits", "--target_dataset_name", "drug_reviews"],
            "The source domain is vision but the target domain is text",
        ),
    }
    for name, (args, message) in cases.items():
        run = run_recipe(
            "domain_adapt.py", "--model_name_or_path", tiny_bert, *args, output_dir=tmp_path / name, env=ENV
        )
        assert run.returncode == 2, f"{name}: {run.output[-3000:]}"
        assert message in run.output and "Traceback" not in run.output, f"{name}: {run.output[-3000:]}"
        assert not (tmp_path / name / "all_results.json").exists()


# ------------------------------------------------------------------------- slower: processes and resume


@pytest.mark.integration
def test_two_process_dann(tiny_bert, tmp_path):
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", "2", "--cpu"]
    run = assert_ok(
        run_recipe(
            "domain_adapt.py",
            "--model_name_or_path",
            tiny_bert,
            "--method",
            "dann",
            "--strategy",
            "lora",
            *TEXT,
            *TRAIN,
            output_dir=tmp_path / "out",
            launcher=launcher,
            env=ENV,
        )
    )
    assert run.results["num_processes"] == 2 and "Process rank: 1" in run.output
    assert "target_eval_accuracy" in run.results


@pytest.mark.integration
def test_resume_restores_the_discriminator(tiny_bert, tmp_path):
    out = tmp_path / "out"
    args = [
        "--model_name_or_path",
        tiny_bert,
        "--method",
        "dann",
        "--strategy",
        "full",
        *TEXT,
        *TRAIN,
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        "--compute_a_distance",
        "false",
    ]
    assert_ok(run_recipe("domain_adapt.py", *args, "--max_steps", "2", output_dir=out, env=ENV))
    rerun = assert_ok(run_recipe("domain_adapt.py", *args, "--max_steps", "4", output_dir=out, env=ENV))
    assert "Resuming training from" in rerun.output and "Loaded the alignment loss state" in rerun.output
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4
