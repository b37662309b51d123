from __future__ import annotations

import os
import shutil
import signal

import pytest
import torch
from bandit_env import HORIZON, N_AGENTS, bandit_env_fn

from mtmarl.algorithms import ALGORITHMS
from mtmarl.modules import VARIANTS
from mtmarl.modules.builders import get_variant
from mtmarl.training import (
    CheckpointError,
    ConfigError,
    TrainConfig,
    Trainer,
    apply_overrides,
    get_experiment,
    train,
)


def _supported(algorithm: str, variant: str, kind: str = "discrete") -> bool:
    cls = ALGORITHMS[algorithm]
    return kind in cls.action_kinds and (
        cls.supports_recurrent or not get_variant(variant).recurrent
    )


#: every (variant, algorithm) pair the registries hold that trains discrete actions
COMBOS = [(v, a) for a in sorted(ALGORITHMS) for v in VARIANTS if _supported(a, v)]
#: the algorithms that train continuous actions
CONTINUOUS = [a for a in sorted(ALGORITHMS) if "continuous" in ALGORITHMS[a].action_kinds]
#: per-algorithm settings of the bandit runs (COMA steps its actor once per batch: more
#: batches, a larger actor step)
ALGORITHM_EXTRA = {
    "coma": ("collector.iterations=40", "loss.actor_lr=3e-2", "loss.critic_epochs=4")
}


def bandit_config(variant, algorithm, *extra):
    """A small run on the bandit task; ``extra`` overrides come last."""
    return apply_overrides(
        TrainConfig(experiment="bandit"),
        [
            f"variant={variant}",
            f"algorithm={algorithm}",
            "collector.num_envs=16",
            f"collector.steps_per_env={HORIZON}",
            "collector.iterations=20",
            "optim.lr=3e-3",
            "optim.minibatch_size=32",
            "model.num_cells=[32]",
            "model.hidden_size=16",
            "eval.episodes=16",
            "eval.interval=100",
            "run.progress=false",
            *ALGORITHM_EXTRA.get(algorithm, ()),
            *extra,
        ],
    )


@pytest.mark.parametrize("variant, algorithm", COMBOS)
def test_every_variant_and_objective_learns_a_trivial_task(variant, algorithm, tmp_path):
    cfg = bandit_config(variant, algorithm)
    trainer = Trainer(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path)
    before = trainer.evaluate().return_mean
    result = trainer.train()
    after = result.evaluation.return_mean
    best = HORIZON * N_AGENTS
    assert result.iterations == cfg.collector.iterations
    assert result.frames == cfg.collector.total_frames
    assert after >= 0.9 * best, f"{variant}/{algorithm}: return {before:.2f} -> {after:.2f}"
    assert after > before or before >= 0.9 * best


@pytest.mark.parametrize("variant", VARIANTS)
def test_continuous_actions_learn_through_the_frequency_mask(variant, tmp_path):
    def env_fn(**kw):
        return bandit_env_fn(continuous=True, **kw)

    cfg = bandit_config(variant, "mappo", "optim.lr=1e-2", "loss.entropy_coeff=0.0")
    trainer = Trainer(cfg, env_fn=env_fn, max_episode_steps=HORIZON, run_dir=tmp_path)
    assert trainer.info.action_kind == "continuous" and trainer.info.action_dim == 1
    before = trainer.evaluate().return_mean
    after = trainer.train().evaluation.return_mean
    best = HORIZON * N_AGENTS  # a random policy gets about 3.3
    assert after >= 0.85 * best and after > before, f"{variant}: {before:.2f} -> {after:.2f}"


@pytest.mark.parametrize("variant", ["basic", "phasic"])
def test_hybrid_actions_learn(variant, tmp_path):
    """Composite (discrete + continuous) actions: the MATPPO actor under MAPPOLoss."""

    def env_fn(**kw):
        return bandit_env_fn(hybrid=True, **kw)

    cfg = bandit_config(
        variant, "mappo", "optim.lr=1e-2", "loss.entropy_coeff=0.0", "collector.iterations=30"
    )
    trainer = Trainer(cfg, env_fn=env_fn, max_episode_steps=HORIZON, run_dir=tmp_path)
    assert trainer.info.action_kind == "hybrid"
    before = trainer.evaluate().return_mean
    after = trainer.train().evaluation.return_mean
    best = HORIZON * N_AGENTS  # random: about 1/3 * 1/2 + 0.33 per agent-step
    assert after >= 0.85 * best and after > before, f"{variant}: {before:.2f} -> {after:.2f}"


def test_hybrid_actions_reject_coma_and_recurrent(tmp_path):
    def env_fn(**kw):
        return bandit_env_fn(hybrid=True, **kw)

    for variant, algorithm in (("basic", "coma"), ("recurrent", "mappo")):
        with pytest.raises(ConfigError, match="hybrid"):
            Trainer(bandit_config(variant, algorithm), env_fn=env_fn, run_dir=tmp_path)


