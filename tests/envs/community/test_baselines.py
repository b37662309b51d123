from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from mtmarl.envs import CommunityEnergyEnv
from mtmarl.envs.community.baselines import (
    NoFlexibilityPolicy,
    RuleBasedSelfConsumptionPolicy,
    thermostat,
)
from mtmarl.training import apply_overrides, get_experiment

POLICIES = [NoFlexibilityPolicy, RuleBasedSelfConsumptionPolicy]


@pytest.fixture(scope="module")
def env():
    return CommunityEnergyEnv(n_prosumers=6, num_envs=8, seed=3)


def _episode(env, policy, seed=11):
    env.set_seed(seed)
    return env.rollout(env.HORIZON, policy)


def _kpis(td):
    kpi = td["next", "kpi"]
    out = {k: kpi[k].sum(1).mean().item() for k in ("cost", "ev_unmet", "comfort_violation")}
    out["self_sufficiency"] = kpi["self_sufficiency"].mean().item()
    out["peak"] = kpi["peak"].amax(1).mean().item()
    return out


@pytest.mark.parametrize("cls", POLICIES)
def test_actions_are_in_the_spec_for_a_whole_episode(env, cls):
    td = _episode(env, cls(env))
    assert td.shape == (env.num_envs, env.HORIZON)
    assert bool(td["next", "done"][:, -1].all())
    for t in range(0, env.HORIZON, 17):
        assert env.full_action_spec.is_in(td[:, t].select(*env.full_action_spec.keys(True, True)))


@pytest.mark.parametrize("cls", POLICIES)
@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_any_batch_shape_gives_the_per_step_actions(env, cls, batch):
    policy = cls(env)
    obs = env.reset().select("agents")
    expected = policy(obs.clone())
    td = obs.expand(*batch, *obs.shape).clone()
    out = policy(td)
    n = env.n_prosumers
    assert out["agents", "action", "mode"].shape == (*batch, env.num_envs, n)
    assert out["agents", "action", "power"].shape == (*batch, env.num_envs, n, 2)
    for key in (("agents", "action", "mode"), ("agents", "action", "power")):
        torch.testing.assert_close(out[key], expected[key].expand_as(out[key]))


def test_no_flexibility_is_uncontrolled(env):
    td = _episode(env, NoFlexibilityPolicy(env))
    assert td["agents", "action", "power"][..., 0].abs().max().item() == 0.0
    assert bool((td["agents", "action", "mode"] == 2).all())
    # fast charging from arrival (>= 9 h before departure) always fills the car
    assert td["next", "kpi", "ev_unmet"].sum().item() == pytest.approx(0.0, abs=1e-4)


def test_rule_based_beats_no_flexibility_on_the_same_episodes(env):
    none = _kpis(_episode(env, NoFlexibilityPolicy(env)))
    rule = _kpis(_episode(env, RuleBasedSelfConsumptionPolicy(env)))
    assert rule["cost"] < none["cost"]
    assert rule["self_sufficiency"] > none["self_sufficiency"]
    assert rule["peak"] < none["peak"]
    # the deadline rule still delivers (almost) all the requested EV energy
    assert rule["ev_unmet"] < 0.5


@pytest.mark.parametrize("cls", POLICIES)
def test_thermostat_keeps_the_comfort_band(env, cls):
    td = _episode(env, cls(env))
    temp = td["next", "agents", "device_state"][..., 2]
    assert temp.abs().max().item() < 1.0  # normalised band is [-1, 1]
    assert _kpis(td)["comfort_violation"] == 0.0


def test_works_on_the_preset_env_stack():
    experiment = get_experiment("community")
    config = apply_overrides(experiment.config, ["variant=phasic", "env.n_prosumers=3"])
    env = experiment.make_env(config, num_envs=2, seed=0)
    for cls in POLICIES:
        td = env.rollout(10, cls(env))
        assert td["next", "reward"].shape == (2, 10, 1)


def test_battery_follows_the_net_load():
    env = CommunityEnergyEnv(n_prosumers=4, num_envs=2, seed=0, forecast_noise=0.0)
    policy = RuleBasedSelfConsumptionPolicy(env)
    td = env.reset()
    forecast = td["agents", "forecast"].clone()
    forecast[..., 0, 0] = 5.0  # PV 5 kW, load 0: a surplus -> charge
    forecast[..., 0, 1] = 0.0
    td.set(("agents", "forecast"), forecast)
    assert bool((policy(td)["agents", "action", "power"][..., 0] > 0).all())
    forecast[..., 0, 0] = 0.0  # no PV, 3 kW load: a deficit -> discharge
    forecast[..., 0, 1] = 3.0
    td.set(("agents", "forecast"), forecast)
    assert bool((policy(td)["agents", "action", "power"][..., 0] < 0).all())


