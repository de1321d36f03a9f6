"""End-to-end runs of recipes/finetune.py on tiny random backbones and small slices of real data."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification, AutoTokenizer

from hf_transfer.data import DataArguments, load_transfer_dataset
from recipe_runner import ROOT, assert_ok, run_recipe, run_recipe_in_process

TEXT_DATA = ["--dataset_name", "tweet_sentiment", "--max_train_samples", "120", "--max_eval_samples", "60"]
VISION_DATA = ["--dataset_name", "digits", "--max_train_samples", "150", "--max_eval_samples", "60"]
TRAIN = [
    "--num_train_epochs",
    "1",
    "--per_device_train_batch_size",
    "16",
    "--per_device_eval_batch_size",
    "32",
    "--save_strategy",
    "epoch",
    "--learning_rate",
    "1e-3",
]


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory):
    return {"HF_TRANSFER_CACHE": str(tmp_path_factory.mktemp("hf-transfer-cache"))}


def _validation_texts(max_eval=60):
    data = load_transfer_dataset(
        DataArguments(dataset_name="tweet_sentiment", max_train_samples=120, max_eval_samples=max_eval)
    )
    return list(data["validation"]["text"]), np.array(list(data["validation"]["label"]))


def _accuracy(model, inputs, labels):
    with torch.no_grad():
        logits = model.eval()(**inputs).logits
    return float((logits.argmax(-1).numpy() == labels).mean()), logits


# ----------------------------------------------------------------------------------------------- text


def test_text_linear_probe_saves_a_plain_transformers_model(tiny_bert, tmp_path, feature_cache):
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--strategy",
            "linear_probe",
            *TEXT_DATA,
            "--validation_split_percentage",  # a held-out split, as the other strategies have (default: CV)
            "0.1",
            output_dir=tmp_path / "out",
            env=feature_cache,
        )
    )
    results = run.results
    for key in ("eval_accuracy", "eval_f1", "train_runtime", "strategy", "trainable_params", "total_params"):
        assert key in results, key
    assert results["strategy"] == "linear_probe" and results["trainable_params"] == 3 * 32 + 3
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    texts, labels = _validation_texts()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    accuracy, _ = _accuracy(
        model, tokenizer(texts, truncation=True, max_length=128, padding=True, return_tensors="pt"), labels
    )
    assert accuracy == pytest.approx(results["eval_accuracy"])

    # A second run with another probe setting reuses the cached features: no extraction.
    again = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--strategy",
            "linear_probe",
            "--probe_l2_grid",
            "1.0",
            *TEXT_DATA,
            output_dir=tmp_path / "out2",
            env=feature_cache,
        )
    )
    assert "using cached features" in again.output
    assert again.results["probe_l2"] == 1.0


def test_text_lora_saves_adapter_and_merged_model(tiny_bert, tmp_path):
    out = tmp_path / "out"
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--strategy",
            "lora",
            "--merge_lora",
            "true",
            "--lora_r",
            "4",
            *TEXT_DATA,
            *TRAIN,
            output_dir=out,
        )
    )
    results = run.results
    assert results["trainable_params"] < results["total_params"] / 5
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == tiny_bert
    assert "classifier" in adapter_config["modules_to_save"]
    base = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"}
    )
    peft_model = PeftModel.from_pretrained(base, out)
    merged = AutoModelForSequenceClassification.from_pretrained(out / "merged")
    texts, labels = _validation_texts()
    inputs = AutoTokenizer.from_pretrained(out)(
        texts, truncation=True, max_length=128, padding=True, return_tensors="pt"
    )
    accuracy, logits = _accuracy(peft_model, inputs, labels)
    _, merged_logits = _accuracy(merged, inputs, labels)
    torch.testing.assert_close(logits, merged_logits, atol=1e-4, rtol=1e-4)
    assert accuracy == pytest.approx(results["eval_accuracy"])


def test_text_lp_ft_starts_from_the_probe_head(tiny_bert, tmp_path, feature_cache):
    # With a vanishing learning rate, fine-tuning keeps the probe's head: same validation accuracy.
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--strategy",
            "lp_ft",
            *TEXT_DATA,
            *TRAIN,
            "--learning_rate",
            "1e-12",
            "--head_learning_rate",
            "1e-12",
            output_dir=tmp_path / "out",
            env=feature_cache,
        )
    )
    results = run.results
    assert results["eval_accuracy"] == pytest.approx(results["probe_eval_accuracy"])
    assert results["strategy"] == "lp_ft" and results["trainable_params"] == results["total_params"]


def test_text_full_finetuning_with_layer_decay(tiny_bert, tmp_path):
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--strategy",
            "full",
            "--layer_decay",
            "0.8",
            "--head_learning_rate",
            "5e-3",
            *TEXT_DATA,
            *TRAIN,
            output_dir=tmp_path / "out",
        )
    )
    assert run.results["trainable_params"] == run.results["total_params"]
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert (tmp_path / "out" / "checkpoint-8" / "trainer_state.json").is_file()
    assert not list((tmp_path / "out").glob(".staging-*"))


# --------------------------------------------------------------------------------------------- vision


@pytest.mark.parametrize("strategy", ["linear_probe", "full", "lora", "lp_ft"])
def test_vision_strategies(tiny_vit, tmp_path, strategy, feature_cache):
    out = tmp_path / "out"
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_vit,
            "--strategy",
            strategy,
            *VISION_DATA,
            *TRAIN,
            output_dir=out,
            env=feature_cache,
        )
    )
    results = run.results
    assert results["modality"] == "vision" and 0.0 <= results["eval_accuracy"] <= 1.0
    assert (out / "preprocessor_config.json").is_file()
    if strategy == "lora":
        base = AutoModelForImageClassification.from_pretrained(tiny_vit, num_labels=10)
        model = PeftModel.from_pretrained(base, out)
        assert any("lora_A" in n for n, _ in model.named_parameters())
    else:
        model = AutoModelForImageClassification.from_pretrained(out)
        assert model.config.id2label[7] == "7"
    if strategy == "linear_probe":
        # The probe on tiny random ViT features of digits is far above chance (10%).
        assert results["eval_accuracy"] > 0.3


# ---------------------------------------------------------------------------------- config and resume


def test_config_file_with_overrides(tiny_bert, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        f"model_name_or_path: {tiny_bert}\ndataset_name: tweet_sentiment\nstrategy: linear_probe\n"
        f"max_train_samples: 500\nmax_eval_samples: 60\noutput_dir: {tmp_path / 'from-yaml'}\nreport_to: none\n"
    )
    assert_ok(run_recipe("finetune.py", str(config), "--max_train_samples", "90"))
    results = json.loads((tmp_path / "from-yaml" / "all_results.json").read_text())
    assert results["train_samples"] == 90 and results["eval_samples"] == 90  # the probe cross-validates on train


def test_resume_after_the_run_is_killed(tiny_bert, tmp_path):
    """Kill a run after its first checkpoint; the rerun resumes from it instead of starting over."""
    out = tmp_path / "out"
    args = [
        "--model_name_or_path",
        tiny_bert,
        "--strategy",
        "full",
        *TEXT_DATA,
        "--per_device_train_batch_size",
        "4",
        "--max_steps",
        "400",
        "--save_steps",
        "5",
        "--save_strategy",
        "steps",
        "--output_dir",
        str(out),
        "--report_to",
        "none",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "recipes" / "finetune.py"), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not (out / "checkpoint-10" / "trainer_state.json").is_file():
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoint-10").is_dir(), "no checkpoint was written before the deadline"
    assert not (out / "all_results.json").exists()
    # The kill may land a few checkpoints later on a slow machine: the rerun must pick the newest complete one.
    newest = max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if (p / "trainer_state.json").is_file())
    # Simulate a checkpoint cut short by the kill: it must be skipped, not crash the resume.
    (out / "checkpoint-999").mkdir()
    rerun = assert_ok(run_recipe("finetune.py", *args[:-4], "--max_steps", str(newest + 5), output_dir=out))
    resumed_from = rerun.output.split("Resuming training from")[1][:300]
    assert f"checkpoint-{newest}" in resumed_from and "checkpoint-999" not in resumed_from
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == newest + 5
    assert rerun.results["eval_accuracy"] >= 0


# ------------------------------------------------------------------------------------------------ DDP


@pytest.mark.parametrize(
    "config", sorted((ROOT / "recipes" / "accelerate_configs").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_shipped_accelerate_config_is_one_accelerate_reads(config):
    """accelerate's own loader refuses unknown top-level keys; the nested plugin keys become `accelerate launch`
    flags, so each must be one of its options."""
    import yaml
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    loaded = load_config_from_file(str(config))
    flags = {option for action in launch_command_parser()._actions for option in action.option_strings}
    raw = yaml.safe_load(config.read_text())
    for plugin in ("fsdp_config", "deepspeed_config"):
        unknown = [key for key in raw.get(plugin, {}) if f"--{key}" not in flags]
        assert not unknown, f"{config.name}: {plugin} keys accelerate launch does not know: {unknown}"
    assert loaded.num_processes >= 2 and config.read_text().startswith("#")  # each file says how to run it


def test_sharding_on_cpu_is_one_line_not_a_silent_ddp_run(tiny_bert, tmp_path):
    """accelerate enables FSDP / DeepSpeed only on accelerator devices: on CPU, `--fsdp` (transformers' flag) and an
    FSDP config launched with --cpu both used to train plain DDP without a word."""
    flag = run_recipe_in_process(
        "finetune.py",
        "--model_name_or_path",
        tiny_bert,
        "--dataset_name",
        "tweet_sentiment",
        "--fsdp",
        "full_shard",
        output_dir=tmp_path / "flag",
    )
    assert flag.returncode == 2 and "FSDP needs GPUs: accelerate shards only on accelerator devices" in flag.output
    config = str(ROOT / "recipes" / "accelerate_configs" / "fsdp2.yaml")
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--quiet", "--config_file", config, "--cpu"]
    launched = run_recipe(
        "finetune.py", "--model_name_or_path", tiny_bert, output_dir=tmp_path / "cfg", launcher=launcher
    )
    assert launched.returncode != 0  # accelerate's launcher exits 1 for any failure of the script (2 here)
    assert launched.output.strip().splitlines()[-1].startswith("error: the accelerate config asks for FSDP and the")
    assert "Traceback" not in launched.output and not (tmp_path / "cfg").exists()


@pytest.mark.parametrize("strategy, pooling", [("lora", "mean")])
def test_two_process_ddp_gathers_every_sample_once(strategy, pooling, tiny_bert, tmp_path):
    """A mean-pooled LoRA classifier, the riskiest combination under DDP (peft around a custom module, saved once,
    merged, in sentence-transformers' format); the stock head under DDP is domain_adapt's and maml's 2-process test."""
    out = tmp_path / "out"
    # The shipped config (the other 2-process tests pass `--cpu --num_processes 2`): accelerate runs CPU processes
    # as one unless mpirun is set up, so the recipe itself starts the 2 processes (gloo), reading N from the file.
    config = str(ROOT / "recipes" / "accelerate_configs" / "cpu_ddp_2_processes.yaml")
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file", config]
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--strategy",
            strategy,
            "--pooling",
            pooling,
            "--dataset_name",
            "tweet_sentiment",
            "--max_train_samples",
            "64",
            "--max_eval_samples",
            "61",
            *TRAIN,
            output_dir=out,
            launcher=launcher,
        )
    )
    results = run.results
    assert results["num_processes"] == 2 and results["pooling"] == pooling
    assert "Process rank: 1" in run.output
    # 61 validation rows over 2 processes: Trainer pads to 62 internally; gathered metrics must use 61.
    texts, labels = _validation_texts(max_eval=61)
    assert len(labels) == 61
    if pooling == "head":
        model = AutoModelForSequenceClassification.from_pretrained(out)
        inputs = AutoTokenizer.from_pretrained(out)(
            texts, truncation=True, max_length=128, padding=True, return_tensors="pt"
        )
        accuracy, _ = _accuracy(model, inputs, labels)
    else:
        from sentence_transformers import SentenceTransformer

        assert not (out / "adapter_config.json").exists()
        logits = SentenceTransformer(str(out), device="cpu").encode(texts, batch_size=64)
        accuracy = float((logits.argmax(-1) == np.asarray(labels)).mean())
    assert accuracy == pytest.approx(results["eval_accuracy"])
    assert results["eval_samples_per_second"] > 0


