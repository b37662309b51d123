"""Private helpers shared by the transforms of :mod:`mtmarl.transforms` (no public API)."""

from __future__ import annotations

import operator

import torch
from tensordict import unravel_key
from tensordict.utils import NestedKey
from torchrl.data import Composite, TensorSpec

_STEP_COUNTER_HINT = (
    "add `StepCounter()` before it (e.g. `Compose(StepCounter(), {who}(...))`), or pass "
    "`step_key=` naming an integer clock of shape (*batch, 1) that the environment "
    "(or an earlier transform) writes into its observations"
)


def check_positive_int(value: object, name: str, who: str) -> int:
    """``int(value)`` if ``value`` is an integer ``>= 1`` (bools are refused)."""
    if isinstance(value, bool):
        raise TypeError(f"{who} expected {name} to be an int >= 1, got bool {value!r}")
    try:
        value = operator.index(value)  # int, numpy and torch integer scalars
    except TypeError:
        raise TypeError(
            f"{who} expected {name} to be an int >= 1, got {type(value).__name__} {value!r}"
        ) from None
    if value < 1:
        raise ValueError(f"{who} expected {name} to be >= 1, got {value}")
    return int(value)


def check_key(key: object, name: str, who: str) -> NestedKey:
    """``key`` unravelled, or a ``TypeError`` naming ``name`` if it is not a nested key."""
    ok = isinstance(key, str) or (
        isinstance(key, tuple) and len(key) > 0 and all(isinstance(k, (str, tuple)) for k in key)
    )
    if not ok:
        raise TypeError(
            f"{who} expected {name} to be a key (a str or a tuple of str), "
            f"got {type(key).__name__} {key!r}"
        )
    return unravel_key(key)


def as_tuple(key: NestedKey) -> tuple[str, ...]:
    """A nested key as a tuple (``"a"`` -> ``("a",)``)."""
    return (key,) if isinstance(key, str) else tuple(key)


def join_key(prefix: tuple[str, ...], *rest: str) -> NestedKey:
    """``prefix + rest`` as an unravelled key (a plain ``str`` at the root)."""
    return unravel_key((*prefix, *rest))


def step_spec_from(observation_spec: Composite, step_key: NestedKey, who: str) -> TensorSpec:
    """The spec of the integer clock ``step_key``; raises with a ``StepCounter`` hint if missing."""
    try:
        spec = observation_spec[step_key]
    except KeyError:
        spec = None
    if spec is None or isinstance(spec, Composite):
        raise KeyError(
            f"{who} reads the time step from the observation entry {step_key!r}, but the "
            f"parent environment has no such entry: {_STEP_COUNTER_HINT.format(who=who)}."
        )
    if spec.dtype.is_floating_point or spec.dtype.is_complex or spec.dtype == torch.bool:
        raise TypeError(
            f"{who} expected the time step {step_key!r} to be an integer entry, got dtype "
            f"{spec.dtype}"
        )
    if len(spec.shape) == 0 or spec.shape[-1] != 1:
        raise ValueError(
            f"{who} expected the time step {step_key!r} to have a trailing dim of size 1 "
            f"(like StepCounter's (*batch, 1) 'step_count'), got shape {tuple(spec.shape)}"
        )
    return spec


def missing_step_error(step_key: NestedKey, who: str) -> KeyError:
    """The error raised when a tensordict lacks the clock at run time."""
    return KeyError(
        f"{who} expected the time step {step_key!r} in the tensordict, but it is missing: "
        f"{_STEP_COUNTER_HINT.format(who=who)}."
    )


def expand_batch(x: torch.Tensor, batch_shape: torch.Size) -> torch.Tensor:
    """Broadcast ``x`` of shape ``(*S, E)`` to ``(*T, E)`` where ``S`` is a prefix of ``T``.

    Batch dims are aligned on the left (the torchrl convention: ``(*B, 1)`` root
    data broadcasts over the agent dim of ``(*B, N, F)`` per-agent data).
    """
    extra = len(batch_shape) - (x.ndim - 1)
    if extra > 0:
        x = x.reshape(*x.shape[:-1], *([1] * extra), x.shape[-1])
    return x.expand(*batch_shape, x.shape[-1])
