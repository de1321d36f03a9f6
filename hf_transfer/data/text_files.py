"""Where a text file stops being UTF-8, said the same way for every format (csv, tsv, json lines, CoNLL)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..errors import DataError

__all__ = ["utf8_problem", "file_utf8_problem", "not_utf8_error"]


def utf8_problem(data: bytes, first_line: int = 1) -> Optional[str]:
    """`byte b'\\xe9' on line 2: invalid continuation byte` for the first byte of `data` that is not UTF-8, or None.

    `first_line`: the line number `data` starts on (a reader that decodes one line at a time passes its line)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + data.count(b"\n", 0, err.start)
        return f"byte {data[err.start : err.start + 1]!r} on line {line}: {err.reason}"
    return None


def file_utf8_problem(path: Union[str, Path], limit: int = 1 << 28) -> Optional[str]:
    """`utf8_problem` of the file's first `limit` bytes (the readers say only "invalid UTF8", or nothing)."""
    return utf8_problem(Path(path).read_bytes()[:limit])


def not_utf8_error(where: str, path: Union[str, Path], problem: str) -> DataError:
    """The one line for a file that is not UTF-8: `where` names it as the user gave it (`--train_file 'a.csv'`)."""
    return DataError(
        f"{where} is not UTF-8 text ({problem}). Save it as UTF-8, e.g. "
        f"`iconv -f latin1 -t utf-8 {path} > fixed{Path(path).suffix}`."
    )