def test_ev_deadline_forces_fast_charging():
    env = CommunityEnergyEnv(n_prosumers=2, num_envs=1, seed=0)
    policy = RuleBasedSelfConsumptionPolicy(env, cheap_price=0.0)
    td = env.reset()
    context = td["agents", "context"].clone()
    context[..., 5] = 1.0  # plugged in
    context[..., 7] = 0.5  # half the battery missing
    context[..., 6] = 3.0 / 24  # 3 h left: slow (3.7 kW) cannot deliver 20-40 kWh
    td.set(("agents", "context"), context)
    forecast = td["agents", "forecast"].clone()
    forecast[..., 0, 0] = 0.0  # no PV surplus
    td.set(("agents", "forecast"), forecast)
    assert bool((policy(td)["agents", "action", "mode"] == 2).all())
    context[..., 6] = 20.0 / 24  # plenty of time, expensive hour, no surplus: wait
    forecast[..., 0, 2] = 1.0
    td.update({("agents", "context"): context, ("agents", "forecast"): forecast})
    assert bool((policy(td)["agents", "action", "mode"] == 0).all())


def test_ev_spread_zero_is_the_plain_rules(env):
    plain = _episode(env, RuleBasedSelfConsumptionPolicy(env))
    zero = _episode(env, RuleBasedSelfConsumptionPolicy(env, ev_spread=0.0))
    for key in (("agents", "action", "mode"), ("agents", "action", "power")):
        assert torch.equal(plain[key], zero[key])


def test_ev_spread_waits_while_the_car_is_ahead_of_the_pace():
    env = CommunityEnergyEnv(n_prosumers=2, num_envs=1, seed=0)
    spread = RuleBasedSelfConsumptionPolicy(env, ev_spread=0.5)
    plain = RuleBasedSelfConsumptionPolicy(env)
    td = env.reset()
    context = td["agents", "context"].clone()
    context[..., 5] = 1.0  # plugged in
    context[..., 6] = 10.0 / 24  # 10 h left (9 h after the margin)
    forecast = td["agents", "forecast"].clone()
    forecast[..., 0, 0] = 0.0  # no PV surplus
    forecast[..., 0, 2] = 0.0  # an off-peak price
    ev_kwh = td["agents", "ratings"][..., 3] * CommunityEnergyEnv.RATING_SCALES[3]
    slow = env.ev_charger_kw[0]
    # needed rate 0.4 x slow: ahead of the half pace -> waits; the plain rules charge
    context[..., 7] = 0.4 * slow * 0.9 * 9.0 / ev_kwh
    td.update({("agents", "context"): context, ("agents", "forecast"): forecast})
    assert bool((spread(td.clone())["agents", "action", "mode"] == 0).all())
    assert bool((plain(td.clone())["agents", "action", "mode"] == 1).all())
    # 0.6 x slow: behind the half pace -> charges slowly
    context[..., 7] = 0.6 * slow * 0.9 * 9.0 / ev_kwh
    td.set(("agents", "context"), context)
    assert bool((spread(td.clone())["agents", "action", "mode"] == 1).all())
    # a PV surplus is charged from whatever the pace
    context[..., 7] = 0.1 * slow * 0.9 * 9.0 / ev_kwh
    forecast[..., 0, 0] = 20.0
    td.update({("agents", "context"): context, ("agents", "forecast"): forecast})
    assert bool((spread(td.clone())["agents", "action", "mode"] == 1).all())


def test_ev_spread_lowers_the_peak_and_still_meets_the_deadlines(env):
    plain = _episode(env, RuleBasedSelfConsumptionPolicy(env))
    spread = _episode(env, RuleBasedSelfConsumptionPolicy(env, ev_spread=0.6))
    assert _kpis(spread)["peak"] < _kpis(plain)["peak"]
    assert _kpis(spread)["ev_unmet"] < 0.5
    # the same EV energy arrives, later in the night
    delivered = [td["next", "kpi", "ev_delivered"].sum().item() for td in (plain, spread)]
    assert delivered[1] == pytest.approx(delivered[0], rel=0.02)


def _at_hour(td, hour):
    """``td`` with the context's time of day set to ``hour`` (local)."""
    context = td["agents", "context"].clone()
    angle = torch.tensor(hour * 2 * torch.pi / 24)
    context[..., 0], context[..., 1] = torch.sin(angle), torch.cos(angle)
    return td.set(("agents", "context"), context)


