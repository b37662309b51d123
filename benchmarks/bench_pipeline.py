"""Pipeline speed of ``mtmarl train``: frames/s and peak memory of every experiment preset.

Each preset runs at its default sizes (``get_experiment(name).config``: envs, steps, model,
epochs, minibatches) for a few iterations, once in one process (``collector.workers=1``) and
once with two collector worker processes (``collector.workers=2``, torchrl's
``MultiSyncCollector``). Every point runs in a fresh Python subprocess, one at a time, with
``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``, through the same ``Trainer`` that
``mtmarl train`` builds.

* **frames/s** (collect + GAE + PPO update + weight sync): frames of iterations 2..N over their
  summed wall-clock (the trainer's per-iteration ``time/fps``); iteration 1 (worker start-up,
  lazy init) and the final evaluation/checkpoint are excluded. ``collect frames/s`` is the
  collection part alone.
* **peak memory**: ``ru_maxrss`` of the point's process (the trainer) and of its largest child
  (a collector worker, reaped at shutdown); ``total`` = trainer + workers x largest child, an
  upper bound of the resident memory the run needs.

Usage::

    python benchmarks/bench_pipeline.py [--iterations 4] [--out benchmarks/results/pipeline]
    python benchmarks/bench_pipeline.py --experiments movebox-easy building --workers 1 2
    python benchmarks/bench_pipeline.py --device cuda --out benchmarks/results/pipeline-cuda

writes ``pipeline.json``, ``pipeline.md`` (the table) and ``pipeline.png`` (the plot) to
``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).parent / "results" / "pipeline"


def run_point(experiment: str, workers: int, iterations: int, device: str = "cpu") -> dict:
    """One measurement, in this process (called in the per-point subprocess)."""
    import torch

    torch.set_num_threads(1)
    from mtmarl.training import Trainer, apply_overrides, get_experiment

    base = get_experiment(experiment).config
    cfg = apply_overrides(
        base,
        [
            f"device={device}",
            f"collector.workers={workers}",
            f"collector.iterations={iterations}",
            f"eval.interval={10 * iterations}",  # only the final evaluation, not timed
            f"eval.episodes={min(base.eval.episodes, 8)}",
            "run.progress=false",
        ],
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, run_dir=run_dir)
        built = time.perf_counter() - start
        result = trainer.train()
    timed = result.history[1:]  # iteration 1 holds the start-up
    frames = sum(cfg.collector.frames_per_batch for _ in timed)
    seconds = sum(cfg.collector.frames_per_batch / m["time/fps"] for m in timed)
    collect = sum(cfg.collector.frames_per_batch / m["time/collect_fps"] for m in timed)
    kib = 1024.0  # ru_maxrss is in KiB on Linux
    main_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib
    if workers == 1:
        child_mb = 0.0
    return {
        "experiment": experiment,
        "workers": workers,
        "device": device,
        "variant": cfg.variant,
        "num_envs": cfg.collector.num_envs,
        "steps_per_env": cfg.collector.steps_per_env,
        "frames_per_batch": cfg.collector.frames_per_batch,
        "timed_iterations": len(timed),
        "fps": frames / seconds,
        "collect_fps": frames / collect,
        "seconds_per_iteration": seconds / len(timed),
        "startup_s": built,
        "first_iteration_s": cfg.collector.frames_per_batch / result.history[0]["time/fps"],
        "main_rss_mb": main_mb,
        "worker_rss_mb": child_mb,
        "total_rss_mb": main_mb + workers * child_mb if workers > 1 else main_mb,
    }


def measure(experiment: str, workers: int, iterations: int, timeout: float, device: str) -> dict:
    """Run :func:`run_point` in a fresh subprocess and return its JSON."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--point", experiment, str(workers), str(iterations)]
    cmd += ["--device", device]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return {"experiment": experiment, "workers": workers, "error": tail}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["wall_s"] = time.perf_counter() - start
    return row


def table(rows: list[dict]) -> str:
    head = (
        "| experiment | workers | envs x steps | frames/s | collect frames/s | s/iteration "
        "| peak RSS trainer (MB) | largest worker (MB) | total (MB) |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['experiment']} | {r['workers']} | failed: {r['error'][-80:]} |")
            continue
        lines.append(
            f"| {r['experiment']} | {r['workers']} | {r['num_envs']} x {r['steps_per_env']} "
            f"| {r['fps']:,.0f} | {r['collect_fps']:,.0f} | {r['seconds_per_iteration']:.2f} "
            f"| {r['main_rss_mb']:,.0f} | {r['worker_rss_mb']:,.0f} | {r['total_rss_mb']:,.0f} |"
        )
    return head + "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if "error" not in r]
    names = sorted({r["experiment"] for r in ok}, key=[r["experiment"] for r in ok].index)
    workers = sorted({r["workers"] for r in ok})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(len(workers), 1)
    for j, w in enumerate(workers):
        by = {r["experiment"]: r for r in ok if r["workers"] == w}
        xs = [i + (j - (len(workers) - 1) / 2) * width for i in range(len(names))]
        fps = [by[n]["fps"] if n in by else 0 for n in names]
        mem = [by[n]["total_rss_mb"] if n in by else 0 for n in names]
        axes[0].bar(xs, fps, width, label=f"workers={w}")
        axes[1].bar(xs, mem, width, label=f"workers={w}")
    for ax, label in zip(axes, ["frames/s (collect + update)", "peak RSS, trainer + workers (MB)"]):
        ax.set_xticks(range(len(names)), names, rotation=20)
        ax.set_ylabel(label)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=4, help="iterations per point (>= 2)")
    parser.add_argument("--experiments", nargs="*", default=None, help="default: every preset")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per point")
    parser.add_argument("--device", default="cpu", help="the runs' device override (cuda, ...)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--point", nargs=3, metavar=("EXPERIMENT", "WORKERS", "ITERATIONS"))
    args = parser.parse_args()
    if args.point:
        name, workers, iterations = args.point
        print(json.dumps(run_point(name, int(workers), int(iterations), args.device)))
        return
    if args.iterations < 2:
        parser.error("--iterations must be >= 2 (the first iteration is not timed)")
    if args.experiments is None:
        import importlib.util

        from mtmarl.training import list_experiments

        args.experiments = [
            e.name
            for e in list_experiments()
            if not e.name.startswith("vmas") or importlib.util.find_spec("vmas") is not None
        ]
    rows = []
    for name in args.experiments:
        for workers in args.workers:
            row = measure(name, workers, args.iterations, args.timeout, args.device)
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_end": load,
        "iterations": args.iterations,
        "device": args.device,
    }
    (args.out / "pipeline.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (args.out / "pipeline.md").write_text(table(rows))
    plot(rows, args.out / "pipeline.png", f"mtmarl train, default preset sizes ({meta['machine']})")
    print(table(rows))


if __name__ == "__main__":
    main()
