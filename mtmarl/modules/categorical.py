"""A discrete multi-agent actor: any logits module -> (masked) categorical distribution.

:func:`make_categorical_actor` turns a TensorDict module writing per-agent logits
``(group, "logits")`` ``(*B, N, n)`` into a :class:`torchrl.modules.ProbabilisticActor`
that samples ``(group, "action")`` ``(*B, N)`` int64 and writes its log-probability
``(group, "action_log_prob")`` ``(*B, N)``, where ``group`` is the per-agent entry of
torchrl's multi-agent convention: ``"agents"`` by default, ``"agent"`` for a PettingZoo env
wrapped by torchrl with its default grouping. With an action-mask key the distribution is
:class:`torchrl.modules.MaskedCategorical` fed with the ``(*B, N, n)`` bool mask, so masked
actions are never sampled and a forced (single valid) choice has log-prob 0; without one it
is :class:`torch.distributions.Categorical`. Deterministic mode
(``set_exploration_type(ExplorationType.DETERMINISTIC)``, the actor's default outside a
collector) takes the argmax of the (masked) logits.

This is the composition point for custom networks: build any module that writes the logits
and wrap it here.
"""

from __future__ import annotations

from typing import Any

from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey, unravel_key
from torch.distributions import Categorical
from torchrl.modules import MaskedCategorical, ProbabilisticActor

__all__ = ["make_categorical_actor"]


class _InGroup:
    """Default of a per-agent key: ``(group, *name)``, resolved against the factory's ``group``.

    A marker rather than a tuple so that ``None`` stays free to mean "no such input" (e.g.
    ``action_mask_key=None``: no mask) and so that signatures read ``(group, 'logits')``.
    """

    __slots__ = ("name",)

    def __init__(self, *name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return "(group, " + ", ".join(map(repr, self.name)) + ")"


# The per-agent key defaults of the actor factories (module-level, so that one marker
# serves every signature); :mod:`mtmarl.modules.variants` adds the others.
_MASK = _InGroup("action_mask")
_LOGITS = _InGroup("logits")
_ACTION = _InGroup("action")
_LOG_PROB = _InGroup("action_log_prob")


def _check_group(group: object, who: str) -> str:
    """``group`` if it is a non-empty str (``TypeError`` / ``ValueError`` otherwise)."""
    if not isinstance(group, str):
        raise TypeError(
            f"{who} expected group to be a non-empty str naming the per-agent entry "
            f"(e.g. 'agents', or 'agent' for torchrl's PettingZoo wrapper), got "
            f"{type(group).__name__} {group!r}"
        )
    if not group:
        raise ValueError(
            f"{who} expected group to be a non-empty str naming the per-agent entry "
            f"(e.g. 'agents'), got ''"
        )
    return group


def _in_group(key: Any, group: str) -> Any:
    """``key`` with an :class:`_InGroup` default resolved to ``(group, *name)``, unravelled.

    An explicit key (or ``None``) passes through unchanged.
    """
    if isinstance(key, _InGroup):
        return unravel_key((group, *key.name))
    return key


def make_categorical_actor(
    logits_module: TensorDictModuleBase,
    *,
    group: str = "agents",
    action_mask_key: NestedKey | None = _MASK,
    logits_key: NestedKey = _LOGITS,
    action_key: NestedKey = _ACTION,
    log_prob_key: NestedKey = _LOG_PROB,
) -> ProbabilisticActor:
    """Wrap a logits module into a categorical ``ProbabilisticActor`` (masked if asked).

    Args:
        logits_module (TensorDictModuleBase): writes ``logits_key`` ``(*B, N, n)``.

    Keyword Args:
        group (str): the per-agent entry the default keys live under (torchrl's
            multi-agent convention; ``"agent"`` for torchrl's PettingZoo wrapper).
            Defaults to ``"agents"``.
        action_mask_key (NestedKey or None): bool mask ``(*B, N, n)`` (``True`` = allowed),
            e.g. written by an action-frequency mask transform; ``None`` for a plain
            ``Categorical``. Defaults to ``(group, "action_mask")``.
        logits_key (NestedKey): the logits entry. Defaults to ``(group, "logits")``.
        action_key (NestedKey): where the sampled action ``(*B, N)`` int64 goes. Defaults
            to ``(group, "action")``.
        log_prob_key (NestedKey): where its log-probability ``(*B, N)`` goes. Defaults to
            ``(group, "action_log_prob")``.

    Returns:
        ProbabilisticActor: in_keys are the logits module's (plus the mask); out_keys are
        ``logits_key``, ``action_key`` and ``log_prob_key`` (plus any other output of the
        logits module).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> logits = TensorDictModule(torch.nn.Linear(3, 4),
        ...     in_keys=[("agents", "observation")], out_keys=[("agents", "logits")])
        >>> actor = make_categorical_actor(logits)
        >>> mask = torch.tensor([[True, False, False, False], [True, True, False, True]])
        >>> td = TensorDict({"agents": TensorDict({"observation": torch.randn(2, 3),
        ...     "action_mask": mask}, [2])}, [])
        >>> td = actor(td)
        >>> td["agents", "action"].shape, td["agents", "action_log_prob"].shape
        (torch.Size([2]), torch.Size([2]))
        >>> td["agents", "action"][0].item(), td["agents", "action_log_prob"][0].item()
        (0, 0.0)

        A PettingZoo env wrapped by torchrl groups its agents under ``"agent"``:

        >>> logits = TensorDictModule(torch.nn.Linear(3, 4),
        ...     in_keys=[("agent", "observation")], out_keys=[("agent", "logits")])
        >>> actor = make_categorical_actor(logits, group="agent", action_mask_key=None)
        >>> actor.out_keys
        [('agent', 'logits'), ('agent', 'action'), ('agent', 'action_log_prob')]
    """
    who = "make_categorical_actor"
    group = _check_group(group, who)
    if not isinstance(logits_module, TensorDictModuleBase):
        raise TypeError(
            f"{who} expected a TensorDictModuleBase writing the logits, "
            f"got {type(logits_module).__name__}"
        )
    action_mask_key, logits_key, action_key, log_prob_key = (
        _in_group(k, group) for k in (action_mask_key, logits_key, action_key, log_prob_key)
    )
    logits_key = unravel_key(logits_key)
    if logits_key not in [unravel_key(k) for k in logits_module.out_keys]:
        raise ValueError(
            f"{who} expected the logits module to write {logits_key!r}, "
            f"its out_keys are {logits_module.out_keys}"
        )
    dist_keys: dict[str, NestedKey] = {"logits": logits_key}
    if action_mask_key is not None:
        dist_keys["mask"] = unravel_key(action_mask_key)
        distribution_class = MaskedCategorical
    else:
        distribution_class = Categorical
    return ProbabilisticActor(
        logits_module,
        in_keys=dist_keys,
        out_keys=[unravel_key(action_key)],
        distribution_class=distribution_class,
        return_log_prob=True,
        log_prob_key=unravel_key(log_prob_key),
    )