def test_multiprocess_collection(tmp_path):
    """collector.workers=2: torchrl MultiSyncCollector, same batch layout, still learns."""
    cfg = bandit_config("basic", "mappo", "collector.workers=2")
    trainer = Trainer(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path)
    result = trainer.train()
    assert result.frames == 20 * 16 * HORIZON
    assert result.evaluation.return_mean >= 0.9 * HORIZON * N_AGENTS


def test_multiprocess_collection_rejects_recurrent(tmp_path):
    with pytest.raises(ConfigError, match="collector.workers > 1 is not supported"):
        Trainer(bandit_config("recurrent", "mappo", "collector.workers=2"), env_fn=bandit_env_fn)


def test_coma_rejects_continuous_actions(tmp_path):
    def env_fn(**kw):
        return bandit_env_fn(continuous=True, **kw)

    with pytest.raises(ConfigError, match="algorithm=coma trains discrete actions"):
        Trainer(bandit_config("basic", "coma"), env_fn=env_fn, run_dir=tmp_path)


def test_run_directory_contents(tmp_path):
    result = train(
        bandit_config("basic", "mappo", "collector.iterations=2"),
        env_fn=bandit_env_fn,
        run_dir=tmp_path,
    )
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.yaml", "checkpoints", "eval.json", "learning_curve.png", "metrics"} <= names
    scalars = {p.stem for p in (tmp_path / "metrics" / "scalars").iterdir()}
    assert {"train/return", "time/fps"} <= {s.replace("_", "/", 1) for s in scalars} or scalars
    assert result.evaluation.episodes == 16
    assert (tmp_path / "checkpoints" / "last.pt").stat().st_size > 0


def test_keep_best_writes_and_loads_the_best_evaluated_actor(tmp_path):
    cfg = bandit_config("basic", "mappo", "collector.iterations=6", "eval.interval=2")
    trainer = Trainer(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path)
    initial = trainer.evaluate().return_mean
    result = trainer.train()
    evals = [h["eval/return"] for h in result.history if "eval/return" in h]
    assert len(evals) == 3  # iterations 2, 4, 6
    # the best of the initial policy and every evaluation during training
    assert result.best_return == pytest.approx(max([initial, *evals]))
    assert result.best_iteration in (0, 2, 4, 6)
    assert (tmp_path / "checkpoints" / "best.pt").stat().st_size > 0
    final = [p.detach().clone() for p in trainer.actor.parameters()]
    assert trainer.load_best() == result.best_iteration
    assert trainer.evaluate().return_mean == pytest.approx(result.best_return)
    if result.best_iteration != 6:  # an earlier actor was loaded
        after = list(trainer.actor.parameters())
        assert any(not torch.equal(a, b) for a, b in zip(final, after, strict=True))
    # the record survives a resume
    resumed = Trainer(
        cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path, resume=True
    )
    assert (resumed.best_iteration, resumed.best_return) == (
        result.best_iteration,
        result.best_return,
    )


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_critic_warmup_trains_only_the_critic_first(algorithm, tmp_path):
    cfg = bandit_config(
        "basic",
        algorithm,
        "collector.iterations=3",
        "optim.critic_warmup=2",
        "eval.keep_best=false",
    )
    trainer = Trainer(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path)

    def snapshot(module):
        return [p.detach().clone() for p in module.parameters()]

    actor, critic = [snapshot(trainer.actor)], [snapshot(trainer.critic)]

    def record(trainer, metrics):
        actor.append(snapshot(trainer.actor))
        critic.append(snapshot(trainer.critic))

    result = trainer.train(callback=record)
    changed = [
        [any(not torch.equal(a, b) for a, b in zip(x, y, strict=True)) for x, y in pairs]
        for pairs in (zip(actor, actor[1:]), zip(critic, critic[1:]))
    ]
    assert changed[0] == [False, False, True]  # the actor moves once the warm-up is over
    assert changed[1] == [True, True, True]  # the critic learns from the first iteration
    assert [h["train/critic_warmup"] for h in result.history] == [1.0, 1.0, 0.0]


def test_without_keep_best_there_is_no_best_actor(tmp_path):
    cfg = bandit_config("basic", "mappo", "collector.iterations=1", "eval.keep_best=false")
    trainer = Trainer(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path)
    result = trainer.train()
    assert result.best_iteration is None and result.best_return is None
    assert not (tmp_path / "checkpoints" / "best.pt").exists()
    with pytest.raises(CheckpointError, match="eval.keep_best=true"):
        trainer.load_best()


def _params(trainer):
    return {k: v.clone() for k, v in trainer.loss_module.state_dict().items()}


