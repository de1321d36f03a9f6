"""Cache keys of generated data: fixed by the inputs and by the generating code, so reruns hit the cache and an
edit to a generator does not reuse stale rows."""

from __future__ import annotations

import hashlib
from typing import Any, Callable

__all__ = ["code_key", "builtin_fingerprint"]

BUILTIN_FORMAT_VERSION = "2"  # bump when a built-in generator changes in a way its code does not show


def _code_bytes(code) -> bytes:
    """Bytecode, constants and names of a function, recursing into nested code (comprehensions): stable
    across processes, unlike `repr`, which shows nested code objects by memory address."""
    consts = [_code_bytes(c) if hasattr(c, "co_code") else repr(c).encode() for c in code.co_consts]
    return code.co_code + b"|".join(consts) + repr(code.co_names).encode()


def code_key(*functions: Callable) -> str:
    """A digest of the code of `functions`."""
    return hashlib.sha256(b"".join(_code_bytes(f.__code__) for f in functions)).hexdigest()[:16]


def builtin_fingerprint(name: str, split: str, generator: Callable, *parts: Any) -> str:
    """Fingerprint of a generated built-in split, fixed by its source files (`parts`) and generator code.

    Passing it to `Dataset.from_generator` also skips hashing the generator by pickling, which would not
    notice edits to it; its bytecode is part of the key instead.
    """
    key = "|".join(map(str, ("hf_transfer", name, split, BUILTIN_FORMAT_VERSION, code_key(generator), *parts)))
    return hashlib.sha256(key.encode()).hexdigest()[:16]
