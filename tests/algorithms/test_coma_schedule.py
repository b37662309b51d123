"""COMA's own schedule: critic minibatch passes, then one on-policy actor step per batch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from bandit_env import coma_bandit_trainer  # noqa: E402

from mtmarl.algorithms import COMA, COMAConfig  # noqa: E402
from mtmarl.errors import ConfigError  # noqa: E402
from mtmarl.training import TrainConfig, apply_overrides, get_experiment, train  # noqa: E402

NUM_ENVS, MINIBATCH = 8, 8  # 8 envs x 4 steps = 32 steps: 4 minibatches per critic pass


def coma_trainer(tmp_path, *extra):
    return coma_bandit_trainer(tmp_path, *extra)


def _snapshot(params):
    return [p.detach().clone() for p in params]


def _changed(before, params):
    return any(not torch.equal(a, b) for a, b in zip(before, params, strict=True))


def test_one_actor_step_after_the_critic_passes(tmp_path):
    trainer = coma_trainer(tmp_path, "loss.critic_epochs=3")
    algo = trainer.algorithm
    assert isinstance(algo, COMA)
    steps = {"actor": 0, "critic": 0}
    for name, optimizer in algo.optimizers().items():
        optimizer.register_step_post_hook(
            lambda *_, name=name: steps.__setitem__(name, steps[name] + 1)
        )
    metrics = trainer.update(trainer.collect())
    # 3 passes x 4 minibatches of the critic, then exactly one actor step on the whole batch
    assert steps == {"actor": 1, "critic": 12}
    assert metrics["train/critic_steps"] == 12.0


def test_actor_and_critic_have_their_own_optimisers(tmp_path):
    algo = coma_trainer(tmp_path).algorithm
    actor_ids = {id(p) for p in algo.actor_params}
    critic_ids = {id(p) for p in algo.critic_params}
    assert actor_ids and critic_ids and not actor_ids & critic_ids
    groups = {
        k: {id(p) for g in o.param_groups for p in g["params"]}
        for k, o in algo.optimizers().items()
    }
    assert groups == {"actor": actor_ids, "critic": critic_ids}


def test_the_target_critic_is_copied_every_k_critic_steps(tmp_path):
    # 4 critic steps per batch; a copy every 6 critic steps: after the second batch (8 steps)
    trainer = coma_trainer(tmp_path, "loss.critic_epochs=1", "loss.target_update_interval=6")
    loss = trainer.algorithm.loss_module
    initial_target = _snapshot(loss.target_critic_network_params.values(True, True))
    trainer.update(trainer.collect())  # 4 steps: no copy yet
    target = list(loss.target_critic_network_params.values(True, True))
    assert not _changed(initial_target, target)
    trainer.iteration += 1
    trainer.update(trainer.collect())  # steps 5..8: copied at step 6, then 2 more critic steps
    assert _changed(initial_target, target)
    critic = list(loss.critic_network_params.values(True, True))
    assert _changed(_snapshot(target), critic)  # the critic moved on after the copy


def test_a_critic_step_leaves_the_actor_alone_during_warmup(tmp_path):
    trainer = coma_trainer(tmp_path, "optim.critic_warmup=1")
    algo = trainer.algorithm
    actor, critic = _snapshot(algo.actor_params), _snapshot(algo.critic_params)
    metrics = trainer.update(trainer.collect())
    assert not _changed(actor, algo.actor_params) and _changed(critic, algo.critic_params)
    assert metrics["train/critic_warmup"] == 1.0 and "train/loss_objective" not in metrics


@pytest.mark.parametrize(
    "override, match",
    [
        ("loss.normalize_advantage=true", "must be false for algorithm=coma: z-scoring"),
        (
            "optim.epochs=8",
            "optim.epochs is MAPPO's schedule; algorithm=coma's is loss.critic_epochs",
        ),
        ("optim.max_grad_norm=5", "optim.max_grad_norm is MAPPO's schedule"),
        (
            "loss.target_update_interval=0",
            "loss.target_update_interval must be a finite number > 0",
        ),
        ("loss.actor_lr=-1", "loss.actor_lr must be a finite number > 0"),
        ("loss.critic_epochs=1.5", "loss.critic_epochs"),
        ("loss.clip_epsilon=0.2", "loss.clip_epsilon is not an option of COMAConfig"),
    ],
)
def test_bad_coma_options_are_refused_naming_them(override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(TrainConfig(), ["algorithm=coma", override])


def test_the_movebox_presets_carry_comas_settings():
    for name in ("movebox-easy", "movebox-hard"):
        cfg = get_experiment(name).config_for("coma")
        assert isinstance(cfg.loss, COMAConfig) and cfg.critic == "coma"
        assert (cfg.loss.lmbda, cfg.optim.lr, cfg.loss.normalize_advantage) == (0.8, 5e-4, False)
    building = get_experiment("building").config_for("coma")
    assert building.env["action_levels"] == 5


@pytest.mark.slow
def test_phasic_coma_solves_movebox_easy_where_reused_unclipped_steps_do_not(tmp_path):
    """COMA's schedule is what makes it learn: one on-policy actor step per batch solves
    Move Box easy within 5x the MAPPO budget; 16 actor steps on each batch (PPO's 4 epochs x 4
    minibatches, unclipped, without an importance ratio) do not."""
    torch.set_num_threads(1)
    base = get_experiment("movebox-easy").config_for("coma")
    budget = ["collector.iterations=300", "run.progress=false", "seed=1", "eval.interval=20"]
    fixed = train(apply_overrides(base, budget), run_dir=tmp_path / "fixed")
    assert fixed.evaluation.success_rate == 1.0
    reused = train(
        apply_overrides(base, [*budget, "loss.actor_epochs=16"]), run_dir=tmp_path / "reused"
    )
    assert reused.evaluation.success_rate < 1.0
