"""Token classification (NER) scores: seqeval's entity-level precision / recall / F1 (an entity counts when its type
and its whole span are right), one F1 per entity type, and accuracy over the scored words.

Scored words are the positions whose label is not `IGNORED_LABEL` (-100): the first sub-token of each word, as the
labels were aligned (`hf_transfer.processing`), so the scores are per word, as seqeval and CoNLL expect.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from seqeval.metrics import classification_report

__all__ = ["compute_token_classification_metrics", "word_sequences"]

IGNORED_LABEL = -100  # hf_transfer.processing.IGNORED_LABEL (kept here so metrics import no processing code)


def word_sequences(
    predictions: Sequence, references: Sequence, label_names: Sequence[str]
) -> tuple[list[list[str]], list[list[str]]]:
    """Predicted and true tag names per row, over the scored positions (`references != -100`) only.

    `predictions`: per row, tag ids (T,) or logits (T, C), e.g. a padded (N, T, C) array; `references`: per row,
    tag ids (T,) with -100 at unscored positions. Rows may differ in length (a probe's per-sentence words).
    """
    predicted, true = [], []
    for row_predictions, row_references in zip(predictions, references):
        row_predictions, row_references = np.asarray(row_predictions), np.asarray(row_references)
        if row_predictions.ndim == 2:
            row_predictions = row_predictions.argmax(-1)
        scored = row_references != IGNORED_LABEL
        predicted.append([label_names[int(i)] for i in row_predictions[scored]])
        true.append([label_names[int(i)] for i in row_references[scored]])
    return predicted, true


def compute_token_classification_metrics(
    predictions: Sequence, references: Sequence, label_names: Sequence[str]
) -> dict[str, float]:
    """`precision`, `recall`, `f1` (entity-level, micro over entities), `accuracy` (per word) and `f1_<type>`."""
    predicted, true = word_sequences(predictions, references, label_names)
    report = classification_report(true, predicted, output_dict=True, zero_division=0)
    words = sum(len(row) for row in true)
    correct = sum(p == t for prow, trow in zip(predicted, true) for p, t in zip(prow, trow))
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    results = {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "accuracy": correct / words if words else 0.0,
    }
    types = sorted({name[2:] for name in label_names if name != "O"})
    for entity_type in types:
        results[f"f1_{entity_type}"] = float(report.get(entity_type, {}).get("f1-score", 0.0))
    return results
