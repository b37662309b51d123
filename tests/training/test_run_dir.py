from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mtmarl.training import run_dir as run_dir_module
from mtmarl.training.run_dir import (
    LOCK_FILE,
    RunDirLock,
    RunDirLockedError,
    atomic_write_bytes,
    atomic_write_text,
    atomic_writer,
)

pytestmark = pytest.mark.skipif(run_dir_module.fcntl is None, reason="flock needs fcntl")

# The holder runs in its own interpreter and loads run_dir.py by path (it needs the standard
# library only), so it starts in milliseconds instead of importing torch through mtmarl.
_HOLDER = textwrap.dedent(
    """
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("run_dir", sys.argv[1])
    run_dir = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_dir)
    with run_dir.RunDirLock(sys.argv[2]):
        print("locked", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
    """
)


@pytest.fixture
def holder():
    """Start processes holding a run directory's lock; kills any left at the end."""
    procs: list[subprocess.Popen] = []

    def start(run_dir: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, run_dir_module.__file__, str(run_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_second_lock_in_another_process_fails_naming_the_holder(tmp_path, holder):
    run = tmp_path / "runs" / "x"
    proc = holder(run)
    with pytest.raises(RunDirLockedError) as info:
        RunDirLock(run).acquire()
    err = info.value
    assert err.run_dir == run and err.holder["pid"] == proc.pid
    assert str(err).startswith(f"run directory {run} is in use by pid {proc.pid} on host ")
    assert str(err).endswith("; wait for it to finish or pick another --run-dir")
    assert err.holder["host"] and err.holder["since"] in str(err)
    # the holder releases: the directory can be taken again
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "released" and proc.wait(timeout=10) == 0
    with RunDirLock(run) as lock:
        assert lock.locked and lock.path.read_text().count(str(os.getpid())) == 1
    assert not lock.locked


def test_sigkilled_holder_never_blocks_the_next_run(tmp_path, holder):
    proc = holder(tmp_path)
    with pytest.raises(RunDirLockedError, match=f"pid {proc.pid}"):
        RunDirLock(tmp_path).acquire()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert str(proc.pid) in (tmp_path / LOCK_FILE).read_text()  # a stale record is no lock
    with RunDirLock(tmp_path):
        pass


def test_lock_is_exclusive_within_a_process_and_not_reentrant(tmp_path):
    lock = RunDirLock(tmp_path / "new")  # the directory is created on enter
    with lock:
        assert (tmp_path / "new" / LOCK_FILE).is_file()
        with pytest.raises(RunDirLockedError, match=f"by pid {os.getpid()} "):
            RunDirLock(tmp_path / "new").acquire()
        with pytest.raises(RuntimeError, match="already held"):
            lock.acquire()
    assert lock.path.read_text() == ""  # released: the record is emptied, the file stays
    lock.release()  # a second release is a no-op
    with RunDirLock(tmp_path / "new"):
        pass


def test_holder_without_record_yet(tmp_path):
    err = RunDirLockedError(tmp_path, {})
    assert f"its lock file {tmp_path / LOCK_FILE} names no holder yet" in str(err)


def test_atomic_write_text_replaces_whole_content(tmp_path):
    path = atomic_write_text(tmp_path / "deep" / "eval.json", '{"a": 1}\n')
    assert path.read_text() == '{"a": 1}\n'
    atomic_write_text(path, "é\r\n", encoding="latin-1")
    assert path.read_bytes() == "é\r\n".encode("latin-1")
    assert atomic_write_bytes(path, b"\x00").read_bytes() == b"\x00"
    assert os.listdir(path.parent) == ["eval.json"]


def test_failed_write_keeps_the_old_content_and_no_temp_file(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "config.yaml", "seed: 1\n")

    def refuse(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(run_dir_module.os, "replace", refuse)
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write_text(path, "seed: 2\n" * 1000)
    monkeypatch.undo()
    with pytest.raises(ZeroDivisionError):
        with atomic_writer(path) as file:
            file.write(b"seed: 3\n")
            1 / 0  # noqa: B018
    assert path.read_text() == "seed: 1\n" and os.listdir(tmp_path) == ["config.yaml"]


def test_new_files_get_umask_permissions_and_replaced_files_keep_theirs(tmp_path):
    mask = os.umask(0o027)
    try:
        fresh = atomic_write_text(tmp_path / "fresh.txt", "x")
    finally:
        os.umask(mask)
    assert fresh.stat().st_mode & 0o777 == 0o640  # not mkstemp's 0o600
    os.chmod(fresh, 0o604)
    atomic_write_text(fresh, "y")
    assert fresh.stat().st_mode & 0o777 == 0o604


def test_concurrent_writers_leave_one_complete_version(tmp_path):
    path = tmp_path / "metrics.json"
    texts = [str(i) * 100_000 for i in range(4)]
    threads = [
        threading.Thread(target=lambda t=t: [atomic_write_text(path, t) for _ in range(10)])
        for t in texts
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert path.read_text() in texts and os.listdir(tmp_path) == ["metrics.json"]
