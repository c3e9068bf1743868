"""Name -> "module:attr" registries, resolved lazily.

A field lists what it offers in one visible table (e.g. `forecasting/models/__init__.py`); the
object is imported only when asked for, so listing names costs no heavy imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from seqlab.errors import SeqlabError


class UnknownNameError(SeqlabError, KeyError):
    """A name that is not in a registry; the message lists the names that are."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


class Registry:
    """A lazily resolved mapping of names to objects, e.g. model classes.

    Args:
        kind: what the entries are, for error messages ("forecasting model").
        entries: name -> "package.module:attribute".
    """

    def __init__(self, kind: str, entries: Mapping[str, str]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Any:
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}")
        module_name, _, attr = self._entries[name].partition(":")
        return getattr(importlib.import_module(module_name), attr)
