"""CoNLL-style files: one `token<TAB>tag` (or space-separated, tag last) line per word, sentences separated by blank
lines; the format of NER corpora such as WNUT-16 (the `twitter_ner` built-in) and CoNLL-2003."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

from datasets import Dataset, Features, List, Value

from ..errors import DataError
from .fingerprints import builtin_fingerprint
from .text_files import not_utf8_error, utf8_problem

__all__ = ["read_conll", "entity_types", "load_conll_file", "TOKENS_FEATURES"]

TOKENS_FEATURES = Features({"tokens": List(Value("string")), "tags": List(Value("string"))})


def read_conll(path: str | Path, where: Optional[str] = None) -> Iterator[tuple[list[str], list[str]]]:
    """Yield `(words, tags)` per sentence; a word line without a tag, or a byte that is not UTF-8, is one DataError
    naming its line number (`where` names the file in it, as the user gave it: `--train_file 'a.conll'`).

    `-DOCSTART-` lines (CoNLL-2003 document breaks) are skipped; lines holding only whitespace end a sentence.
    """
    where = where or f"'{path}'"
    words: list[str] = []
    tags: list[str] = []
    with open(path, "rb") as f:  # bytes, so a non-UTF-8 byte stops the run with its line, like csv and jsonl
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise not_utf8_error(where, path, utf8_problem(raw, number)) from None
            if not line.strip():
                if words:
                    yield words, tags
                words, tags = [], []
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            fields = [field for field in fields if field.strip()]
            if fields and fields[0] == "-DOCSTART-":
                continue
            if len(fields) < 2:
                raise DataError(
                    f"Line {number} of {where} has a word but no tag ({line.strip()!r}). Each line needs a word and "
                    "its tag, separated by a tab or spaces, and sentences end with a blank line."
                )
            words.append(fields[0])
            tags.append(fields[-1])
    if words:
        yield words, tags


def entity_types(tags: list[str]) -> list[str]:
    """The entity types an IOB / IOB2 tag sequence mentions (`B-person`, `I-person` -> `person`), sorted."""
    return sorted({tag.split("-", 1)[1] for tag in tags if tag != "O" and "-" in tag})


def _generate_sentences(path: str):
    for words, tags in read_conll(path):
        yield {"tokens": words, "tags": tags}


def load_conll_file(
    path: str | Path, cache_dir: Optional[str] = None, name: str = "conll", where: Optional[str] = None
) -> Dataset:
    """A CoNLL file as a `Dataset` of `tokens` and `tags` columns, cached by the file's path, size and mtime.

    `where` names the file in messages as the user gave it (`--train_file 'a.conll'`)."""
    stat = Path(path).stat()
    stamp = f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    # One pass first, so a bad line is our one-line error rather than a failure inside datasets' generator.
    where = where or f"'{path}'"
    if sum(1 for _ in read_conll(path, where)) == 0:
        raise DataError(f"{where} has no sentences (word<TAB>tag lines). Give it some rows.")
    return Dataset.from_generator(
        _generate_sentences,
        features=TOKENS_FEATURES,
        cache_dir=cache_dir,
        gen_kwargs={"path": str(path)},
        fingerprint=builtin_fingerprint(name, "file", _generate_sentences, stamp),
    )
