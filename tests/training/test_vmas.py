"""The ``vmas-navigation`` preset: VMAS through torchrl's ``VmasEnv``, on the trainer's keys.

Skipped, with the reason in the ``-ra`` summary, only where VMAS is not installed
(``pip install 'mtmarl[vmas]'``; the nox ``tests`` session installs it).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("vmas", reason="the vmas-navigation preset needs the [vmas] extra")

from torchrl.data import Bounded  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402

from mtmarl.training import ConfigError, Trainer, apply_overrides, get_experiment  # noqa: E402

EXPERIMENT = get_experiment("vmas-navigation")


def make_env(num_envs: int = 3, **env_kwargs):
    return EXPERIMENT.env_factory(num_envs=num_envs, device="cpu", seed=0, **env_kwargs)


def test_preset_matches_benchmarl_mappo_navigation():
    cfg = EXPERIMENT.config
    col = cfg.collector
    assert (col.num_envs, col.frames_per_batch, col.total_frames) == (10, 6000, 3_000_000)
    # 45 minibatches of 400 per iteration
    assert cfg.optim.minibatch_size == 400
    assert cfg.optim.epochs * col.frames_per_batch // cfg.optim.minibatch_size == 45
    assert cfg.model.num_cells == [256, 256]
    assert (cfg.loss.lmbda, cfg.loss.entropy_coeff, cfg.optim.lr) == (0.9, 0.0, 5e-5)
    assert EXPERIMENT.max_episode_steps == 100


@pytest.mark.parametrize("n_agents", [3, 2])
def test_env_has_the_trainer_keys(n_agents):
    env = make_env(n_agents=n_agents)
    check_env_specs(env)
    action = env.full_action_spec["agents", "action"]
    assert isinstance(action, Bounded) and action.shape == (3, n_agents, 2)
    obs = env.observation_spec["agents", "observation"]
    assert env.observation_spec["state"].shape == (3, n_agents * obs.shape[-1])
    td = env.rollout(5)
    assert td["next", "reward"].shape == (3, 5, 1)
    # team reward = mean of the agents' rewards; state = their observations side by side
    torch.testing.assert_close(td["next", "reward"], td["next", "agents", "reward"].mean(-2))
    torch.testing.assert_close(td["state"], td["agents", "observation"].flatten(-2))
    assert td["next", "done"].shape == (3, 5, 1)


def test_time_limit_ends_the_episode():
    td = make_env(max_steps=4).rollout(4, break_when_any_done=False)
    assert not td["next", "done"][:, :3].any() and td["next", "done"][:, 3].all()


@pytest.mark.parametrize("agent_rewards", [False, True])
def test_tiny_training_run(agent_rewards, tmp_path):
    cfg = apply_overrides(
        EXPERIMENT.config,
        [
            f"loss.agent_rewards={agent_rewards}",
            "collector.num_envs=4",
            "collector.steps_per_env=50",
            "collector.iterations=2",
            "env.max_steps=25",
            "model.num_cells=[32]",
            "optim.minibatch_size=100",
            "optim.epochs=1",
            "eval.episodes=2",
            "run.progress=false",
        ],
    )
    trainer = Trainer(cfg, run_dir=tmp_path)
    assert trainer.info.action_kind == "continuous" and (
        trainer.info.n_agents,
        trainer.info.action_dim,
    ) == (3, 2)
    before = [p.detach().clone() for p in trainer.critic.parameters()]
    result = trainer.train()
    assert result.frames == 2 * 4 * 50
    # 50 steps per env with a 25-step limit: two whole episodes per env per iteration
    assert [m["train/episodes"] for m in result.history] == [8.0, 8.0]
    assert all(torch.isfinite(torch.tensor(m["train/loss_objective"])) for m in result.history)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.critic.parameters()))
    assert result.evaluation.episodes == 2


def test_phase_variants_are_refused_before_work():
    cfg = apply_overrides(EXPERIMENT.config, ["variant=phasic"])
    with pytest.raises(ConfigError, match="has no period L"):
        Trainer(cfg)
