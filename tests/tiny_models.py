"""Tiny randomly initialised checkpoints for unit tests, saved like real ones (`save_pretrained`).

`TINY_ARCHITECTURES` is the registry of the architecture matrix: one small config per family that users
bring (text encoders and image backbones), each saved as a *backbone* checkpoint (`AutoModel`, no task
head), the way a pretrained model on the Hub is, next to a tokenizer or image processor.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertModel,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
)

from hf_transfer.models import resolve_model_path

TEXT_SIZE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
IMAGE_SIZE = 32


def make_tiny_bert(directory: str | Path) -> str:
    """A 2-layer BERT (hidden 32) with MiniLM's real tokenizer, so real text tokenizes properly."""
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=128, **TEXT_SIZE)
    model = BertModel(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def make_tiny_vit(directory: str | Path, image_size: int = IMAGE_SIZE) -> str:
    """A 2-layer ViT (hidden 32, 8x8 patches) for 32x32 images."""
    torch.manual_seed(0)
    config = ViTConfig(image_size=image_size, patch_size=8, **TEXT_SIZE)
    ViTModel(config, add_pooling_layer=False).save_pretrained(directory)
    ViTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(directory)
    return str(directory)


# --------------------------------------------------------------------------------------------------
# The architecture matrix


@dataclass(frozen=True)
class TinyArchitecture:
    name: str
    modality: str  # "text" or "vision"
    build: Callable[[str], None]  # writes the checkpoint (and its processor) into a directory


def _text_config(config_cls_name: str, **overrides):
    import transformers

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    sizes = dict(TEXT_SIZE, vocab_size=tokenizer.vocab_size, max_position_embeddings=160)
    sizes.update(overrides)
    return getattr(transformers, config_cls_name)(**sizes)


def _save_text_backbone(config, directory: str) -> None:
    """The backbone (`AutoModel`) with MiniLM's WordPiece tokenizer: its ids fit every tiny vocabulary.

    Models without token types (DistilBERT, MPNet, ModernBERT) get a tokenizer that does not produce them,
    as their real tokenizers do.
    """
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    config.pad_token_id = tokenizer.pad_token_id
    for attr in ("bos_token_id", "cls_token_id"):
        if hasattr(config, attr):
            setattr(config, attr, tokenizer.cls_token_id)
    for attr in ("eos_token_id", "sep_token_id"):
        if hasattr(config, attr):
            setattr(config, attr, tokenizer.sep_token_id)
    AutoModel.from_config(config).save_pretrained(directory)
    head_cls = AutoModelForSequenceClassification.from_config(config).__class__
    if "token_type_ids" not in inspect.signature(head_cls.forward).parameters:
        tokenizer.model_input_names = ["input_ids", "attention_mask"]
    tokenizer.save_pretrained(directory)


def _text(config_cls_name: str, **overrides) -> Callable[[str], None]:
    return lambda directory: _save_text_backbone(_text_config(config_cls_name, **overrides), directory)


def _save_vision_backbone(config, directory: str, processor=None) -> None:
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(directory)
    processor = processor or ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor.save_pretrained(directory)


def _vision(config_cls_name: str, **kwargs) -> Callable[[str], None]:
    import transformers

    return lambda directory: _save_vision_backbone(getattr(transformers, config_cls_name)(**kwargs), directory)


_VIT_SIZE = dict(image_size=IMAGE_SIZE, patch_size=8, **TEXT_SIZE)


def _build_sentence_bert(directory: str) -> None:
    """A tiny BERT saved as a sentence-transformers model with mean pooling (as all-MiniLM-L6-v2 is)."""
    import json

    make_tiny_bert(directory)
    root = Path(directory)
    (root / "1_Pooling").mkdir(exist_ok=True)
    (root / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": TEXT_SIZE["hidden_size"], "pooling_mode_mean_tokens": True})
    )
    (root / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )
    )


