"""Aligning an image backbone with a text backbone (LiT / CLIP-style), for zero-shot image classification and text
priors of image classifiers.

`arguments` (what a user sets), `tuning` (`VISION_TUNINGS`: frozen, lora, full image tower), `captions` (class names
into sentences), `data` ((image, caption) pairs and held-out classes), `model` (the stock
`VisionTextDualEncoderModel` from any two towers; `AlignmentModel` trains it), `trainer` (`AlignmentTrainer` and the
pair collator), `evaluation` (zero-shot accuracy). The recipe is `recipes/align.py`.
"""

from .arguments import AlignmentArguments
from .captions import caption_for, class_prompts
from .tuning import VISION_TUNINGS, VisionTuningEntry

__all__ = [
    "AlignmentArguments",
    "VISION_TUNINGS",
    "VisionTuningEntry",
    "caption_for",
    "class_prompts",
    "AlignmentData",
    "load_alignment_dataset",
    "AlignmentModel",
    "create_dual_encoder",
    "save_dual_encoder",
    "AlignmentTrainer",
    "PairCollator",
    "zero_shot_scores",
    "class_text_embeddings",
]

_LAZY = {
    "AlignmentData": "data",
    "load_alignment_dataset": "data",
    "AlignmentModel": "model",
    "create_dual_encoder": "model",
    "save_dual_encoder": "model",
    "AlignmentTrainer": "trainer",
    "PairCollator": "trainer",
    "zero_shot_scores": "evaluation",
    "class_text_embeddings": "evaluation",
}


def __getattr__(name: str):
    """Torch-heavy parts load on first use, so argument parsing stays light (peft's lazy exports)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
