"""Captions from class names: what a labelled image set says about its images in words.

A class name becomes `caption_template.format(name)` ("a photo of a {}." -> "a photo of a sandal."); a multi-label
row names all its classes ("a photo of a shirt and sandal."). The same template turns candidate class names into the
prompts of zero-shot classification, so alignment and evaluation (and `pipeline(..., hypothesis_template=...)`) read
the same sentences.
"""

from __future__ import annotations

from typing import Sequence, Union

__all__ = ["caption_for", "class_prompts", "readable_class_name", "MULTI_LABEL_JOINER"]

MULTI_LABEL_JOINER = " and "


def readable_class_name(name: str) -> str:
    """`T-shirt/top` stays, `ankle_boot` reads `ankle boot`: underscores are a file-system habit, not words."""
    return str(name).replace("_", " ").strip()


def caption_for(label: Union[int, Sequence[int]], names: Sequence[str], template: str) -> str:
    """The caption of a row whose label is one class id, or several (multi-label; an empty row reads 'nothing')."""
    ids = [label] if isinstance(label, int) else list(label)
    words = MULTI_LABEL_JOINER.join(readable_class_name(names[i]) for i in ids) or "nothing"
    return template.format(words)


def class_prompts(names: Sequence[str], template: str) -> list[str]:
    """One prompt per class name, for zero-shot classification and text-initialised heads."""
    return [template.format(readable_class_name(name)) for name in names]
