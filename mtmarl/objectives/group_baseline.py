"""A leave-one-out baseline over envs that share their episodes (common random numbers).

On a task whose returns vary far more from one episode to the next (weather, loads, prices)
than with the policy's actions, a learned critic's advantages keep most of that variation
and the policy gradient of one batch is mostly noise. When the collector runs ``g`` envs
per episode, with the same exogenous draws (``collector.episode_group_size``, e.g.
:class:`~mtmarl.envs.CommunityEnergyEnv`'s ``episode_group_size``), the mean advantage of
the *other* envs of a group at the same step is a baseline that shares that variation and
does not depend on this env's actions, so subtracting it keeps the policy gradient
unbiased while removing what the envs of a group have in common -- the leave-one-out
baseline of RLOO (Kool et al., 2019) and GRPO (Shao et al., 2024), here applied on top of
GAE's advantages.
"""

from __future__ import annotations

import torch

__all__ = ["leave_one_out"]


def leave_one_out(advantage: torch.Tensor, group_size: int) -> torch.Tensor:
    """Subtract from each env's advantage the mean advantage of the other envs of its group.

    Shapes: ``E`` envs, ``g = group_size``; the envs ``g * k`` to ``g * k + g - 1`` (along
    dim 0) form group ``k``.

    Args:
        advantage (torch.Tensor): ``(E, *rest)``, e.g. ``(E, T, N, 1)`` per-agent GAE
            advantages of a collector batch.
        group_size (int): envs per group, ``>= 2``; must divide ``E``.

    Returns:
        torch.Tensor: ``(E, *rest)``, ``a_i - mean_{j != i} a_j`` within each group, i.e.
        ``g / (g - 1)`` times the advantage minus its group mean.

    Raises:
        ValueError: if ``group_size < 2`` or it does not divide ``E``.

    Examples:
        >>> import torch
        >>> adv = torch.tensor([1.0, 3.0, 10.0, 10.0])  # two groups of two envs
        >>> leave_one_out(adv, 2).tolist()
        [-2.0, 2.0, 0.0, 0.0]
    """
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2:
        raise ValueError(f"leave_one_out expected an int group_size >= 2, got {group_size!r}")
    if advantage.ndim == 0 or advantage.shape[0] % group_size:
        raise ValueError(
            f"leave_one_out expected advantages of shape (E, ...) with E a multiple of "
            f"group_size={group_size}, got {tuple(advantage.shape)}"
        )
    grouped = advantage.reshape(-1, group_size, *advantage.shape[1:])
    others = (grouped.sum(1, keepdim=True) - grouped) / (group_size - 1)
    return (grouped - others).reshape(advantage.shape)
