"""DiscreteActionLevels: K levels of a Bounded per-agent action as a Categorical(K ** A)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchrl.envs import TransformedEnv
from torchrl.envs.utils import check_env_specs
from transform_test_envs import BATCH_SHAPES, ToyMultiAgentEnv

from mtmarl.envs import BuildingEnv, make_building_env
from mtmarl.transforms import DiscreteActionLevels


def _env(batch_size, levels=3, action_dim=2):
    base = ToyMultiAgentEnv(batch_size=batch_size, action="continuous", action_dim=action_dim)
    return TransformedEnv(base, DiscreteActionLevels(levels))


@pytest.mark.parametrize("batch_size", BATCH_SHAPES)
def test_check_env_specs_and_the_spec(batch_size):
    env = _env(batch_size)
    check_env_specs(env)
    spec = env.full_action_spec["agents", "action"]
    n_agents = env.base_env.full_action_spec["agents", "action"].shape[-2]
    assert spec.n == 9 and tuple(spec.shape) == (*batch_size, n_agents)


@pytest.mark.parametrize("levels", [2, 3, 5])
def test_indices_map_to_evenly_spaced_levels_with_both_bounds(levels):
    env = _env((2,), levels=levels, action_dim=1)
    index = torch.arange(levels).repeat(2, 1)[
        :, : env.full_action_spec["agents", "action"].shape[-1]
    ]
    values = env.transform.levels_of(index)
    expected = -1.0 + 2.0 * index.float() / (levels - 1)
    torch.testing.assert_close(values[..., 0], expected)


def test_multi_dimensional_actions_are_base_k_digits():
    env = _env((), levels=3, action_dim=2)
    n_agents = env.full_action_spec["agents", "action"].shape[-1]
    index = torch.full((n_agents,), 5)  # 5 = 1 * 3 + 2: dim 0 at level 1, dim 1 at level 2
    torch.testing.assert_close(env.transform.levels_of(index)[0], torch.tensor([0.0, 1.0]))


def test_the_env_receives_the_levels():
    env = _env((2,), levels=3, action_dim=1)
    td = env.reset()
    n = env.full_action_spec["agents", "action"].shape[-1]
    td["agents", "action"] = torch.tensor([[0] * n, [2] * n])
    out = env.step(td)
    received = out["next", "agents", "observation"][..., :1]  # the toy env echoes its action
    torch.testing.assert_close(received[0, :, 0], torch.full((n,), -1.0))
    torch.testing.assert_close(received[1, :, 0], torch.full((n,), 1.0))


@settings(max_examples=40, deadline=None)
@given(index=st.integers(-3, 12))
def test_out_of_range_or_float_indices_are_refused(index):
    env = _env((), levels=3, action_dim=1)
    n = env.full_action_spec["agents", "action"].shape[-1]
    if 0 <= index < 3:
        assert env.transform.levels_of(torch.full((n,), index)).shape == (n, 1)
    else:
        with pytest.raises(
            ValueError, match=r"action indices in \[0, 3\) at \('agents', 'action'\)"
        ):
            env.transform.levels_of(torch.full((n,), index))
    with pytest.raises(TypeError, match="integer action indices"):
        env.transform.levels_of(torch.full((n,), 1.0))


@pytest.mark.parametrize("levels, error", [(1, ValueError), (2.5, TypeError), (True, TypeError)])
def test_bad_levels(levels, error):
    with pytest.raises(error, match="levels"):
        DiscreteActionLevels(levels)


def test_a_discrete_action_is_refused():
    with pytest.raises(ValueError, match="float Bounded per-agent action"):
        TransformedEnv(
            ToyMultiAgentEnv(batch_size=(2,), action="discrete"), DiscreteActionLevels(3)
        )


@pytest.mark.parametrize("levels", [2, 5])
def test_the_building_discretises_inside_so_held_actions_are_forced_choices(levels):
    env = make_building_env(action_levels=levels, num_envs=3, seed=0)
    check_env_specs(env)
    td = env.rollout(12)
    forced = ~td["agents", "can_act"]
    mask = td["agents", "action_mask"]
    assert mask.shape[-1] == levels
    # a forced step allows exactly the held index
    assert bool((mask[forced].sum(-1) == 1).all())
    held = td["agents", "prev_action"][forced]
    assert bool(mask[forced].gather(-1, held.unsqueeze(-1)).all())
    with pytest.raises(ValueError, match=rf"level indices in \[0, {levels}\)"):
        BuildingEnv(num_envs=1, seed=0, action_levels=levels).step(
            BuildingEnv(num_envs=1, seed=0, action_levels=levels)
            .reset()
            .set(("agents", "action"), torch.full((1, 7), levels))
        )
