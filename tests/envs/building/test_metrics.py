"""Tests for mtmarl.envs.building.metrics."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from mtmarl.envs.building import RuleBasedPolicy, building_episode_metrics, make_building_env


def _rollout(power, ref, temp, reward):
    E, T = power.shape
    return TensorDict(
        {
            "building": {"reference_power": ref.unsqueeze(-1)},
            "next": {
                "building": {"power": power.unsqueeze(-1), "zone_temperature": temp},
                "reward": reward.unsqueeze(-1),
            },
        },
        [E, T],
    )


def test_hand_computed_values():
    power = torch.tensor([[10.0, 12.0, 10.0, 6.0]])
    ref = torch.tensor([[10.0, 10.0, 10.0, 10.0]])
    temp = torch.full((1, 4, 5), 25.0)
    temp[0, 1, 0] = 29.0  # 1 K above the band
    temp[0, 3, 2:4] = 21.5  # 2 x 0.5 K below
    reward = torch.tensor([[-1.0, -2.0, 0.0, -0.5]])
    m = building_episode_metrics(_rollout(power, ref, temp, reward), step_minutes=2.0)
    assert m["return"].item() == pytest.approx(-3.5)
    assert m["tracking_rmse_kw"].item() == pytest.approx(math.sqrt((4 + 16) / 4))
    assert m["tracking_mae_kw"].item() == pytest.approx(6 / 4)
    assert m["comfort_degree_minutes"].item() == pytest.approx(2.0 * 2.0)


def test_matches_the_env_reward_terms():
    env = make_building_env(num_envs=6, seed=0)
    rollout = env.rollout(30, RuleBasedPolicy(env.base_env))
    m = building_episode_metrics(rollout)
    base = env.base_env
    reward = (
        -base.tracking_weight * m["tracking_mae_kw"] * 30
        - base.comfort_weight * m["comfort_degree_minutes"]
    )
    torch.testing.assert_close(reward, m["return"], rtol=1e-4, atol=1e-3)


def test_bad_inputs():
    td = _rollout(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3, 5), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(E, T\)"):
        building_episode_metrics(td[:, 0])
    with pytest.raises(ValueError, match="T_lo <= T_hi"):
        building_episode_metrics(td, comfort_band=(28.0, 22.0))