@pytest.mark.parametrize(
    "variant, algorithm",
    [(v, a) for a in sorted(ALGORITHMS) for v in ("phasic", "recurrent") if _supported(a, v)],
)
def test_interrupt_and_resume_equals_uninterrupted(variant, algorithm, tmp_path):
    cfg = bandit_config(variant, algorithm, "collector.iterations=4")
    full = Trainer(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path / "a")
    full.train()

    def stop_after_two(trainer, metrics):
        if metrics["iteration"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # the real signal path

    first = Trainer(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path / "b")
    interrupted = first.train(callback=stop_after_two)
    assert interrupted.interrupted and interrupted.iterations == 2
    assert not (tmp_path / "b" / "eval.json").exists()
    resumed = Trainer(
        cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path / "b", resume=True
    )
    assert resumed.iteration == 2
    result = resumed.train()
    assert result.iterations == 4 and not result.interrupted
    a, b = _params(full), _params(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert len(result.history) == 4


def test_existing_checkpoint_is_not_overwritten(tmp_path):
    cfg = bandit_config("basic", "mappo", "collector.iterations=1")
    train(cfg, env_fn=bandit_env_fn, run_dir=tmp_path)
    with pytest.raises(ConfigError, match="already holds a checkpoint"):
        Trainer(cfg, env_fn=bandit_env_fn, run_dir=tmp_path)


def test_corrupt_or_mismatched_checkpoint(tmp_path):
    cfg = bandit_config("basic", "mappo", "collector.iterations=1")
    train(cfg, env_fn=bandit_env_fn, run_dir=tmp_path)
    ckpt = tmp_path / "checkpoints" / "last.pt"
    with pytest.raises(CheckpointError, match="model"):
        Trainer(
            apply_overrides(cfg, ["model.num_cells=[8]"]),
            env_fn=bandit_env_fn,
            run_dir=tmp_path,
            resume=True,
        )
    good = ckpt.read_bytes()
    ckpt.write_bytes(good[: len(good) // 2])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(CheckpointError, match="could not read checkpoint"):
        Trainer(cfg, env_fn=bandit_env_fn, run_dir=tmp_path, resume=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert ckpt.read_bytes() == good[: len(good) // 2]


def test_env_kwargs_are_checked_before_work(tmp_path):
    cfg = apply_overrides(get_experiment("movebox-easy").config, ["env.difficultyy=2"])
    with pytest.raises(ConfigError, match="do not fit experiment 'movebox-easy'"):
        Trainer(cfg, run_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_an_unsupported_variant_is_refused_before_work(tmp_path, monkeypatch):
    monkeypatch.setattr(ALGORITHMS["coma"], "supports_recurrent", False)
    with pytest.raises(ConfigError, match="algorithm=coma does not support variant=recurrent"):
        bandit_config("recurrent", "coma")


@pytest.mark.slow
@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_phasic_mappo_solves_movebox(difficulty, tmp_path):
    """The documented budget of the `movebox-*` presets reaches >= 90% success (seed 0)."""
    torch.set_num_threads(1)  # the budget was measured like this (benchmarks/README.md)
    cfg = apply_overrides(get_experiment(f"movebox-{difficulty}").config, ["run.progress=false"])
    result = train(cfg, run_dir=tmp_path)
    assert result.evaluation.success_rate >= 0.9


@pytest.mark.parametrize("variant", ["basic", "recurrent"])
def test_a_strong_reference_kl_keeps_the_actor_near_its_initial_copy(variant, tmp_path):
    algorithm = "mappo"

    def drift(*extra):
        cfg = bandit_config(variant, algorithm, "collector.iterations=5", *extra)
        trainer = Trainer(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path)
        start = [p.detach().clone() for p in trainer.actor.parameters()]
        trainer.train()
        shutil.rmtree(tmp_path)
        moved = [p.detach() - s for p, s in zip(trainer.actor.parameters(), start, strict=True)]
        return float(torch.sqrt(sum((m**2).sum() for m in moved))), trainer

    free, _ = drift()
    anchored, trainer = drift("loss.reference_kl_coeff=100.0")
    assert anchored < 0.5 * free
    assert all(h["train/reference_kl"] >= 0 for h in trainer.history)


def test_reference_kl_is_mappo_only():
    with pytest.raises(ConfigError, match="loss.reference_kl_coeff is not an option of COMAConfig"):
        bandit_config("basic", "coma", "loss.reference_kl_coeff=0.5")


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_logs_the_metrics_it_declares(algorithm, tmp_path):
    cfg = bandit_config("basic", algorithm, "collector.iterations=1", "loss.entropy_coeff=0.01")
    run = Trainer(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path)
    logged = {k.removeprefix("train/") for k in run.train().history[0] if k.startswith("train/")}
    optional = {"loss_critic_global", "loss_reference_kl", "reference_kl"}
    declared = set(ALGORITHMS[algorithm].metrics)
    assert declared - optional <= logged, declared - optional - logged
    assert "explained_variance" in logged


def test_env_options_reach_an_env_fn_or_are_refused_by_name(tmp_path):
    cfg = bandit_config("basic", "mappo", "collector.iterations=1", "env.hybrid=true")
    trainer = Trainer(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path)
    assert trainer.info.action_kind == "hybrid"  # env.hybrid=true reached the env_fn
    bad = bandit_config("basic", "mappo", "env.hybridd=true")
    with pytest.raises(ConfigError, match=r"env options \{'hybridd': True\} do not fit the env_fn"):
        Trainer(bad, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path / "b")
