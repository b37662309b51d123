"""Tests for mtmarl.envs.building.env: specs, physics through the env, reward, time, transforms."""

from __future__ import annotations

import pytest
import torch
from torchrl.envs.utils import check_env_specs

from mtmarl.envs.building import BuildingEnv, EnergyStorage, make_building_env
from mtmarl.envs.building.thermal_model import chiller_power, fan_power

N = BuildingEnv.N_AGENTS


def act(env, td, action):
    td["agents", "action"] = action.reshape(env.num_envs, N, 1)
    return env.step(td)["next"]


@pytest.mark.parametrize("num_envs", [1, 3])
def test_check_env_specs_raw(num_envs):
    check_env_specs(BuildingEnv(num_envs=num_envs, seed=0))


@pytest.mark.parametrize("phase_mode", [None, "phase", "onehot", "sincos"])
def test_check_env_specs_stack(phase_mode):
    env = make_building_env(phase_mode=phase_mode, num_envs=2, seed=0)
    check_env_specs(env)
    td = env.reset()
    extra = {None: 0, "phase": 0, "onehot": 15, "sincos": 2}[phase_mode]
    assert td["agents", "observation"].shape == (2, N, BuildingEnv.OBS_DIM + extra)
    assert td["state"].shape == (2, BuildingEnv.STATE_DIM + extra)


def test_observation_layout_matches_physical_values():
    env = BuildingEnv(num_envs=5, seed=1)
    td = env.reset()
    td = act(env, td, 2 * torch.rand(5, N) - 1)
    obs, state, b = td["agents", "observation"], td["state"], td["building"]
    temp_s = (b["zone_temperature"] - 25) / 5
    assert torch.allclose(obs[:, :5, 0], temp_s)
    assert torch.allclose(obs[:, 5, 0], temp_s.mean(-1))
    soc = (b["storage_energy"][:, 0] - 3) / 47
    assert torch.allclose(obs[:, 6, 0], 2 * soc - 1)
    for col, value in ((1, (b["outdoor_temperature"] - 25) / 10), (2, b["reference_power"] / 50)):
        assert torch.allclose(obs[..., col], value.expand(5, N))
    assert torch.allclose(obs[..., 3], (b["power"] / 50).expand(5, N))
    assert torch.equal(obs[..., 5:].argmax(-1)[0], torch.tensor([0, 0, 0, 0, 0, 1, 2]))
    assert torch.allclose(state[:, :5], temp_s)
    assert torch.allclose(state[:, 14:21], obs[..., 4])  # last actions
    assert torch.allclose(state[:, 21] ** 2 + state[:, 22] ** 2, torch.ones(5))


def test_reset_draws_start_times_in_range_and_last_action_zero():
    env = BuildingEnv(num_envs=256, seed=2, start_days=(10, 12), start_hours=(8.0, 9.5))
    td = env.reset()
    minute = td["building", "minute_of_year"][:, 0]
    day, mod = minute // 1440, minute % 1440
    assert set(day.tolist()) == {10, 11}
    assert mod.min() >= 480 and mod.max() < 570 and mod.unique().numel() > 30
    assert (td["agents", "observation"][..., 4] == 0).all()
    temp = td["building", "zone_temperature"]
    assert (temp >= 24).all() and (temp <= 27).all()


@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_actions_at_bounds_give_the_documented_extreme_powers(sign):
    env = BuildingEnv(num_envs=4, seed=3)
    td = env.reset()
    toa = td["building", "outdoor_temperature"][:, 0]
    energy = td["building", "storage_energy"][:, 0]
    # all flows at one bound, chiller at the other (most / least cooling), battery at +-15 kW
    action = torch.full((4, N), sign)
    action[:, BuildingEnv.CHILLER] = -sign
    out = act(env, td, action)
    total_flow = torch.tensor(10.0 if sign > 0 else 4 * 0.22 + 0.32)
    tdis = 10.0 if sign > 0 else 16.0
    expected = (
        fan_power(total_flow)
        + chiller_power(total_flow.expand(4), toa, torch.tensor(tdis))
        + 15.0 * sign
    )
    assert torch.allclose(out["building", "power"][:, 0], expected, atol=1e-4)
    assert (out["building", "storage_energy"][:, 0] - energy).sign().eq(sign).all()
    executed = out["agents", "observation"][..., 4]
    assert torch.allclose(executed[:, 6], torch.full((4,), sign))
    if sign > 0:  # the flow limit projected the zones' flows below their maximum
        assert (executed[:, :5] < 1).all()


