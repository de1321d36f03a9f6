"""Turn canonical `text` / `image` + `label` datasets into model inputs, one way for every strategy.

Text is tokenized once with `Dataset.map` (cached by `datasets`, so the fingerprint of the result
also identifies the tokenization). Images are decoded and resized on the fly with `with_transform`,
because storing 224x224 float tensors for a whole data set would not fit on disk; the image
processor's settings therefore enter the feature-cache key explicitly (`describe_preprocessing`).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any, Callable, Optional, Sequence

import torch
from datasets import ClassLabel, Dataset, DatasetDict
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, PreTrainedTokenizerBase

from .constants import Modality
from .errors import DataError
from .images import to_rgb
from .metrics.token_classification import (
    SENTENCE_COLUMN,
    TAGS_COLUMN,
    WINDOW_COLUMNS,
    WORDS_COLUMN,
    SentenceWindows,
)
from .tasks import TASKS

__all__ = [
    "preprocess_dataset",
    "create_collator",
    "sample_inputs",
    "describe_preprocessing",
    "set_image_size",
    "model_max_length",
    "cap_max_seq_length",
    "multi_hot",
    "IGNORED_LABEL",
    "sentence_windows",
    "window_counts",
]


logger = logging.getLogger(__name__)

_UNBOUNDED = 10**6  # tokenizers without a limit report int(1e30)


def model_max_length(model: torch.nn.Module, tokenizer: Any = None) -> Optional[int]:
    """The most tokens `model` can read: its absolute position table (less RoBERTa-style offsets, found from the
    table's `padding_idx`), else the tokenizer's `model_max_length`, else `config.max_position_embeddings`;
    None when nothing bounds it (relative or rotary positions without a declared limit)."""
    limits = []
    for name, module in model.named_modules():
        if name.endswith("position_embeddings") and isinstance(module, torch.nn.Embedding):
            offset = module.padding_idx + 1 if module.padding_idx is not None else 0
            limits.append(module.num_embeddings - offset)
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < _UNBOUNDED:
        limits.append(tokenizer_limit)
    if not limits:
        declared = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if isinstance(declared, int) and declared > 0:
            limits.append(declared)
    return min(limits) if limits else None


def cap_max_seq_length(max_seq_length: int, model: torch.nn.Module, tokenizer: Any = None) -> int:
    """`--max_seq_length`, lowered with a warning to what the model can read (beyond it a long text fails inside
    the model's embeddings, possibly only at evaluation after the whole training)."""
    limit = model_max_length(model, tokenizer)
    if limit is not None and max_seq_length > limit:
        logger.warning(
            "--max_seq_length %d is more than %s reads (%d tokens); using %d.",
            max_seq_length,
            type(model).__name__,
            limit,
            limit,
        )
        return limit
    return max_seq_length


def multi_hot(label_ids: list[list[int]], num_labels: int) -> list[list[float]]:
    """Label id lists as 0/1 rows of `num_labels` floats: the targets of a multi-label head (BCE)."""
    rows = []
    for ids in label_ids:
        row = [0.0] * num_labels
        for i in ids:
            row[i] = 1.0
        rows.append(row)
    return rows


def _multi_label_count(dataset: DatasetDict | Dataset) -> Optional[int]:
    """The number of labels when `label` is a multi-label list (`List(ClassLabel)`), else None."""
    features = next(iter(dataset.values())).features if isinstance(dataset, DatasetDict) else dataset.features
    inner = getattr(features.get("label"), "feature", None)
    return inner.num_classes if isinstance(inner, ClassLabel) else None


def _tokenize_fn(
    tokenizer: PreTrainedTokenizerBase, max_seq_length: int, num_labels: Optional[int]
) -> Callable[[dict], dict]:
    def tokenize(batch: dict) -> dict:
        out = tokenizer(batch["text"], truncation=True, max_length=max_seq_length)
        if num_labels is not None and "label" in batch:
            # As `labels`: a column that keeps its name keeps its type (the ClassLabel list), whatever map returns.
            out["labels"] = multi_hot(batch["label"], num_labels)
        return out

    return tokenize


# Label of the sub-tokens a word-level tag is not given to (special tokens, a word's later pieces): the index
# cross-entropy ignores, and what DataCollatorForTokenClassification pads labels with.
IGNORED_LABEL = -100


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


def _image_transform(
    image_processor: Any, num_labels: Optional[int], augmentation: Any = None
) -> Callable[[dict], dict]:
    def transform(batch: dict) -> dict:
        images = [to_rgb(image) for image in batch["image"]]
        if augmentation is not None:
            images = [augmentation.augment_image(image) for image in images]
        pixel_values = image_processor(images, return_tensors="pt")["pixel_values"]  # (B, 3, H, W)
        if augmentation is not None:
            pixel_values = augmentation.augment_pixels(pixel_values)
        out = {"pixel_values": list(pixel_values)}
        if "label" in batch:
            out["label"] = batch["label"] if num_labels is None else multi_hot(batch["label"], num_labels)
        return out

    return transform


def preprocess_dataset(
    dataset: DatasetDict | Dataset,
    processor: Any,
    modality: Modality,
    max_seq_length: int = 128,
    desc_prefix: str = "",
    augmentation: Any = None,
) -> DatasetDict | Dataset:
    """Tokenize text (cached `map`) or attach an on-the-fly image transform, keeping `label` (multi-label lists
    become 0/1 rows, `multi_hot`). `augmentation` (an `hf_transfer.augmentation.ImageAugmentation`) makes it a
    training transform: for the training split of fine-tuning only, never for evaluation or probe features."""
    columns = dataset.column_names
    columns = next(iter(columns.values())) if isinstance(columns, dict) else columns
    needed = "text" if modality == "text" else "image"
    if needed == "text" and "tokens" in columns:
        needed = "tokens"
    if needed not in columns:
        other = "vision" if modality == "text" else "text"
        raise DataError(
            f"The model is a {modality} model but the data has no `{needed}` column (columns: {columns}); "
            f"it looks like {other} data. Pick a {modality} dataset or a {other} model."
        )
    num_labels = _multi_label_count(dataset)
    if modality == "text" and "tokens" in columns:  # token classification: words with a tag each
        processed = dataset.map(
            _tokenize_words_fn(processor, max_seq_length),
            batched=True,
            with_indices=True,
            remove_columns=columns,  # a long sentence becomes several rows: no column of the sentences can stay
            desc=f"{desc_prefix}Tokenizing words",
        )
        _log_windows(processed, max_seq_length)
        return processed
    if modality == "text":
        return dataset.map(
            _tokenize_fn(processor, max_seq_length, num_labels),
            batched=True,
            remove_columns=["text"] if num_labels is None else ["text", "label"],
            desc=f"{desc_prefix}Tokenizing",
        )
    return dataset.with_transform(_image_transform(processor, num_labels, augmentation))


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


class _TokenClassificationCollator(DataCollatorForTokenClassification):
    """`DataCollatorForTokenClassification` that leaves out the rows' window columns (`WINDOW_COLUMNS`): they are for
    scoring, not model inputs (`Trainer` drops them itself only with `remove_unused_columns`; the probe never)."""

    def __call__(self, features: list[dict], return_tensors: Optional[str] = None) -> dict:
        features = [{k: v for k, v in feature.items() if k not in WINDOW_COLUMNS} for feature in features]
        return super().__call__(features, return_tensors)


def create_collator(
    processor: Any, modality: Modality, task: str = "single_label"
) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
    """Dynamic padding for text (tag rows padded with `IGNORED_LABEL` for token classification); stacking of
    `pixel_values` for images. Both turn `label` into `labels`."""
    if TASKS.get(task).per_token:
        return _TokenClassificationCollator(processor, label_pad_token_id=IGNORED_LABEL)
    if modality == "text":
        return DataCollatorWithPadding(processor)

    def collate_images(features: list[dict]) -> dict[str, torch.Tensor]:
        batch = {"pixel_values": torch.stack([torch.as_tensor(f["pixel_values"]) for f in features])}
        if "label" in features[0]:
            labels = [f["label"] for f in features]
            # A regression target (hf_transfer.data.targets) or a multi-label 0/1 row is float, a class id long.
            is_float = isinstance(labels[0], (float, list))
            batch["labels"] = torch.tensor(labels, dtype=torch.float32 if is_float else torch.long)
        return batch

    return collate_images


def sample_inputs(
    dataset: Dataset, collate_fn: Callable, device: Optional[torch.device | str] = None
) -> dict[str, torch.Tensor]:
    """The first row of `dataset` as one collated model input without labels: for checks that run the model once."""
    batch = collate_fn([dataset[0]])
    batch.pop("labels", None)
    return {k: v.to(device) if device is not None else v for k, v in batch.items()}


def describe_preprocessing(processor: Any, modality: Modality, max_seq_length: Optional[int]) -> str:
    """A stable text describing the preprocessing, for cache keys."""
    if modality == "text":
        return json.dumps(
            {
                "tokenizer": type(processor).__name__,
                "vocab_size": getattr(processor, "vocab_size", None),
                "name": getattr(processor, "name_or_path", None),
                "max_seq_length": max_seq_length,
                "do_lower_case": getattr(processor, "do_lower_case", None),
            },
            sort_keys=True,
        )
    return processor.to_json_string()


def set_image_size(processor: Any, model: Any, image_size: int) -> Any:
    """Make the image processor resize inputs to `image_size` x `image_size`; returns the processor to use.

    Small images (Fashion-MNIST is 28x28) gain little from the 224x224 of ImageNet backbones and cost
    up to 16x more compute. timm wrappers keep their preprocessing in the model config
    (`pretrained_cfg`), so it is changed there and saved with the model; other processors keep `size`.
    """
    if getattr(model.config, "model_type", None) == "timm_wrapper":
        from transformers import TimmWrapperImageProcessor

        cfg = dict(model.config.pretrained_cfg)
        cfg.update(input_size=[3, image_size, image_size], crop_pct=1.0)
        model.config.pretrained_cfg = cfg
        return TimmWrapperImageProcessor(pretrained_cfg=cfg, architecture=model.config.architecture)
    size = getattr(processor, "size", None)
    if isinstance(size, dict) and "shortest_edge" in size:
        processor.size = {"shortest_edge": image_size}
    else:
        processor.size = {"height": image_size, "width": image_size}
    if getattr(processor, "crop_size", None) is not None:
        processor.crop_size = {"height": image_size, "width": image_size}
    return processor
