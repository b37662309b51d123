"""mtmarl.interop.to_pettingzoo: mtmarl envs as PettingZoo ParallelEnvs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium import spaces

pytest.importorskip("pettingzoo")

from pettingzoo.test import parallel_api_test  # noqa: E402

from mtmarl.envs import (  # noqa: E402
    CommunityEnergyEnv,
    MoveBoxEnv,
    make_building_env,
    make_movebox_env,
)
from mtmarl.interop import MtmarlParallelEnv, to_pettingzoo  # noqa: E402

UP, DOWN, NULL = MoveBoxEnv.UP, MoveBoxEnv.DOWN, MoveBoxEnv.NULL


@pytest.fixture(scope="module")
def building_env():
    return make_building_env(num_envs=1, seed=0)


@pytest.fixture(scope="module")
def community_env():
    return CommunityEnergyEnv(n_prosumers=3, seed=0)


def _api_test(pz, num_cycles=1000):
    """PettingZoo's parallel_api_test, with its warnings (API deviations) made failures."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(pz, num_cycles=num_cycles)
    from_pettingzoo = [w for w in caught if w.filename.endswith("parallel_test.py")]
    assert not from_pettingzoo, [str(w.message) for w in from_pettingzoo]


def _check_episode(pz, *, seed=0, max_steps=200):
    """Random episode: every observation, reward and state lies in its space."""
    obs, infos = pz.reset(seed=seed)
    assert set(obs) == set(infos) == set(pz.possible_agents)
    steps = 0
    while pz.agents:
        for agent in pz.agents:
            assert pz.observation_space(agent).contains(obs[agent]), agent
        if pz.state_space is not None:
            assert pz.state_space.contains(pz.state())
        actions = {}
        for agent in pz.agents:
            ob = obs[agent]
            mask = ob.get("action_mask") if isinstance(ob, dict) else None
            actions[agent] = pz.action_space(agent).sample(mask=mask)
        obs, rewards, term, trunc, infos = pz.step(actions)
        values = set(rewards.values())
        assert len(values) == 1 and isinstance(values.pop(), float)  # team reward broadcast
        assert len(set(term.values())) == 1 and len(set(trunc.values())) == 1
        steps += 1
        assert steps <= max_steps
    assert any(term.values()) or any(trunc.values())
    return steps


# ------------------------------------------------------------------ API test


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_parallel_api_movebox_stack(difficulty):
    pz = to_pettingzoo(make_movebox_env(difficulty, phase_mode="onehot", seed=0))
    _api_test(pz)
    steps = _check_episode(pz)
    assert steps <= 20


def test_parallel_api_movebox_raw_env():
    pz = to_pettingzoo(MoveBoxEnv.easy(seed=0))
    _api_test(pz)
    assert isinstance(pz.observation_space("agent_0"), spaces.Box)


def test_parallel_api_building(building_env):
    pz = to_pettingzoo(building_env)
    _api_test(pz)
    assert _check_episode(pz) == building_env.base_env.horizon
    space = pz.action_space("agent_6")
    assert isinstance(space, spaces.Box) and space.shape == (1,)
    assert space.low.tolist() == [-1.0] and space.high.tolist() == [1.0]


def test_parallel_api_community(community_env):
    pz = to_pettingzoo(community_env)
    _api_test(pz)
    assert isinstance(pz.action_space("agent_0"), spaces.Dict)
    assert pz.action_space("agent_0")["mode"].n == CommunityEnergyEnv.N_MODES


def test_community_full_episode(community_env):
    pz = to_pettingzoo(community_env)
    assert _check_episode(pz, max_steps=1000) == CommunityEnergyEnv.HORIZON


# --------------------------------------------------------- conversion details


def test_movebox_observation_and_mask_convention():
    pz = to_pettingzoo(make_movebox_env("easy", seed=0))
    obs, infos = pz.reset(seed=0)
    assert infos == {"agent_0": {"can_act": True}, "agent_1": {"can_act": True}}
    # t = 1: agent_1 (period 2) is forced to NULL
    obs, *_, infos = pz.step({"agent_0": UP, "agent_1": NULL})
    assert infos["agent_1"] == {"can_act": False}
    mask = obs["agent_1"]["action_mask"]
    assert mask.dtype == np.int8 and mask.tolist() == [0, 0, 1]
    assert obs["agent_0"]["action_mask"].tolist() == [1, 1, 1]
    sampled = {pz.action_space("agent_1").sample(mask=mask) for _ in range(10)}
    assert sampled == {NULL}


