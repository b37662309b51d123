"""Per-episode KPIs of :class:`~mtmarl.envs.community.CommunityEnergyEnv` rollouts, and the
seeded evaluation rollouts they are measured on.

:func:`community_episode_kpis` turns a rollout into one number per episode (day) for each
KPI: the community's cost, peak import, transformer overload, self-sufficiency, comfort
violation, unmet EV energy, CityLearn's ramping and load factor, the change of the energy
stored in the batteries, and the return. :func:`community_kpis` averages them over the
episodes. :func:`evaluation_rollout` runs a policy on the episodes a seed draws (so that
every method is measured on the same days), and :func:`perfect_foresight_rollout` runs the
perfect-foresight plan (:func:`~mtmarl.envs.community.perfect_foresight_plan`) on the same
days. :func:`physical_rating` reads the prosumers' nameplate ratings back in kW, kWh and kWp
from the observation.

Shape glossary: ``B`` = the batch of episodes (``(E,)`` for ``env.rollout`` of an env of
``E`` communities), ``T`` = steps of the rollout (:attr:`CommunityEnergyEnv.HORIZON`, 96, for
whole days), ``N`` = prosumers.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from mtmarl.envs.community.baselines import _check_env
from mtmarl.envs.community.env import CommunityEnergyEnv
from mtmarl.envs.community.reference import PerfectForesightPlan, perfect_foresight_plan

__all__ = [
    "COMMUNITY_KPI_NAMES",
    "community_episode_kpis",
    "community_kpis",
    "evaluation_rollout",
    "perfect_foresight_rollout",
    "physical_rating",
]

#: The keys of :func:`community_episode_kpis` and :func:`community_kpis`, in their order.
COMMUNITY_KPI_NAMES: tuple[str, ...] = (
    "cost",
    "peak_kw",
    "overload_hours",
    "self_sufficiency",
    "comfort",
    "ev_unmet_kwh",
    "ramping_kw",
    "one_minus_load_factor",
    "return",
    "stored_kwh_change",
)


def physical_rating(tensordict: TensorDictBase, name: str) -> torch.Tensor:
    """The prosumers' nameplate rating ``name`` in physical units, from their observation.

    Reads ``("agents", "ratings")`` ``(*B, N, 5)`` (the ratings divided by
    :attr:`CommunityEnergyEnv.RATING_SCALES`) and multiplies the channel back.

    Args:
        tensordict (TensorDictBase): a reset, a step or a rollout of a community env, batch
            ``B`` (e.g. ``(E,)`` or ``(E, T)``).
        name (str): one of :attr:`CommunityEnergyEnv.RATING_FEATURES`: ``"battery_kw"``,
            ``"battery_kwh"``, ``"hvac_kw"``, ``"ev_kwh"`` or ``"pv_kwp"``.

    Returns:
        torch.Tensor: ``(*B, N)`` the rating of every prosumer (kW, kWh or kWp).

    Raises:
        ValueError: if ``name`` is not a rating feature.
        KeyError: if ``tensordict`` has no ``("agents", "ratings")``.

    Examples:
        >>> env = CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0)
        >>> capacity = physical_rating(env.reset(), "battery_kwh")
        >>> capacity.shape, bool(torch.allclose(capacity[0], env.ratings[:, 1]))
        (torch.Size([2, 3]), True)
    """
    if name not in CommunityEnergyEnv.RATING_FEATURES:
        raise ValueError(
            f"physical_rating expected one of {CommunityEnergyEnv.RATING_FEATURES}, got {name!r}"
        )
    i = CommunityEnergyEnv.RATING_FEATURES.index(name)
    return tensordict["agents", "ratings"][..., i] * CommunityEnergyEnv.RATING_SCALES[i]


def community_episode_kpis(rollout: TensorDictBase) -> dict[str, torch.Tensor]:
    """The KPIs of every episode of a rollout: sums, means or maxima over its steps.

    Reads ``("next", "kpi")`` (the env's per-step KPIs, ``(*B, T, 1)`` each), ``("next",
    "reward")`` ``(*B, T, 1)``, ``("agents", "device_state")`` and ``("next", "agents",
    "device_state")`` ``(*B, T, N, 3)`` and ``("agents", "ratings")`` ``(*B, T, N, 5)`` --
    what ``env.rollout(T, policy)`` of a :class:`CommunityEnergyEnv` (or of a
    ``TransformedEnv`` of one) returns, time the last batch dim. For the day's KPIs the
    rollout holds whole episodes (``T = HORIZON`` steps from a reset).

    Args:
        rollout (TensorDictBase): ``(*B, T)`` rollout (at least one batch dim before time).

    Returns:
        dict[str, torch.Tensor]: ``(*B,)`` tensors, keyed as :data:`COMMUNITY_KPI_NAMES`:

        * ``"cost"``: the community's bill after the market, summed over the steps;
        * ``"peak_kw"``: the largest grid import power (kW);
        * ``"overload_hours"``: hours with the transformer above its rating;
        * ``"self_sufficiency"``: the per-step self-sufficiency, averaged over the steps;
        * ``"comfort"``: deg C h outside the comfort band, summed over the homes;
        * ``"ev_unmet_kwh"``: EV energy missing at the departures (kWh);
        * ``"ramping_kw"``: the sum of ``|change of the net grid exchange|`` (CityLearn's
          ramping, kW);
        * ``"one_minus_load_factor"``: ``1 - mean / max`` of the grid import power
          (CityLearn's load factor);
        * ``"return"``: the summed team reward;
        * ``"stored_kwh_change"``: the community's battery energy after the last step minus
          before the first (kWh; negative: the episode spent energy it started with).

    Raises:
        ValueError: if ``rollout`` has no batch dim before time.
        KeyError: if a key above is missing.

    Examples:
        >>> from mtmarl.envs.community import RuleBasedSelfConsumptionPolicy
        >>> env = CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0)
        >>> _ = env.set_seed(1)
        >>> rollout = env.rollout(env.HORIZON, RuleBasedSelfConsumptionPolicy(env))
        >>> k = community_episode_kpis(rollout)
        >>> k["cost"].shape, bool((k["peak_kw"] >= 0).all())
        (torch.Size([2]), True)
        >>> cost = rollout["next", "kpi", "cost"].sum((1, 2))
        >>> bool(torch.equal(k["cost"], cost))
        True
    """
    if rollout.ndim < 2:
        raise ValueError(
            f"community_episode_kpis expected a rollout of batch (*B, T) with at least one "
            f"episode dim before time, got batch {tuple(rollout.batch_size)}"
        )
    k = rollout["next", "kpi"]
    steps = (-2, -1)  # time and the KPIs' trailing singleton
    peak = k["peak"]
    max_peak = peak.amax(steps)
    start = rollout["agents", "device_state"][..., 0, :, 0]  # (*B, N) battery SoC
    end = rollout["next", "agents", "device_state"][..., -1, :, 0]
    capacity = physical_rating(rollout, "battery_kwh")[..., 0, :]  # (*B, N) kWh
    per_episode = {
        "cost": k["cost"].sum(steps),
        "peak_kw": max_peak,
        "overload_hours": (k["transformer_overload"] > 0).float().sum(steps)
        * CommunityEnergyEnv.DT_H,
        "self_sufficiency": k["self_sufficiency"].mean(steps),
        "comfort": k["comfort_violation"].sum(steps),
        "ev_unmet_kwh": k["ev_unmet"].sum(steps),
        "ramping_kw": k["ramping"].sum(steps),
        "one_minus_load_factor": 1 - peak.mean(steps) / max_peak.clamp_min(1e-9),
        "return": rollout["next", "reward"].sum(steps),
        "stored_kwh_change": ((end - start) * capacity).sum(-1),
    }
    return {name: per_episode[name] for name in COMMUNITY_KPI_NAMES}


def community_kpis(rollout: TensorDictBase) -> dict[str, float]:
    """The KPIs of :func:`community_episode_kpis`, averaged over the rollout's episodes.

    Args:
        rollout (TensorDictBase): ``(*B, T)`` rollout, as for :func:`community_episode_kpis`.

    Returns:
        dict[str, float]: the mean over ``B`` of each KPI, keyed as
        :data:`COMMUNITY_KPI_NAMES`.

    Raises:
        ValueError: if ``rollout`` has no batch dim before time.
        KeyError: if a key :func:`community_episode_kpis` reads is missing.

    Examples:
        >>> from mtmarl.envs.community import NoFlexibilityPolicy
        >>> env = CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0)
        >>> td = evaluation_rollout(env, NoFlexibilityPolicy(env), seed=1)
        >>> k = community_kpis(td)
        >>> list(k) == list(COMMUNITY_KPI_NAMES), isinstance(k["return"], float)
        (True, True)
        >>> per_day = community_episode_kpis(td)["cost"]
        >>> abs(k["cost"] - per_day.mean().item()) < 1e-6
        True
    """
    return {name: float(v.mean()) for name, v in community_episode_kpis(rollout).items()}


def evaluation_rollout(
    env: EnvBase,
    policy,
    *,
    seed: int | None,
    deterministic: bool = True,
    max_steps: int | None = None,
) -> TensorDictBase:
    """Run a policy for whole episodes on the days that ``seed`` draws.

    Seeds the env (``env.set_seed(seed)``: the days, loads, prices and forecast noise of the
    episodes, not the community's composition), then runs ``env.rollout`` without gradients,
    without stopping at a done, in torchrl's deterministic exploration mode (a learned
    actor's mode: argmax EV level, ``tanh(loc)`` powers) or sampling. Two calls with the same
    ``seed`` on the same env run the same episodes, so that every method is measured on the
    same days; :func:`perfect_foresight_rollout` plans those days too.

    Args:
        env (EnvBase): a :class:`CommunityEnergyEnv` or a ``TransformedEnv`` of one, batch
            ``(E,)``.
        policy: a callable on the env's tensordicts (a baseline, an actor), as
            ``env.rollout`` takes it.

    Keyword Args:
        seed (int | None): the episodes' seed; ``None`` continues the env's random stream
            (then the days differ from call to call).
        deterministic (bool): run the policy's deterministic action; ``False`` samples it.
            Defaults to ``True``.
        max_steps (int | None): steps to run; ``None`` for one day,
            :attr:`CommunityEnergyEnv.HORIZON`. Defaults to ``None``.

    Returns:
        TensorDictBase: ``(E, max_steps)`` the rollout.

    Raises:
        TypeError: if ``env`` is not a community env.
        ValueError: if ``max_steps`` is not a positive int.

    Examples:
        >>> from mtmarl.envs.community import RuleBasedSelfConsumptionPolicy
        >>> env = CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0)
        >>> rules = RuleBasedSelfConsumptionPolicy(env)
        >>> a = evaluation_rollout(env, rules, seed=7)
        >>> b = evaluation_rollout(env, rules, seed=7)
        >>> a.shape, bool(torch.equal(a["next", "reward"], b["next", "reward"]))
        (torch.Size([2, 96]), True)
    """
    _check_env(env, "evaluation_rollout")
    if max_steps is None:
        max_steps = CommunityEnergyEnv.HORIZON
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"evaluation_rollout expected a positive int max_steps, got {max_steps!r}")
    if seed is not None:
        env.set_seed(seed)
    mode = ExplorationType.DETERMINISTIC if deterministic else ExplorationType.RANDOM
    with torch.no_grad(), set_exploration_type(mode):
        return env.rollout(max_steps, policy, break_when_any_done=False)


def perfect_foresight_rollout(
    env: EnvBase,
    ev_modes: torch.Tensor,
    *,
    seed: int | None,
    keep_battery_energy: bool = False,
) -> tuple[PerfectForesightPlan, TensorDictBase]:
    """Plan the days ``seed`` draws with perfect foresight for given EV levels, and run the
    plan in the env.

    Seeds and resets the env as :func:`evaluation_rollout` does (the same days as its
    rollout with the same ``seed``), plans every episode with
    :func:`~mtmarl.envs.community.perfect_foresight_plan` with the EV charging held to
    ``ev_modes`` (the best batteries and heat pumps for that EV schedule) and runs the plan
    (:meth:`~mtmarl.envs.community.PerfectForesightPlan.rollout`). The env's return is the
    plan's, unless the LP charged and discharged a battery (or heated and cooled a home) in
    one step, which the env nets.

    Args:
        env (EnvBase): a :class:`CommunityEnergyEnv` or a ``TransformedEnv`` of one, batch
            ``(E,)``.
        ev_modes (torch.Tensor): ``(E, T, N)`` int64 EV levels (0 off, 1 slow, 2 fast), e.g.
            ``evaluation_rollout(env, policy, seed=s)["agents", "action", "mode"]``.

    Keyword Args:
        seed (int | None): the episodes' seed, as for :func:`evaluation_rollout`.
        keep_battery_energy (bool): every battery ends the day with at least the energy it
            started with (see :func:`~mtmarl.envs.community.perfect_foresight_plan`).
            Defaults to ``False``.

    Returns:
        tuple[PerfectForesightPlan, TensorDictBase]: the plan (its own KPIs per episode)
        and the env's ``(E, T)`` run of it, which :func:`community_episode_kpis` reads.

    Raises:
        TypeError: if ``env`` is not a community env or ``ev_modes`` is not integer.
        ValueError: if ``ev_modes`` has the wrong shape or levels out of range.
        RuntimeError: if HiGHS does not reach the optimum.

    Examples:
        >>> from mtmarl.envs.community import RuleBasedSelfConsumptionPolicy
        >>> env = CommunityEnergyEnv(n_prosumers=2, num_envs=1, seed=0)
        >>> rules = evaluation_rollout(env, RuleBasedSelfConsumptionPolicy(env), seed=3)
        >>> plan, ran = perfect_foresight_rollout(env, rules["agents", "action", "mode"], seed=3)
        >>> ran.shape, community_kpis(ran)["return"] >= community_kpis(rules)["return"]
        (torch.Size([1, 96]), True)
    """
    _check_env(env, "perfect_foresight_rollout")
    if ev_modes is None:
        raise TypeError(
            "perfect_foresight_rollout expected ev_modes (E, T, N) int64 (a relaxed plan is a "
            "bound, not runnable: call perfect_foresight_plan for it)"
        )
    if seed is not None:
        env.set_seed(seed)
    td = env.reset()
    plan = perfect_foresight_plan(env, ev_modes=ev_modes, keep_battery_energy=keep_battery_energy)
    return plan, plan.rollout(env, td)
