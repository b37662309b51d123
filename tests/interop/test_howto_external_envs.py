"""The worked examples of ``docs/howto_external_envs.rst``, trained for one tiny iteration,
and the errors its "Errors" section quotes.

The page shows this file's functions (``literalinclude`` with ``:pyobject:`` and the
``# [name]`` markers), so what it shows is what these tests run. Each test skips without its
optional dependency (``vmas``, ``pettingzoo``).
"""

from __future__ import annotations

import math

import pytest

# [imports]
from torchrl.envs import (
    Compose,
    PettingZooWrapper,
    SerialEnv,
    TransformedEnv,
    UnaryTransform,
)
from torchrl.envs.libs.vmas import VmasEnv

from mtmarl.training import TrainConfig, apply_overrides, train

# [/imports]

pytestmark = pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested:UserWarning")


# [helpers]
def team_reward(reward):
    """``(*B, N, 1) -> (*B, 1)``: the team reward, the mean of the agents' rewards."""
    return reward.mean(-2)


def joint_observation(observation):
    """``(*B, N, F) -> (*B, N * F)``: the agents' observations side by side (a global state)."""
    return observation.flatten(-2)


# [/helpers]


def make_vmas_env(*, num_envs, device, seed, scenario="balance", max_steps=20):
    """VMAS through torchrl's ``VmasEnv``, with the two keys the trainer reads added."""
    env = VmasEnv(
        scenario,
        num_envs=num_envs,  # VMAS batches its envs itself: batch_size (num_envs,)
        device=device,
        seed=seed,
        continuous_actions=True,  # ("agents", "action"): Bounded (E, N, 2)
        max_steps=max_steps,
        n_agents=3,
    )
    # VMAS writes ("agents", "observation") (E, N, F), ("agents", "reward") (E, N, 1) and the
    # root "done" / "terminated" (E, 1); the trainer also needs the root team "reward"
    # (E, 1) and, for the centralised critic, a root "state" (E, S).
    return TransformedEnv(
        env,
        Compose(
            UnaryTransform(
                in_keys=[("agents", "observation")], out_keys=["state"], fn=joint_observation
            ),
            UnaryTransform(in_keys=[("agents", "reward")], out_keys=["reward"], fn=team_reward),
        ),
    )


def train_on_vmas(run_dir=None):
    config = apply_overrides(
        TrainConfig(experiment="my-vmas"),
        [
            "variant=basic",  # phasic / onehot also need train(..., period=L)
            "collector.num_envs=2",  # a smoke run: raise these four for a real one
            "collector.steps_per_env=20",
            "collector.iterations=1",
            "eval.episodes=2",
            "run.progress=false",
        ],
    )
    return train(config, env_fn=make_vmas_env, max_episode_steps=20, run_dir=run_dir)


def make_pettingzoo_env():
    """A PettingZoo ``ParallelEnv``: any one works here (this one is mtmarl's Move Box,
    exported with ``to_pettingzoo``, so that it needs nothing beyond ``pettingzoo``)."""
    from mtmarl.envs import MoveBoxEnv
    from mtmarl.interop import to_pettingzoo

    return to_pettingzoo(MoveBoxEnv.easy())


def make_torchrl_pettingzoo_env(*, num_envs, device, seed):
    """The PettingZoo env through torchrl's ``PettingZooWrapper``, ``num_envs`` of them."""

    def one_env():
        # agents named agent_0, agent_1, ... form torchrl's group "agent":
        # ("agent", "observation") (N, F), ("agent", "action") Categorical (N,),
        # ("agent", "reward") (N, 1) and the root "done" / "terminated" / "truncated" (1,);
        # return_state=True adds PettingZoo's env.state() as the root "state"
        return PettingZooWrapper(env=make_pettingzoo_env(), return_state=True, device=device)

    env = SerialEnv(num_envs, one_env)  # one PettingZoo env each: batch_size (num_envs,)
    env.set_seed(seed)
    # the root team reward (E, 1) the trainer reads, from the agents' rewards
    return TransformedEnv(
        env, UnaryTransform(in_keys=[("agent", "reward")], out_keys=["reward"], fn=team_reward)
    )