def test_forbidden_action_is_replaced_by_the_forced_one():
    """An action the mask forbids is accepted; the env executes the forced NULL."""
    pz = to_pettingzoo(
        make_movebox_env("easy", seed=0),
        observation_keys=["observation", "action_mask", "prev_action"],
    )
    obs, _ = pz.reset(seed=0)
    y1 = obs["agent_1"]["observation"][1]
    obs, *_ = pz.step({"agent_0": UP, "agent_1": UP})  # t = 0: both act
    assert obs["agent_1"]["observation"][1] == y1 + 1
    assert obs["agent_1"]["prev_action"] == UP
    obs, *_ = pz.step({"agent_0": DOWN, "agent_1": UP})  # t = 1: agent_1 must not act
    assert obs["agent_1"]["prev_action"] == NULL  # executed action
    assert obs["agent_1"]["observation"][1] == y1 + 1  # did not move
    assert obs["agent_0"]["prev_action"] == DOWN
    assert pz.observation_space("agent_1")["prev_action"] == spaces.Discrete(3)


def test_episode_end_removes_agents_and_step_needs_reset():
    pz = to_pettingzoo(MoveBoxEnv.easy())
    pz.reset()
    # the shortest solution of easy (7 steps, see MoveBoxEnv): the fast agent steps up,
    # then the box is pushed 3 times on even steps
    plan = [(UP, NULL), (NULL, NULL)] + [(UP, UP), (NULL, NULL)] * 2 + [(UP, UP)]
    total = 0.0
    for a0, a1 in plan:
        assert pz.agents == ["agent_0", "agent_1"]
        _, rew, term, trunc, _ = pz.step({"agent_0": a0, "agent_1": a1})
        total += rew["agent_0"]
    assert term == {"agent_0": True, "agent_1": True}
    assert trunc == {"agent_0": False, "agent_1": False}
    assert total == 23.0 and pz.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        pz.step({"agent_0": NULL, "agent_1": NULL})
    pz.reset()
    assert pz.agents == pz.possible_agents


def test_truncation_at_horizon():
    pz = to_pettingzoo(MoveBoxEnv.easy())
    pz.reset()
    for _ in range(20):
        _, _, term, trunc, _ = pz.step({"agent_0": NULL, "agent_1": NULL})
    assert trunc == {"agent_0": True, "agent_1": True} and not any(term.values())
    assert pz.agents == []


def test_seed_makes_episodes_reproducible():
    def run(seed):
        pz = to_pettingzoo(MoveBoxEnv.easy(random_start=True))
        out = []
        for _ in range(3):
            obs, _ = pz.reset(seed=seed) if not out else pz.reset()
            acts = {a: pz.action_space(a).sample() for a in pz.agents}
            out.append((pz.state().tolist(), sorted(acts.items())))
        return out

    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested:UserWarning")
def test_unbatched_torchrl_env():
    """A torchrl env of batch_size () (as torchrl's own wrappers have) works too."""
    from torchrl.envs import PettingZooWrapper

    inner = to_pettingzoo(MoveBoxEnv.easy(seed=0))
    env = PettingZooWrapper(
        env=inner, return_state=True, group_map={"agents": inner.possible_agents}
    )
    assert env.batch_size == ()
    # per-agent rewards of torchrl's wrapper are passed per agent
    pz = to_pettingzoo(env, agent_names=["left", "right"])
    obs, _ = pz.reset(seed=0)
    assert obs["left"].tolist() == [0.0, 0.0, 1.0, 1.0]
    _, rew, *_ = pz.step({"left": UP, "right": NULL})
    assert set(rew) == {"left", "right"}
    assert pz.state().shape == (6,)


def test_state_and_render():
    pz = to_pettingzoo(make_movebox_env("easy"), render_mode="ansi")
    assert pz.render() is None  # before reset
    pz.reset()
    np.testing.assert_array_equal(pz.state(), [0.0, 0.0, 2.0, 1.0, 1.0, 1.0])
    pz.step({"agent_0": UP, "agent_1": NULL})
    text = pz.render()
    assert text.splitlines()[0] == "step 1" and "agent_1" in text and "reward=0" in text
    assert to_pettingzoo(MoveBoxEnv.easy()).render() is None


