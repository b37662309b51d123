"""Checkpoints that never execute code, and say so when they are damaged.

A checkpoint is a plain ``dict`` of tensors, numbers, strings and nested containers written with
:func:`torch.save` and read back with ``torch.load(weights_only=True)``, which refuses anything
that would need unpickling arbitrary objects. Writes are atomic (a temporary file unique to the
writer, ``fsync``-ed, then renamed into place; see :func:`~mtmarl.training.run_dir.atomic_writer`),
so an interrupted or racing save never leaves a half-written checkpoint behind.

Layout (:data:`FORMAT_VERSION` 2): the file is the user's ``dict`` with two reserved keys put in
front, ``{"format_version": 2, "sha256": <hex>, **state}``, so it stays an ordinary checkpoint
that ``torch.load(path, weights_only=True)`` reads. ``sha256`` is a digest of the *content* of
``state`` -- every key, container, number and string, and each tensor's dtype, shape and bytes, in
order -- which :func:`load_checkpoint` recomputes on the loaded dict: a flipped bit that changes
anything the run would load is reported as damage instead of resuming with garbage. Bytes that
carry no content (zip padding and timestamps, storage outside a saved view) are not covered; a
flip there changes nothing that is loaded.

Version-1 files (no checksum) still load, unverified, with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import hashlib
import os
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mtmarl.training.run_dir import atomic_writer

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "load_checkpoint",
    "load_resume_state",
    "save_checkpoint",
]

#: Version of the checkpoint layout; bumped when the layout changes (2: content checksum).
FORMAT_VERSION = 2
#: Keys :func:`save_checkpoint` adds to the file (not allowed in a saved ``state``).
_RESERVED = ("format_version", "sha256")
#: Oldest layout still loaded (without verification, with a :class:`DeprecationWarning`).
_LEGACY_VERSION = 1

_SCALAR_TYPES = (torch.dtype, torch.device, torch.layout, torch.memory_format)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match the run it is loaded into.

    Examples:
        >>> try:
        ...     load_checkpoint("/nonexistent/last.pt")
        ... except CheckpointError as err:
        ...     print(err)
        no checkpoint at /nonexistent/last.pt
    """


def _feed(digest: Any, obj: Any, where: str) -> None:
    """Feed a tagged, unambiguous encoding of ``obj`` into ``digest`` (a hashlib object)."""

    def sized(tag: bytes, data: bytes) -> None:
        digest.update(tag + str(len(data)).encode() + b":" + data)

    if type(obj).__module__ == "numpy":  # np.float64 is a float, but not loadable
        _unsupported(obj, where)
    elif obj is None:
        digest.update(b"N")
    elif isinstance(obj, bool):
        digest.update(b"T" if obj else b"F")
    elif isinstance(obj, int):
        sized(b"i", str(obj).encode())
    elif isinstance(obj, float):
        digest.update(b"f" + struct.pack("<d", obj))
    elif isinstance(obj, complex):
        digest.update(b"c" + struct.pack("<dd", obj.real, obj.imag))
    elif isinstance(obj, str):
        sized(b"s", obj.encode("utf-8", "surrogatepass"))
    elif isinstance(obj, (bytes, bytearray)):
        sized(b"b", bytes(obj))
    elif isinstance(obj, torch.Tensor):
        tensor = obj.detach()
        if tensor.layout != torch.strided:
            sized(b"L", str(tensor.layout).encode())
            tensor = tensor.to_dense()
        tensor = tensor.resolve_conj().resolve_neg().cpu().contiguous()
        sized(b"t", f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))
    elif isinstance(obj, _SCALAR_TYPES):
        sized(b"o", str(obj).encode())
    elif isinstance(obj, Mapping):
        digest.update(b"d" + str(len(obj)).encode() + b":")
        for key, value in obj.items():
            _feed(digest, key, where)
            _feed(digest, value, f"{where}[{key!r}]")
        metadata = getattr(obj, "_metadata", None)  # state_dict() versions, used when loading
        if metadata is not None:
            digest.update(b"m")
            _feed(digest, metadata, f"{where}._metadata")
    elif isinstance(obj, (list, tuple)):
        digest.update((b"l" if isinstance(obj, list) else b"u") + str(len(obj)).encode() + b":")
        for i, item in enumerate(obj):
            _feed(digest, item, f"{where}[{i}]")
    elif isinstance(obj, set):
        parts = sorted(_content_digest(item, f"{where}[item]") for item in obj)
        digest.update(b"e" + str(len(parts)).encode() + b":" + "".join(parts).encode())
    else:
        _unsupported(obj, where)


