from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mtmarl.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "movebox-easy" in out and "mappo" in out and "phasic" in out
    assert "env.overload_weight: reward penalty per kWh above the transformer rating" in out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "movebox-nope"], "unknown experiment 'movebox-nope'"),
        (["train", "movebox-easy", "colector.num_envs=2"], "Key 'colector' not in"),
        (["train", "movebox-easy", "optim.lr=0"], "optim.lr must be a finite number > 0"),
    ],
)
def test_bad_input_fails_before_work(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_train_needs_an_experiment(capsys):
    with pytest.raises(SystemExit):
        main(["train"])
    assert "train needs an EXPERIMENT" in capsys.readouterr().err


def test_evaluate_rejects_non_run_dir(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A ``.py`` file registering ``cli-bandit``; the registry is restored afterwards."""
    import mtmarl.training.experiments as experiments

    monkeypatch.setattr(experiments, "_REGISTRY", dict(experiments._REGISTRY))
    monkeypatch.setattr(sys, "path", [str(Path(__file__).parent / "training"), *sys.path])
    monkeypatch.delitem(sys.modules, "cli_bandit", raising=False)
    from bandit_env import plugin_source

    path = tmp_path / "cli_bandit.py"
    path.write_text(plugin_source("cli-bandit"))
    return path


def test_import_a_preset_of_your_own(plugin, tmp_path, capsys):
    assert main(["list", "--import", str(plugin)]) == 0
    assert "cli-bandit" in capsys.readouterr().out
    run_dir = tmp_path / "run"
    argv = ["train", "cli-bandit", "eval.episodes=4", "run.progress=false"]
    assert main([*argv, "optim.minibatch_size=8", "--run-dir", str(run_dir)]) == 0
    assert "evaluation over 4 episodes" in capsys.readouterr().out
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    # a later process: the run names an experiment that only the import registers
    import mtmarl.training.experiments as experiments

    del experiments._REGISTRY["cli-bandit"]
    del sys.modules["cli_bandit"]
    assert main(["evaluate", str(run_dir), "--episodes", "2"]) == 2
    assert "--import MODULE" in capsys.readouterr().err
    assert main(["evaluate", str(run_dir), "--episodes", "2", "--import", str(plugin)]) == 0
    assert "evaluation over 2 episodes" in capsys.readouterr().out


def test_unknown_experiment_says_how_to_bring_your_own(capsys):
    assert main(["train", "my-task"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'my-task'" in err and "'mtmarl.experiments' entry point" in err


def test_bad_import_fails_before_work(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "movebox-easy", "--import", "no_such_mod"]) == 2
    assert "could not import 'no_such_mod' (--import)" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
