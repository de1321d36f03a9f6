"""Labels as model inputs, the same for every modality: multi-label lists as 0/1 rows, and the label a loss ignores."""

from __future__ import annotations

from typing import Optional

from datasets import ClassLabel, Dataset, DatasetDict

__all__ = ["multi_hot", "multi_label_count", "IGNORED_LABEL"]

# Label of the sub-tokens a word-level tag is not given to (special tokens, a word's later pieces): the index
# cross-entropy ignores, and what DataCollatorForTokenClassification pads labels with.
IGNORED_LABEL = -100


def multi_hot(label_ids: list[list[int]], num_labels: int) -> list[list[float]]:
    """Label id lists as 0/1 rows of `num_labels` floats: the targets of a multi-label head (BCE)."""
    rows = []
    for ids in label_ids:
        row = [0.0] * num_labels
        for i in ids:
            row[i] = 1.0
        rows.append(row)
    return rows


def multi_label_count(dataset: DatasetDict | Dataset) -> Optional[int]:
    """The number of labels when `label` is a multi-label list (`List(ClassLabel)`), else None."""
    features = next(iter(dataset.values())).features if isinstance(dataset, DatasetDict) else dataset.features
    inner = getattr(features.get("label"), "feature", None)
    return inner.num_classes if isinstance(inner, ClassLabel) else None
