from __future__ import annotations

import pytest
import torch

from mtmarl.envs import CommunityEnergyEnv
from mtmarl.envs.community import (
    NoFlexibilityPolicy,
    PerfectForesightPlan,
    RuleBasedSelfConsumptionPolicy,
    perfect_foresight_plan,
)
from mtmarl.training import apply_overrides, get_experiment

SEED = 5


@pytest.fixture(scope="module")
def env():
    # overload weight 2 and a small transformer: the overload and peak terms matter
    return CommunityEnergyEnv(
        n_prosumers=5, num_envs=3, seed=2, transformer_rating_kw=12.0, overload_weight=2.0
    )


def _rollout(env, policy):
    env.set_seed(SEED)
    return env.rollout(env.HORIZON, policy)


def _plan(env, **kwargs) -> PerfectForesightPlan:
    env.set_seed(SEED)
    env.reset()
    return perfect_foresight_plan(env, **kwargs)


def _run(env, plan):
    """Run a plan in the env; per-episode (return, cost, peak) as float64."""
    env.set_seed(SEED)
    td = plan.rollout(env, env.reset())
    assert td.shape == (env.num_envs, env.HORIZON)
    ret = td["next", "reward"].sum((1, 2)).double()
    cost = td["next", "kpi", "cost"].sum((1, 2)).double()
    peak = td["next", "kpi", "peak"].amax((1, 2)).double()
    return ret, cost, peak


@pytest.mark.parametrize("cls", [NoFlexibilityPolicy, RuleBasedSelfConsumptionPolicy])
def test_the_relaxed_plan_bounds_every_policy(env, cls):
    td = _rollout(env, cls(env))
    plan = _plan(env)
    assert plan.ev_modes is None
    policy_return = td["next", "reward"].sum((1, 2)).double()
    assert bool((plan.episode_return >= policy_return - 1e-6).all())
    # ... and the runnable plan on the policy's own EV levels lies between the two
    fixed = _plan(env, ev_modes=td["agents", "action", "mode"])
    assert bool((fixed.episode_return >= policy_return - 1e-6).all())
    assert bool((fixed.episode_return <= plan.episode_return + 1e-6).all())


def test_the_env_reproduces_a_runnable_plan(env):
    rules = _rollout(env, RuleBasedSelfConsumptionPolicy(env))
    plan = _plan(env, ev_modes=rules["agents", "action", "mode"])
    ret, cost, peak = _run(env, plan)
    torch.testing.assert_close(ret, plan.episode_return, atol=2e-3, rtol=1e-4)
    torch.testing.assert_close(cost, plan.cost, atol=2e-2, rtol=1e-4)
    torch.testing.assert_close(peak, plan.peak_kw, atol=2e-2, rtol=1e-4)
    # the devices' own limits hold along the plan
    assert bool((plan.battery_kw.abs() <= plan.battery_pmax + 1e-6).all())
    assert bool((plan.hvac_kw.abs() <= plan.hvac_pmax + 1e-6).all())


def test_the_plan_accounts_its_kpis(env):
    plan = _plan(env)
    E, T, N = env.num_envs, env.HORIZON, env.n_prosumers
    assert plan.battery_kw.shape == plan.ev_kw.shape == plan.hvac_kw.shape == (E, T, N)
    assert plan.exchange_kw.shape == (E, T)
    for kpi in (plan.cost, plan.peak_kw, plan.overload_kwh, plan.comfort, plan.ev_unmet_kwh):
        assert kpi.shape == (E,)
    torch.testing.assert_close(plan.peak_kw, plan.exchange_kw.amax(-1).clamp_min(0))
    over = (plan.exchange_kw.abs() - env.transformer_rating_kw).clamp_min(0).sum(-1) * env.DT_H
    torch.testing.assert_close(plan.overload_kwh, over)
    penalty = (
        plan.cost
        + env.overload_weight * plan.overload_kwh
        + env.comfort_weight * plan.comfort
        + env.ev_weight * plan.ev_unmet_kwh
    )
    torch.testing.assert_close(plan.episode_return, -env.reward_scale * penalty)
    torch.testing.assert_close(plan.objective, penalty)
    # EV charging only while plugged in, never above the fast charger
    t = torch.arange(T).view(1, T, 1)
    plugged = (t >= env._ev_arrival.unsqueeze(1)) & (t < env._ev_departure.unsqueeze(1))
    assert float(plan.ev_kw[~plugged].abs().max()) < 1e-6
    assert float(plan.ev_kw.max()) <= max(env.ev_charger_kw) + 1e-6


