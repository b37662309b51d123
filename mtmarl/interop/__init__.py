"""Interoperability: mtmarl environments as PettingZoo / Gymnasium objects.

:func:`to_pettingzoo` exports any mtmarl (or torchrl multi-agent) environment as a
PettingZoo ``ParallelEnv``; :mod:`mtmarl.interop.spaces` converts torchrl specs to
Gymnasium spaces and values to samples of them. The reverse direction needs no code of
ours: wrap a PettingZoo env with torchrl's :class:`~torchrl.envs.PettingZooEnv` and append
mtmarl's transforms to it (name the transforms' ``action_key`` after torchrl's agent group,
e.g. ``("agent", "action")`` for agents named ``agent_0``, ``agent_1``, ..., or pass
``group_map={"agents": names}`` to get mtmarl's ``("agents", ...)`` layout).

The PettingZoo names need the optional dependency ``pettingzoo``
(``pip install "mtmarl[interop]"``); they are imported on first use, so the spaces work
without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtmarl.interop.spaces import agent_spec, sample_to_tensor, spec_to_space, tensor_to_sample

if TYPE_CHECKING:
    from mtmarl.interop.pettingzoo import MtmarlParallelEnv, to_pettingzoo

__all__ = [
    # PettingZoo export (optional dependency pettingzoo)
    "to_pettingzoo",
    "MtmarlParallelEnv",
    # torchrl specs <-> Gymnasium spaces
    "spec_to_space",
    "agent_spec",
    "tensor_to_sample",
    "sample_to_tensor",
]

_LAZY = {"to_pettingzoo", "MtmarlParallelEnv"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from mtmarl.interop import pettingzoo

        return getattr(pettingzoo, name)
    raise AttributeError(f"module 'mtmarl.interop' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