def train_on_pettingzoo(run_dir=None):
    config = apply_overrides(
        TrainConfig(experiment="my-pettingzoo"),
        [
            "variant=basic",
            "collector.num_envs=2",
            "collector.steps_per_env=20",
            "collector.iterations=1",
            "eval.episodes=2",
            "run.progress=false",
        ],
    )
    return train(
        config,
        env_fn=make_torchrl_pettingzoo_env,
        group="agent",  # the wrapper's group, not mtmarl's default "agents"
        max_episode_steps=20,  # Move Box's horizon
        run_dir=run_dir,
    )


def export_to_pettingzoo(steps=5):
    """An mtmarl env for a PettingZoo library: numpy in, numpy out, one space per agent."""
    from mtmarl.envs import make_movebox_env
    from mtmarl.interop import to_pettingzoo

    env = to_pettingzoo(make_movebox_env("easy", num_envs=1))  # one env: num_envs=1
    observations, infos = env.reset(seed=0)
    for _ in range(steps):
        # {"observation": Box, "action_mask": MultiBinary} per agent: PettingZoo's convention
        actions = {
            agent: env.action_space(agent).sample(mask=observations[agent]["action_mask"])
            for agent in env.agents
        }
        observations, rewards, terminations, truncations, infos = env.step(actions)
    return env, rewards


def _check_finished(result):
    assert result.iterations == 1
    assert not result.interrupted
    assert result.evaluation is not None
    assert math.isfinite(result.evaluation.return_mean)


def test_vmas_example_trains(tmp_path):
    pytest.importorskip("vmas")
    _check_finished(train_on_vmas(run_dir=tmp_path))


def test_pettingzoo_example_trains(tmp_path):
    pytest.importorskip("pettingzoo")
    _check_finished(train_on_pettingzoo(run_dir=tmp_path))


def test_export_example_steps():
    pytest.importorskip("pettingzoo")
    env, rewards = export_to_pettingzoo()
    assert env.possible_agents == ["agent_0", "agent_1"]
    assert set(rewards) == {"agent_0", "agent_1"}


# the page's "Errors" section: what a run on an env without the keys reports


def _raw_vmas_env(*, num_envs, device, seed):
    return VmasEnv("balance", num_envs=num_envs, device=device, seed=seed, n_agents=3)


def _vmas_env_without_state(*, num_envs, device, seed):
    env = _raw_vmas_env(num_envs=num_envs, device=device, seed=seed)
    return TransformedEnv(
        env, UnaryTransform(in_keys=[("agents", "reward")], out_keys=["reward"], fn=team_reward)
    )


def _movebox_env(*, num_envs, device, seed):
    from mtmarl.envs import make_movebox_env

    return make_movebox_env("easy", num_envs=num_envs, device=device, seed=seed)


def _build(tmp_path, env_fn, *overrides, **kwargs):
    from mtmarl.training import Trainer

    config = apply_overrides(
        TrainConfig(experiment="my-env"),
        ["variant=basic", "collector.num_envs=2", "run.progress=false", *overrides],
    )
    return Trainer(config, env_fn=env_fn, max_episode_steps=20, run_dir=tmp_path, **kwargs)


def test_errors_for_missing_keys(tmp_path):
    pytest.importorskip("vmas")
    from mtmarl.errors import ConfigError

    # no root "reward": named before anything else is built
    with pytest.raises(ConfigError, match="needs the team reward at the root key 'reward'"):
        _build(tmp_path, _raw_vmas_env)
    with pytest.raises(ConfigError, match=r"model.critic=mlp reads \['state'\], which the env"):
        _build(tmp_path, _vmas_env_without_state)
    _build(tmp_path, _vmas_env_without_state, "model.critic=local")  # IPPO needs no state
    with pytest.raises(ConfigError, match="variant=phasic encodes the phase t mod L, and the"):
        _build(tmp_path, make_vmas_env, "variant=phasic")
    _build(tmp_path, make_vmas_env, "variant=phasic", period=5)
    with pytest.raises(ConfigError, match="loss.agent_rewards needs an env that writes each"):
        _build(tmp_path, _movebox_env, "loss.agent_rewards=true")  # a team reward only
    _build(tmp_path, make_vmas_env, "loss.agent_rewards=true")  # keeps ("agents", "reward")


def test_error_for_the_wrong_group(tmp_path):
    pytest.importorskip("pettingzoo")
    from mtmarl.errors import ConfigError

    match = r"no per-agent action at \('agents', 'action'\); its action keys are \[\('agent'"
    with pytest.raises(ConfigError, match=match):
        _build(tmp_path, make_torchrl_pettingzoo_env)
