import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, TimmWrapperConfig, ViTConfig

from hf_transfer.errors import DataError, ModelLoadError
from hf_transfer.models import (
    ModelArguments,
    create_backbone,
    create_classification_model,
    get_classifier,
    get_classifier_name,
    infer_model_modality,
    model_fingerprint,
    resolve_model_path,
)
from hf_transfer.recipe import load_transfer_model


def test_minilm_alias_resolves_to_packaged_weights():
    path = resolve_model_path("minilm")
    config = json.load(open(f"{path}/config.json"))
    assert config["model_type"] == "bert" and config["hidden_size"] == 384


def test_unknown_model_names_aliases_and_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"Unknown model 'no-such/model'.*minilm, efficientnet-lite0"):
        resolve_model_path("no-such/model")


def test_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelLoadError, match="without config.json"):
        resolve_model_path(str(tmp_path))


@pytest.mark.parametrize(
    "config, modality",
    [(BertConfig(), "text"), (ViTConfig(), "vision"), (TimmWrapperConfig(architecture="resnet18"), "vision")],
)
def test_modality_comes_from_config(config, modality):
    assert infer_model_modality(config) == modality


def test_mean_pooling_ignores_padding(tiny_bert):
    backbone = create_backbone(tiny_bert)
    assert backbone.modality == "text" and backbone.pooling == "mean"
    backbone.eval()
    alone = backbone.processor(["short text"], return_tensors="pt")
    padded = backbone.processor(
        ["short text", "a much longer text with many more tokens in it"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        a = backbone.embed(**alone)
        b = backbone.embed(**padded)
    assert a.shape == (1, 32)
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-5)


def test_vision_backbone_pools_features(tiny_vit):
    backbone = create_backbone(tiny_vit).eval()
    assert backbone.modality == "vision"
    with torch.no_grad():
        out = backbone.embed(pixel_values=torch.randn(2, 3, 32, 32))
    assert out.shape == (2, backbone.embedding_dim)


def test_head_label_mismatch_needs_flag(tiny_bert, tmp_path):
    model = create_classification_model(tiny_bert, ["neg", "neu", "pos"])
    model.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="head for 3 labels but the data has 5.*--ignore_mismatched_sizes"):
        create_classification_model(str(tmp_path), ["a", "b", "c", "d", "e"])
    with pytest.raises(ModelLoadError, match=r"trained for labels \['neg', 'neu', 'pos'\]"):
        create_classification_model(str(tmp_path), ["x", "y", "z"])
    same = create_classification_model(str(tmp_path), ["neg", "neu", "pos"])
    torch.testing.assert_close(get_classifier(same).weight, get_classifier(model).weight)
    from hf_transfer.models import ModelArguments

    replaced = create_classification_model(
        str(tmp_path), ["a", "b", "c", "d", "e"], ModelArguments(str(tmp_path), ignore_mismatched_sizes=True)
    )
    assert get_classifier(replaced).out_features == 5
    assert replaced.config.id2label[4] == "e"


def test_classifier_is_found_across_families(tiny_bert, tiny_vit):
    text = create_classification_model(tiny_bert, ["a", "b"])
    vision = create_classification_model(tiny_vit, ["a", "b", "c"])
    assert get_classifier_name(text) == "classifier" and get_classifier(text).out_features == 2
    assert get_classifier_name(vision) == "classifier" and get_classifier(vision).out_features == 3


def test_saved_classifier_loads_with_plain_transformers(tiny_bert, tmp_path):
    model = create_classification_model(tiny_bert, ["a", "b"])
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert reloaded.config.id2label == {0: "a", 1: "b"}


def test_model_fingerprint_changes_when_weights_change(tiny_bert, tmp_path):
    model = create_classification_model(tiny_bert, ["a", "b"])
    model.save_pretrained(tmp_path)
    before = model_fingerprint(str(tmp_path))
    assert before == model_fingerprint(str(tmp_path))
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    model.save_pretrained(tmp_path)
    assert model_fingerprint(str(tmp_path)) != before


@pytest.mark.integration
def test_efficientnet_alias_is_converted_once_and_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path))
    path = resolve_model_path("efficientnet-lite0")  # converts and checks the sample photos
    assert (tmp_path / "models").is_dir() and path.startswith(str(tmp_path))
    stamp = (tmp_path / "models").stat().st_mtime_ns
    assert resolve_model_path("efficientnet-lite0") == path
    backbone = create_backbone("efficientnet-lite0")
    assert backbone.modality == "vision" and backbone.embedding_dim == 1280
    model = create_classification_model(path, [str(i) for i in range(10)], replace_head=True)
    assert get_classifier_name(model) == "timm_model.classifier" and get_classifier(model).out_features == 10
    assert model.config.id2label[3] == "3"
    assert (tmp_path / "models").stat().st_mtime_ns == stamp


def test_load_transfer_model_checks_modality_and_sizes_images(tiny_bert, tiny_vit):
    loaded = load_transfer_model(ModelArguments(model_name_or_path=tiny_vit), ["a", "b", "c"], "vision", image_size=24)
    assert loaded.modality == "vision" and loaded.model.config.num_labels == 3
    assert loaded.processor.size == {"height": 24, "width": 24}
    assert load_transfer_model(ModelArguments(model_name_or_path=tiny_bert), ["x", "y"], "text").modality == "text"
    with pytest.raises(DataError, match="is a vision model but the data is text; pick a model and a dataset"):
        load_transfer_model(ModelArguments(model_name_or_path=tiny_vit), ["a", "b"], "text")
