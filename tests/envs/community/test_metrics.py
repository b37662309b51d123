from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from mtmarl.envs import CommunityEnergyEnv
from mtmarl.envs.community import (
    COMMUNITY_KPI_NAMES,
    NoFlexibilityPolicy,
    RuleBasedSelfConsumptionPolicy,
    community_episode_kpis,
    community_kpis,
    evaluation_rollout,
    perfect_foresight_rollout,
    physical_rating,
)
from mtmarl.envs.movebox import MoveBoxEnv

SEED = 7


@pytest.fixture(scope="module")
def env():
    return CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0)


def _hand_rollout() -> TensorDict:
    """2 episodes x 3 steps x 2 prosumers, every number chosen to be summed by hand."""
    E, T, N = 2, 3, 2

    def per_step(rows):  # (E, T) -> (E, T, 1)
        return torch.tensor(rows, dtype=torch.float32).unsqueeze(-1)

    kpi = {
        "cost": per_step([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]]),
        "peak": per_step([[10.0, 20.0, 5.0], [0.0, 0.0, 0.0]]),
        "transformer_overload": per_step([[0.0, 0.2, 0.0], [0.0, 0.0, 0.0]]),
        "self_sufficiency": per_step([[0.3, 0.6, 0.9], [1.0, 1.0, 1.0]]),
        "comfort_violation": per_step([[0.0, 0.25, 0.25], [0.0, 0.0, 1.0]]),
        "ev_unmet": per_step([[0.0, 0.0, 2.0], [0.0, 0.0, 0.0]]),
        "ramping": per_step([[0.0, 10.0, 15.0], [0.0, 4.0, 4.0]]),
    }
    # battery SoC (channel 0) of both prosumers: 0.5 -> 0.75 in episode 0, 0.5 -> 0.25 in 1
    soc = torch.zeros(E, T + 1, N, 3)
    soc[0, :, :, 0] = torch.tensor([0.5, 0.55, 0.65, 0.75]).unsqueeze(-1)
    soc[1, :, :, 0] = torch.tensor([0.5, 0.4, 0.3, 0.25]).unsqueeze(-1)
    # ratings: battery_kwh (channel 1) 4 and 8 kWh, in the observation's scale
    ratings = torch.zeros(E, T, N, len(CommunityEnergyEnv.RATING_FEATURES))
    ratings[..., 1] = torch.tensor([4.0, 8.0]) / CommunityEnergyEnv.RATING_SCALES[1]
    return TensorDict(
        {
            "agents": {"device_state": soc[:, :-1], "ratings": ratings},
            "next": {
                "kpi": TensorDict(kpi, [E, T]),
                "reward": per_step([[-1.0, -2.0, -0.5], [0.0, -0.25, -0.25]]),
                "agents": {"device_state": soc[:, 1:]},
            },
        },
        [E, T],
    )


def test_kpis_of_a_hand_checked_rollout():
    k = community_episode_kpis(_hand_rollout())
    assert list(k) == list(COMMUNITY_KPI_NAMES)
    expected = {
        "cost": [6.0, 0.0],
        "peak_kw": [20.0, 0.0],
        "overload_hours": [0.25, 0.0],  # one 15-min step over the rating
        "self_sufficiency": [0.6, 1.0],
        "comfort": [0.5, 1.0],
        "ev_unmet_kwh": [2.0, 0.0],
        "ramping_kw": [25.0, 8.0],
        # 1 - mean / max of the import power; an episode without import has a load factor 0
        "one_minus_load_factor": [1 - (35.0 / 3) / 20.0, 1.0],
        "return": [-3.5, -0.5],
        # (0.75 - 0.5) * (4 + 8) kWh and (0.25 - 0.5) * (4 + 8) kWh
        "stored_kwh_change": [3.0, -3.0],
    }
    for name, values in expected.items():
        torch.testing.assert_close(k[name], torch.tensor(values), msg=name)


def test_kpis_average_the_episodes():
    k = community_kpis(_hand_rollout())
    assert list(k) == list(COMMUNITY_KPI_NAMES)
    assert all(isinstance(v, float) for v in k.values())
    assert k["cost"] == pytest.approx(3.0)
    assert k["peak_kw"] == pytest.approx(10.0)
    assert k["stored_kwh_change"] == pytest.approx(0.0, abs=1e-6)
    assert k["return"] == pytest.approx(-2.0)


@pytest.mark.parametrize("batch", [(2,), (3, 2), (1, 2, 2)])
def test_batch_shapes(batch):
    td = _hand_rollout()  # (2, T)
    reps = int(torch.tensor(batch).prod()) // 2
    stacked = torch.cat([td] * reps).reshape(*batch, td.shape[-1])
    k = community_episode_kpis(stacked)
    flat = community_episode_kpis(td)
    for name in COMMUNITY_KPI_NAMES:
        assert k[name].shape == batch, name
        torch.testing.assert_close(k[name].reshape(-1), flat[name].repeat(reps), msg=name)


