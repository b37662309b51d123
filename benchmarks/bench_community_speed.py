"""Frames/s of the ``community`` preset, this checkout against another one, side by side.

The community pipeline's cost is the PPO update, and inside it the forward and backward of
the LSTM forecast encoder over every agent's 3-hour window. This benchmark times whole
training iterations (collection + GAE + the preset's PPO update: the same epochs,
minibatches and model sizes on both sides) so that a speed change is measured where users
feel it. Each point is a fresh subprocess that imports ``mtmarl`` from one checkout
(``PYTHONPATH``), builds the ``Trainer`` of ``mtmarl train community`` with ``env.n_prosumers=N``
and trains ``--iterations`` iterations; frames/s is timed from the end of the first
iteration (warm-up) to the end of the second-to-last (the last one holds the final
evaluation). Rounds alternate (this checkout, the other, this, the other, ...) and the
ratio is taken pair by pair, so that a drift of the machine's speed cancels.

At N = 100 the preset's 16 envs x 96 steps make an iteration of 154k agent-steps; the
benchmark runs 4 envs there (minibatches of 192 env-steps: two per epoch, as the preset),
as ``studies/community`` does. Other sizes keep the preset's.

Usage (the other checkout, e.g. the commit before a change, via ``git worktree``)::

    git worktree add /tmp/before HEAD~1
    OMP_NUM_THREADS=1 python benchmarks/bench_community_speed.py --baseline /tmp/before \\
        --sizes 10 100 --rounds 3 --iterations 4 [--override KEY=VALUE ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def sizes_overrides(n: int) -> list[str]:
    """The preset's overrides of one benchmark point (``env.n_prosumers`` and, at N > 50,
    4 envs with minibatches of 192 env-steps)."""
    extra = [f"env.n_prosumers={n}"]
    if n > 50:
        extra += ["collector.num_envs=4", "optim.minibatch_size=192"]
    return extra


def worker(n: int, iterations: int, overrides: list[str]) -> float:
    """Runs in the child: frames/s of ``iterations`` training iterations."""
    import torch

    # the trainer's frames/s timed as the trainer-overhead benchmark times it (this folder
    # is the script's, first on sys.path)
    from bench_trainer_overhead import _trainer_fps

    import mtmarl
    from mtmarl.training import apply_overrides, get_experiment

    expected = Path(os.environ["PYTHONPATH"]).resolve() / "mtmarl"
    if Path(mtmarl.__file__).resolve().parent != expected:
        raise SystemExit(f"imported mtmarl from {mtmarl.__file__}, expected {expected}")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg = apply_overrides(
        get_experiment("community").config,
        [
            *sizes_overrides(n),
            f"collector.iterations={iterations}",
            "eval.episodes=1",
            "eval.interval=1000",
            "eval.keep_best=false",
            "run.progress=false",
            *overrides,
        ],
    )
    return _trainer_fps(cfg, iterations)


def run_point(checkout: Path, n: int, iterations: int, overrides: list[str]) -> float:
    """frames/s of one fresh subprocess importing ``mtmarl`` from ``checkout``."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        str(n),
        "--iterations",
        str(iterations),
        *(f"--override={o}" for o in overrides),
    ]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=checkout)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="the other checkout (its repository root)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--override", action="append", default=[], help="KEY=VALUE, both sides")
    parser.add_argument("--json", type=Path, help="write the points here")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.iterations < 3:
        parser.error(f"--iterations must be >= 3 (warm-up, timed, final), got {args.iterations}")
    if args.worker is not None:
        print(worker(args.worker, args.iterations, args.override))
        return
    if args.baseline is None or not (args.baseline / "mtmarl" / "__init__.py").is_file():
        parser.error(f"--baseline must be a checkout of mtmarl, got {args.baseline}")
    points = []
    for n in args.sizes:
        pairs = []
        for r in range(args.rounds):
            new = run_point(HERE, n, args.iterations, args.override)
            old = run_point(args.baseline.resolve(), n, args.iterations, args.override)
            pairs.append((new, old))
            print(
                f"N={n} round {r}: this {new:.0f} frames/s, baseline {old:.0f}, "
                f"ratio {new / old:.2f}",
                flush=True,
            )
        ratios = [a / b for a, b in pairs]
        point = {
            "n": n,
            "this_fps": statistics.median(a for a, _ in pairs),
            "baseline_fps": statistics.median(b for _, b in pairs),
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "rounds": args.rounds,
        }
        points.append(point)
        print(
            f"N={n}: this {point['this_fps']:.0f} frames/s, baseline {point['baseline_fps']:.0f}; "
            f"ratio median {point['ratio_median']:.2f} (min {min(ratios):.2f}, "
            f"max {max(ratios):.2f})",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(points, indent=1) + "\n")


if __name__ == "__main__":
    main()
