"""Push to the Hub (a local Hub-compatible server, real huggingface_hub client) and load back."""

import json
import subprocess
import sys

import pytest
import torch
import transformers
import yaml
from huggingface_hub import ModelCard
from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification, AutoTokenizer

from hf_transfer.hub import HubPushError, push_output_dir
from hf_transfer.model_card import create_model_card
from hf_transfer.run_record import RunRecord, non_default_arguments
from recipe_runner import ROOT, assert_ok, run_recipe
from tiny_models import make_tiny_vit

TEXT = ["--dataset_name", "tweet_sentiment", "--max_train_samples", "60", "--max_eval_samples", "30"]
TRAIN = ["--num_train_epochs", "1", "--per_device_train_batch_size", "16", "--save_strategy", "epoch"]
ONLINE = {"HF_HUB_OFFLINE": "0"}
SENTENCES = ["what a lovely day", "this is terrible", "meh, it is fine"]


@pytest.fixture(scope="module")
def probe_output(tiny_bert, tmp_path_factory):
    """A finished linear-probe run, pushed by several tests."""
    out = tmp_path_factory.mktemp("probe") / "out"
    assert_ok(
        run_recipe(
            "finetune.py", "--model_name_or_path", tiny_bert, "--strategy", "linear_probe", *TEXT, output_dir=out
        )
    )
    return out


def _push_to(repo: str) -> list[str]:
    return ["--push_to_hub", "true", "--hub_model_id", repo]


