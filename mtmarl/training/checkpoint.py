"""Checkpoints that never execute code.

A checkpoint is a plain ``dict`` of tensors, numbers, strings and nested containers written with
:func:`torch.save` and read back with ``torch.load(weights_only=True)``, which refuses anything
that would need unpickling arbitrary objects. Writes are atomic (a temporary file renamed into
place), so an interrupted save never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]

#: Version of the checkpoint layout; bumped when the layout changes.
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match the run it is loaded into.

    Examples:
        >>> try:
        ...     load_checkpoint("/nonexistent/last.pt")
        ... except CheckpointError as err:
        ...     print(err)
        no checkpoint at /nonexistent/last.pt
    """


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Atomically write ``state`` (plus the format version) to ``path``.

    Args:
        path (str or PathLike): destination file.
        state (Mapping[str, Any]): tensors, numbers, strings and containers of those
            (``state_dict()`` outputs qualify).

    Returns:
        Path: the written file.

    Examples:
        >>> import tempfile, torch
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = save_checkpoint(f"{d}/last.pt", {"iteration": 3, "w": torch.ones(2)})
        ...     load_checkpoint(p)["iteration"]
        3
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format_version": FORMAT_VERSION, **state}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    Args:
        path (str or PathLike): file written by :func:`save_checkpoint`.

    Keyword Args:
        required (tuple[str, ...]): keys that must be present. Defaults to ``()``.

    Raises:
        CheckpointError: the file is missing, unreadable/corrupt, holds anything but plain
            data, has another format version, or lacks a required key.

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
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        version = state.get("format_version") if isinstance(state, dict) else None
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}, expected {FORMAT_VERSION}"
        )
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}")
    return state
