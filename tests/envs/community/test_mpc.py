from __future__ import annotations

import numpy as np
import pytest
import torch

from mtmarl.envs import CommunityEnergyEnv
from mtmarl.envs.community import (
    ModelPredictiveController,
    NoFlexibilityPolicy,
    RuleBasedSelfConsumptionPolicy,
)

_POWER = ("agents", "action", "power")
_MODE = ("agents", "action", "mode")


@pytest.fixture(scope="module")
def env():
    return CommunityEnergyEnv(n_prosumers=4, num_envs=6, seed=3, forecast_noise=0.0)


def _reset(env, seed: int = 1):
    env.set_seed(seed)
    return env.reset()


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_shapes_and_bounds_over_batch_shapes(env, batch):
    td = _reset(env)
    td = td[0] if batch == () else td[: 2 if batch == (2,) else 6].reshape(batch)
    mpc = ModelPredictiveController(env, horizon=3)
    modes, plan = mpc.plan(td.clone())
    assert modes.shape == (*batch, 4) and plan.shape == (*batch, 3, 4, 2)
    out = mpc(td.clone())
    assert out[_POWER].shape == (*batch, 4, 2) and out[_POWER].dtype == torch.float32
    assert out[_MODE].shape == (*batch, 4) and out[_MODE].dtype == torch.int64
    assert bool(out[_POWER].abs().max() <= 1.0)
    torch.testing.assert_close(out[_POWER], plan[..., 0, :, :].float().clamp(-1, 1))


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_a_tail_of_hourly_steps_after_the_window(env, batch):
    td = _reset(env)
    td = td[0] if batch == () else td[: 2 if batch == (2,) else 6].reshape(batch)
    _, plan = ModelPredictiveController(env, horizon=4, tail_hours=5).plan(td.clone())
    assert plan.shape == (*batch, 9, 4, 2)
    assert bool(plan.abs().max() <= 1 + 1e-6)


def test_climatology_averages_the_hour_and_the_days_around():
    from mtmarl.envs.community.mpc import _climatology

    per_day = 96
    slot = np.tile(np.arange(per_day, dtype=float), 365)[None]  # the same every day
    clim = _climatology(slot, 4)
    # the mean of slots s..s+3 (the next day's first slots past midnight)
    expected = np.array([np.mean([(s + j) % per_day for j in range(4)]) for s in range(per_day)])
    np.testing.assert_allclose(clim[0, :per_day], expected)
    np.testing.assert_allclose(clim[0, -per_day:], expected)
    days = np.repeat(np.arange(365, dtype=float), per_day)[None]  # day d: d
    clim = _climatology(days, 4)
    np.testing.assert_allclose(clim[0, 100 * per_day], 100.0)  # days 93-107
    # around the year's end the window wraps: days 358-364 and 0-7
    np.testing.assert_allclose(clim[0, 0], (sum(range(358, 365)) + sum(range(8))) / 15)


def test_ev_levels_come_from_the_injected_policy(env):
    td = _reset(env)
    rules = RuleBasedSelfConsumptionPolicy(env, ev_spread=0.6)
    fast = NoFlexibilityPolicy(env)  # always level 2
    expected = rules(td.clone())[_MODE]
    assert torch.equal(ModelPredictiveController(env, ev_policy=rules)(td.clone())[_MODE], expected)
    assert bool((ModelPredictiveController(env, ev_policy=fast)(td.clone())[_MODE] == 2).all())


def test_valuable_storage_charges_the_batteries_at_full_power(env):
    # stored energy worth far more than any import price: every battery charges at its rating
    # (batteries start at 20-80% SoC: one 15-min step at full power cannot fill them)
    td = _reset(env)
    out = ModelPredictiveController(env, horizon=1, battery_value=10.0)(td.clone())
    torch.testing.assert_close(out[_POWER][..., 0], torch.ones(6, 4), atol=1e-5, rtol=0)
    soc = td["agents", "device_state"][..., 0]
    nxt = env.step(out)["next", "agents", "device_state"][..., 0]
    gain = 0.95 * env._bat_pmax * env.DT_H / env._bat_cap
    torch.testing.assert_close(nxt, (soc + gain).clamp_max(1.0), atol=1e-5, rtol=0)


def test_worthless_storage_never_charges_from_the_grid(env):
    # energy left at the window's end is worth nothing: a battery charges only where that
    # lowers the window's cost (never here: no export overload in the first step)
    td = _reset(env)
    out = ModelPredictiveController(env, horizon=1, battery_value=0.0)(td.clone())
    assert bool((out[_POWER][..., 0] <= 1e-6).all())


