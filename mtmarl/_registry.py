"""A ``dict`` that carries its own documentation (the registries' docstrings in the API pages)."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from typing import Any


class Registry(dict):
    """A name -> entry mapping with a docstring of its own.

    Examples:
        >>> r = Registry("the colours", red=1)
        >>> r["red"], r.__doc__
        (1, 'the colours')
    """

    def __init__(self, doc: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.__doc__ = doc


def loaded_entry_points(group: str) -> Iterator[tuple[str, Any]]:
    """``(who, object)`` for every installed entry point of ``group``, each loaded; ``who``
    names it for messages. A point that fails to load raises ``ImportError`` naming it.

    Examples:
        >>> list(loaded_entry_points("mtmarl.no-such-group"))
        []
    """
    for point in metadata.entry_points(group=group):
        who = f"the {group!r} entry point {point.name!r} ({point.value})"
        try:
            loaded = point.load()
        except Exception as err:
            raise ImportError(f"{who} failed to load: {type(err).__name__}: {err}") from err
        yield who, loaded
