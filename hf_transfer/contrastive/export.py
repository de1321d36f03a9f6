"""Saving the pretrained backbone so every downstream tool loads it: transformers, sentence-transformers.

The projection head and the loss exist only for pretraining; what is saved is the backbone's `AutoModel`
(safetensors + config) and its processor, the same folder `save_pretrained` writes, so
`AutoModel.from_pretrained(dir)`, `AutoModelFor...Classification.from_pretrained(dir)` and
`recipes/finetune.py --model_name_or_path dir` all work.

A text backbone also gets sentence-transformers' files, written here without importing that package (it
is not a dependency): `modules.json` (Transformer -> Pooling [-> Dense] -> Normalize),
`sentence_bert_config.json`, `1_Pooling/config.json`, `config_sentence_transformers.json`, and for
`pooler` pooling a `2_Dense` module holding BERT's pooler (dense + tanh), so `SentenceTransformer(dir)`
encodes exactly the embedding that was trained.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_backbone", "write_sentence_transformers_files"]

logger = logging.getLogger(__name__)


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    import transformers

    versions = {"transformers": transformers.__version__, "pytorch": torch.__version__}
    try:
        versions["sentence_transformers"] = md.version("sentence-transformers")
    except md.PackageNotFoundError:
        versions["sentence_transformers"] = "5.0.0"  # the format written here is read by 2.x to 6.x
    return versions


def write_sentence_transformers_files(backbone: Any, output_dir: str | Path, max_seq_length: int) -> None:
    """Describe `backbone` (text, pooled as it was trained) in sentence-transformers' folder format."""
    output_dir = Path(output_dir)
    dim = backbone.embedding_dim
    pooling = backbone.pooling
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    _write_json(
        output_dir / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": dim,
            "pooling_mode_cls_token": pooling in ("cls", "pooler"),
            "pooling_mode_mean_tokens": pooling == "mean",
            "pooling_mode_max_tokens": pooling == "max",
            "pooling_mode_mean_sqrt_len_tokens": pooling == "mean_sqrt_len",
            "pooling_mode_weightedmean_tokens": pooling == "weightedmean",
            "pooling_mode_lasttoken": pooling == "lasttoken",
        },
    )
    if pooling == "pooler":
        pooler = getattr(backbone.model, "pooler", None)
        dense = getattr(pooler, "dense", None)
        if dense is None:
            raise ValueError(
                f"{type(backbone.model).__name__} has no `pooler.dense` layer to export for pooling='pooler'; "
                "train with --pooling mean or cls, or pass --save_sentence_transformers false."
            )
        from safetensors.torch import save_file

        folder = output_dir / "2_Dense"
        _write_json(
            folder / "config.json",
            {
                "in_features": dense.in_features,
                "out_features": dense.out_features,
                "bias": dense.bias is not None,
                "activation_function": "torch.nn.modules.activation.Tanh",
            },
        )
        state = {"linear.weight": dense.weight.detach().cpu().contiguous()}
        if dense.bias is not None:
            state["linear.bias"] = dense.bias.detach().cpu().contiguous()
        save_file(state, str(folder / "model.safetensors"))
        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    # Training compared cosines, so the saved model returns unit-length embeddings (like all-MiniLM-L6-v2).
    index = len(modules)
    modules.append(
        {"idx": index, "name": str(index), "path": f"{index}_Normalize",
         "type": "sentence_transformers.models.Normalize"}  # fmt: skip
    )
    _write_json(output_dir / "modules.json", modules)
    _write_json(output_dir / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    _write_json(
        output_dir / "config_sentence_transformers.json",
        {"__version__": _versions(), "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )


def save_backbone(
    backbone: Any,
    output_dir: str | Path,
    *,
    max_seq_length: int = 128,
    sentence_transformers: bool = True,
) -> Path:
    """Save `backbone.model` (AutoModel format) and its processor; text also in sentence-transformers' format."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    backbone.model.save_pretrained(output_dir)
    if backbone.processor is not None:
        backbone.processor.save_pretrained(output_dir)
    if backbone.modality == "text" and sentence_transformers:
        write_sentence_transformers_files(backbone, output_dir, max_seq_length)
    logger.info("Saved the %s backbone (%s pooling) to %s", backbone.modality, backbone.pooling, output_dir)
    return output_dir
