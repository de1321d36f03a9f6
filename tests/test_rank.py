"""`hf-transfer rank`: candidate parsing, features of layers / random weights / a source head, the ranked table,
the probe check (Kendall's tau), the cache, and one-line errors; on tiny models of several families and real data."""

import json
import subprocess
import sys

import pytest
import torch

from hf_transfer.__main__ import main
from hf_transfer.data import DataArguments, load_transfer_dataset
from hf_transfer.errors import ConfigError
from hf_transfer.probing import FeatureCache
from hf_transfer.transferability.candidates import CandidateRequest, extract_candidate_features, parse_candidates
from hf_transfer.transferability.ranking import kendall_tau

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXT_DATA = ["--dataset_name", "tweet_sentiment", "--max_train_samples", "60", "--max_eval_samples", "30"]
VISION_DATA = ["--dataset_name", "digits", "--max_train_samples", "60", "--max_eval_samples", "30"]


def test_candidates_merge_layers_per_model_and_reject_bad_specs():
    requests = parse_candidates(["m", "m@2", "m@-1", "random:m", "n@all", "n@1"])
    assert requests == [
        CandidateRequest("m", (-1, 2), False, True),
        CandidateRequest("m", None, True, True),
        CandidateRequest("n", "all", False, False),
    ]
    with pytest.raises(ConfigError, match="the layer 'x' is not an integer or `all`"):
        parse_candidates(["m@x"])
    with pytest.raises(ConfigError, match="names no model"):
        parse_candidates(["@3"])