def _load_in_fresh_process(code: str) -> list:
    """Run `code` (which prints JSON logits) in a new interpreter that inherits the Hub env."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _text_logits(model, tokenizer):
    with torch.no_grad():
        return model.eval()(**tokenizer(SENTENCES, padding=True, return_tensors="pt")).logits


def test_card_yaml_parses_and_carries_the_results(probe_output):
    card = create_model_card(probe_output, "test-user/probe")
    data = yaml.safe_load(card.content.split("---")[1])
    results = json.loads((probe_output / "all_results.json").read_text())
    assert data["library_name"] == "transformers" and "linear_probe" in data["tags"] and "text" in data["tags"]
    reported = {m["name"]: m["value"] for r in data["model-index"][0]["results"] for m in r["metrics"]}
    assert reported["eval_accuracy"] == pytest.approx(results["eval_accuracy"])
    assert reported["test_f1"] == pytest.approx(results["test_f1"])
    assert 'AutoModelForSequenceClassification.from_pretrained("test-user/probe")' in card.content
    assert ModelCard(card.content).data.to_dict()["library_name"] == "transformers"


def test_card_renders_the_records_typed_scores(tmp_path):
    """The card reads the scores the record holds (no key of all_results.json is parsed): each on its domain's data
    and split, a multi-label run's F1 per label in the labels' order."""
    record = RunRecord(
        recipe="domain_adapt",
        base_model="minilm",
        base_model_path="/models/minilm",
        modality="text",
        method="dann (full)",
        datasets=["tweet_sentiment", "drug_reviews"],
        label_names=["sports", "music"],
        task="multi_label",
        domains={"source": "tweet_sentiment", "target": "drug_reviews"},
        scores={"target_eval": {"micro_f1": 0.5}, "test": {"map": 0.25}},
        label_scores={"eval": {"sports": 0.75, "music": 0.125}},
        trained=False,
    )
    record.save(tmp_path)
    card = create_model_card(tmp_path, "test-user/typed")
    by_name = {r.metric_name: r for r in card.data.eval_results}
    assert by_name["target_eval_micro_f1"].dataset_name == "drug_reviews"
    assert by_name["target_eval_micro_f1"].dataset_split == "validation" and by_name["test_map"].metric_value == 0.25
    assert "| test_map | 0.2500 |" in card.content and "**Untrained:**" in card.content
    assert "| sports | 0.7500 |\n| music | 0.1250 |" in card.content


def test_non_default_arguments_skip_secrets_and_derived_values():
    from transformers import TrainingArguments

    from hf_transfer.models import ModelArguments

    args = TrainingArguments(output_dir="x", learning_rate=1e-3, hub_token="hf_secret")
    changed = non_default_arguments(ModelArguments(model_name_or_path="minilm", token="hf_secret"), args)
    assert changed == {"learning_rate": 1e-3}


def test_text_full_round_trip(tiny_bert, tmp_path, hub_server):
    out = tmp_path / "out"
    assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--strategy",
            "full",
            *TEXT,
            *TRAIN,
            *_push_to("test-user/tiny-text-full"),
            output_dir=out,
            env=ONLINE,
        )
    )
    files = hub_server.list_files("test-user/tiny-text-full")
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "all_results.json"} <= set(files)
    assert not [f for f in files if f.startswith("checkpoint-") or f == "training_args.bin"]
    local = _text_logits(AutoModelForSequenceClassification.from_pretrained(out), AutoTokenizer.from_pretrained(out))
    remote = _load_in_fresh_process(
        "import json, torch\nfrom transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        "m = AutoModelForSequenceClassification.from_pretrained('test-user/tiny-text-full').eval()\n"
        "t = AutoTokenizer.from_pretrained('test-user/tiny-text-full')\n"
        f"with torch.no_grad(): print(json.dumps(m(**t({SENTENCES!r}, padding=True, return_tensors='pt')).logits.tolist()))"
    )
    torch.testing.assert_close(torch.tensor(remote), local)
    card = ModelCard.load("test-user/tiny-text-full")
    results = json.loads((out / "all_results.json").read_text())
    by_name = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert by_name["eval_accuracy"] == pytest.approx(results["eval_accuracy"])


def test_lora_adapter_round_trip(tiny_bert, tmp_path, hub_server):
    out = tmp_path / "out"
    assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--strategy",
            "lora",
            *TEXT,
            *TRAIN,
            "--merge_lora",
            "true",
            "--push_to_hub",
            "true",
            "--push_merged",
            "true",
            "--hub_model_id",
            "test-user/tiny-lora",
            output_dir=out,
            env=ONLINE,
        )
    )
    files = set(hub_server.list_files("test-user/tiny-lora"))
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",
    } <= files and "model.safetensors" not in files
    adapter_config = json.loads(hub_server.read_file("test-user/tiny-lora", "adapter_config.json"))
    assert adapter_config["base_model_name_or_path"] == tiny_bert  # a local base stays a path users can have
    assert "library_name: peft" in hub_server.read_file("test-user/tiny-lora", "README.md").decode()
    assert "model.safetensors" in hub_server.list_files("test-user/tiny-lora-merged")

    from peft import PeftModel

    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3)
    local = _text_logits(PeftModel.from_pretrained(base, out), AutoTokenizer.from_pretrained(out))
    remote = _load_in_fresh_process(
        "import json, torch\nfrom peft import PeftModel\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        f"base = AutoModelForSequenceClassification.from_pretrained({tiny_bert!r}, num_labels=3)\n"
        "m = PeftModel.from_pretrained(base, 'test-user/tiny-lora').eval()\n"
        "t = AutoTokenizer.from_pretrained('test-user/tiny-lora')\n"
        f"with torch.no_grad(): print(json.dumps(m(**t({SENTENCES!r}, padding=True, return_tensors='pt')).logits.tolist()))"
    )
    torch.testing.assert_close(torch.tensor(remote), local)
    merged = _load_in_fresh_process(
        "import json, torch\nfrom transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        "m = AutoModelForSequenceClassification.from_pretrained('test-user/tiny-lora-merged').eval()\n"
        "t = AutoTokenizer.from_pretrained('test-user/tiny-lora')\n"
        f"with torch.no_grad(): print(json.dumps(m(**t({SENTENCES!r}, padding=True, return_tensors='pt')).logits.tolist()))"
    )
    torch.testing.assert_close(torch.tensor(merged), local, atol=1e-4, rtol=1e-4)


def test_vision_round_trip(tmp_path, hub_server):
    vit = make_tiny_vit(tmp_path / "vit")
    out = tmp_path / "out"
    assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            vit,
            "--strategy",
            "linear_probe",
            "--dataset_name",
            "digits",
            "--max_train_samples",
            "100",
            "--max_eval_samples",
            "40",
            *_push_to("test-user/tiny-vit-probe"),
            output_dir=out,
            env=ONLINE,
        )
    )
    pixels = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        local = AutoModelForImageClassification.from_pretrained(out).eval()(pixel_values=pixels).logits
    remote = _load_in_fresh_process(
        "import json, torch\nfrom transformers import AutoModelForImageClassification, AutoImageProcessor\n"
        "AutoImageProcessor.from_pretrained('test-user/tiny-vit-probe')\n"
        "m = AutoModelForImageClassification.from_pretrained('test-user/tiny-vit-probe').eval()\n"
        f"with torch.no_grad(): print(json.dumps(m(pixel_values=torch.tensor({pixels.tolist()!r})).logits.tolist()))"
    )
    torch.testing.assert_close(torch.tensor(remote), local, atol=1e-5, rtol=1e-5)
    assert "image-classification" in hub_server.read_file("test-user/tiny-vit-probe", "README.md").decode()


# Per task: the built-in, the Auto class users load it with, the card's pipeline_tag, the metric in its model-index,
# and the files beyond the model's own that the Hub repo must hold for the model to predict as it did here.
TASK_PUSHES = {
    "multi_label": (
        "twitter_entity_types",
        "AutoModelForSequenceClassification",
        "text-classification",
        "eval_micro_f1",
        {"decision_thresholds.json"},
    ),
    "regression": (
        "drug_reviews_usefulness",
        "AutoModelForSequenceClassification",
        "text-classification",
        "eval_rmse",
        set(),
    ),
    "token_classification": (
        "twitter_ner",
        "AutoModelForTokenClassification",
        "token-classification",
        "eval_f1",
        set(),
    ),
}


@pytest.mark.parametrize("task", list(TASK_PUSHES))
def test_every_task_round_trips_with_its_pipeline_tag_metrics_and_files(task, tiny_bert, tmp_path, hub_server):
    dataset, auto_class, pipeline_tag, metric, extra_files = TASK_PUSHES[task]
    repo = f"test-user/tiny-{task.replace('_', '-')}"
    out = tmp_path / "out"
    assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--strategy",
            "linear_probe",
            *[dataset if a == "tweet_sentiment" else a for a in TEXT],
            *_push_to(repo),
            output_dir=out,
            env=ONLINE,
        )
    )
    assert {"config.json", "model.safetensors", "README.md", "all_results.json"} | extra_files <= set(
        hub_server.list_files(repo)
    )
    for name in extra_files:
        assert hub_server.read_file(repo, name) == (out / name).read_bytes()
    card = ModelCard.load(repo)
    results = json.loads((out / "all_results.json").read_text())
    assert results["task"] == task and card.data.pipeline_tag == pipeline_tag
    assert {r.metric_name: r.metric_value for r in card.data.eval_results}[metric] == pytest.approx(results[metric])
    code = (
        "import json, torch, transformers\n"
        f"m = transformers.{auto_class}.from_pretrained({repo!r}).eval()\n"
        f"t = transformers.AutoTokenizer.from_pretrained({repo!r})\n"
        f"with torch.no_grad(): print(json.dumps([m.config.problem_type, m(**t({SENTENCES!r}, padding=True, return_tensors='pt')).logits.tolist()]))"
    )
    problem_type, remote = _load_in_fresh_process(code)
    local = getattr(transformers, auto_class).from_pretrained(out)
    assert problem_type == local.config.problem_type
    torch.testing.assert_close(torch.tensor(remote), _text_logits(local, AutoTokenizer.from_pretrained(out)))


def test_transient_500_is_retried(probe_output, hub_server):
    hub_server.fail_next(1, 500, route="commit")
    push_output_dir(probe_output, "test-user/retried", max_retries=3)
    assert "model.safetensors" in hub_server.list_files("test-user/retried")
    assert hub_server.count(route="commit", status=500) == 1


def test_persistent_500_fails_clearly_and_output_stays_pushable(tiny_bert, tmp_path, hub_server):
    out = tmp_path / "out"
    hub_server.fail_next(100, 500, route="commit")
    run = run_recipe(
        "finetune.py",
        "--model_name_or_path",
        tiny_bert,
        "--strategy",
        "linear_probe",
        *TEXT,
        *_push_to("test-user/later"),
        "--hub_max_retries",
        "2",
        output_dir=out,
        env=ONLINE,
    )
    assert run.returncode == 2 and "Traceback" not in run.output, run.output[-3000:]
    assert "HTTP 500" in run.output and f"python -m hf_transfer push {out}" in run.output
    assert hub_server.count(route="commit") == 2  # bounded
    assert (out / "model.safetensors").is_file() and (out / "all_results.json").is_file()
    hub_server.clear_faults()
    push = subprocess.run(
        [sys.executable, "-m", "hf_transfer", "push", str(out), "--repo_id", "test-user/later"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert push.returncode == 0, push.stderr
    assert "model.safetensors" in hub_server.list_files("test-user/later")


def test_wrong_token_is_a_clear_error_and_never_printed(probe_output, hub_server):
    with pytest.raises(HubPushError, match="token is missing or invalid") as err:
        push_output_dir(probe_output, "test-user/nope", token="hf_wrong_token_value")
    assert "hf_wrong_token_value" not in str(err.value)
    assert "push it later" in str(err.value)


def test_server_not_listening(probe_output, hub_server):
    hub_server.stop()
    with pytest.raises(HubPushError, match="could not be reached \\(after 2 attempt"):
        push_output_dir(probe_output, "test-user/down", max_retries=2)


def test_existing_repo_gets_a_new_commit(probe_output, hub_server):
    push_output_dir(probe_output, "test-user/twice")
    (probe_output / "all_results.json").write_text(
        json.dumps({**json.loads((probe_output / "all_results.json").read_text()), "note": 1})
    )
    push_output_dir(probe_output, "test-user/twice")
    assert json.loads(hub_server.read_file("test-user/twice", "all_results.json"))["note"] == 1


def test_token_never_reaches_logs_or_saved_files(tiny_bert, tmp_path, hub_server):
    from conftest import HUB_TEST_TOKEN

    out = tmp_path / "out"
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--strategy",
            "full",
            *TEXT,
            *TRAIN,
            *_push_to("test-user/secret-check"),
            "--hub_token",
            HUB_TEST_TOKEN,
            output_dir=out,
            env={**ONLINE, "HF_TOKEN": ""},
            fresh_process=True,  # everything the process writes, its file descriptors included
        )
    )
    assert HUB_TEST_TOKEN not in run.output
    for file in out.rglob("*"):
        if file.is_file():
            assert HUB_TEST_TOKEN.encode() not in file.read_bytes(), file
    for name in hub_server.list_files("test-user/secret-check"):
        assert HUB_TEST_TOKEN.encode() not in hub_server.read_file("test-user/secret-check", name), name


def test_push_refuses_offline_mode_and_empty_dirs(probe_output, tmp_path, monkeypatch):
    from huggingface_hub import constants

    with pytest.raises(HubPushError, match="no saved model"):
        push_output_dir(tmp_path, "test-user/empty")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubPushError, match="HF_HUB_OFFLINE is set"):
        push_output_dir(probe_output, "test-user/offline")
