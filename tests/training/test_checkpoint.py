from __future__ import annotations

import collections
import os
import pickle
import threading
import warnings

import numpy as np
import pytest
import torch

from mtmarl.training import CheckpointError, load_checkpoint, save_checkpoint
from mtmarl.training import checkpoint as checkpoint_module


def _same(a, b) -> bool:
    """Deep equality of checkpoint content: types, keys in order, tensor dtypes/shapes/values."""
    if isinstance(a, torch.Tensor):
        return (
            isinstance(b, torch.Tensor)
            and (a.dtype, a.shape) == (b.dtype, b.shape)
            and torch.equal(a, b)
        )
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and list(a) == list(b)
            and all(_same(a[k], b[k]) for k in a)
            and getattr(a, "_metadata", None) == getattr(b, "_metadata", None)
        )
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def _adam_state(n_in: int = 8, n_out: int = 4) -> dict:
    torch.manual_seed(0)
    model = torch.nn.Linear(n_in, n_out)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, n_in)).sum().backward()
    optimizer.step()
    return {
        "iteration": 3,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": "seed: 3\n",
        "history": [{"train/return": 1.5}],
    }


def _flip(path, position: int, mask: int = 0x10) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= mask
    path.write_bytes(bytes(data))


def _temp_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_roundtrip_plain_data(tmp_path):
    state = {"iteration": 3, "model": {"w": torch.arange(3.0)}, "history": [{"a": 1.0}]}
    path = save_checkpoint(tmp_path / "ck" / "last.pt", state)
    back = load_checkpoint(path, required=("iteration", "model"))
    assert back["iteration"] == 3 and torch.equal(back["model"]["w"], torch.arange(3.0))
    assert list(back) == ["iteration", "model", "history"]  # no header keys leak out
    assert not list(tmp_path.glob("ck/*.tmp"))


def test_file_is_an_ordinary_checkpoint_with_a_header(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", {"iteration": 3, "w": torch.ones(2)})
    raw = torch.load(path, weights_only=True)
    assert list(raw) == ["format_version", "sha256", "iteration", "w"]
    assert raw["format_version"] == checkpoint_module.FORMAT_VERSION == 2
    assert len(raw["sha256"]) == 64 and int(raw["sha256"], 16) >= 0


def test_checksum_survives_every_value_kind(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    state = {
        "model": torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)).state_dict(),
        "optimizer": _adam_state()["optimizer"],
        "view": base.t()[1:],  # non-contiguous view of a larger storage
        "scalars": [torch.tensor(1.5), torch.zeros(0), torch.ones(2, dtype=torch.bfloat16)],
        "masks": torch.tensor([True, False]),
        "param": torch.nn.Parameter(torch.ones(2)),
        "misc": (None, True, -(2**70), float("inf"), float("nan"), 1 + 2j, "é", b"\x00", set()),
        "torch": (torch.Size([2, 3]), torch.float16, torch.device("cpu"), torch.strided),
        "tags": {"b", "a", "c"},
        "counts": collections.OrderedDict(b=2, a=1),
        3: "non-string keys are content too",
    }
    back = load_checkpoint(save_checkpoint(tmp_path / "k.pt", state))
    assert list(back) == list(state) and back["model"]._metadata == state["model"]._metadata
    assert torch.equal(back["view"], state["view"]) and back["tags"] == {"a", "b", "c"}


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
    torch.save([1, 2], bad)
    with pytest.raises(CheckpointError, match="holds a list, expected a dict"):
        load_checkpoint(bad)


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
    with pytest.raises(CheckpointError, match="format version 0, expected 2"):
        load_checkpoint(path)
    torch.save({"iteration": 1}, path)
    with pytest.raises(CheckpointError, match="format version None, expected 2"):
        load_checkpoint(path)


def test_version_1_loads_unverified_with_a_deprecation_warning(tmp_path):
    path = tmp_path / "v1.pt"
    torch.save({"format_version": 1, "iteration": 4, "w": torch.ones(2)}, path)
    with pytest.warns(DeprecationWarning, match=r"v1\.pt has format version 1.*unverified"):
        state = load_checkpoint(path, required=("iteration",))
    assert list(state) == ["iteration", "w"] and state["iteration"] == 4
    # a version-1 file that carries a checksum is a damaged version-2 one, not a legacy file
    torch.save({"format_version": 1, "sha256": "0" * 64, "iteration": 4}, path)
    with pytest.raises(CheckpointError, match="format version 1, expected 2"):
        load_checkpoint(path)


