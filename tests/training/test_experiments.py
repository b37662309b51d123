"""Every registered preset builds its trainer: its config fits its own env."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest
from bandit_env import plugin_source

import mtmarl.training.experiments as experiments
from mtmarl.training import (
    ENTRY_POINT_GROUP,
    Trainer,
    apply_overrides,
    get_experiment,
    import_experiments,
    list_experiments,
)

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


# --------------------------------------------------------------------------------------------
# Presets of your own: import_experiments (``--import``) and the entry-point group
# --------------------------------------------------------------------------------------------


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry and a fresh entry-point state, restored afterwards."""
    monkeypatch.setattr(experiments, "_REGISTRY", dict(experiments._REGISTRY))
    monkeypatch.setattr(experiments, "_entry_points_loaded", False)
    return experiments._REGISTRY


def _plugin(tmp_path, monkeypatch, name: str) -> Path:
    """A module ``<name>.py`` (``-`` as ``_``) in ``tmp_path`` that registers preset ``name``."""
    path = tmp_path / f"{name.replace('-', '_')}.py"
    path.write_text(plugin_source(name))
    monkeypatch.delitem(sys.modules, path.stem, raising=False)  # each test imports it anew
    return path


def test_import_experiments_from_a_file(registry, tmp_path, monkeypatch):
    path = _plugin(tmp_path, monkeypatch, "plugin-file")
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert import_experiments(str(path)) == ["plugin-file"]
    assert str(tmp_path) in sys.path  # so that collector worker processes can import it too
    assert get_experiment("plugin-file").max_episode_steps == 4
    assert import_experiments(str(path)) == []  # imported once


def test_import_experiments_from_a_module(registry, tmp_path, monkeypatch):
    _plugin(tmp_path, monkeypatch, "plugin-module")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_experiments("plugin_module") == ["plugin-module"]
    assert "plugin-module" in [e.name for e in list_experiments()]


def test_import_experiments_bad_input(registry, tmp_path, monkeypatch):
    with pytest.raises(ImportError, match="could not import 'no_such_mod' .*No module named"):
        import_experiments("no_such_mod")
    with pytest.raises(ImportError, match="could not import 'missing.py' .*no such file"):
        import_experiments("missing.py")
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("raise RuntimeError('boom')\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(
        ImportError, match="importing .*broken_plugin.py.* raised RuntimeError: boom"
    ):
        import_experiments(str(broken))


def _entry_points(monkeypatch, *points: metadata.EntryPoint) -> None:
    def entry_points(*, group):
        return [p for p in points if p.group == group]

    monkeypatch.setattr(metadata, "entry_points", entry_points)  # read by mtmarl._registry
    monkeypatch.setattr(experiments, "_entry_points_loaded", False)  # the next lookup loads


def test_entry_point_naming_a_module(registry, tmp_path, monkeypatch):
    _plugin(tmp_path, monkeypatch, "plugin-ep-module")
    monkeypatch.syspath_prepend(str(tmp_path))
    point = metadata.EntryPoint("ep", "plugin_ep_module", ENTRY_POINT_GROUP)
    other = metadata.EntryPoint("ep2", "no_such_mod", "another.group")  # not ours: not loaded
    _entry_points(monkeypatch, point, other)
    assert get_experiment("plugin-ep-module").name == "plugin-ep-module"


def test_entry_point_naming_experiments(registry, monkeypatch):
    base = get_experiment("movebox-easy")
    one = dataclasses.replace(
        base, name="ep-one", config=dataclasses.replace(base.config, experiment="ep-one")
    )
    two = dataclasses.replace(
        one, name="ep-two", config=dataclasses.replace(base.config, experiment="ep-two")
    )
    holder = types.ModuleType("ep_holder")
    holder.ONE, holder.BOTH = one, [one, two]
    monkeypatch.setitem(sys.modules, "ep_holder", holder)
    _entry_points(
        monkeypatch,
        metadata.EntryPoint("one", "ep_holder:ONE", ENTRY_POINT_GROUP),
        metadata.EntryPoint("both", "ep_holder:BOTH", ENTRY_POINT_GROUP),
    )
    names = [e.name for e in list_experiments()]
    assert "ep-one" in names and "ep-two" in names
    assert get_experiment("ep-one") is one


@pytest.mark.parametrize(
    "value, match",
    [
        ("no_such_mod", r"entry point 'bad' \(no_such_mod\) failed to load: ModuleNotFoundError"),
        ("ep_holder_bad:NUMBER", "must name a module that calls register_experiment.*got int"),
        ("ep_holder_bad:CLASH", "experiment 'movebox-easy' is already registered"),
    ],
)
def test_broken_entry_point_fails_every_lookup(registry, monkeypatch, value, match):
    holder = types.ModuleType("ep_holder_bad")
    holder.NUMBER = 3
    holder.CLASH = dataclasses.replace(get_experiment("movebox-easy"))  # a copy, same name
    monkeypatch.setitem(sys.modules, "ep_holder_bad", holder)
    _entry_points(monkeypatch, metadata.EntryPoint("bad", value, ENTRY_POINT_GROUP))
    for _ in range(2):  # not only the first: a broken plugin is never silently skipped
        with pytest.raises(ImportError, match=match):
            list_experiments()
