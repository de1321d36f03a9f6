"""Tiny randomly initialised checkpoints for unit tests, saved like real ones (`save_pretrained`)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertModel, ViTConfig, ViTImageProcessor, ViTModel

from hf_transfer.backbones import resolve_model_path


def make_tiny_bert(directory: str | Path) -> str:
    """A 2-layer BERT (hidden 32) with MiniLM's real tokenizer, so real text tokenizes properly."""
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    model = BertModel(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def make_tiny_vit(directory: str | Path, image_size: int = 32) -> str:
    """A 2-layer ViT (hidden 32, 8x8 patches) for 32x32 images."""
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=image_size,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
    )
    ViTModel(config, add_pooling_layer=False).save_pretrained(directory)
    ViTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(directory)
    return str(directory)
