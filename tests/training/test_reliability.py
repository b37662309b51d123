"""Nothing silent, nothing lost: one writer per run directory, non-finite training stops
before it is saved, a resumed run logs each iteration once, the CLI answers bad input in one
line."""

from __future__ import annotations

import math

import pytest
import torch
from bandit_env import HORIZON, bandit_env_fn

from mtmarl.cli import main
from mtmarl.training import (
    NonFiniteError,
    RunDirLock,
    RunDirLockedError,
    TrainConfig,
    Trainer,
    apply_overrides,
    load_checkpoint,
)


def bandit(tmp_path, *extra, resume=False):
    cfg = apply_overrides(
        TrainConfig(experiment="bandit"),
        [
            "variant=basic",
            "collector.num_envs=4",
            f"collector.steps_per_env={HORIZON}",
            "collector.iterations=4",
            "optim.minibatch_size=8",
            "model.num_cells=[8]",
            "eval.episodes=4",
            "eval.interval=100",
            "eval.keep_best=false",
            "run.progress=false",
            *extra,
        ],
    )
    return Trainer(
        cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=tmp_path, resume=resume
    )


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path):
    trainer = bandit(tmp_path)
    with RunDirLock(tmp_path), pytest.raises(RunDirLockedError, match=r"in use by pid \d+"):
        trainer.train()
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    trainer = bandit(tmp_path, "run.checkpoint_interval=1")
    update = trainer.algorithm.update

    def poisoned(batch, *, iteration):
        metrics = update(batch, iteration=iteration)
        if iteration == 2:
            metrics["train/loss_objective"] = math.nan
        return metrics

    monkeypatch.setattr(trainer.algorithm, "update", poisoned)
    with pytest.raises(
        NonFiniteError, match=r"iteration 3: train/loss_objective is nan.*iteration 2"
    ):
        trainer.train()
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["iteration"] == 2
    assert all(
        torch.isfinite(v).all() for v in state["loss_module"].values() if v.is_floating_point()
    )


def test_non_finite_parameters_are_caught_too(tmp_path, monkeypatch):
    trainer = bandit(tmp_path)
    update = trainer.algorithm.update

    def diverging(batch, *, iteration):  # an update that leaves a parameter non-finite
        metrics = update(batch, iteration=iteration)
        with torch.no_grad():
            next(trainer.loss_module.parameters()).fill_(math.inf)
        return metrics

    monkeypatch.setattr(trainer.algorithm, "update", diverging)
    with pytest.raises(NonFiniteError, match="iteration 1: parameter .*last checkpoint: none"):
        trainer.train()
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_a_resumed_run_logs_each_iteration_once(tmp_path):
    class Crash(Exception):
        pass

    def crash_after_three(trainer, metrics):
        if metrics["iteration"] == 3:  # logged, not checkpointed (interval 2): a kill here
            raise Crash

    with pytest.raises(Crash):
        bandit(tmp_path, "run.checkpoint_interval=2").train(callback=crash_after_three)
    resumed = bandit(tmp_path, "run.checkpoint_interval=2", resume=True)
    assert resumed.iteration == 2
    resumed.train()
    rows = (tmp_path / "metrics" / "scalars" / "train" / "return.csv").read_text().splitlines()
    steps = [int(float(r.split(",")[0])) for r in rows]
    assert steps == [16 * i for i in range(1, 5)]  # 4 envs x 4 steps per iteration


def _tiny_run(tmp_path):
    run_dir = tmp_path / "run"
    argv = ["train", "movebox-easy", "collector.num_envs=4", "collector.iterations=1"]
    argv += ["eval.episodes=4", "run.progress=false", "optim.minibatch_size=40"]
    assert main([*argv, "--run-dir", str(run_dir)]) == 0
    return run_dir


def test_evaluate_writes_its_own_file_and_keeps_the_trainings(tmp_path, capsys):
    run_dir = _tiny_run(tmp_path)
    training = (run_dir / "eval.json").read_text()
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "evaluation over 3 episodes" in out and "learning curve" not in out
    assert (run_dir / "eval.json").read_text() == training
    assert len(list(run_dir.glob("eval-3-*.json"))) == 1
    for bad in ("0", "-5", "abc"):
        with pytest.raises(SystemExit) as exit_:
            main(["evaluate", str(run_dir), "--episodes", bad])
        assert exit_.value.code == 2


