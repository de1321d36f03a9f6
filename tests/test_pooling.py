"""Pooling modes against sentence-transformers' own Pooling module, and the default read from a checkpoint."""

import json

import pytest
import torch

from hf_transfer.models import create_backbone, resolve_model_path
from hf_transfer.models.pooling import POOLING_MODES, pool_tokens, read_sentence_transformers_pooling
from tiny_models import make_tiny_bert

# sentence-transformers weights `weightedmean` by absolute position, so it is compared under right padding only.
CASES = [
    (m, side)
    for m in POOLING_MODES
    if m != "pooler"
    for side in ("right", "left")
    if not (m == "weightedmean" and side == "left")
]


@pytest.mark.parametrize("mode, padding_side", CASES)
def test_pool_tokens_matches_sentence_transformers(mode, padding_side):
    from sentence_transformers.models import Pooling

    torch.manual_seed(0)
    hidden = torch.randn(3, 6, 8)
    lengths = torch.tensor([6, 4, 1])
    positions = torch.arange(6).expand(3, 6)
    mask = (positions < lengths[:, None]) if padding_side == "right" else (positions >= 6 - lengths[:, None])
    st_mode = {"mean_sqrt_len": "mean_sqrt_len_tokens"}.get(mode, mode)
    reference = Pooling(8, pooling_mode=st_mode)({"token_embeddings": hidden, "attention_mask": mask.long()})
    torch.testing.assert_close(pool_tokens(hidden, mask.long(), mode), reference["sentence_embedding"])


def _write_pooling(directory, **flags):
    (directory / "1_Pooling").mkdir(parents=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **flags}))
    (directory / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )
    )


def test_the_default_pooling_is_the_checkpoints_own(tmp_path):
    assert read_sentence_transformers_pooling(resolve_model_path("minilm")) == "mean"  # all-MiniLM-L6-v2
    plain = make_tiny_bert(tmp_path / "plain")
    assert read_sentence_transformers_pooling(plain) is None
    assert create_backbone(plain).pooling == "mean"

    bge_like = make_tiny_bert(tmp_path / "cls")
    _write_pooling(tmp_path / "cls", pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    assert create_backbone(bge_like).pooling == "cls"
    assert create_backbone(bge_like, pooling="max").pooling == "max"  # --pooling overrides it

    both = tmp_path / "both"
    _write_pooling(both, pooling_mode_cls_token=True, pooling_mode_mean_tokens=True)
    assert read_sentence_transformers_pooling(str(both)) is None  # concatenated poolings: not one mode


def test_contrastive_pretraining_keeps_a_cls_pooled_checkpoints_pooling(tmp_path, one_torch_thread):
    """A BGE-like checkpoint (CLS pooling) is pretrained on its first-token embedding and saved as such."""
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    from recipe_runner import assert_ok, run_recipe_in_process

    base = make_tiny_bert(tmp_path / "cls")
    _write_pooling(tmp_path / "cls", pooling_mode_cls_token=True)
    out = tmp_path / "out"
    run = assert_ok(
        run_recipe_in_process(
            "contrastive_pretrain.py",
            "--model_name_or_path",
            base,
            "--dataset_name",
            "drug_reviews",
            "--max_train_samples",
            "16",
            "--max_eval_samples",
            "8",
            "--num_train_epochs",
            "1",
            "--per_device_train_batch_size",
            "8",
            "--save_strategy",
            "no",
            output_dir=out,
        )
    )
    assert run.results["pooling"] == "cls"
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode_cls_token"] is True
    texts = ["works well", "made me dizzy for days"]
    inputs = AutoTokenizer.from_pretrained(out)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        first = AutoModel.from_pretrained(out).eval()(**inputs).last_hidden_state[:, 0]
    embedded = SentenceTransformer(str(out), device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(embedded, torch.nn.functional.normalize(first, dim=-1), atol=1e-5, rtol=1e-4)


def test_classifier_pooling_defaults_per_strategy(tmp_path, one_torch_thread):
    """On a sentence-transformers checkpoint the probe reads its trained pooling (saved in that format); full
    fine-tuning keeps the stock head unless --pooling says otherwise; --pooling head keeps the probe stock too."""
    from recipe_runner import assert_ok, run_recipe_in_process
    from tiny_models import make_tiny

    base = make_tiny("sentence-bert", tmp_path / "base")
    data = [
        "--dataset_name",
        "tweet_sentiment",
        "--max_train_samples",
        "30",
        "--max_eval_samples",
        "15",
        "--feature_cache_dir",
        str(tmp_path / "features"),
    ]
    train = ["--num_train_epochs", "1", "--save_strategy", "no"]

    def run(name, *flags):
        out = tmp_path / name
        return assert_ok(
            run_recipe_in_process("finetune.py", "--model_name_or_path", base, *data, *flags, output_dir=out)
        ).results, out

    probe, out = run("probe", "--strategy", "linear_probe")
    assert probe["pooling"] == "mean"
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((out / "modules.json").read_text())]
    assert modules == ["Transformer", "Pooling", "Dense"]
    assert json.loads((out / "config.json").read_text())["id2label"] == {
        "0": "negative",
        "1": "neutral",
        "2": "positive",
    }

    stock_probe, out = run("stock-probe", "--strategy", "linear_probe", "--pooling", "head")
    assert stock_probe["pooling"] == "head" and not (out / "modules.json").exists()
    full, out = run("full", "--strategy", "full", *train)
    assert full["pooling"] == "head" and "BertForSequenceClassification" in (out / "config.json").read_text()

    bad = run_recipe_in_process(
        "finetune.py", "--model_name_or_path", base, *data, "--pooling", "average", output_dir=tmp_path / "bad"
    )
    assert bad.returncode == 2 and "--pooling 'average' is not one of head, mean" in bad.output
