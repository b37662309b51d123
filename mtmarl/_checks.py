"""Argument checks shared across mtmarl (standard library only, so that ``mtmarl.nn`` stays
torch-only). Messages name the component, the argument, what was expected and what came."""

from __future__ import annotations


def positive_int(value: object, name: str, who: str) -> int:
    """``value`` if it is an int ``>= 1`` (bools refused), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{who} expected {name} to be a positive int, got {value!r}")
    return value


def bounded_int(value: object, name: str, *, low: int, high: int | None = None, who: str) -> int:
    """``value`` if it is an int in ``[low, high]`` (``high=None``: unbounded above).

    Raises ``TypeError`` for non-ints (bools included) and ``ValueError`` out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{who} expected {name} to be an int >= {low}, got {type(value).__name__} {value!r}"
        )
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{who} expected {name} {bound}, got {value}")
    return value
