"""Trainer attributes that moved with the algorithm units, kept for one release."""

from __future__ import annotations

import warnings
from typing import Any

#: old attribute -> (where it lives now, how to read it from a Trainer)
_MOVED = {
    "hybrid": ("trainer.info.action_kind == 'hybrid'", lambda t: t.info.action_kind == "hybrid"),
    "continuous": (
        "trainer.info.action_kind == 'continuous'",
        lambda t: t.info.action_kind == "continuous",
    ),
    "n_agents": ("trainer.info.n_agents", lambda t: t.info.n_agents),
    "n_actions": ("trainer.info.n_actions", lambda t: t.info.n_actions),
    "action_dim": ("trainer.info.action_dim", lambda t: t.info.action_dim),
    "action_spec": ("trainer.info.action_spec", lambda t: t.info.action_spec),
    "observation_spec": ("trainer.info.observation_spec", lambda t: t.info.observation_spec),
    "train_global_value": (
        "trainer.algorithm.train_global_value",
        lambda t: t.algorithm.train_global_value,
    ),
    "optimizer": ("trainer.algorithm.optimizers()", lambda t: t.algorithm.optimizers()),
}


class DeprecatedTrainerAttributes:
    """Reads the old attribute names with a ``DeprecationWarning`` naming the new place."""

    def __getattr__(self, name: str) -> Any:
        if name in _MOVED:
            where, read = _MOVED[name]
            warnings.warn(
                f"Trainer.{name} moved: use {where}; the old name goes in the next release",
                DeprecationWarning,
                stacklevel=2,
            )
            return read(self)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