def _unsupported(obj: Any, where: str) -> None:
    raise TypeError(
        f"cannot checkpoint {where}: expected tensors, numbers, strings, bytes, None, "
        f"torch dtypes/devices and dicts/lists/tuples/sets of those (what "
        f"torch.load(weights_only=True) reads back), got {type(obj).__module__}."
        f"{type(obj).__qualname__}; convert it first (e.g. float(x), torch.as_tensor(x))"
    )


def _content_digest(obj: Any, where: str = "state") -> str:
    """sha256 (hex) of the content of ``obj``, the same before saving and after loading."""
    digest = hashlib.sha256()
    _feed(digest, obj, where)
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Atomically write ``state``, its format version and its checksum to ``path``.

    The file holds ``{"format_version": 2, "sha256": <digest of state>, **state}`` (see the
    module docstring). It is written to a temporary file unique to this call, ``fsync``-ed and
    renamed over ``path``: readers and concurrent writers see a complete old or new checkpoint,
    and a failed save leaves the previous file intact and no temporary file behind.

    Args:
        path (str or PathLike): destination file; missing parent folders are created.
        state (Mapping[str, Any]): tensors, numbers, strings, bytes, ``None`` and
            dicts/lists/tuples/sets of those (``state_dict()`` outputs qualify), with string keys
            other than ``"format_version"`` and ``"sha256"``.

    Returns:
        Path: the written file.

    Raises:
        ValueError: ``state`` uses a reserved key.
        TypeError: ``state`` holds a value ``torch.load(weights_only=True)`` could not read back
            (the message names where); nothing is written.

    Examples:
        >>> import tempfile, torch
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = save_checkpoint(f"{d}/last.pt", {"iteration": 3, "w": torch.ones(2)})
        ...     raw = torch.load(p, weights_only=True)  # an ordinary checkpoint
        ...     list(raw)[:2], len(raw["sha256"]), load_checkpoint(p)
        (['format_version', 'sha256'], 64, {'iteration': 3, 'w': tensor([1., 1.])})
    """
    path = Path(path)
    reserved = [key for key in _RESERVED if key in state]
    if reserved:
        raise ValueError(
            f"cannot checkpoint to {path}: the keys {list(_RESERVED)} are reserved for the file's "
            f"header, the state has {reserved}"
        )
    state = dict(state)
    payload = {"format_version": FORMAT_VERSION, "sha256": _content_digest(state), **state}
    with atomic_writer(path) as file:
        torch.save(payload, file)
    return path


def load_checkpoint(path: str | os.PathLike, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and verify its checksum.

    Args:
        path (str or PathLike): file written by :func:`save_checkpoint`.

    Keyword Args:
        required (tuple[str, ...]): keys that must be present. Defaults to ``()``.

    Returns:
        dict[str, Any]: the saved ``state``, without the ``format_version`` and ``sha256`` header
        keys, on CPU.

    Raises:
        CheckpointError: the file is missing, unreadable/corrupt, holds anything but plain
            data, has another format version, does not match its checksum (damaged), or lacks
            a required key.

    Warns:
        DeprecationWarning: the file has format version 1, which records no checksum; it is
            loaded unverified. Saving it again writes the current version.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = open(f"{d}/bad.pt", "wb").write(b"not a checkpoint")
        ...     try:
        ...         load_checkpoint(f"{d}/bad.pt")
        ...     except CheckpointError as err:
        ...         print(str(err).split(":")[0])
        could not read checkpoint
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt/unsafe files
        raise CheckpointError(
            f"could not read checkpoint: {path} ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(state).__name__}, expected a dict with a "
            f"format_version {FORMAT_VERSION} header"
        )
    version = state.pop("format_version", None)
    if version == FORMAT_VERSION:
        recorded = state.pop("sha256", None)
        if not isinstance(recorded, str):
            raise CheckpointError(
                f"checkpoint {path} is damaged: format version {FORMAT_VERSION} records a sha256 "
                f"string, the file has {recorded!r}"
            )
        try:
            actual = _content_digest(state)
        except Exception as err:  # a damaged file can hold values no saved state had
            raise CheckpointError(f"checkpoint {path} is damaged: {err}") from None
        if actual != recorded:
            raise CheckpointError(
                f"checkpoint {path} is damaged: its sha256 is {actual}, the file records "
                f"{recorded}; restore it from a copy or start a new run"
            )
    elif version == _LEGACY_VERSION and "sha256" not in state:
        warnings.warn(
            f"checkpoint {path} has format version {_LEGACY_VERSION}, which records no checksum, "
            f"so it is loaded unverified; saving it again writes version {FORMAT_VERSION}. "
            f"Version {_LEGACY_VERSION} files will stop loading in a later release",
            DeprecationWarning,
            stacklevel=2,
        )
    else:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}, expected {FORMAT_VERSION}"
        )
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}")
    return state


def load_resume_state(path: str | os.PathLike, config: Any) -> dict[str, Any]:
    """The checkpoint a run resumes from, refused if it was written by another config.

    Args:
        path (str or PathLike): the run's ``checkpoints/last.pt``.
        config (TrainConfig): the resuming run's config; it must equal the saved one except for
            the run bookkeeping, evaluation and the iteration budget.

    Raises:
        CheckpointError: missing, damaged, or written with another config (the message names
            the first differing group and both values).

    Examples:
        >>> try:
        ...     load_resume_state("/nonexistent/last.pt", None)
        ... except CheckpointError as err:
        ...     print(err)
        no checkpoint at /nonexistent/last.pt
    """
    from mtmarl.training.config import config_from_yaml, config_mismatch

    state = load_checkpoint(path, required=("iteration", "loss_module", "config"))
    mismatch = config_mismatch(config_from_yaml(state["config"]), config)
    if mismatch:
        raise CheckpointError(
            f"checkpoint {path} was written with {mismatch[0]}={mismatch[1]!r}, this run has "
            f"{mismatch[2]!r}; they must match to resume"
        )
    return state


def save_best_actor(path: str | os.PathLike, actor: Any, iteration: int, value: float) -> Path:
    """Write ``actor``'s ``state_dict`` with the iteration and mean return it was kept for.

    Examples:
        >>> import tempfile, torch
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = save_best_actor(f"{d}/best.pt", torch.nn.Linear(2, 1), 3, 1.5)
        ...     load_best_actor(f"{d}/best.pt", torch.nn.Linear(2, 1))
        3
    """
    state = {"iteration": int(iteration), "return": float(value), "actor": actor.state_dict()}
    return save_checkpoint(path, state)


def load_best_actor(path: str | os.PathLike, actor: Any) -> int:
    """Load :func:`save_best_actor`'s file into ``actor``; returns its iteration.

    Raises:
        CheckpointError: no such file (train with ``eval.keep_best=true`` first), a damaged
            one, or one that does not fit ``actor``.

    Examples:
        >>> import torch
        >>> try:
        ...     load_best_actor("/nonexistent/best.pt", torch.nn.Linear(2, 1))
        ... except CheckpointError as err:
        ...     print(str(err).split(":")[0])
        no best actor at /nonexistent/best.pt
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no best actor at {path}: train with eval.keep_best=true first")
    state = load_checkpoint(path, required=("iteration", "actor"))
    try:
        actor.load_state_dict(state["actor"])
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not fit this actor: {err}") from None
    return int(state["iteration"])
