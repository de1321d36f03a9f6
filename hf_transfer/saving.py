"""Writing a trained classifier and its processor into a folder, in the format users load it back with.

Stock classification models (and peft adapters) go out through `save_pretrained`; a `PooledClassifier`, bare
or under peft, as a sentence-transformers model (`hf_transfer.pooled_classifier`). Recipes call this inside
`hf_transfer.outputs.publish_directory`, so the folder appears whole or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .pooled_classifier import save_pooled_classifier, unwrap_pooled_classifier

__all__ = ["save_classifier", "is_sentence_transformers_classifier"]


def is_sentence_transformers_classifier(model: nn.Module) -> bool:
    """Whether `model` is saved in sentence-transformers' format (a `PooledClassifier`, bare or under peft)."""
    return unwrap_pooled_classifier(model) is not None


def save_classifier(model: nn.Module, processor: Any, directory: str | Path, *, max_seq_length: int = 128) -> None:
    """`model` and `processor` into `directory`: `save_pretrained`, or sentence-transformers' format."""
    if is_sentence_transformers_classifier(model):
        save_pooled_classifier(model, processor, directory, max_seq_length)
        return
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
