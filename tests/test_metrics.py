import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score
from transformers import EvalPrediction

from hf_transfer.metrics import compute_classification_metrics, create_compute_metrics, load_metric


def test_packaged_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 4, size=200)
    preds = np.where(rng.random(200) < 0.6, refs, rng.integers(0, 4, size=200))
    out = compute_classification_metrics(preds, refs)
    assert out["accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert out["f1"] == pytest.approx(f1_score(refs, preds, average="macro"))
    weighted = load_metric("f1").compute(predictions=preds, references=refs, average="weighted")["f1"]
    assert weighted == pytest.approx(f1_score(refs, preds, average="weighted"))


def test_metrics_support_add_batch_offline():
    metric = load_metric("accuracy")
    metric.add_batch(predictions=[0, 1], references=[0, 0])
    metric.add_batch(predictions=[1], references=[1])
    assert metric.compute()["accuracy"] == pytest.approx(2 / 3)


def test_compute_metrics_takes_argmax_of_logits():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    out = create_compute_metrics()(EvalPrediction(predictions=logits, label_ids=np.array([1, 0, 0])))
    assert out["accuracy"] == pytest.approx(2 / 3)


def test_unknown_metric_is_named():
    with pytest.raises(ValueError, match="Unknown metric 'bleu'"):
        load_metric("bleu")