def test_resume_takes_the_runs_own_config(tmp_path, capsys):
    run_dir = _tiny_run(tmp_path)
    training = (run_dir / "eval.json").read_text()
    # the preset has 60 iterations; the run had 1: resuming a finished run trains nothing more
    assert main(["train", "movebox-easy", "--resume", "--run-dir", str(run_dir)]) == 0
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["iteration"] == 1
    assert (run_dir / "eval.json").read_text() == training
    capsys.readouterr()
    assert main(["train", "building", "--resume", "--run-dir", str(run_dir)]) == 2
    assert "trained experiment 'movebox-easy', not 'building'" in capsys.readouterr().err
    assert main(["train", "--resume", "--run-dir", str(run_dir), "model.num_cells=[8]"]) == 2
    assert "must match to resume" in capsys.readouterr().err
    (run_dir / "config.yaml").unlink()  # the checkpoint holds the config too
    assert main(["train", "--resume", "--run-dir", str(run_dir)]) == 0


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "movebox-easy", "device=banana"], "device='banana' is not a torch device"),
        (["train", "community", "env.n_prosumers=0"], "refused its options"),
        (["train", "community", "env.n_prosumers=abc"], "refused its options"),
        (["train", "building", "env.horizon=0"], "refused its options"),
        (["train", "movebox-easy", "seed=4611686018427387904"], "config.seed must be in"),
        (["train", "--resume", "--run-dir", "no/such/dir"], "no such folder"),
        (["train", "movebox-easy", "optim.lr=nan"], "optim.lr must be a finite number"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mtmarl: error: ") and match in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "text", ["- a\n- list\n", "{{{ not yaml", "!!python/object:os.system {}\n", "variant: 3\n"]
)
def test_a_damaged_config_yaml_is_one_line(text, tmp_path, capsys):
    run_dir = _tiny_run(tmp_path)
    (run_dir / "config.yaml").write_text(text)
    capsys.readouterr()
    assert main(["evaluate", str(run_dir)]) == 2
    assert capsys.readouterr().err.startswith("mtmarl: error: ")


def test_the_evaluation_horizon_of_an_env_fn_is_what_the_env_knows(tmp_path):
    from bandit_env import BanditTeamEnv
    from torchrl.envs import StepCounter, TransformedEnv

    def long_episodes(*, num_envs, device, seed):  # 4-step episodes, told by a StepCounter
        return TransformedEnv(
            BanditTeamEnv(num_envs=num_envs, device=device, seed=seed), StepCounter(max_steps=9)
        )

    cfg = apply_overrides(
        TrainConfig(experiment="bandit"),
        [
            "variant=basic",
            "collector.num_envs=2",
            "collector.steps_per_env=2",
            "run.progress=false",
        ],
    )
    assert Trainer(cfg, env_fn=long_episodes, run_dir=tmp_path).max_episode_steps == 9
    assert Trainer(cfg, env_fn=bandit_env_fn, run_dir=tmp_path / "b").max_episode_steps == 2


def test_the_last_iteration_is_saved_before_its_final_evaluation(tmp_path, monkeypatch):
    trainer = bandit(tmp_path, "run.checkpoint_interval=100")

    def failing(episodes=None):
        raise RuntimeError("the evaluation env could not be built")

    monkeypatch.setattr(trainer, "evaluate", failing)
    with pytest.raises(RuntimeError, match="could not be built"):
        trainer.train()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["iteration"] == 4


def test_a_crafted_checkpoint_with_bad_counters_is_refused(tmp_path):
    from mtmarl.training import CheckpointError, save_checkpoint

    bandit(tmp_path).train()
    path = tmp_path / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    save_checkpoint(path, {**state, "iteration": "three"})
    with pytest.raises(CheckpointError, match="no valid counters"):
        bandit(tmp_path, resume=True)


@pytest.mark.parametrize(
    "override, match",
    [
        ("device=cuda", "no usable CUDA device"),
        ("collector.num_envs=1e9", "collector.num_envs"),
        ("run.logger=tensorboard", "tensorboard"),
    ],
)
def test_machine_dependent_options_are_checked_before_work(override, match, tmp_path):
    if override == "device=cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    try:
        import tensorboard  # noqa: F401

        if override.startswith("run.logger"):
            pytest.skip("tensorboard is installed")
    except ImportError:
        pass
    from mtmarl.training import ConfigError

    with pytest.raises(ConfigError, match=match):
        bandit(tmp_path / "run", override)
    assert not (tmp_path / "run").exists()
