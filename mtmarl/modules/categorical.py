"""A discrete multi-agent actor: any logits module -> (masked) categorical distribution.

:func:`make_categorical_actor` turns a TensorDict module writing per-agent logits
``("agents", "logits")`` ``(*B, N, n)`` into a :class:`torchrl.modules.ProbabilisticActor`
that samples ``("agents", "action")`` ``(*B, N)`` int64 and writes its log-probability
``("agents", "action_log_prob")`` ``(*B, N)``. With an action-mask key the distribution is
:class:`torchrl.modules.MaskedCategorical` fed with the ``(*B, N, n)`` bool mask, so masked
actions are never sampled and a forced (single valid) choice has log-prob 0; without one it
is :class:`torch.distributions.Categorical`. Deterministic mode
(``set_exploration_type(ExplorationType.DETERMINISTIC)``, the actor's default outside a
collector) takes the argmax of the (masked) logits.

This is the composition point for custom networks: build any module that writes the logits
and wrap it here.
"""

from __future__ import annotations

from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey, unravel_key
from torch.distributions import Categorical
from torchrl.modules import MaskedCategorical, ProbabilisticActor

__all__ = ["make_categorical_actor"]


def make_categorical_actor(
    logits_module: TensorDictModuleBase,
    *,
    action_mask_key: NestedKey | None = ("agents", "action_mask"),
    logits_key: NestedKey = ("agents", "logits"),
    action_key: NestedKey = ("agents", "action"),
    log_prob_key: NestedKey = ("agents", "action_log_prob"),
) -> ProbabilisticActor:
    """Wrap a logits module into a categorical ``ProbabilisticActor`` (masked if asked).

    Args:
        logits_module (TensorDictModuleBase): writes ``logits_key`` ``(*B, N, n)``.

    Keyword Args:
        action_mask_key (NestedKey or None): bool mask ``(*B, N, n)`` (``True`` = allowed),
            e.g. written by an action-frequency mask transform; ``None`` for a plain
            ``Categorical``. Defaults to ``("agents", "action_mask")``.
        logits_key (NestedKey): the logits entry. Defaults to ``("agents", "logits")``.
        action_key (NestedKey): where the sampled action ``(*B, N)`` int64 goes. Defaults
            to ``("agents", "action")``.
        log_prob_key (NestedKey): where its log-probability ``(*B, N)`` goes. Defaults to
            ``("agents", "action_log_prob")``.

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
    """
    if not isinstance(logits_module, TensorDictModuleBase):
        raise TypeError(
            f"make_categorical_actor expected a TensorDictModuleBase writing the logits, "
            f"got {type(logits_module).__name__}"
        )
    logits_key = unravel_key(logits_key)
    if logits_key not in [unravel_key(k) for k in logits_module.out_keys]:
        raise ValueError(
            f"make_categorical_actor expected the logits module to write {logits_key!r}, "
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
