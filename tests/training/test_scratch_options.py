"""The from-scratch options: model.obs_norm, model.init=orthogonal, optim.lr_schedule=linear."""

import pytest
import torch

from mtmarl.errors import ConfigError
from mtmarl.modules import RunningNorm
from mtmarl.training import Trainer, apply_overrides, get_experiment

SCRATCH = [
    "model.action_prior=null",
    "loss.reference_kl_coeff=0",
    "model.hidden_size=8",
    "model.feature_dim=16",
    "model.num_cells=[16]",
    "model.attention_dim=16",
    "model.attention_layers=1",
    "collector.num_envs=2",
    "collector.steps_per_env=96",
    "optim.minibatch_size=96",
    "optim.epochs=1",
    "eval.episodes=2",
    "eval.interval=100",
    "run.progress=false",
]


def community(*extra, iterations=2):
    return apply_overrides(
        get_experiment("community").config,
        [*SCRATCH, f"collector.iterations={iterations}", *extra],
    )


def norms(module):
    return {m.key: m for m in module.modules() if isinstance(m, RunningNorm)}


@pytest.mark.parametrize("critic", ["transformer", "mlp", "local"])
def test_obs_norm_statistics_come_from_the_collected_batches(tmp_path, critic):
    cfg = community("model.obs_norm=true", f"model.critic={critic}")
    trainer = Trainer(cfg, run_dir=tmp_path)
    actor_norms, critic_norms = norms(trainer.actor), norms(trainer.critic)
    assert ("agents", "forecast") in actor_norms and critic_norms
    assert all(int(n.count) == 0 for n in actor_norms.values())
    batch = trainer.collect()
    raw = batch["agents", "forecast"].clone()
    trainer.update(batch)
    torch.testing.assert_close(batch["agents", "forecast"], raw)  # the batch stays raw
    forecast = actor_norms["agents", "forecast"]
    assert int(forecast.count) == 2 * 96 * 10  # envs x steps x agents
    torch.testing.assert_close(forecast.mean, raw.reshape(-1, 12, 3).double().mean(0))
    # the loss's functional copy of the actor reads the same statistics
    params = trainer.loss_module.actor_network_params
    counts = [v for k, v in params.items(True, True) if k[-1] == "count"]
    assert counts and all(int(c) == 1920 for c in counts)


def test_obs_norm_is_checkpointed_resumed_and_kept_with_the_best_actor(tmp_path):
    cfg = community("model.obs_norm=true", "eval.keep_best=true", "eval.interval=1")
    trainer = Trainer(cfg, run_dir=tmp_path)
    trainer.train()
    saved = {k: (n.count.clone(), n.mean.clone()) for k, n in norms(trainer.actor).items()}
    resumed = Trainer(cfg, run_dir=tmp_path, resume=True)
    for key, n in norms(resumed.actor).items():
        assert torch.equal(n.count, saved[key][0]) and torch.equal(n.mean, saved[key][1])
    fresh = Trainer(community("model.obs_norm=true"), run_dir=tmp_path / "other")
    fresh.best_path = trainer.best_path
    fresh.load_best()
    assert all(int(n.count) > 0 for n in norms(fresh.actor).values())


@pytest.mark.parametrize(
    "extra, match",
    [
        (["model.obs_norm=true", "model.action_prior=rule_based"], "raw observations"),
        (["model.init=orthogonal", "model.action_prior=rule_based"], "model.init=orthogonal"),
        (["model.obs_norm=true", "collector.workers=2"], "collector.workers=1"),
        (["model.obs_norm=true", "loss.reference_kl_coeff=0.1"], "reference_kl_coeff"),
        (["model.obs_norm=maybe"], "obs_norm"),
        (["model.init=xavier"], "model.init must be one of"),
        (["optim.lr_schedule=cosine"], "optim.lr_schedule must be one of"),
    ],
)
def test_bad_combinations_are_refused_before_any_work(extra, match):
    with pytest.raises(ConfigError, match=match):
        community(*extra)


def test_orthogonal_init_of_the_built_actor_and_critic(tmp_path):
    trainer = Trainer(community("model.init=orthogonal"), run_dir=tmp_path)
    heads = trainer.actor.module[0].module[1].module  # the hybrid heads
    for mlp in (heads.discrete, heads.continuous):
        w = mlp[-1].weight.detach()
        torch.testing.assert_close(w @ w.T, 1e-4 * torch.eye(w.shape[0]), atol=1e-7, rtol=0)
    value = trainer.critic.agent_head[-1].weight.detach()
    torch.testing.assert_close(value @ value.T, torch.eye(1), atol=1e-5, rtol=0)


def test_linear_lr_schedule_is_derived_from_the_iteration_and_resumes(tmp_path):
    cfg = community("optim.lr_schedule=linear", "optim.lr=1e-3", iterations=4)
    trainer = Trainer(cfg, run_dir=tmp_path)
    for _ in range(2):
        trainer.iterate()
    assert [h["train/lr_factor"] for h in trainer.history] == [1.0, 0.75]
    trainer.save()
    resumed = Trainer(cfg, run_dir=tmp_path, resume=True)
    resumed.iterate()
    assert resumed.history[-1]["train/lr_factor"] == 0.5
    assert resumed.algorithm.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
