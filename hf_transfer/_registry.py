"""`Registry`: the one mechanism behind every concept that comes in kinds (task, strategy, adaptation method,
contrastive loss, pooling mode, modality).

As timm's `_registry.py` maps model names to constructors and peft's `register_peft_method` maps a PEFT type to its
config and model classes, a registry here maps a name to an entry (a frozen dataclass holding everything that
differs between kinds). Code asks the entry instead of comparing the name with strings, so adding a kind is adding
an entry and its module. An unknown name is one `ConfigError` naming the flag and the known names — never a silent
default.

Entries name their implementation as `module:attribute` (`LazyReference`) and import it only when used: argument
dataclasses list and check names without importing torch or the implementation, as peft's config modules do.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Generic, Iterator, TypeVar

from .errors import ConfigError

__all__ = ["LazyReference", "Registry"]

EntryT = TypeVar("EntryT")


@dataclass(frozen=True)
class LazyReference:
    """`module:attribute`, imported on first use."""

    target: str

    def resolve(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)


class Registry(Generic[EntryT]):
    """Named entries of one kind, in registration order.

    Args:
        kind: what an entry is, for error messages (`"strategy"`).
        flag: the command-line flag that names an entry (`"--strategy"`), for error messages.
    """

    def __init__(self, kind: str, flag: str) -> None:
        self.kind = kind
        self.flag = flag
        self._entries: dict[str, EntryT] = {}

    def register(self, entry: EntryT) -> EntryT:
        """Add `entry` (anything with a `name`); a name registered twice is a programming error."""
        name = entry.name
        if name in self._entries:
            raise ValueError(f"A {self.kind} named {name!r} is registered already.")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> EntryT:
        """The entry called `name`; an unknown name is one `ConfigError` listing the known ones."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(f"{self.flag} {name!r} is not one of {', '.join(self._entries)}.") from None

    def check(self, name: str) -> str:
        """`name`, once known to be registered (for `__post_init__` checks)."""
        self.get(name)
        return name

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entries(self) -> tuple[EntryT, ...]:
        return tuple(self._entries.values())

    # Like a dict (and the tuples of names these registries replace): `in`, iteration and `join` see the names.
    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