def test_checksum_mismatch_names_the_file_and_both_digests(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", {"iteration": 3, "w": torch.ones(4)})
    raw = torch.load(path, weights_only=True)
    recorded = raw["sha256"]
    raw["w"][2] = 7.0  # garbage that still unpickles fine
    torch.save(raw, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"checkpoint {path} is damaged: its sha256 is ")
    assert f"the file records {recorded}" in message
    raw["sha256"] = 12
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="is damaged: format version 2 records a sha256"):
        load_checkpoint(path)


@pytest.mark.parametrize("fraction", [0.2, 0.35, 0.5, 0.65, 0.8])
@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_flipped_bit_in_tensor_data_is_damage(tmp_path, fraction, mask):
    # a large Adam state: most of the file is tensor bytes, which unpickle fine when flipped
    path = save_checkpoint(tmp_path / "last.pt", _adam_state(64, 64))
    size = path.stat().st_size
    _flip(path, int(size * fraction), mask)
    with pytest.raises(CheckpointError, match=r"last\.pt is damaged: its sha256 is"):
        load_checkpoint(path)


@pytest.mark.parametrize("needle", [b"iteration", b"seed: 3", b"exp_avg_sq", b"train/return"])
def test_flipped_bit_in_keys_and_strings_is_detected(tmp_path, needle):
    path = save_checkpoint(tmp_path / "last.pt", _adam_state())
    position = path.read_bytes().index(needle) + len(needle) // 2
    _flip(path, position)
    with pytest.raises(CheckpointError, match=r"last\.pt (is damaged|\()|could not read"):
        load_checkpoint(path)


def test_no_single_bit_flip_loads_garbage(tmp_path):
    """Flip one bit at every third byte of a checkpoint (each bit position in turn): each load
    is refused or returns the saved content unchanged (bytes that carry nothing, such as zip
    padding and timestamps). All 8 bits of every byte pass as well (about 50 s), a third keeps
    it quick."""
    state = _adam_state(3, 2)
    path = save_checkpoint(tmp_path / "last.pt", state)
    data = path.read_bytes()
    outcomes = collections.Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no flip may pass as version 1
        warnings.simplefilter("ignore", UserWarning)  # torch on flipped pickle protocols
        for position in range(0, len(data), 3):
            flipped = bytearray(data)
            flipped[position] ^= 1 << (position % 8)
            path.write_bytes(bytes(flipped))
            try:
                back = load_checkpoint(path)
            except CheckpointError as err:
                outcomes["damaged" if "is damaged" in str(err) else "refused"] += 1
                continue
            assert _same(back, state), f"flipping byte {position} loaded changed content"
            outcomes["harmless"] += 1
    assert outcomes["damaged"] > 100 and outcomes["refused"] > 100, outcomes


def test_reserved_and_unloadable_values_are_refused_at_save(tmp_path):
    path = tmp_path / "last.pt"
    with pytest.raises(ValueError, match=r"reserved .* the state has \['sha256'\]"):
        save_checkpoint(path, {"sha256": "x"})
    with pytest.raises(TypeError, match=r"state\['history'\]\[0\]\['r'\].*numpy\.float64"):
        save_checkpoint(path, {"history": [{"r": np.float64(1.0)}]})
    assert not path.exists() and not _temp_files(tmp_path)


@pytest.mark.parametrize("failure", ["unpicklable", "torch.save raises", "disk full midway"])
def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch, failure):
    path = save_checkpoint(tmp_path / "last.pt", {"iteration": 1, "w": torch.ones(3)})
    before = path.read_bytes()
    if failure == "unpicklable":
        state = {"iteration": 2, "lock": [threading.Lock()]}
        expected = TypeError
    else:

        def broken_save(obj, file, *args, **kwargs):
            if failure == "disk full midway":
                file.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
        state, expected = {"iteration": 2}, OSError
    with pytest.raises(expected):
        save_checkpoint(path, state)
    assert path.read_bytes() == before and not _temp_files(tmp_path)
    assert load_checkpoint(path)["iteration"] == 1


def test_concurrent_saves_never_leave_an_unreadable_file(tmp_path):
    path = tmp_path / "last.pt"
    states = [{"writer": i, "w": torch.full((256,), float(i))} for i in range(2)]
    save_checkpoint(path, states[0])
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(state):
        try:
            for _ in range(25):
                save_checkpoint(path, state)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    def reader():
        while not stop.is_set():
            try:
                back = load_checkpoint(path)
                assert torch.equal(back["w"], states[back["writer"]]["w"])
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)
                return

    threads = [threading.Thread(target=writer, args=(s,)) for s in states]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    assert not errors, errors
    assert load_checkpoint(path)["writer"] in (0, 1)
    assert os.listdir(tmp_path) == ["last.pt"]
