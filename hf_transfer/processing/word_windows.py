"""Token classification (NER) inputs: pre-split words (`tokens`) tokenized with each word's tag on its first
sub-token, a sentence longer than `--max_seq_length` read in overlapping windows of whole words (each word tagged in the
window where it has the most context), the window counts and scores' `SentenceWindows`, and the collator that pads tag
rows."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable, Optional, Sequence

from datasets import Dataset, DatasetDict
from transformers import DataCollatorForTokenClassification, PreTrainedTokenizerBase

from ..errors import DataError
from ..metrics.token_classification import (
    SENTENCE_COLUMN,
    TAGS_COLUMN,
    WINDOW_COLUMNS,
    WORDS_COLUMN,
    SentenceWindows,
)
from .labels import IGNORED_LABEL

__all__ = [
    "preprocess_words",
    "window_counts",
    "sentence_windows",
    "TokenClassificationCollator",
    "WINDOW_OVERLAP",
]

logger = logging.getLogger(__name__)


# How much of a window the next one reads again when a sentence is longer than --max_seq_length: words near a
# window's edge are tagged in the window where they have the most context, at least a quarter window each side.
WINDOW_OVERLAP = 0.5


def _word_windows(counts: Sequence[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Overlapping (start, end) word ranges of a sentence whose words have `counts` sub-tokens, each at most `budget`
    sub-tokens (a single longer word alone, to be truncated), the next starting at most `overlap` sub-tokens back."""
    if not counts:
        return [(0, 0)]  # an empty sentence: one row, nothing to tag
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < len(counts) and used + counts[end] <= budget:
            used, end = used + counts[end], end + 1
        end = max(end, start + 1)
        windows.append((start, end))
        if end >= len(counts):
            return windows
        # Read again at most `overlap` sub-tokens, and never so many that the next word would not fit after them.
        next_start, reread, room = end, 0, min(overlap, budget - counts[end])
        while next_start - 1 > start and reread + counts[next_start - 1] <= room:
            next_start -= 1
            reread += counts[next_start]
        start = next_start


def _owning_windows(counts: Sequence[int], windows: Sequence[tuple[int, int]]) -> list[int]:
    """For each word, the window that tags it: the one where it has the most context (sub-tokens on its shorter side),
    the earlier on a tie, as transformers' question-answering examples pick a token's window (`max_context`)."""
    owners, best = [-1] * len(counts), [-1] * len(counts)
    for index, (start, end) in enumerate(windows):
        total, before = sum(counts[start:end]), 0
        for word in range(start, end):
            context = min(before, total - before - counts[word])
            if context > best[word]:
                owners[word], best[word] = index, context
            before += counts[word]
    return owners