def _build_clip(directory: str) -> None:
    """A whole CLIP checkpoint (text and vision towers), as on the Hub; the image classifier uses the vision tower."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=99, max_position_embeddings=16, **TEXT_SIZE),
        vision_config=dict(**_VIT_SIZE),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(directory)
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(directory)


def _build_timm(directory: str) -> None:
    """A timm model saved for the Hub (`save_for_hf`), loaded by transformers' timm wrapper."""
    import json

    import timm
    from transformers import TimmWrapperImageProcessor

    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=5)
    timm.models.save_for_hf(model, directory, safe_serialization=True)
    config_file = Path(directory) / "config.json"
    config = json.loads(config_file.read_text())
    config.pop("model_args", None)
    config["pretrained_cfg"]["input_size"] = [3, IMAGE_SIZE, IMAGE_SIZE]
    config_file.write_text(json.dumps(config, indent=2))
    TimmWrapperImageProcessor.from_pretrained(directory).save_pretrained(directory)


TINY_ARCHITECTURES: dict[str, TinyArchitecture] = {
    arch.name: arch
    for arch in (
        TinyArchitecture("bert", "text", _text("BertConfig")),
        TinyArchitecture("sentence-bert", "text", _build_sentence_bert),
        TinyArchitecture("roberta", "text", _text("RobertaConfig")),
        TinyArchitecture("distilbert", "text", _text("DistilBertConfig", dim=32, n_layers=2, n_heads=2, hidden_dim=37)),
        TinyArchitecture(
            "deberta-v2",
            "text",
            _text("DebertaV2Config", relative_attention=True, position_buckets=16, pos_att_type=["p2c", "c2p"]),
        ),
        TinyArchitecture("electra", "text", _text("ElectraConfig", embedding_size=16)),
        TinyArchitecture("xlm-roberta", "text", _text("XLMRobertaConfig")),
        TinyArchitecture("albert", "text", _text("AlbertConfig", embedding_size=16)),
        TinyArchitecture("mpnet", "text", _text("MPNetConfig")),
        TinyArchitecture(
            "modernbert", "text", _text("ModernBertConfig", global_attn_every_n_layers=2, local_attention=16)
        ),
        TinyArchitecture("vit", "vision", _vision("ViTConfig", **_VIT_SIZE)),
        TinyArchitecture("deit", "vision", _vision("DeiTConfig", **_VIT_SIZE)),
        TinyArchitecture("beit", "vision", _vision("BeitConfig", use_mean_pooling=True, **_VIT_SIZE)),
        TinyArchitecture(
            "swin",
            "vision",
            _vision(
                "SwinConfig",
                image_size=IMAGE_SIZE,
                patch_size=4,
                embed_dim=16,
                depths=[1, 1],
                num_heads=[1, 2],
                window_size=4,
            ),
        ),
        TinyArchitecture(
            "convnext",
            "vision",
            _vision("ConvNextConfig", image_size=IMAGE_SIZE, num_stages=2, hidden_sizes=[16, 32], depths=[1, 1]),
        ),
        TinyArchitecture(
            "resnet",
            "vision",
            _vision("ResNetConfig", embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="bottleneck"),
        ),
        TinyArchitecture(
            "mobilenet_v2", "vision", _vision("MobileNetV2Config", image_size=IMAGE_SIZE, depth_multiplier=0.35)
        ),
        TinyArchitecture("dinov2", "vision", _vision("Dinov2Config", image_size=IMAGE_SIZE, patch_size=8, **TEXT_SIZE)),
        TinyArchitecture("clip", "vision", _build_clip),
        TinyArchitecture("timm", "vision", _build_timm),
    )
}


def make_tiny(name: str, directory: str | Path) -> str:
    """Write the tiny checkpoint of architecture `name` (a key of `TINY_ARCHITECTURES`) into `directory`."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    TINY_ARCHITECTURES[name].build(str(directory))
    return str(directory)
