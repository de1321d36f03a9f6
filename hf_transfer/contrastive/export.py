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

import logging
from pathlib import Path
from typing import Any

from ..modalities import MODALITIES
from ..models.pooling_modes import POOLING_MODES
from ..models.sentence_transformers_format import TANH
from ..models.sentence_transformers_format import write_sentence_transformers_files as write_format

__all__ = ["save_backbone", "write_sentence_transformers_files"]

logger = logging.getLogger(__name__)


def write_sentence_transformers_files(backbone: Any, output_dir: str | Path, max_seq_length: int) -> None:
    """Describe `backbone` (text, pooled as it was trained) in sentence-transformers' folder format.

    `pooler` pooling becomes CLS pooling followed by a Dense module holding the pooler (dense + tanh). Training
    compared cosines, so the saved model returns unit-length embeddings (like all-MiniLM-L6-v2).
    """
    pooling, dense = backbone.pooling, []
    if POOLING_MODES.get(pooling).reads_pooler_output:
        linear = getattr(getattr(backbone.model, "pooler", None), "dense", None)
        if linear is None:
            raise ValueError(
                f"{type(backbone.model).__name__} has no `pooler.dense` layer to export for pooling='pooler'; "
                "train with --pooling mean or cls, or pass --save_sentence_transformers false."
            )
        pooling, dense = "cls", [(linear, TANH)]
    write_format(
        output_dir,
        embedding_dim=backbone.embedding_dim,
        pooling=pooling,
        max_seq_length=max_seq_length,
        dense=dense,
        normalize=True,
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
    if MODALITIES.get(backbone.modality).sentence_transformers and sentence_transformers:
        write_sentence_transformers_files(backbone, output_dir, max_seq_length)
    logger.info("Saved the %s backbone (%s pooling) to %s", backbone.modality, backbone.pooling, output_dir)
    return output_dir
