"""Fault injection: SIGKILL at random points of training, inside a checkpoint write too, then
resume: the final parameters equal an uninterrupted run's and the metrics have each iteration
once. And a property-based pass over the config schema: every field, any value, either works
or is refused with the library's error naming the key."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtmarl.algorithms import ALGORITHMS
from mtmarl.training import ConfigError, TrainConfig, apply_overrides, load_checkpoint

ITERATIONS = 10
OVERRIDES = [
    "collector.num_envs=4",
    f"collector.iterations={ITERATIONS}",
    "collector.steps_per_env=20",
    "optim.minibatch_size=40",
    "model.num_cells=[16]",
    "eval.episodes=4",
    "eval.interval=4",
    "run.checkpoint_interval=1",
    "run.progress=false",
]

# the child: `mtmarl train` in this interpreter; MTMARL_TEST_SLOW_SAVE makes every checkpoint
# write stop halfway for a while (a kill then lands inside it)
CHILD = textwrap.dedent(
    """
    import os, sys, time
    import torch
    torch.set_num_threads(1)
    import mtmarl.training.checkpoint as checkpoint
    if os.environ.get("MTMARL_TEST_SLOW_SAVE"):
        real_save = torch.save
        def slow_save(obj, file, *args, **kwargs):
            import io
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            file.write(data[: len(data) // 2]); file.flush()
            time.sleep(float(os.environ["MTMARL_TEST_SLOW_SAVE"]))
            file.write(data[len(data) // 2 :])
        checkpoint.torch.save = slow_save
    from mtmarl.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _child(args, *, slow_save=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if slow_save is not None:
        env["MTMARL_TEST_SLOW_SAVE"] = str(slow_save)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _params(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["loss_module"]


def _iterations_in_csv(run_dir):
    path = run_dir / "metrics" / "scalars" / "time" / "fps.csv"
    rows = path.read_text().splitlines() if path.exists() else []
    return [int(float(r.split(",")[0])) for r in rows]


@pytest.mark.timeout(600)
def test_sigkill_anywhere_then_resume_equals_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    done = _child(["train", "movebox-easy", *OVERRIDES, "--run-dir", str(reference)])
    assert done.wait(timeout=300) == 0, done.stderr.read().decode()
    run = tmp_path / "killed"
    rng = random.Random(0)
    kills = mid_write = 0
    for attempt in range(12):
        resume = ["--resume"] if (run / "checkpoints" / "last.pt").exists() else []
        args = ["train", *([] if resume else ["movebox-easy", *OVERRIDES]), *resume]
        torn = attempt % 2 == 1  # every other try: killed inside a checkpoint write
        proc = _child([*args, "--run-dir", str(run)], slow_save=30.0 if torn else None)
        logged = len(_iterations_in_csv(run)) if (run / "metrics").exists() else 0
        target = logged + rng.randint(1, 3)  # a kill after a random number of iterations
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if torn and list((run / "checkpoints").glob("*.tmp")):
                break  # the child sits in the middle of a checkpoint write
            if not torn and (run / "metrics").exists() and len(_iterations_in_csv(run)) >= target:
                break
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            mid_write += torn and bool(list((run / "checkpoints").glob("*.tmp")))
            continue
        assert proc.returncode == 0, proc.stderr.read().decode()
        break
    assert (run / "eval.json").exists(), "the killed run never finished"
    assert kills >= 2 and mid_write >= 1, (kills, mid_write)
    assert not list(run.rglob("*.tmp"))  # the resumed runs removed the torn temp files
    a, b = _params(reference), _params(run)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    frames = [1280 // 16 * i for i in range(1, ITERATIONS + 1)]  # 4 envs x 20 steps
    assert _iterations_in_csv(run) == frames
    assert json.loads((run / "eval.json").read_text()) == json.loads(
        (reference / "eval.json").read_text()
    )


# ---------------------------------------------------------------------------- the config schema
def _fields(cls, prefix=""):
    """Every leaf field of a config dataclass, as (dotted key, type)."""
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            yield from _fields(type(default), prefix=f"{key}.")
        elif key != "env":
            yield key


FIELDS = [(k, "mappo") for k in _fields(TrainConfig)] + [
    (f"loss.{f.name}", name)
    for name, cls in ALGORITHMS.items()
    if name != "mappo"
    for f in dataclasses.fields(cls.config_class)
]


def _yaml(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    if isinstance(value, float) and math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return json.dumps(value)


VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.lists(st.integers(-3, 300), max_size=3),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=VALUES)
def test_every_config_field_takes_any_value_or_refuses_it_by_name(field, value):
    key, algorithm = field
    try:
        cfg = apply_overrides(TrainConfig(), [f"algorithm={algorithm}", f"{key}={_yaml(value)}"])
    except ConfigError as err:
        assert key.split(".")[-1] in str(err) or key.split(".")[0] in str(err), (key, str(err))
        return
    # accepted: the value is finite where it is a number, and the config round-trips
    leaf = cfg
    for part in key.split("."):
        leaf = getattr(leaf, part)
    if isinstance(leaf, float):
        assert math.isfinite(leaf), (key, leaf)
    from mtmarl.training import config_from_yaml, config_to_yaml

    assert config_from_yaml(config_to_yaml(cfg)) == cfg


def test_the_schema_walk_covers_every_group():
    groups = {k.split(".")[0] for k, _ in FIELDS}
    assert {"collector", "model", "loss", "optim", "eval", "run", "seed", "device"} <= groups
