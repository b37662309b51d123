from __future__ import annotations

import pickle

import pytest
import torch

from mtmarl.training import CheckpointError, load_checkpoint, save_checkpoint


def test_roundtrip_plain_data(tmp_path):
    state = {"iteration": 3, "model": {"w": torch.arange(3.0)}, "history": [{"a": 1.0}]}
    path = save_checkpoint(tmp_path / "ck" / "last.pt", state)
    back = load_checkpoint(path, required=("iteration", "model"))
    assert back["iteration"] == 3 and torch.equal(back["model"]["w"], torch.arange(3.0))
    assert not list(tmp_path.glob("ck/*.tmp"))


def test_missing_corrupt_and_incomplete(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="could not read checkpoint"):
        load_checkpoint(bad)
    path = save_checkpoint(tmp_path / "x.pt", {"a": 1})
    with pytest.raises(CheckpointError, match=r"lacks \['iteration'\]"):
        load_checkpoint(path, required=("iteration",))


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_refuses_to_execute_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match="could not read checkpoint"):
        load_checkpoint(path)
    assert "code ran" not in capsys.readouterr().out
    # a plain pickle is refused as well
    path.write_bytes(pickle.dumps({"format_version": 1}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_wrong_format_version(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format_version": 0}, path)
    with pytest.raises(CheckpointError, match="format version 0, expected 1"):
        load_checkpoint(path)
