"""Run directories: atomic writes and a one-writer lock.

Everything a run writes into its directory (``config.yaml``, ``eval.json``, metrics,
checkpoints) goes through :func:`atomic_writer`: the bytes land in a temporary file unique to the
writer, in the same folder, are flushed to disk (``fsync``) and only then renamed over the
destination with :func:`os.replace`. A reader therefore sees the old file or the new one, never a
torn mix, whatever kills the writer and however many writers race on one path.

:class:`RunDirLock` makes sure a run directory has a single writer: a second ``mtmarl train`` on
the same directory fails at once with :class:`RunDirLockedError`, naming the process that holds it.

This module depends on the standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not Linux/macOS
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_FILE",
    "RunDirLock",
    "RunDirLockedError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_writer",
]

#: Name of the lock file inside a run directory.
LOCK_FILE = ".lock"


def _umask() -> int:
    """The process umask, read without changing it where ``/proc`` allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # the portable way sets it; put it back at once
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Flush a directory entry (a rename) to disk; a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Open a binary file whose content replaces ``path`` atomically when the block ends.

    The file is a temporary ``<name>.<random>.tmp`` next to ``path`` (unique per writer, so
    concurrent writers never share one). When the ``with`` block ends normally it is flushed,
    ``fsync``-ed, given the permissions a new file would get (``0o666`` less the umask, or those
    of the file it replaces) and renamed over ``path``; if the block raises, it is removed and
    ``path`` is left as it was. Missing parent folders are created.

    Args:
        path (str or PathLike): the destination file.

    Yields:
        IO[bytes]: the temporary file, opened for binary writing.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     with atomic_writer(f"{d}/out.bin") as f:
        ...         _ = f.write(b"all or nothing")
        ...     open(f"{d}/out.bin", "rb").read()
        b'all or nothing'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace the content of ``path`` with ``data`` atomically (see :func:`atomic_writer`).

    Args:
        path (str or PathLike): the destination file; missing parent folders are created.
        data (bytes): the new content.

    Returns:
        Path: the written file.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     atomic_write_bytes(f"{d}/x.bin", b"\\x00\\x01").read_bytes()
        b'\\x00\\x01'
    """
    path = Path(path)
    with atomic_writer(path) as file:
        file.write(data)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Replace the content of ``path`` with ``text`` atomically (see :func:`atomic_writer`).

    Readers see the old content or the new one, never part of it; if the write fails the old
    content stays and no temporary file is left behind. Newlines are written as given.

    Args:
        path (str or PathLike): the destination file; missing parent folders are created.
        text (str): the new content.

    Keyword Args:
        encoding (str): text encoding. Defaults to ``"utf-8"``.

    Returns:
        Path: the written file.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = atomic_write_text(f"{d}/eval.json", '{"return": 1.0}\\n')
        ...     p.read_text(), sorted(x.name for x in p.parent.iterdir())
        ('{"return": 1.0}\\n', ['eval.json'])
    """
    return atomic_write_bytes(path, text.encode(encoding))


class RunDirLockedError(RuntimeError):
    """Another process (or another :class:`RunDirLock` in this one) holds a run directory.

    Attributes:
        run_dir (Path): the locked run directory.
        holder (dict): what the holder recorded in the lock file (``pid``, ``host``,
            ``since``); empty if it had not written it yet or it was unreadable.

    Examples:
        >>> err = RunDirLockedError("runs/x", {"pid": 1234, "host": "h", "since": "2026-12-03"})
        >>> print(err)
        run directory runs/x is in use by pid 1234 on host h since 2026-12-03; wait for it to finish or pick another --run-dir
        >>> err.holder["pid"], issubclass(RunDirLockedError, RuntimeError)
        (1234, True)
    """

    def __init__(self, run_dir: str | os.PathLike, holder: dict[str, Any], hint: str = ""):
        self.run_dir = Path(run_dir)
        self.holder = dict(holder)
        if {"pid", "host", "since"} <= self.holder.keys():
            who = (
                f"pid {self.holder['pid']} on host {self.holder['host']} "
                f"since {self.holder['since']}"
            )
        else:
            who = f"another process (its lock file {self.run_dir / LOCK_FILE} names no holder yet)"
        super().__init__(
            f"run directory {self.run_dir} is in use by {who}; "
            f"wait for it to finish or pick another --run-dir{hint}"
        )


class RunDirLock:
    """Exclusive lock making this process the only writer of a run directory.

    On enter (or :meth:`acquire`) the directory is created if needed and an exclusive,
    non-blocking ``flock`` is taken on ``run_dir/.lock``, into which the holder's pid, host name
    and start time are written (JSON). If the lock is held, :class:`RunDirLockedError` is raised at
    once, naming the holder. On exit (or :meth:`release`) the holder record is emptied and the lock
    released; the file itself stays.

    The lock lives in the kernel, not in the file: it dies with the process holding it, so a run
    killed with ``SIGKILL`` (or a crashed machine) never blocks the next one, and a leftover
    ``.lock`` file is not a lock. The file descriptor is not inherited by spawned subprocesses,
    but a ``fork``-ed child shares the lock until it exits. It works on local disks and on NFS
    (where Linux maps ``flock`` onto POSIX byte-range locks).

    Where :mod:`fcntl` does not exist (Windows) the lock is the *existence* of the file, created
    with ``O_CREAT | O_EXCL`` and deleted on release: there, a process killed while holding it
    leaves the file behind, and it has to be deleted by hand (the error says so).

    A lock is not reentrant: taking a second one on the same directory, even in the same
    process, raises.

    Args:
        run_dir (str or PathLike): the run directory.

    Raises:
        RunDirLockedError: (on enter/:meth:`acquire`) the directory is held by someone else.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     with RunDirLock(f"{d}/run") as lock:
        ...         try:
        ...             RunDirLock(f"{d}/run").acquire()
        ...         except RunDirLockedError as err:
        ...             print(err.holder["pid"] == os.getpid(), lock.locked)
        ...     with RunDirLock(f"{d}/run"):  # free again
        ...         pass
        True True
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def locked(self) -> bool:
        """bool: whether this object holds the lock."""
        return self._fd is not None

    def __repr__(self) -> str:
        return f"RunDirLock({str(self.run_dir)!r}, locked={self.locked})"

    def acquire(self) -> RunDirLock:
        """Take the lock, or fail at once if it is held.

        Returns:
            RunDirLock: ``self``.

        Raises:
            RunDirLockedError: another holder has the directory.
            RuntimeError: this object already holds it.
            OSError: the directory or its lock file cannot be created.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self!r} is already held; release it before acquiring again")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover - Windows
            self._fd = self._acquire_exclusive_file()
        else:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._read_holder(fd)
                os.close(fd)
                raise RunDirLockedError(self.run_dir, holder) from None
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        try:
            self._write_holder()
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        """Release the lock; a no-op if this object does not hold it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if fcntl is None:  # pragma: no cover - Windows
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            return
        try:
            with contextlib.suppress(OSError):  # empty the record while still holding the lock
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    # ------------------------------------------------------------------ internals
    def _write_holder(self) -> None:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        data = (json.dumps(record) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, data)
        os.fsync(self._fd)

    @staticmethod
    def _read_holder(fd: int) -> dict[str, Any]:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            holder = json.loads(os.read(fd, 4096).decode())
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def _acquire_exclusive_file(self) -> int:  # pragma: no cover - Windows
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                holder = {}
            else:
                holder = self._read_holder(fd)
                os.close(fd)
            raise RunDirLockedError(
                self.run_dir,
                holder,
                hint=f" (if no such process runs, it was killed: delete {self.path})",
            ) from None