@pytest.mark.slow  # the second stage (make test-slow)
@pytest.mark.parametrize("modality", ["text", "vision"])
def test_two_processes_extract_the_probe_features_of_one(modality, tiny_bert, tiny_vit, tmp_path):
    """Each of 2 processes extracts half of the rows (every other batch of the length order) and both get all of
    them back in data set order: the features one process caches, and the same probe."""
    from safetensors.torch import load_file

    model, data = (tiny_bert, ["--dataset_name", "tweet_sentiment"]) if modality == "text" else (tiny_vit, VISION_DATA)
    flags = ["--model_name_or_path", model, *data, "--strategy", "linear_probe", "--feature_batch_size", "16"]
    if modality == "text":
        flags += ["--max_train_samples", "70", "--max_eval_samples", "33"]
    # A fresh process, as each of the two is: datasets' hash of the tokenizing function (part of the cache key) is not
    # the same inside this pytest worker, which has already tokenized with other tokenizers.
    one_dir, two_dir = str(tmp_path / "one"), str(tmp_path / "two")
    one = assert_ok(
        run_recipe(
            "finetune.py", *flags, "--feature_cache_dir", one_dir, output_dir=tmp_path / "o1", fresh_process=True
        )
    )
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", "2", "--cpu"]
    two = assert_ok(
        run_recipe(
            "finetune.py",
            *flags,
            "--feature_cache_dir",
            two_dir,
            output_dir=tmp_path / "o2",
            launcher=launcher,
        )
    )
    rows = two.results["train_samples"]
    first_share = sum(min(16, rows - start) for start in range(0, rows, 32))  # batches 0, 2, 4, ... of 16 rows
    assert f"Extracting train features: this process extracts {first_share} of {rows} rows (2 processes)" in two.output
    assert two.results["num_processes"] == 2
    files = sorted(p.name for p in (tmp_path / "one").glob("*.safetensors"))
    assert files and files == sorted(p.name for p in (tmp_path / "two").glob("*.safetensors"))  # the same keys
    for name in files:
        single, sharded = load_file(tmp_path / "one" / name), load_file(tmp_path / "two" / name)
        torch.testing.assert_close(sharded["features"], single["features"], atol=1e-5, rtol=1e-4)
        assert torch.equal(sharded["labels"], single["labels"])
    assert two.results["eval_accuracy"] == pytest.approx(one.results["eval_accuracy"])
    assert two.results["probe_l2"] == one.results["probe_l2"]


