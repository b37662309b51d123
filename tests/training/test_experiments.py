"""Every registered preset builds its trainer: its config fits its own env."""

from __future__ import annotations

import importlib.util

import pytest

from mtmarl.training import Trainer, apply_overrides, get_experiment, list_experiments

NEEDS = {"vmas-navigation": "vmas"}  # presets whose env needs an optional extra


@pytest.mark.parametrize("name", [exp.name for exp in list_experiments()])
def test_every_preset_builds_its_trainer(name, tmp_path):
    if name in NEEDS and importlib.util.find_spec(NEEDS[name]) is None:
        pytest.skip(f"the {name} preset needs the [{NEEDS[name]}] extra")
    exp = get_experiment(name)
    cfg = apply_overrides(exp.config, ["collector.num_envs=2", "collector.iterations=1"])
    trainer = Trainer(cfg, run_dir=tmp_path)
    assert trainer.config.experiment == name
    assert trainer.iteration == 0