def test_kpis_of_an_env_rollout(env):
    td = evaluation_rollout(env, RuleBasedSelfConsumptionPolicy(env), seed=SEED)
    assert td.shape == (env.num_envs, env.HORIZON)
    k = community_episode_kpis(td)
    for name in COMMUNITY_KPI_NAMES:
        assert k[name].shape == (env.num_envs,), name
        assert bool(k[name].isfinite().all()), name
    kpi = td["next", "kpi"]
    torch.testing.assert_close(k["cost"], kpi["cost"].sum((1, 2)))
    torch.testing.assert_close(k["peak_kw"], kpi["peak"].amax((1, 2)))
    torch.testing.assert_close(k["return"], td["next", "reward"].sum((1, 2)))
    assert bool(((k["self_sufficiency"] >= 0) & (k["self_sufficiency"] <= 1)).all())
    assert bool(((k["one_minus_load_factor"] >= 0) & (k["one_minus_load_factor"] <= 1)).all())
    # the stored energy from the env's own ratings (physical units, not the observation's)
    soc = td["agents", "device_state"][..., 0]
    soc_next = td["next", "agents", "device_state"][..., 0]
    stored = ((soc_next[:, -1] - soc[:, 0]) * env.ratings[:, 1]).sum(-1)
    torch.testing.assert_close(k["stored_kwh_change"], stored)


def test_physical_rating(env):
    td = env.reset()
    for i, name in enumerate(CommunityEnergyEnv.RATING_FEATURES):
        rating = physical_rating(td, name)
        assert rating.shape == (env.num_envs, env.n_prosumers)
        torch.testing.assert_close(rating, env.ratings[:, i].expand_as(rating))


def test_evaluation_rollout_runs_the_seeds_days(env):
    rules = RuleBasedSelfConsumptionPolicy(env)
    a = evaluation_rollout(env, rules, seed=SEED)
    b = evaluation_rollout(env, rules, seed=SEED)
    c = evaluation_rollout(env, rules, seed=SEED + 1)
    assert torch.equal(a["agents", "observation"], b["agents", "observation"])
    assert torch.equal(a["next", "reward"], b["next", "reward"])
    assert not torch.equal(a["agents", "observation"], c["agents", "observation"])
    short = evaluation_rollout(env, rules, seed=SEED, max_steps=5)
    assert short.shape == (env.num_envs, 5)
    assert torch.equal(short["next", "reward"], a["next", "reward"][:, :5])


def test_perfect_foresight_rollout_plans_the_same_days(env):
    rules = evaluation_rollout(env, RuleBasedSelfConsumptionPolicy(env), seed=SEED)
    modes = rules["agents", "action", "mode"]
    plan, ran = perfect_foresight_rollout(env, modes, seed=SEED)
    assert ran.shape == rules.shape
    # the same days from the same reset, and the plan holds the given EV levels
    assert torch.equal(ran["agents", "observation"][:, 0], rules["agents", "observation"][:, 0])
    assert torch.equal(ran["agents", "action", "mode"], modes)
    returns = community_episode_kpis(ran)["return"].double()
    assert bool((returns <= plan.episode_return + 1e-3).all())
    # the best batteries and heat pumps for the rules' EV levels beat the rules
    assert bool((returns >= community_episode_kpis(rules)["return"].double() - 1e-3).all())
    kept, ran_kept = perfect_foresight_rollout(env, modes, seed=SEED, keep_battery_energy=True)
    assert bool((kept.episode_return <= plan.episode_return + 1e-6).all())
    assert bool((community_episode_kpis(ran_kept)["stored_kwh_change"] >= -1e-2).all())


def test_bad_input(env):
    td = _hand_rollout()
    with pytest.raises(ValueError, match="at least one"):
        community_episode_kpis(td[0])  # (T,): no episode dim
    with pytest.raises(KeyError):
        community_episode_kpis(td.exclude(("next", "kpi")))
    with pytest.raises(KeyError):
        community_kpis(td.exclude(("agents", "ratings")))
    with pytest.raises(ValueError, match="battery_kwh"):
        physical_rating(td, "battery_kvah")
    with pytest.raises(TypeError, match="CommunityEnergyEnv"):
        evaluation_rollout(MoveBoxEnv(num_envs=2), None, seed=0)
    policy = NoFlexibilityPolicy(env)
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="max_steps"):
            evaluation_rollout(env, policy, seed=0, max_steps=steps)
    with pytest.raises(TypeError, match="ev_modes"):
        perfect_foresight_rollout(env, None, seed=0)
    with pytest.raises(TypeError, match="CommunityEnergyEnv"):
        perfect_foresight_rollout(MoveBoxEnv(num_envs=2), torch.zeros(2, 96, 3), seed=0)
    with pytest.raises(ValueError):
        perfect_foresight_rollout(env, torch.zeros(2, 5, 3, dtype=torch.int64), seed=0)