def test_reward_is_tracking_plus_comfort_penalty():
    env = BuildingEnv(
        num_envs=8, seed=4, tracking_weight=0.3, comfort_weight=2.0, comfort_band=(25.0, 25.5)
    )
    td = env.reset()
    ref = td["building", "reference_power"][:, 0]
    out = act(env, td, 2 * torch.rand(8, N) - 1)
    temp = out["building", "zone_temperature"]
    viol = ((25.0 - temp).clamp_min(0) + (temp - 25.5).clamp_min(0)).sum(-1)
    power = out["building", "power"][:, 0]
    expected = -0.3 * (power - ref).abs() - 2.0 * viol
    assert torch.allclose(out["reward"][:, 0], expected, atol=1e-5)
    assert (viol > 0).any()


def test_reference_is_piecewise_constant_and_15_periodic():
    env = BuildingEnv(num_envs=3, seed=5, horizon=45)
    td = env.reset()
    refs = [td["building", "reference_power"][:, 0]]
    for _ in range(44):
        td = act(env, td, torch.zeros(3, N))
        refs.append(td["building", "reference_power"][:, 0])
    refs = torch.stack(refs, -1)  # (3, 45)
    assert env.period == 15
    assert torch.allclose(refs[:, :15], refs[:, 15:30]) and torch.allclose(
        refs[:, :15], refs[:, 30:]
    )
    changes = (refs[:, 1:] != refs[:, :-1]).any(0).nonzero().squeeze(-1) + 1
    assert set(changes.tolist()) <= set(range(3, 45, 3))
    blocks = refs[:, :15].reshape(3, 5, 3)
    assert torch.allclose(blocks, blocks[..., :1].expand_as(blocks))
    base, amp = env._base, env._amp
    levels = (blocks[..., 0] - base.unsqueeze(-1)) / amp.unsqueeze(-1)
    assert torch.allclose(levels, torch.tensor([0.0, 0.5, 1.0, -0.5, -1.0]).expand(3, 5), atol=1e-5)


def test_storage_energy_balance_and_bounds_in_the_env():
    env = BuildingEnv(num_envs=16, seed=6, horizon=400, initial_soc=(0.0, 1.0))
    td = env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        before = td["building", "storage_energy"][:, 0]
        action = torch.where(torch.rand(16, N, generator=gen) < 0.5, -1.0, 1.0)
        action[:, 6] = torch.where(torch.rand(16, generator=gen) < 0.3, -1.0, 1.0)
        td = act(env, td, action)
        after = td["building", "storage_energy"][:, 0]
        p = 15.0 * td["agents", "observation"][:, 6, 4]
        expected = torch.where(p > 0, 0.95 * p, p / 0.9) / 60
        assert torch.allclose(after - before, expected, atol=1e-4)
        assert (after >= 3.0).all() and (after <= 50.0).all()
        assert torch.isfinite(td["building", "zone_temperature"]).all()
    assert (after > 49.9).any()


def test_custom_storage_is_used():
    env = BuildingEnv(num_envs=2, seed=7, storage=EnergyStorage(max_power=5.0))
    td = act(env, env.reset(), torch.ones(2, N))
    assert torch.allclose(td["agents", "observation"][:, 6, 4], torch.ones(2))


@pytest.mark.parametrize("horizon", [1, 30])
def test_truncation_at_horizon(horizon):
    env = BuildingEnv(num_envs=2, seed=8, horizon=horizon)
    td = env.reset()
    for t in range(horizon):
        td = act(env, td, torch.zeros(2, N))
        assert td["truncated"].all() == (t == horizon - 1)
        assert not td["terminated"].any()
        assert torch.equal(td["done"], td["truncated"])


def test_partial_reset_only_resets_flagged_envs():
    env = BuildingEnv(num_envs=3, seed=9)
    td = env.reset()
    td = act(env, td, torch.rand(3, N))
    before = td.clone()
    reset = env.reset(td.clone().set("_reset", torch.tensor([[False], [True], [False]])))
    for i in (0, 2):
        assert torch.equal(reset["state"][i], before["state"][i])
    assert not torch.equal(reset["state"][1], before["state"][1])
    assert (reset["agents", "observation"][1, :, 4] == 0).all()


