"""Token classification (NER) scores: seqeval's entity-level precision / recall / F1 (an entity counts when its type
and its whole span are right), one F1 per entity type, and accuracy over the words.

Scored positions are those whose label is not `IGNORED_LABEL` (-100): the first sub-token of each word, as the labels
were aligned (`hf_transfer.processing`), so the scores are per word, as seqeval and CoNLL expect. A sentence longer
than `--max_seq_length` is read in overlapping windows (one row each) that tag each word once; `SentenceWindows` puts
the windows' predictions back into whole sentences, so the reference is every word of every sentence and a word no
window could tag counts as predicted `O` (`words_cut`), never as absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
from seqeval.metrics import classification_report

__all__ = [
    "compute_token_classification_metrics",
    "word_sequences",
    "SentenceWindows",
    "SENTENCE_COLUMN",
    "WORDS_COLUMN",
    "TAGS_COLUMN",
    "WINDOW_COLUMNS",
]

IGNORED_LABEL = -100  # hf_transfer.processing.IGNORED_LABEL (kept here so metrics import no processing code)

# The columns preprocessing gives each row (window) of a token classification split, so its predictions can be put
# back into whole sentences: the sentence's row in the split, the word index of each scored position (in order), and
# the sentence's tag of every word.
SENTENCE_COLUMN = "sentence"
WORDS_COLUMN = "word_index"
TAGS_COLUMN = "sentence_tags"
WINDOW_COLUMNS = (SENTENCE_COLUMN, WORDS_COLUMN, TAGS_COLUMN)


def _scored(row_predictions: Any, row_references: Any) -> tuple[np.ndarray, np.ndarray]:
    """A row's predicted and true tag ids at its scored positions."""
    row_predictions, row_references = np.asarray(row_predictions), np.asarray(row_references)
    if row_predictions.ndim == 2:
        row_predictions = row_predictions.argmax(-1)
    scored = row_references != IGNORED_LABEL
    return row_predictions[: len(row_references)][scored], row_references[scored]


def word_sequences(
    predictions: Sequence, references: Sequence, label_names: Sequence[str]
) -> tuple[list[list[str]], list[list[str]]]:
    """Predicted and true tag names per row, over the scored positions (`references != -100`) only.

    `predictions`: per row, tag ids (T,) or logits (T, C), e.g. a padded (N, T, C) array; `references`: per row,
    tag ids (T,) with -100 at unscored positions. Rows may differ in length (a probe's per-sentence words).
    """
    predicted, true = [], []
    for row_predictions, row_references in zip(predictions, references):
        ids, tags = _scored(row_predictions, row_references)
        predicted.append([label_names[int(i)] for i in ids])
        true.append([label_names[int(i)] for i in tags])
    return predicted, true


@dataclass
class SentenceWindows:
    """Where each scored position of a tokenized split's rows lies in its whole sentence.

    `sentences[r]`: the sentence of row r (numbered from 0 in order of appearance); `words[r]`: the word index of each
    scored position of row r, in order; `tags[s]`: the tag id of every word of sentence s (the whole reference).
    """

    sentences: list[int]
    words: list[list[int]]
    tags: list[list[int]]

    @classmethod
    def of(cls, dataset: Any) -> Optional[SentenceWindows]:
        """The windows of a split preprocessed for token classification (None when it has no such columns)."""
        columns = getattr(dataset, "column_names", None) or []
        if not all(column in columns for column in WINDOW_COLUMNS):
            return None
        table = dataset.with_format("arrow")[:] if hasattr(dataset, "with_format") else dataset
        numbers: dict[int, int] = {}
        sentences, tags = [], []
        for sentence, sentence_tags in zip(table[SENTENCE_COLUMN].to_pylist(), table[TAGS_COLUMN].to_pylist()):
            if sentence not in numbers:
                numbers[sentence] = len(tags)
                tags.append(sentence_tags)
            sentences.append(numbers[sentence])
        return cls(sentences, table[WORDS_COLUMN].to_pylist(), tags)

    @property
    def words_cut(self) -> int:
        """Words of the reference that no row scores (no sub-token for the tokenizer, or a window dropped)."""
        scored = [set() for _ in self.tags]
        for sentence, words in zip(self.sentences, self.words):
            scored[sentence].update(words)
        return sum(len(tags) - len(seen) for tags, seen in zip(self.tags, scored))

    def matches(self, references: Sequence) -> bool:
        """Whether `references` (per row, -100 where unscored) are this split's rows: same rows, same scored tags."""
        if len(references) != len(self.sentences):
            return False
        for row, row_references in enumerate(references):
            tags = np.asarray(row_references)
            tags = tags[tags != IGNORED_LABEL]
            expected = [self.tags[self.sentences[row]][w] for w in self.words[row]]
            if len(tags) != len(expected) or not np.array_equal(tags, expected):
                return False
        return True

    def sentence_sequences(
        self, predictions: Sequence, references: Sequence, label_names: Sequence[str]
    ) -> tuple[list[list[str]], list[list[str]]]:
        """Predicted and true tag names of every word of every sentence; a word no row scored is predicted `O`."""
        if not self.matches(references):
            raise ValueError(
                "The rows scored are not the rows these windows were made for (another split, or another order)."
            )
        predicted = [["O"] * len(tags) for tags in self.tags]
        for row, (row_predictions, row_references) in enumerate(zip(predictions, references)):
            ids, _ = _scored(row_predictions, row_references)
            for word, i in zip(self.words[row], ids):
                predicted[self.sentences[row]][word] = label_names[int(i)]
        true = [[label_names[int(t)] for t in tags] for tags in self.tags]
        return predicted, true


def compute_token_classification_metrics(
    predictions: Sequence,
    references: Sequence,
    label_names: Sequence[str],
    windows: Optional[SentenceWindows] = None,
) -> dict[str, float]:
    """`precision`, `recall`, `f1` (entity-level, micro over entities), `accuracy` (per word) and `f1_<type>`.

    With `windows` (the split's `SentenceWindows`) the rows are windows of whole sentences: they are scored as those
    sentences, every word of the reference counted (`words_cut`: how many no window tagged, counted as `O`).
    """
    if windows is not None:
        predicted, true = windows.sentence_sequences(predictions, references, label_names)
    else:
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
    if windows is not None:
        results["words_cut"] = windows.words_cut
    return results