def test_a_peak_price_trades_cost_for_a_lower_peak(env):
    plans = [_plan(env, peak_price=p) for p in (0.0, 0.5, 5.0)]
    peaks = [p.peak_kw.mean().item() for p in plans]
    returns = [p.episode_return.mean().item() for p in plans]
    assert peaks[0] >= peaks[1] - 1e-6 >= peaks[2] - 2e-6
    assert peaks[2] < peaks[0] - 1.0  # the price bites
    # ... and a lower peak costs return (energy, overload, comfort): parametric LP
    assert returns[0] >= returns[1] - 1e-6 >= returns[2] - 2e-6
    # a priced peak enters the objective, not the return
    torch.testing.assert_close(
        plans[2].objective, -plans[2].episode_return / env.reward_scale + 5.0 * plans[2].peak_kw
    )


def test_keeping_the_battery_energy_removes_the_end_of_day_gain(env):
    free, kept = _plan(env), _plan(env, keep_battery_energy=True)
    start = (env._bat_soc * env._bat_cap).double()  # (E, N) kWh at the start of the day
    for plan in (free, kept):
        assert plan.battery_kwh.shape == (env.num_envs, env.HORIZON, env.n_prosumers)
        assert bool((plan.battery_kwh >= -1e-6).all())
        assert bool((plan.battery_kwh <= env._bat_cap.double() + 1e-6).all())
    # the episode's own optimum empties batteries for a day that never comes ...
    assert bool((free.battery_kwh[:, -1] < start - 1e-3).any())
    # ... the kept plan ends every battery at least where it started, at a lower return
    assert bool((kept.battery_kwh[:, -1] >= start - 1e-6).all())
    assert bool((kept.episode_return <= free.episode_return + 1e-6).all())
    assert float((free.episode_return - kept.episode_return).max()) > 1e-3
    # idle batteries keep their energy: the no-flex controller stays below the kept bound
    idle = _rollout(env, NoFlexibilityPolicy(env))["next", "reward"].sum((1, 2)).double()
    assert bool((kept.episode_return >= idle - 1e-6).all())
    # and a runnable kept plan is what the env gives when it runs it
    rules = _rollout(env, RuleBasedSelfConsumptionPolicy(env))
    plan = _plan(env, ev_modes=rules["agents", "action", "mode"], keep_battery_energy=True)
    ret, _, _ = _run(env, plan)
    torch.testing.assert_close(ret, plan.episode_return, atol=2e-3, rtol=1e-4)


def test_a_transformed_env_is_planned_through_its_base():
    experiment = get_experiment("community")
    config = apply_overrides(experiment.config, ["variant=phasic", "env.n_prosumers=3"])
    env = experiment.make_env(config, num_envs=2, seed=0)
    env.set_seed(1)
    env.reset()
    plan = perfect_foresight_plan(env)
    base = env.base_env
    base.set_seed(1)
    base.reset()
    torch.testing.assert_close(plan.cost, perfect_foresight_plan(base).cost)


def test_bad_input_fails_before_any_solve(env):
    env.set_seed(SEED)
    td = env.reset()
    E, T, N = env.num_envs, env.HORIZON, env.n_prosumers
    with pytest.raises(TypeError, match="expected a CommunityEnergyEnv"):
        perfect_foresight_plan(object())
    with pytest.raises(ValueError, match="peak_price >= 0"):
        perfect_foresight_plan(env, peak_price=-1.0)
    with pytest.raises(ValueError, match="peak_price >= 0"):
        perfect_foresight_plan(env, peak_price=float("nan"))
    with pytest.raises(ValueError, match=rf"ev_modes of shape \({E}, {T}, {N}\)"):
        perfect_foresight_plan(env, ev_modes=torch.zeros(E, N, dtype=torch.long))
    with pytest.raises(TypeError, match="integer ev_modes"):
        perfect_foresight_plan(env, ev_modes=torch.zeros(E, T, N))
    with pytest.raises(ValueError, match=r"ev_modes in \[0, 2\]"):
        perfect_foresight_plan(env, ev_modes=torch.full((E, T, N), 3))
    with pytest.raises(TypeError, match="keep_battery_energy to be a bool, got int"):
        perfect_foresight_plan(env, keep_battery_energy=1)
    env.step(td.update(RuleBasedSelfConsumptionPolicy(env)(td.clone())))
    with pytest.raises(ValueError, match="every env at step 0"):
        perfect_foresight_plan(env)
    plan = _plan(env)
    with pytest.raises(ValueError, match="made with ev_modes"):
        plan.actions(0)
    fixed = _plan(env, ev_modes=torch.zeros(E, T, N, dtype=torch.long))
    with pytest.raises(ValueError, match=r"t in \[0, 96\)"):
        fixed.actions(96)
    with pytest.raises(ValueError, match=r"made with ev_modes"):
        plan.rollout(env, env.reset())
    with pytest.raises(ValueError, match=rf"batch \({E},\) .* got \(1,\)"):
        fixed.rollout(env, env.reset()[:1])
