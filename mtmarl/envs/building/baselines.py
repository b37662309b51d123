"""A rule-based baseline for :class:`~mtmarl.envs.building.BuildingEnv`: thermostats + a battery
that covers the tracking error."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from mtmarl.envs.building.env import BuildingEnv
from mtmarl.envs.building.thermal_model import chiller_power, fan_power, project_total_flow

__all__ = ["RuleBasedPolicy"]


class RuleBasedPolicy:
    """Proportional zone control, a fixed chiller set-point, and a battery covering the error.

    * Zone agents: ``a_z = clip((T_z - setpoint) / band, -1, 1)`` -- more air the warmer
      the zone (a proportional thermostat).
    * Chiller agent: a fixed normalised set-point ``chiller_action`` (``0``: 13 deg C).
    * Storage agent: the HVAC power the slow agents will draw this minute is computed
      from their actions (their *held* previous actions when ``("agents", "can_act")``
      says they may not act, as under :func:`~mtmarl.envs.building.make_building_env`),
      and the battery is set to ``P_ref - P_hvac`` (clipped to its power range), so it
      closes the tracking gap as far as it can.

    Reads ``("building", "zone_temperature")``, ``("building", "outdoor_temperature")``,
    ``("building", "reference_power")`` and, when present, ``("agents", "can_act")`` and
    ``("agents", "prev_action")``; writes ``("agents", "action")`` ``(E, 7, 1)`` in
    ``[-1, 1]``. Usable as the ``policy`` of ``env.rollout`` or a collector.

    Args:
        env (BuildingEnv): the (base) environment, for its physical action mapping.

    Keyword Args:
        setpoint (float): zone temperature target, deg C. Defaults to ``25.0``.
        band (float): temperature error giving full flow, K. Defaults to ``2.0``.
        chiller_action (float): normalised chiller action in ``[-1, 1]``. Defaults to
            ``0.0``.

    Examples:
        >>> from mtmarl.envs.building import make_building_env
        >>> env = make_building_env(num_envs=3, seed=0)
        >>> policy = RuleBasedPolicy(env.base_env)
        >>> td = env.rollout(30, policy)
        >>> td["next", "reward"].shape, bool(td["agents", "action"].abs().max() <= 1)
        (torch.Size([3, 30, 1]), True)
    """

    def __init__(
        self,
        env: BuildingEnv,
        *,
        setpoint: float = 25.0,
        band: float = 2.0,
        chiller_action: float = 0.0,
    ) -> None:
        if not isinstance(env, BuildingEnv):
            raise TypeError(
                f"RuleBasedPolicy expected a BuildingEnv (use env.base_env of a "
                f"TransformedEnv), got {type(env).__name__}"
            )
        if not band > 0:
            raise ValueError(f"RuleBasedPolicy expected band > 0, got {band}")
        if not -1.0 <= chiller_action <= 1.0:
            raise ValueError(
                f"RuleBasedPolicy expected chiller_action in [-1, 1], got {chiller_action}"
            )
        self.env = env
        self.setpoint = float(setpoint)
        self.band = float(band)
        self.chiller_action = float(chiller_action)

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Writes the rule-based joint action into ``tensordict``.

        Args:
            tensordict (TensorDictBase): an observation of batch ``(*B,)``.

        Returns:
            TensorDictBase: the same tensordict with ``("agents", "action")``
            ``(*B, 7, 1)``.

        Examples:
            >>> from mtmarl.envs.building import BuildingEnv
            >>> env = BuildingEnv(num_envs=2, seed=0)
            >>> RuleBasedPolicy(env)(env.reset())["agents", "action"].shape
            torch.Size([2, 7, 1])
        """
        env = self.env
        temp = tensordict.get(("building", "zone_temperature"))
        outdoor = tensordict.get(("building", "outdoor_temperature"))[..., 0]
        ref = tensordict.get(("building", "reference_power"))[..., 0]
        zones = ((temp - self.setpoint) / self.band).clamp(-1.0, 1.0)
        chiller = torch.full_like(zones[..., :1], self.chiller_action)
        slow = torch.cat((zones, chiller), dim=-1)  # (*B, 6)
        can_act = tensordict.get(("agents", "can_act"), None)
        prev = tensordict.get(("agents", "prev_action"), None)
        if can_act is not None and prev is not None:
            slow = torch.where(can_act[..., :6], slow, prev[..., :6, 0])
        joint = torch.cat((slow, torch.zeros_like(chiller)), dim=-1)
        flow, tdis, _ = env.action_to_physical(joint)
        total = project_total_flow(flow, env._flow_low).sum(-1)
        hvac = fan_power(total) + chiller_power(total, outdoor, tdis, cop=env.chiller_cop)
        storage = ((ref - hvac) / env.storage.max_power).clamp(-1.0, 1.0)
        action = torch.cat((slow, storage.unsqueeze(-1)), dim=-1).unsqueeze(-1)
        tensordict.set(("agents", "action"), action)
        return tensordict