def test_battery_spread_caps_the_discharge_at_the_pace_to_the_refill_hour():
    env = CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0)
    td = env.reset()
    forecast = td["agents", "forecast"].clone()
    forecast[..., 0, 0] = 0.0  # no PV
    forecast[..., 0, 1] = 50.0  # a deficit no battery covers: the plain rule discharges fully
    device = td["agents", "device_state"].clone()
    device[..., 0] = 0.5
    td.update({("agents", "forecast"): forecast, ("agents", "device_state"): device})
    ratings = td["agents", "ratings"] * torch.tensor(CommunityEnergyEnv.RATING_SCALES)
    battery_kw, battery_kwh = ratings[..., 0], ratings[..., 1]
    plain = RuleBasedSelfConsumptionPolicy(env)
    paced = RuleBasedSelfConsumptionPolicy(env, battery_spread=0.5, battery_refill_hour=7.0)
    assert bool((plain(td.clone())["agents", "action", "power"][..., 0] == -1.0).all())
    for hour, hours_left in ((22.0, 9.0), (3.0, 4.0), (6.5, 0.5)):
        out = paced(_at_hour(td.clone(), hour))["agents", "action", "power"][..., 0]
        pace_kw = 0.5 * battery_kwh * 0.95 / (hours_left * 0.5)
        expected = torch.clamp(-pace_kw / battery_kw, min=-1.0)
        torch.testing.assert_close(out, expected)
    # charging from a PV surplus is unchanged
    forecast[..., 0, 0], forecast[..., 0, 1] = 20.0, 0.0
    td.set(("agents", "forecast"), forecast)
    for policy in (plain, paced):
        assert bool(
            (policy(_at_hour(td.clone(), 13.0))["agents", "action", "power"][..., 0] == 1.0).all()
        )


def test_battery_spread_keeps_energy_for_the_night_and_lowers_the_overload(env):
    plain = _episode(env, RuleBasedSelfConsumptionPolicy(env, ev_spread=0.6))
    paced = _episode(env, RuleBasedSelfConsumptionPolicy(env, ev_spread=0.6, battery_spread=0.75))
    t_1am = (24 + 1 - 12) * 4
    soc = [td["agents", "device_state"][:, t_1am, :, 0].mean().item() for td in (plain, paced)]
    assert soc[1] > soc[0] + 0.1
    overload = [td["next", "kpi", "transformer_overload"].sum().item() for td in (plain, paced)]
    assert overload[1] < overload[0]
    zero = _episode(env, RuleBasedSelfConsumptionPolicy(env, ev_spread=0.6, battery_spread=0.0))
    assert torch.equal(zero["agents", "action", "power"], plain["agents", "action", "power"])


def _outdoor(td, celsius):
    """``td`` with the context's outdoor temperature set to ``celsius``."""
    context = td["agents", "context"].clone()
    offset, scale = CommunityEnergyEnv.OUTDOOR_TEMPERATURE_NORM
    context[..., CommunityEnergyEnv.CONTEXT_FEATURES.index("outdoor_temperature")] = (
        celsius - offset
    ) / scale
    return td.set(("agents", "context"), context)


def test_preheat_heats_toward_the_target_in_the_window_on_heating_days_and_cools_on_cooling_days():
    env = CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0)
    td = env.reset()
    device = td["agents", "device_state"].clone()
    device[..., 2] = 0.0  # the band's middle: the deadband thermostat idles
    td.set(("agents", "device_state"), device)
    plain = RuleBasedSelfConsumptionPolicy(env, thermostat_deadband=0.9)
    pre = RuleBasedSelfConsumptionPolicy(env, thermostat_deadband=0.9, preheat_target=0.5)
    hvac = ("agents", "action", "power")

    def u(policy, hour, celsius):
        return policy(_outdoor(_at_hour(td.clone(), hour), celsius))[hvac][..., 1]

    assert bool((u(plain, 13.0, 5.0) == 0).all())
    # heating day, in the window: the thermostat that holds +0.5 (gain 2: full power)
    torch.testing.assert_close(u(pre, 13.0, 5.0), torch.full((2, 3), 1.0))
    torch.testing.assert_close(u(pre, 13.0, 30.0), torch.full((2, 3), -1.0))  # cooling day
    for hour, celsius in ((13.0, 22.0), (11.0, 5.0), (16.0, 5.0), (20.0, 30.0)):
        # a mild day inside the band, or outside the window [12, 16): the plain rule
        torch.testing.assert_close(u(pre, hour, celsius), u(plain, hour, celsius))
    # already warmer than the target: no cooling on a heating day
    device[..., 2] = 0.8
    td.set(("agents", "device_state"), device)
    torch.testing.assert_close(u(pre, 13.0, 5.0), u(plain, 13.0, 5.0))


