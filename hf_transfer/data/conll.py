"""CoNLL-style files: one `token<TAB>tag` (or space-separated, tag last) line per word, sentences separated by blank
lines; the format of NER corpora such as WNUT-16 (the `twitter_ner` built-in) and CoNLL-2003."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..errors import DataError

__all__ = ["read_conll", "entity_types"]


def read_conll(path: str | Path) -> Iterator[tuple[list[str], list[str]]]:
    """Yield `(words, tags)` per sentence; a word line without a tag is one DataError naming its line number.

    `-DOCSTART-` lines (CoNLL-2003 document breaks) are skipped; lines holding only whitespace end a sentence.
    """
    words: list[str] = []
    tags: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
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
                    f"Line {number} of '{path}' has a word but no tag ({line.strip()!r}). Each line needs a word and "
                    "its tag, separated by a tab or spaces, and sentences end with a blank line."
                )
            words.append(fields[0])
            tags.append(fields[-1])
    if words:
        yield words, tags


def entity_types(tags: list[str]) -> list[str]:
    """The entity types an IOB / IOB2 tag sequence mentions (`B-person`, `I-person` -> `person`), sorted."""
    return sorted({tag.split("-", 1)[1] for tag in tags if tag != "O" and "-" in tag})
