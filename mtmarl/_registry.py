"""A ``dict`` that carries its own documentation (the registries' docstrings in the API pages)."""

from __future__ import annotations

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