def _tokenize_words_fn(tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> Callable[[dict, list], dict]:
    """Tokenize pre-split words and give each word's tag to its first sub-token (the rest and special tokens get
    `IGNORED_LABEL`), as transformers' run_ner does.

    A sentence longer than `max_seq_length` becomes several rows: overlapping windows of whole words
    (`WINDOW_OVERLAP`), each word tagged in exactly one, the window where it has the most context; every row records
    its sentence, the words it tags and the sentence's tags (`WINDOW_COLUMNS`), so training sees every word and the
    scores are over whole sentences (`hf_transfer.metrics.SentenceWindows`).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(
            f"Token classification aligns tags to words through a fast tokenizer's word_ids(); {type(tokenizer).__name__} "
            "is a slow one. Use a model that ships tokenizer.json (a fast tokenizer)."
        )
    budget = max(1, max_seq_length - tokenizer.num_special_tokens_to_add(pair=False))
    overlap = int(budget * WINDOW_OVERLAP)

    def tokenize(batch: dict, indices: list[int]) -> dict:
        sentences = batch["tokens"]
        whole = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False, verbose=False)
        rows: list[tuple[int, int, int, list[int]]] = []  # (sentence, first word, end, the words it tags)
        for number, words in enumerate(sentences):
            counts = [0] * len(words)
            for word in whole.word_ids(number):
                if word is not None:
                    counts[word] += 1
            windows = _word_windows(counts, budget, overlap)
            owners = _owning_windows(counts, windows)
            for index, (start, end) in enumerate(windows):
                tagged = [w for w in range(start, end) if owners[w] == index and counts[w] > 0]
                rows.append((number, start, end, tagged))
        out = tokenizer(
            [sentences[n][start:end] for n, start, end, _ in rows],
            truncation=True,
            max_length=max_seq_length,
            is_split_into_words=True,
        )
        out[SENTENCE_COLUMN] = [indices[n] for n, *_ in rows]
        positions, word_index = [], []
        for i, (_, start, _, tagged) in enumerate(rows):
            first = {}  # word (in the sentence) -> position of its first sub-token in this row
            for position, (word, previous) in enumerate(zip(out.word_ids(i), [None, *out.word_ids(i)])):
                if word is not None and word != previous:
                    first.setdefault(start + word, position)
            kept = [w for w in tagged if w in first]  # a word truncated away is left untagged: counted as cut
            positions.append([first[w] for w in kept])
            word_index.append(kept)
        out[WORDS_COLUMN] = word_index
        if "label" in batch:
            out[TAGS_COLUMN] = [list(batch["label"][n]) for n, *_ in rows]
            out["labels"] = []
            for i, (n, *_) in enumerate(rows):
                labels = [IGNORED_LABEL] * len(out["input_ids"][i])
                for position, word in zip(positions[i], word_index[i]):
                    labels[position] = batch["label"][n][word]
                out["labels"].append(labels)
        return out

    return tokenize


def preprocess_words(
    dataset: DatasetDict | Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    columns: list[str],
    max_seq_length: int,
    desc_prefix: str = "",
) -> DatasetDict | Dataset:
    """`tokens` and their tags as model inputs (`_tokenize_words_fn`), one row per window; logs the sentences read in
    windows and the words no window could tag."""
    processed = dataset.map(
        _tokenize_words_fn(tokenizer, max_seq_length),
        batched=True,
        with_indices=True,
        remove_columns=columns,  # a long sentence becomes several rows: no column of the sentences can stay
        desc=f"{desc_prefix}Tokenizing words",
    )
    _log_windows(processed, max_seq_length)
    return processed


def _splits(dataset: DatasetDict | Dataset) -> dict[str, Dataset]:
    return dict(dataset) if isinstance(dataset, DatasetDict) else {"data": dataset}


def _window_stats(rows: Dataset) -> Optional[tuple[int, int, int]]:
    """(sentences, sentences read in several windows, words no window tags) of a token classification split."""
    if SENTENCE_COLUMN not in rows.column_names:
        return None
    per_sentence = Counter(rows.with_format("arrow")[SENTENCE_COLUMN].to_pylist())
    windows = SentenceWindows.of(rows)
    cut = windows.words_cut if windows is not None else 0
    return len(per_sentence), sum(n > 1 for n in per_sentence.values()), cut


def window_counts(dataset: DatasetDict | Dataset) -> dict[str, int]:
    """Per split of a token classification set (`eval` for validation, as the results name it): how many sentences
    were longer than --max_seq_length and read in windows (`<split>_sentences_windowed`), and how many words no
    window could tag (`<split>_words_cut`: no sub-token for this tokenizer, or a single word longer than a window),
    which the scores count as predicted `O`. Empty for other tasks."""
    counts = {}
    for split, rows in _splits(dataset).items():
        stats = _window_stats(rows)
        if stats is not None:
            name = {"validation": "eval"}.get(split, split)
            counts[f"{name}_sentences_windowed"], counts[f"{name}_words_cut"] = stats[1:]
    return counts


def _log_windows(dataset: DatasetDict | Dataset, max_seq_length: int) -> None:
    """One line per split that has sentences read in windows (info) or words no window could tag (warning)."""
    for split, rows in _splits(dataset).items():
        sentences, windowed, cut = _window_stats(rows) or (0, 0, 0)
        if windowed:
            logger.info(
                "Split '%s': %d of %d sentences are longer than --max_seq_length %d; each is read in overlapping "
                "windows (%d rows in all), every word tagged and scored once, where it has the most context.",
                split,
                windowed,
                sentences,
                max_seq_length,
                len(rows),
            )
        if cut:
            logger.warning(
                "Split '%s': %d words have no sub-token this tokenizer can tag (or are a single word longer than "
                "--max_seq_length %d): they are not trained on and are scored as predicted O (results: *_words_cut).",
                split,
                cut,
                max_seq_length,
            )


def sentence_windows(dataset: DatasetDict | Dataset, splits: Sequence[str] = ("validation", "test")) -> list:
    """The `SentenceWindows` of the named splits of a preprocessed token classification set (those it has), for
    `hf_transfer.metrics.create_compute_metrics`: scores over whole sentences. Empty for other tasks."""
    found = [SentenceWindows.of(dataset[split]) for split in splits if split in dataset]
    return [windows for windows in found if windows is not None]


class TokenClassificationCollator(DataCollatorForTokenClassification):
    """`DataCollatorForTokenClassification` that leaves out the rows' window columns (`WINDOW_COLUMNS`): they are for
    scoring, not model inputs (`Trainer` drops them itself only with `remove_unused_columns`; the probe never)."""

    def __call__(self, features: list[dict], return_tensors: Optional[str] = None) -> dict:
        features = [{k: v for k, v in feature.items() if k not in WINDOW_COLUMNS} for feature in features]
        return super().__call__(features, return_tensors)
