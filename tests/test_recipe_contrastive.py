"""End-to-end runs of recipes/contrastive_pretrain.py, then recipes/finetune.py on its output."""

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from hf_transfer.hub import push_output_dir
from recipe_runner import assert_ok, run_recipe, run_recipe_in_process

TEXT_DATA = ["--dataset_name", "drug_reviews", "--max_train_samples", "32", "--max_eval_samples", "16"]
TRAIN = [
    "--num_train_epochs",
    "1",
    "--per_device_train_batch_size",
    "8",
    "--save_strategy",
    "epoch",
    "--learning_rate",
    "1e-3",
    "--logging_steps",
    "1",
]


def test_simcse_pretraining_then_linear_probe_transfer(tiny_bert, tmp_path, hub_server):
    out = tmp_path / "pretrained"
    run = assert_ok(
        run_recipe(
            "contrastive_pretrain.py",
            "--model_name_or_path",
            tiny_bert,
            *TEXT_DATA,
            *TRAIN,
            "--temperature",
            "0.1",
            "--learnable_temperature",
            "true",
            "--gradient_cache",
            "true",
            "--gradient_cache_mini_batch_size",
            "6",
            "--linear_eval",
            "true",
            output_dir=out,
        )
    )
    results = run.results
    for stage in ("linear_eval_before_", "linear_eval_"):  # the probe on the embedding, before and after
        assert all(
            0.0 <= results[f"{stage}{split}_{m}"] <= 1.0
            for split in ("train", "validation", "test")
            for m in ("accuracy", "f1")
        )
    assert results["method"] == "contrastive_ntxent" and results["views"] == "dropout"
    assert results["train_loss"] > 0 and 0.01 <= results["temperature"] <= 0.1 and results["gradient_cache"]
    # The final folder is the backbone alone; the checkpoint keeps head and temperature for resuming.
    assert not any(k.startswith(("projection", "loss")) for k in load_file(out / "model.safetensors"))
    checkpoint = load_file(out / "checkpoint-4" / "model.safetensors")
    assert "loss.temperature.logit_scale" in checkpoint and any(k.startswith("projection.") for k in checkpoint)
    backbone = AutoModel.from_pretrained(out)
    torch.testing.assert_close(
        backbone.embeddings.word_embeddings.weight, checkpoint["backbone.model.embeddings.word_embeddings.weight"]
    )
    assert [m["path"] for m in json.loads((out / "modules.json").read_text())] == ["", "1_Pooling", "2_Normalize"]
    card = (out / "README.md").read_text()
    assert "pipeline_tag: sentence-similarity" in card and "NTXentLoss" in card and "SentenceTransformer(" in card
    # On the Hub the sentence-transformers module folders go up too; checkpoints never do.
    push_output_dir(out, "test-user/tiny-simcse")
    files = set(hub_server.list_files("test-user/tiny-simcse"))
    assert {"config.json", "model.safetensors", "modules.json", "1_Pooling/config.json", "README.md"} <= files
    assert not any(f.startswith("checkpoint-") for f in files)

    # Transfer: the fine-tuning recipe takes the pretrained folder like any backbone.
    probe = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            str(out),
            "--strategy",
            "linear_probe",
            *TEXT_DATA,
            "--probe_l2_grid",
            "1.0",
            "--probe_max_iter",
            "50",
            output_dir=tmp_path / "probe",
        )
    )
    assert probe.results["strategy"] == "linear_probe" and 0.0 <= probe.results["eval_accuracy"] <= 1.0


def test_bad_combination_stops_before_training(tmp_path):
    run = run_recipe(
        "contrastive_pretrain.py",
        "--model_name_or_path",
        "minilm",
        "--dataset_name",
        "drug_reviews",
        "--views",
        "pair",
        output_dir=tmp_path / "out",
    )
    assert run.returncode == 2, run.output[-3000:]
    assert "error: --views pair needs --pair_column NAME" in run.output
    assert not (tmp_path / "out" / "all_results.json").exists()


@pytest.mark.integration
def test_two_processes_gather_negatives_and_resume(tiny_bert, tmp_path):
    out = tmp_path / "ddp"
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", "2", "--cpu"]
    # A projection head and a learnable temperature: parameters outside the backbone are synchronised too.
    args = [
        "--model_name_or_path",
        tiny_bert,
        *TEXT_DATA,
        *TRAIN,
        "--contrastive_loss",
        "in_batch",
        "--symmetric",
        "true",
        "--learnable_temperature",
        "true",
        "--projection_dim",
        "16",
    ]
    run = assert_ok(run_recipe("contrastive_pretrain.py", *args, output_dir=out, launcher=launcher))
    assert run.results["num_processes"] == 2 and run.results["global_batch_size"] == 16
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()
    # Rerun with a second epoch: resumes from checkpoint-2 instead of starting over.
    again = assert_ok(
        run_recipe("contrastive_pretrain.py", *args, "--num_train_epochs", "2", output_dir=out, launcher=launcher)
    )
    assert "Resuming training from" in again.output and (out / "checkpoint-4").is_dir()


def test_gradient_cache_is_refused_under_sharding(tiny_bert, tmp_path, monkeypatch):
    """GradCache's per-mini-batch backward is not made for FSDP / ZeRO gradient reduction: one line, before loading."""
    monkeypatch.setattr("hf_transfer.recipe.checks._has_accelerator", lambda args: True)  # as on a GPU machine
    run = run_recipe_in_process(
        "contrastive_pretrain.py",
        "--model_name_or_path",
        tiny_bert,
        *TEXT_DATA,
        "--gradient_cache",
        "true",
        "--fsdp",
        "full_shard",
        output_dir=tmp_path / "out",
    )
    assert run.returncode == 2, run.output[-2000:]
    assert "--gradient_cache does not run under FSDP" in run.output and "Traceback" not in run.output