def test_kendall_tau_by_hand():
    # Pairs of (1, 2, 3) against (1, 3, 2): 2 concordant, 1 discordant -> (2 - 1) / 3.
    tau, _ = kendall_tau([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert tau == pytest.approx(1 / 3)
    assert kendall_tau([1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4])[0] == pytest.approx(1.0)


@pytest.mark.parametrize("arch", ["bert", "distilbert", "roberta"])
def test_layers_are_pooled_hidden_states_in_dataset_order(tiny, arch, tmp_path):
    """Layer l's feature of a row is its masked mean of hidden_states[l], computed alone (no batch padding)."""
    from transformers import AutoModel, AutoTokenizer

    path = tiny(arch)
    splits = load_transfer_dataset(DataArguments(dataset_name="tweet_sentiment", max_train_samples=12))
    splits = splits.__class__({"train": splits["train"]})
    (embedding, *layers) = extract_candidate_features(CandidateRequest(path, "all"), splits, batch_size=5)
    model, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    assert [c.candidate.layer for c in layers] == list(range(model.config.num_hidden_layers + 1))
    for row in (0, 7):
        inputs = tokenizer(splits["train"][row]["text"], truncation=True, max_length=128, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**inputs, output_hidden_states=True).hidden_states
        for candidate in layers:
            expected = hidden[candidate.candidate.layer][0].mean(0)
            torch.testing.assert_close(candidate.features["train"][row], expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(embedding.features["train"][row], hidden[-1][0].mean(0), atol=1e-5, rtol=1e-4)
    assert embedding.source_probabilities is None  # no pretrained classification head
    assert torch.equal(embedding.labels["train"], torch.tensor(splits["train"]["label"]))


def test_text_ranking_with_probe_check_writes_the_table_and_reuses_the_cache(tiny, tmp_path, capsys):
    out, cache = tmp_path / "rank", tmp_path / "cache"
    args = ["rank", "--candidates", f"{tiny('bert')}@all", f"random:{tiny('bert')}", tiny("electra")]
    args += [*TEXT_DATA, "--check_with_probes", "true", "--output_dir", str(out), "--cache_dir", str(cache)]
    assert main(args) == 0
    ranking = json.loads((out / "ranking.json").read_text())
    names = [row["name"] for row in ranking["rows"]]
    assert len(names) == 3 + 1 + 1 and any(n.startswith("random:") for n in names)
    logme = [row["scores"]["logme"] for row in ranking["rows"]]
    assert logme == sorted(logme, reverse=True)  # ranked by LogME, best first
    assert all(row["scores"]["leep"] is None for row in ranking["rows"])  # no candidate has a source head
    assert all(0.0 <= row["probe_test_accuracy"] <= 1.0 for row in ranking["rows"])
    assert set(ranking["kendall_tau"]) == {"logme", "h_score"} and ranking["kendall_tau"]["logme"]["candidates"] == 5
    assert "Kendall's tau" in (out / "ranking.md").read_text() and "| 1 | `" in capsys.readouterr().out
    files = sorted(p.name for p in cache.rglob("*.safetensors"))
    assert main(args) == 0  # a rerun reads every candidate's features back
    assert sorted(p.name for p in cache.rglob("*.safetensors")) == files
    again = json.loads((out / "ranking.json").read_text())["rows"]
    assert [(r["name"], r["scores"]) for r in again] == [(r["name"], r["scores"]) for r in ranking["rows"]]


def test_vision_ranking_scores_leep_and_nce_for_a_checkpoint_with_a_pretrained_head(tiny, tmp_path):
    out = tmp_path / "rank"
    args = ["rank", "--candidates", tiny("timm"), f"{tiny('timm')}@-1", tiny("vit"), tiny("convnext")]
    assert main([*args, *VISION_DATA, "--output_dir", str(out), "--cache_dir", str(tmp_path / "c")]) == 0
    rows = {row["name"]: row for row in json.loads((out / "ranking.json").read_text())["rows"]}
    assert rows[tiny("timm")]["scores"]["leep"] <= 0.0 and rows[tiny("timm")]["scores"]["nce"] <= 0.0
    (layer,) = [name for name in rows if name.startswith(f"{tiny('timm')}@")]  # @-1 resolved to its index
    assert int(layer.rsplit("@", 1)[1]) > 0
    for name in (layer, tiny("vit"), tiny("convnext")):  # a layer, and checkpoints without a head
        assert rows[name]["scores"]["leep"] is None and rows[name]["scores"]["logme"] is not None


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--scores", "logme", "fid"], "--scores fid: unknown; choose from logme, h_score, leep, nce."),
        (["--rank_by", "leep", "--scores", "logme"], "--rank_by leep is not among --scores (logme)."),
        (["--candidates", "BERT@99"], "layer 99 is out of range"),
        (["--candidates", "VIT", "BERT"], "is a vision model but the data holds text"),
        (["--candidates", "BERT"], "Only one candidate"),
    ],
)
@pytest.mark.slow  # the second stage (make test-slow)
def test_bad_inputs_end_with_one_line_and_exit_2(tiny, tmp_path, flags, message):
    flags = [f.replace("BERT", tiny("bert")).replace("VIT", tiny("vit")) for f in flags]
    if "--candidates" not in flags:
        flags = ["--candidates", tiny("bert"), f"{tiny('bert')}@0", *flags]
    result = subprocess.run(
        [sys.executable, "-m", "hf_transfer", "rank", *flags, *TEXT_DATA, "--output_dir", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last and "Traceback" not in result.stderr


def test_feature_cache_key_tells_pretrained_and_random_weights_apart(tiny, tmp_path):
    splits = load_transfer_dataset(DataArguments(dataset_name="tweet_sentiment", max_train_samples=8))
    splits = splits.__class__({"train": splits["train"]})
    cache = FeatureCache(tmp_path)
    (pretrained,) = extract_candidate_features(CandidateRequest(tiny("bert")), splits, cache=cache)
    # (the tiny checkpoint itself was initialised with seed 0)
    (random,) = extract_candidate_features(
        CandidateRequest(tiny("bert"), random_init=True), splits, cache=cache, seed=1
    )
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    assert not torch.allclose(pretrained.features["train"], random.features["train"])
