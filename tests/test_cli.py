from __future__ import annotations

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
        (["train", "movebox-easy", "optim.lr=0"], "optim.lr must be > 0"),
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
