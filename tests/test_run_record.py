"""The run record (`transfer_run.json`): scores read once out of the flat keys of `all_results.json`, saved with the
record, and loaded back typed, older files included."""

import dataclasses
import json

import pytest
from transformers import TrainingArguments

from hf_transfer.errors import DataError
from hf_transfer.hub import HubArguments
from hf_transfer.recipe.start import RecipeStart, finish_recipe
from hf_transfer.run_record import RUN_INFO_FILE, LossRecord, RunRecord, split_metric_key, split_scores
from hf_transfer.tasks import TASKS

MULTI_LABEL = TASKS.get("multi_label").metrics


def _record(**changes) -> RunRecord:
    fields = dict(
        recipe="finetune",
        base_model="minilm",
        base_model_path="/models/minilm",
        modality="text",
        method="full",
        datasets=["tweet_sentiment"],
        label_names=["neg", "pos"],
    )
    return RunRecord(**{**fields, **changes})


def test_metric_keys_are_split_then_metric():
    assert split_metric_key("test_micro_f1", MULTI_LABEL) == ("test", "micro_f1")
    assert split_metric_key("probe_eval_map", MULTI_LABEL) == ("probe_eval", "map")
    assert split_metric_key("source_eval_accuracy", ("accuracy", "f1")) == ("source_eval", "accuracy")
    assert split_metric_key("linear_eval_before_validation_f1", ("accuracy", "f1")) == (
        "linear_eval_before_validation",
        "f1",
    )
    assert (
        split_metric_key("test_f1_sports", MULTI_LABEL) is None
        and split_metric_key("test_runtime", MULTI_LABEL) is None
    )
    assert split_metric_key("finetune_baseline_accuracy", ("accuracy",)) is None  # not a split: `meta_test_*` is
    assert split_metric_key("eval_micro_f1", ("f1",)) is None  # only the task's metrics count


def test_scores_are_the_tasks_metrics_per_split_and_finite():
    metrics = {
        "eval_accuracy": 0.5,
        "eval_f1": 0.25,
        "test_accuracy": 1,
        "test_f1": float("nan"),  # undefined: left out, as all_results.json writes it null
        "source_eval_accuracy": 0.75,
        "eval_loss": 0.7,
        "eval_runtime": 1.5,
        "test_rmse": 0.1,  # another task's metric
        "trained": True,
    }
    scores, label_scores = split_scores(metrics, "single_label", ["neg", "pos"])
    assert scores == {
        "eval": {"accuracy": 0.5, "f1": 0.25},
        "test": {"accuracy": 1.0},
        "source_eval": {"accuracy": 0.75},
    }
    assert label_scores == {}


def test_label_scores_are_per_label_or_entity_type_on_complete_splits():
    metrics = {"eval_micro_f1": 0.5, "eval_f1_b": 0.2, "eval_f1_a": 0.4, "test_f1_a": 0.1}  # test lacks `b`
    scores, label_scores = split_scores(metrics, "multi_label", ["b", "a"])
    assert scores == {"eval": {"micro_f1": 0.5}} and label_scores == {"eval": {"b": 0.2, "a": 0.4}}
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    ner = {"test_f1": 0.5, "test_f1_PER": 0.6, "test_f1_LOC": 0.4, "test_precision": 0.3}
    scores, label_scores = split_scores(ner, "token_classification", tags)
    assert scores == {"test": {"f1": 0.5, "precision": 0.3}} and label_scores == {"test": {"LOC": 0.4, "PER": 0.6}}
    assert _record(task="token_classification", label_names=tags).label_score_names() == ["LOC", "PER"]


