"""Per-episode metrics of :class:`~mtmarl.envs.building.BuildingEnv` rollouts: the paper's
tracking error and the comfort violation, in physical units.

Shape glossary: ``E`` = episodes (envs), ``T`` = steps of the rollout.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase

__all__ = ["building_episode_metrics"]


def building_episode_metrics(
    rollout: TensorDictBase,
    *,
    comfort_band: Sequence[float] = (22.0, 28.0),
    step_minutes: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Return, power-tracking RMSE and comfort violation of each episode of a rollout.

    Reads ``("building", "reference_power")`` ``(E, T, 1)`` (the reference of the coming step),
    ``("next", "building", "power")`` ``(E, T, 1)`` (the power drawn during that step),
    ``("next", "building", "zone_temperature")`` ``(E, T, 5)`` and ``("next", "reward")``
    ``(E, T, 1)`` -- what ``env.rollout(T, policy)`` of a
    :class:`~mtmarl.envs.building.BuildingEnv` stack returns (whole episodes, time the last
    batch dim).

    Args:
        rollout (TensorDictBase): ``(E, T)`` rollout.

    Keyword Args:
        comfort_band (Sequence[float]): ``(T_lo, T_hi)`` deg C. Defaults to ``(22.0, 28.0)``
            (the env's default).
        step_minutes (float): length of a step, minutes. Defaults to ``1.0``.

    Returns:
        dict[str, torch.Tensor]: ``(E,)`` tensors ``"return"`` (summed team reward),
        ``"tracking_rmse_kw"`` (root mean square of ``P - P_ref`` over the episode, kW),
        ``"tracking_mae_kw"`` (mean absolute error, kW) and ``"comfort_degree_minutes"``
        (``sum_t sum_z`` of the zone temperatures' distance to the band, K min).

    Examples:
        >>> from mtmarl.envs.building import RuleBasedPolicy, make_building_env
        >>> env = make_building_env(num_envs=3, seed=0)
        >>> rollout = env.rollout(30, RuleBasedPolicy(env.base_env))
        >>> m = building_episode_metrics(rollout)
        >>> m["tracking_rmse_kw"].shape, bool((m["tracking_rmse_kw"] >= m["tracking_mae_kw"]).all())
        (torch.Size([3]), True)
    """
    if rollout.ndim != 2:
        raise ValueError(
            f"building_episode_metrics expected a rollout of batch (E, T), got batch "
            f"{tuple(rollout.batch_size)}"
        )
    lo, hi = (float(v) for v in comfort_band)
    if not lo <= hi:
        raise ValueError(f"building_episode_metrics expected T_lo <= T_hi, got {comfort_band}")
    ref = rollout.get(("building", "reference_power"))[..., 0]
    power = rollout.get(("next", "building", "power"))[..., 0]
    temp = rollout.get(("next", "building", "zone_temperature"))
    error = power - ref
    violation = ((lo - temp).clamp_min(0.0) + (temp - hi).clamp_min(0.0)).sum(-1)
    return {
        "return": rollout.get(("next", "reward"))[..., 0].sum(-1),
        "tracking_rmse_kw": error.square().mean(-1).sqrt(),
        "tracking_mae_kw": error.abs().mean(-1),
        "comfort_degree_minutes": violation.sum(-1) * step_minutes,
    }