def test_step_and_maybe_reset_restarts_finished_envs():
    env = BuildingEnv(num_envs=2, seed=10, horizon=3)
    td = env.reset()
    for _ in range(3):
        td["agents", "action"] = torch.zeros(2, N, 1)
        out, td = env.step_and_maybe_reset(td)
    assert out["next", "truncated"].all()
    assert (td["agents", "observation"][..., 4] == 0).all() and env._t.eq(0).all()


def test_seeded_runs_are_reproducible():
    def run(seed):
        env = BuildingEnv(num_envs=4, seed=seed)
        td = env.reset()
        rewards = []
        for k in range(10):
            td = act(env, td, torch.full((4, N), 0.1 * k - 0.5))
            rewards.append(td["reward"])
        return torch.cat(rewards, -1)

    assert torch.equal(run(11), run(11))
    assert not torch.equal(run(11), run(12))


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(num_envs=0), ValueError, "num_envs"),
        (dict(horizon=0), ValueError, "horizon"),
        (dict(station="atlantis"), ValueError, "station"),
        (dict(start_days=(200, 100)), ValueError, "start_days"),
        (dict(start_days=(1.5, 3)), ValueError, "two ints"),
        (dict(start_hours=(0.0, 25.0)), ValueError, "start_hours"),
        (dict(comfort_band=(28.0, 22.0)), ValueError, "comfort_band"),
        (dict(initial_soc=(0.5, 1.5)), ValueError, "initial_soc"),
        (dict(tracking_weight=-1.0), ValueError, "tracking_weight"),
        (dict(reference_pattern=()), ValueError, "reference_pattern"),
        (dict(reference_interval=0), ValueError, "reference_interval"),
        (dict(action_periods=(5, 1)), ValueError, "7 action_periods"),
        (dict(storage="big"), TypeError, "EnergyStorage"),
        (dict(seed=1.5), TypeError, "seed"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs, err, match):
    with pytest.raises(err, match=match):
        BuildingEnv(**kwargs)


def test_wrong_action_shape_raises():
    env = BuildingEnv(num_envs=2, seed=0)
    td = env.reset()
    td["agents", "action"] = torch.zeros(2, N, 1)
    with pytest.raises(ValueError, match="expected \\('agents', 'action'\\) of shape"):
        env._step(td.set(("agents", "action"), torch.zeros(2, N, 2)))


def test_stack_holds_slow_agents_between_decisions():
    env = make_building_env(num_envs=2, seed=13, phase_mode="phase")
    td = env.reset()
    first = torch.rand(2, N, 1) * 2 - 1
    td["agents", "action"] = first
    td = env.step(td)["next"]
    for t in range(1, 5):
        assert td["agents", "can_act"][0].tolist() == [False] * 6 + [True]
        assert float(td["phase"][0, 0]) == pytest.approx(t / 15)
        td["agents", "action"] = -first  # slow agents try to change
        td = env.step(td)["next"]
        executed = td["agents", "prev_action"]
        assert torch.equal(executed[:, :6], first[:, :6])
        assert torch.equal(executed[:, 6], -first[:, 6])
    assert td["agents", "can_act"].all()  # t = 5: every agent decides


def test_stack_rand_action_step_and_maybe_reset_runs_episodes():
    env = make_building_env(num_envs=4, seed=14, phase_mode="sincos", horizon=7)
    td = env.reset()
    dones = 0
    for _ in range(20):
        td = env.rand_action(td)
        out, td = env.step_and_maybe_reset(td)
        dones += int(out["next", "done"].sum())
        assert torch.isfinite(out["next", "reward"]).all()
    assert dones == 4 * 2  # every env finished two 7-step episodes in 20 steps
    assert td["step_count"].max() < 7


def test_make_building_env_bad_phase_mode():
    with pytest.raises(ValueError, match="phase_mode"):
        make_building_env(phase_mode="clock")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda():
    env = make_building_env(num_envs=8, device="cuda", seed=0, phase_mode="onehot")
    td = env.reset()
    for _ in range(5):
        td = env.rand_action(td)
        _, td = env.step_and_maybe_reset(td)
    assert td["state"].device.type == "cuda"
    raw = BuildingEnv(num_envs=2, seed=0).to("cuda")
    assert raw.reset()["state"].device.type == "cuda"