def test_record_saves_and_loads_back_typed(tmp_path):
    metrics = {
        "eval_accuracy": 0.5,
        "trainable_params": 10,
        "total_params": 100,
        "train_runtime": 2.5,
        "trained": False,
    }
    loss = {"name": "NTXentLoss", "config": {"temperature": 0.05}, "citation": "@article{x}"}
    record = _record(
        arguments=(TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3),),
        domains={"source": "a", "target": "b"},
        loss=loss,
    ).with_results(metrics)
    record.save(tmp_path)
    loaded = RunRecord.load(tmp_path)
    assert loaded.scores == {"eval": {"accuracy": 0.5}} and loaded.trained is False
    assert (loaded.trainable_params, loaded.total_params, loaded.train_runtime) == (10, 100, 2.5)
    assert loaded.hyperparameters == {"learning_rate": 1e-3} and loaded.base_model_hub_id.endswith("MiniLM-L6-v2")
    assert loaded.hardware and loaded.versions["python"] and loaded.loss == LossRecord(**loss)
    assert loaded.domains == {"source": "a", "target": "b"} and loaded.dataset_of_split("source_eval") == ("a", "eval")
    assert loaded == dataclasses.replace(record.resolved(), arguments=())  # every saved field comes back


def test_a_loaded_record_keeps_what_its_runs_machine_found(tmp_path):
    _record(base_model="org/local", base_model_path="org/local").save(tmp_path)  # a local folder, not a Hub id
    info = json.loads((tmp_path / RUN_INFO_FILE).read_text())
    info.update(base_model_hub_id=None, hardware="8 process(es) on a GPU elsewhere", versions={"torch": "0.1"})
    (tmp_path / RUN_INFO_FILE).write_text(json.dumps(info))
    RunRecord.load(tmp_path).save(tmp_path)  # saved again, here
    again = RunRecord.load(tmp_path)
    assert again.hardware == "8 process(es) on a GPU elsewhere" and again.versions == {"torch": "0.1"}
    assert again.base_model_hub_id is None


def test_an_older_record_loads_with_defaults_and_its_scores_from_all_results(tmp_path):
    older = {  # transfer_run.json as written before the task and the scores were recorded
        "recipe": "finetune",
        "base_model": "minilm",
        "base_model_hub_id": "sentence-transformers/all-MiniLM-L6-v2",
        "base_model_path": "/models/minilm",
        "modality": "text",
        "method": "lora",
        "datasets": ["tweet_sentiment"],
        "label_names": ["neg", "pos"],
        "hyperparameters": {},
        "hardware": "1 process(es) on CPU",
        "versions": {"python": "3.11"},
        "a_key_from_a_newer_version": 1,
    }
    (tmp_path / RUN_INFO_FILE).write_text(json.dumps(older))
    (tmp_path / "all_results.json").write_text(json.dumps({"test_f1": 0.5, "total_params": 7, "test_f1_neg": 0.1}))
    record = RunRecord.load(tmp_path)
    assert record.task == "single_label" and record.sentence_transformers is False and record.loss is None
    assert record.scores == {"test": {"f1": 0.5}} and record.total_params == 7 and record.trained is None


def test_a_missing_or_broken_record_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="written by the recipes"):
        RunRecord.load(tmp_path)
    (tmp_path / RUN_INFO_FILE).write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        RunRecord.load(tmp_path)
    (tmp_path / RUN_INFO_FILE).write_text(json.dumps({"recipe": "finetune"}))
    with pytest.raises(DataError, match="not a run record \\(no base_model, "):
        RunRecord.load(tmp_path)


def test_finish_recipe_records_the_scores_and_writes_all_results_as_given(tmp_path):
    run = RecipeStart((TrainingArguments(output_dir=str(tmp_path)), HubArguments()), False, None, None)
    metrics = {"eval_accuracy": 0.5, "test_f1": 0.25, "eval_runtime": 1.0, "base_model": "minilm"}
    finish_recipe(run, metrics, _record())
    assert json.loads((tmp_path / "all_results.json").read_text()) == metrics
    assert RunRecord.load(tmp_path).scores == {"eval": {"accuracy": 0.5}, "test": {"f1": 0.25}}
    assert "| test_f1 | 0.2500 |" in (tmp_path / "README.md").read_text()