# ------------------------------------------------------------------------------------------ bad input


def _write_csv(path, rows, header="text,label"):
    path.write_text(header + "\n" + "\n".join(rows) + ("\n" if rows else ""))
    return str(path)


def _bad_input_cases(tmp_path, tiny_bert):
    good = [f"text number {i},{'pos' if i % 2 else 'neg'}" for i in range(40)]
    train = _write_csv(tmp_path / "train.csv", good)
    headed = _write_csv(tmp_path / "three.csv", [f"t {i},{['a', 'b', 'c'][i % 3]}" for i in range(30)])
    images = tmp_path / "images"
    for label in ("cat", "dog"):
        (images / label).mkdir(parents=True)
        for i in range(6):
            from PIL import Image

            Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(images / label / f"{i}.png")
    (images / "dog" / "broken.png").write_bytes(b"not a png at all")
    three_label_model = tmp_path / "three-label-model"
    from hf_transfer.models import create_classification_model

    create_classification_model(tiny_bert, ["a", "b", "c"]).save_pretrained(three_label_model)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(three_label_model)
    five = _write_csv(tmp_path / "five.csv", [f"t {i},{'abcde'[i % 5]}" for i in range(50)])
    return {
        "unknown model": (
            ["--model_name_or_path", "no-such-model", "--train_file", train],
            "Unknown model 'no-such-model'",
        ),
        "misnamed column": (
            ["--model_name_or_path", tiny_bert, "--train_file", train, "--text_column", "review"],
            "--text_column",
        ),
        "unseen labels": (
            [
                "--model_name_or_path",
                tiny_bert,
                "--train_file",
                train,
                "--validation_file",
                _write_csv(tmp_path / "val.csv", ["x,neg", "y,maybe"]),
            ],
            "maybe",
        ),
        "empty split": (
            [
                "--model_name_or_path",
                tiny_bert,
                "--train_file",
                train,
                "--validation_file",
                _write_csv(tmp_path / "empty.csv", []),
            ],
            "empty",
        ),
        "label count vs head": (
            ["--model_name_or_path", str(three_label_model), "--train_file", five],
            "--ignore_mismatched_sizes",
        ),
        "label names vs head": (
            [
                "--model_name_or_path",
                str(three_label_model),
                "--train_file",
                _write_csv(tmp_path / "xyz.csv", [f"t {i},{'xyz'[i % 3]}" for i in range(30)]),
            ],
            "trained for labels",
        ),
        "unreadable image": (["--model_name_or_path", tiny_bert, "--train_dir", str(images)], "broken.png"),
        "modality mismatch": (
            ["--model_name_or_path", tiny_bert, "--dataset_name", "digits"],
            "is a text model but the data is vision",
        ),
        "bad strategy value": (
            ["--model_name_or_path", tiny_bert, "--train_file", headed, "--layer_decay", "2"],
            "--layer_decay 2.0 must be in",
        ),
    }


def test_bad_inputs_fail_early_with_the_fix(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    for name, (args, message) in _bad_input_cases(tmp_path, tiny_bert).items():
        out = tmp_path / name.replace(" ", "-")
        run = run_recipe_in_process("finetune.py", *args, "--strategy", "full", output_dir=out)
        assert run.returncode == 2, f"{name}: {run.output[-3000:]}"
        assert message in run.output, f"{name}: {run.output[-3000:]}"
        assert not (out / "all_results.json").exists()


def test_bad_input_on_the_command_line_is_one_clear_line(tmp_path):
    """The real command: exit code 2, the message and the fix, no traceback."""
    train = _write_csv(tmp_path / "train.csv", [f"text {i},{'pos' if i % 2 else 'neg'}" for i in range(20)])
    run = run_recipe(
        "finetune.py", "--model_name_or_path", "no-such-model", "--train_file", train, output_dir=tmp_path / "out"
    )
    assert run.returncode == 2, run.output[-3000:]
    assert "Unknown model 'no-such-model'" in run.output and "Traceback" not in run.output
