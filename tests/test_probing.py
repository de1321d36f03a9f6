import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from hf_transfer.models import create_classification_model, get_classifier
from hf_transfer.probing import FeatureCache, extract_features, fit_linear_probe, load_probe_into_classifier
from tiny_models import make_tiny_bert


def _blobs(n, d=8, classes=3, seed=0):
    centers = torch.randn(classes, d, generator=torch.Generator().manual_seed(0)) * 3  # same task for every split
    g = torch.Generator().manual_seed(seed + 1)
    y = torch.arange(n) % classes
    x = centers[y] + torch.randn(n, d, generator=g) * 1.5 + 10.0  # offset: standardisation must be folded in
    return x, y


def test_probe_matches_sklearn_logistic_regression():
    x, y = _blobs(300)
    xv, yv = _blobs(90, seed=1)
    l2 = 1e-2
    probe = fit_linear_probe(x, y, xv, yv, num_classes=3, l2_grid=[l2], max_iter=500, standardize="per_feature")
    # Same objective in sklearn: C * sum CE + 1/2 ||W||^2 on standardised features, C = 1 / (N * l2).
    mean, std = x.mean(0), x.std(0, unbiased=False)
    reference = LogisticRegression(C=1.0 / (len(x) * l2), max_iter=5000, tol=1e-10)
    reference.fit(((x - mean) / std).numpy(), y.numpy())
    z = ((xv - mean) / std).numpy()
    ours = torch.softmax(xv @ probe.weight.T + probe.bias, -1).numpy()
    np.testing.assert_allclose(ours, reference.predict_proba(z), atol=2e-3)


def test_probe_chooses_l2_on_validation_and_records_sweep():
    x, y = _blobs(200)
    xv, yv = _blobs(60, seed=2)
    grid = [10.0, 1e-1, 1e-3]
    probe = fit_linear_probe(x, y, xv, yv, num_classes=3, l2_grid=grid)
    assert set(grid) <= set(probe.sweep)  # the sweep may go on past a winning edge of the grid
    assert probe.l2 in probe.sweep and probe.validation_accuracy == max(probe.sweep.values())
    assert probe.validation_accuracy > 0.9
    assert (probe.predict(xv) == yv).float().mean() == pytest.approx(probe.validation_accuracy)


def test_empty_features_are_rejected():
    with pytest.raises(ValueError, match="non-empty"):
        fit_linear_probe(torch.zeros(0, 4), torch.zeros(0), torch.zeros(3, 4), torch.zeros(3), 2)


def test_feature_cache_roundtrip_and_corrupt_file_is_a_miss(tmp_path):
    cache = FeatureCache(tmp_path)
    key = FeatureCache.make_key(model="m", data="d")
    assert cache.load(key) is None
    cache.save(key, {"features": torch.ones(3, 2), "labels": torch.tensor([0, 1, 2])})
    assert torch.equal(cache.load(key)["labels"], torch.tensor([0, 1, 2]))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    cache.path(key).write_bytes(b"garbage")
    assert cache.load(key) is None
    assert FeatureCache.make_key(model="m", data="d") != FeatureCache.make_key(model="m", data="e")


class _Rows(torch.utils.data.Dataset):
    def __init__(self, encodings, labels):
        self.encodings, self.labels = encodings, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {
            "input_ids": self.encodings["input_ids"][i],
            "attention_mask": self.encodings["attention_mask"][i],
            "labels": self.labels[i],
        }


def _collate(rows):
    return {k: torch.stack([torch.as_tensor(r[k]) for r in rows]) for k in rows[0]}


def test_features_are_the_head_input_and_the_probe_becomes_the_head(tmp_path):
    model = create_classification_model(make_tiny_bert(tmp_path / "bert"), ["a", "b"]).eval()
    tokenizer = __import__("transformers").AutoTokenizer.from_pretrained(tmp_path / "bert")
    texts = ["good movie", "bad film", "great fun", "awful plot", "lovely", "terrible"]
    enc = tokenizer(texts, padding="max_length", max_length=8, return_tensors="pt")
    rows = _Rows(enc, torch.tensor([1, 0, 1, 0, 1, 0]))
    calls = {"n": 0}
    hook = model.register_forward_pre_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    cache = FeatureCache(tmp_path / "cache")
    feats, labels = extract_features(model, rows, _collate, cache=cache, cache_key="k", batch_size=4)
    with torch.no_grad():
        pooled = model.bert(**{k: enc[k] for k in ("input_ids", "attention_mask")}).pooler_output
    torch.testing.assert_close(feats, pooled)
    assert labels.tolist() == [1, 0, 1, 0, 1, 0]
    n = calls["n"]
    again, _ = extract_features(model, rows, _collate, cache=cache, cache_key="k", batch_size=4)
    assert calls["n"] == n and torch.equal(again, feats)  # second call: read from cache, no forward pass
    hook.remove()

    probe = fit_linear_probe(feats, labels, feats, labels, num_classes=2, l2_grid=[1e-3])
    load_probe_into_classifier(model, probe)
    with torch.no_grad():
        logits = model(**{k: enc[k] for k in ("input_ids", "attention_mask")}).logits
    torch.testing.assert_close(logits, feats @ probe.weight.T + probe.bias, atol=1e-4, rtol=1e-4)
    assert torch.equal(get_classifier(model).weight, probe.weight)


@pytest.mark.parametrize("standardize", ["shrunk", "global"])
def test_probe_is_unchanged_by_the_scale_of_the_features(standardize):
    """A random network's features can be 1e-20: the standardisation floor is relative, so they are not erased."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    features = torch.randn(60, 8, generator=g) + torch.nn.functional.one_hot(labels, 8).float() * 2
    val = torch.randn(30, 8, generator=g) + torch.nn.functional.one_hot(labels[:30], 8).float() * 2
    plain = fit_linear_probe(features, labels, val, labels[:30], 3, standardize=standardize)
    tiny = fit_linear_probe(features * 1e-20, labels, val * 1e-20, labels[:30], 3, standardize=standardize)
    assert plain.validation_accuracy > 0.8
    assert tiny.validation_accuracy == plain.validation_accuracy
    assert torch.equal(tiny.predict(val * 1e-20), plain.predict(val))