def test_the_episode_end_stops_the_window():
    # at the episode's last step, with stored energy worth 10 per kWh at the end of a
    # one-step window that runs on, every battery charges; with nothing counting after the
    # episode's end, none does (a large transformer: no export overload to absorb)
    from torchrl.envs.utils import step_mdp

    env = CommunityEnergyEnv(
        n_prosumers=4, num_envs=6, seed=3, forecast_noise=0.0, transformer_rating_kw=1e3
    )
    env.set_seed(1)
    td = env.rollout(env.HORIZON - 1, RuleBasedSelfConsumptionPolicy(env))
    last = step_mdp(td[:, -1], exclude_action=True)
    assert bool((last["agents", "device_state"][..., 0] < 0.9).any())
    kwargs = {"horizon": 1, "battery_value": 10.0}
    on = ModelPredictiveController(env, **kwargs)(last.clone())[_POWER][..., 0]
    end = ModelPredictiveController(env, **kwargs, episode_end_value=0.0)
    stop = end(last.clone())[_POWER][..., 0]
    soc = last["agents", "device_state"][..., 0]
    assert bool((on[soc < 0.9] > 0.5).all()), on
    assert bool((stop <= 1e-6).all()), stop
    # at the episode's first step the window lies inside it: the two plan alike
    first = _reset(env)
    torch.testing.assert_close(
        end(first.clone())[_POWER],
        ModelPredictiveController(env, **kwargs)(first.clone())[_POWER],
    )


@pytest.mark.parametrize("temperature, sign", [(-3.0, 1.0), (3.0, -1.0)])
def test_homes_outside_the_band_heat_or_cool(env, temperature, sign):
    td = _reset(env)
    td["agents", "device_state"][..., 2] = temperature  # normalised: the band is [-1, 1]
    out = ModelPredictiveController(env, horizon=2)(td)
    assert bool((sign * out[_POWER][..., 1] > 0.5).all())


def test_beats_the_rules_it_takes_the_cars_from():
    env = CommunityEnergyEnv(n_prosumers=4, num_envs=4, seed=0)
    rules = RuleBasedSelfConsumptionPolicy(env)
    returns = []
    for policy in (rules, ModelPredictiveController(env, ev_policy=rules)):
        env.set_seed(1)
        td = env.rollout(env.HORIZON, policy)
        returns.append(td["next", "reward"].sum().item() / 4)
    assert returns[1] > returns[0] + 0.5, returns


def test_one_home_plans_alike_at_either_scope():
    # one home under a transformer it never reaches: its own bill is the community's (one
    # step ahead: a longer window has optima that differ only in when the battery charges)
    env = CommunityEnergyEnv(n_prosumers=1, num_envs=6, seed=4, transformer_rating_kw=1e3)
    td = _reset(env)
    kwargs = {"horizon": 1, "battery_value": 0.17}
    home = ModelPredictiveController(env, scope="home", **kwargs).plan(td.clone())[1]
    community = ModelPredictiveController(env, **kwargs).plan(td.clone())[1]
    torch.testing.assert_close(home, community, atol=1e-6, rtol=0)


def test_homes_alone_never_see_the_transformer(env):
    # stored energy worth more than the import price, a transformer of 1 kW: the community
    # plan keeps its exchange near the rating, the homes alone all charge at full power
    small = CommunityEnergyEnv(n_prosumers=4, num_envs=6, seed=3, transformer_rating_kw=1.0)
    td = _reset(small)
    kwargs = {"horizon": 1, "battery_value": 0.5}
    alone = ModelPredictiveController(small, scope="home", **kwargs)(td.clone())
    central = ModelPredictiveController(small, **kwargs)(td.clone())
    assert bool((alone[_POWER][..., 0] > 1 - 1e-5).all())
    assert central[_POWER][..., 0].mean() < alone[_POWER][..., 0].mean() - 0.2


def test_rollout_with_a_transformed_env():
    from torchrl.envs import StepCounter, TransformedEnv

    env = TransformedEnv(CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0), StepCounter())
    td = env.rollout(4, ModelPredictiveController(env, horizon=2))
    assert td.batch_size == (2, 4)


def test_bad_configuration(env):
    with pytest.raises(TypeError, match="CommunityEnergyEnv"):
        ModelPredictiveController(object())
    for horizon in (0, 13):
        with pytest.raises(ValueError, match=r"horizon in \[1, 12\]"):
            ModelPredictiveController(env, horizon=horizon)
    for horizon in (2.0, True):
        with pytest.raises(TypeError, match="int horizon"):
            ModelPredictiveController(env, horizon=horizon)
    for value in (-0.1, float("nan"), "0.1"):
        with pytest.raises(ValueError, match="battery_value >= 0"):
            ModelPredictiveController(env, battery_value=value)
    for margin in (-0.1, 2.0):
        with pytest.raises(ValueError, match=r"comfort_margin in \[0, 2\)"):
            ModelPredictiveController(env, comfort_margin=margin)
    for tail in (-1, 49):
        with pytest.raises(ValueError, match=r"tail_hours in \[0, 48\]"):
            ModelPredictiveController(env, tail_hours=tail)
    with pytest.raises(TypeError, match="int tail_hours"):
        ModelPredictiveController(env, tail_hours=2.5)
    for value in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="episode_end_value None or a finite"):
            ModelPredictiveController(env, episode_end_value=value)
    with pytest.raises(ValueError, match="scope 'community' or 'home'"):
        ModelPredictiveController(env, scope="street")
    with pytest.raises(TypeError, match="ev_policy to be callable"):
        ModelPredictiveController(env, ev_policy=3)


def test_wrong_community_size(env):
    other = CommunityEnergyEnv(n_prosumers=5, num_envs=1, seed=0)
    with pytest.raises(ValueError, match="expected 4 prosumers"):
        ModelPredictiveController(env)(other.reset())