def test_preheat_zero_is_the_plain_rule_and_a_window_is_checked(env):
    plain = _episode(env, RuleBasedSelfConsumptionPolicy(env, thermostat_deadband=0.9))
    zero = _episode(
        env, RuleBasedSelfConsumptionPolicy(env, thermostat_deadband=0.9, preheat_target=0.0)
    )
    assert torch.equal(zero["agents", "action", "power"], plain["agents", "action", "power"])
    with pytest.raises(ValueError, match=r"preheat_target in \[0, 1\), got 1.0"):
        RuleBasedSelfConsumptionPolicy(env, preheat_target=1.0)
    for hours in ((16.0, 12.0), (12.0, 25.0), (12.0,)):
        with pytest.raises(ValueError, match="preheat_hours"):
            RuleBasedSelfConsumptionPolicy(env, preheat_target=0.3, preheat_hours=hours)


@pytest.mark.parametrize("cls", POLICIES)
def test_a_thermostat_deadband_saves_heat_pump_energy_inside_the_band(env, cls):
    plain = _episode(env, cls(env))
    banded = _episode(env, cls(env, thermostat_deadband=0.5))
    hvac_kw = env._hvac_pmax  # (N,) the heat pumps' ratings
    energy = [
        (td["agents", "action", "power"][..., 1].abs() * hvac_kw).sum().item()
        for td in (plain, banded)
    ]
    assert energy[1] < 0.85 * energy[0]
    assert _kpis(banded)["cost"] < _kpis(plain)["cost"]
    assert _kpis(banded)["comfort_violation"] == 0.0
    # inside the deadband the heat pump idles
    temp = banded["agents", "device_state"][..., 2]
    inside = temp.abs() <= 0.5
    assert bool(inside.any())
    assert float(banded["agents", "action", "power"][..., 1][inside].abs().max()) == 0.0


def test_thermostat_and_bad_arguments():
    torch.testing.assert_close(
        thermostat(torch.tensor([-2.0, -0.25, 0.0, 0.5])), torch.tensor([1.0, 0.5, 0.0, -1.0])
    )
    with pytest.raises(ValueError, match="gain"):
        thermostat(torch.zeros(2), gain=0.0)
    torch.testing.assert_close(
        thermostat(torch.tensor([-2.0, -0.5, 0.5, 0.625]), deadband=0.5),
        torch.tensor([1.0, 0.0, 0.0, -0.5]),
    )
    with pytest.raises(ValueError, match=r"deadband in \[0, 1\), got 1.0"):
        thermostat(torch.zeros(2), deadband=1.0)
    for cls in POLICIES:
        with pytest.raises(ValueError, match="deadband"):
            cls(CommunityEnergyEnv(n_prosumers=2, seed=0), thermostat_deadband=-0.1)
    with pytest.raises(TypeError, match="CommunityEnergyEnv"):
        NoFlexibilityPolicy(TensorDict({}, []))
    env = CommunityEnergyEnv(n_prosumers=2, seed=0)
    with pytest.raises(ValueError, match="deadline_margin"):
        RuleBasedSelfConsumptionPolicy(env, deadline_margin=-1.0)
    with pytest.raises(ValueError, match=r"ev_spread in \[0, 1\], got 1.5"):
        RuleBasedSelfConsumptionPolicy(env, ev_spread=1.5)
    with pytest.raises(ValueError, match=r"battery_spread in \[0, 1\], got -0.5"):
        RuleBasedSelfConsumptionPolicy(env, battery_spread=-0.5)
    with pytest.raises(ValueError, match=r"battery_refill_hour in \[0, 24\), got 24"):
        RuleBasedSelfConsumptionPolicy(env, battery_refill_hour=24)


def test_rule_based_reads_the_ratings_from_the_observation():
    """One policy object serves any community: the device ratings come from the observation,
    so a policy built on community A acts on community B exactly as B's own policy does."""
    a = CommunityEnergyEnv(n_prosumers=5, num_envs=2, seed=0)
    b = CommunityEnergyEnv(n_prosumers=5, num_envs=2, seed=1)
    assert not torch.allclose(a.ratings, b.ratings)
    td = b.reset()
    from_a = RuleBasedSelfConsumptionPolicy(a)(td.clone())
    from_b = RuleBasedSelfConsumptionPolicy(b)(td.clone())
    assert torch.equal(from_a["agents", "action", "mode"], from_b["agents", "action", "mode"])
    assert torch.equal(from_a["agents", "action", "power"], from_b["agents", "action", "power"])
    # and the ratings matter: halving the battery rating doubles the battery command
    small = td.clone()
    small["agents", "ratings"][..., 0] /= 2
    power = RuleBasedSelfConsumptionPolicy(b)(small)["agents", "action", "power"][..., 0]
    torch.testing.assert_close(
        power, (2 * from_b["agents", "action", "power"][..., 0]).clamp(-1, 1)
    )