def test_state_without_state_entry():
    from torchrl.envs import ExcludeTransform, TransformedEnv

    pz = to_pettingzoo(TransformedEnv(MoveBoxEnv.easy(), ExcludeTransform("state")))
    pz.reset()
    assert pz.state_space is None
    with pytest.raises(NotImplementedError, match="state"):
        pz.state()


def test_spaces_are_cached_objects():
    pz = to_pettingzoo(make_movebox_env("easy"))
    for agent in pz.possible_agents:
        assert pz.action_space(agent) is pz.action_space(agent)
        assert pz.observation_space(agent) is pz.observation_space(agent)
    assert isinstance(pz, MtmarlParallelEnv)


def test_per_agent_bounds_are_kept():
    pz = to_pettingzoo(MoveBoxEnv.easy(), observation_keys=["observation"])
    high = pz.observation_space("agent_0").high
    assert high.tolist() == [2.0, 4.0, 2.0, 4.0]


# ------------------------------------------------------------------- errors


def test_errors_at_construction():
    with pytest.raises(ValueError, match=r"single environment .*got batch_size \(2,\)"):
        to_pettingzoo(make_movebox_env("easy", num_envs=2))
    env = MoveBoxEnv.easy()
    with pytest.raises(ValueError, match="2 distinct agent names"):
        to_pettingzoo(env, agent_names=["a"])
    with pytest.raises(ValueError, match="2 distinct agent names"):
        to_pettingzoo(env, agent_names=["a", "a"])
    with pytest.raises(KeyError, match="'velocity'"):
        to_pettingzoo(env, observation_keys=["velocity"])
    with pytest.raises(ValueError, match="render_mode"):
        to_pettingzoo(env, render_mode="human")
    with pytest.raises(KeyError, match="action"):
        to_pettingzoo(env, group="players")
    with pytest.raises(TypeError, match="EnvBase"):
        to_pettingzoo(object())


def test_errors_at_step():
    pz = to_pettingzoo(MoveBoxEnv.easy())
    with pytest.raises(RuntimeError, match="reset"):
        pz.step({"agent_0": 0, "agent_1": 0})
    pz.reset()
    with pytest.raises(KeyError, match=r"missing \['agent_1'\]"):
        pz.step({"agent_0": 0})
    with pytest.raises(KeyError, match=r"unknown \['agent_9'\]"):
        pz.step({"agent_0": 0, "agent_1": 0, "agent_9": 0})
    with pytest.raises(ValueError, match=r"shape \(\)"):
        pz.step({"agent_0": [0, 1], "agent_1": 0})
    with pytest.raises(KeyError, match="unknown agent"):
        pz.action_space("agent_7")


def test_community_deadline_mask_is_opt_in(community_env):
    """A composite action's mask is not PettingZoo's single-discrete convention: left out by
    default, available as a Dict observation entry on request."""
    default = to_pettingzoo(community_env)
    obs, _ = default.reset(seed=0)
    assert not isinstance(obs["agent_0"], dict)
    opted = to_pettingzoo(community_env, observation_keys=["observation", "action_mask"])
    obs, _ = opted.reset(seed=0)
    mask = obs["agent_0"]["action_mask"]
    assert mask.shape == (CommunityEnergyEnv.N_MODES,) and mask.any()
    assert opted.observation_space("agent_0")["action_mask"].contains(mask)


def test_reward_key_picks_one_of_several_reward_entries():
    env = CommunityEnergyEnv(n_prosumers=3, seed=0, agent_rewards=True)
    with pytest.raises(ValueError, match="exactly one reward entry or a reward_key"):
        to_pettingzoo(env)
    with pytest.raises(KeyError, match="reward_key to be one of"):
        to_pettingzoo(env, reward_key=("agents", "bonus"))
    team, own = (to_pettingzoo(env, reward_key=k) for k in ("reward", ("agents", "reward")))
    rewards = {}
    for name, pz in (("team", team), ("own", own)):
        pz.reset(seed=0)
        actions = {a: pz.action_space(a).sample() for a in pz.agents}
        for a, act in actions.items():  # the same actions on both
            act["mode"] = 0
            act["power"][:] = [1.0, 0.0] if a == "agent_0" else [0.0, 0.0]
        rewards[name] = pz.step(actions)[1]
    assert len(set(rewards["team"].values())) == 1  # the team reward, broadcast
    # only agent_0 charges its battery: the others' difference rewards hold no cost term
    assert rewards["own"]["agent_0"] < rewards["own"]["agent_1"]
