"""MoveBoxEnv stepping speed, batched vs one environment at a time, in one process.

Both sides run the usual stack with both timescale transforms, ``make_movebox_env("easy",
phase_mode="phase")`` (``MoveBoxEnv`` + ``StepCounter`` + ``ActionFrequencyMask`` +
``PhaseEncoding``), through the collector's path: ``env.rand_action(td)`` then
``env.step_and_maybe_reset(td)``, auto-resets included. Throughput is counted in agent-steps
(``num_envs * 2`` per step).

* batched: ``num_envs`` environments (default 4096) in one tensor program;
* single: ``num_envs=1``, the cost profile of a Python-loop gridworld.

The two are timed in interleaved rounds (batched, single, batched, single, ...) and the median
per round is reported, so that load from other processes hits both alike. The raw environment
without transforms is timed as well, for reference.

Usage::

    python benchmarks/bench_movebox.py [--num-envs 4096] [--steps 200] [--single-steps 2000]
                                       [--rounds 7] [--device cpu] [--phase-mode phase]
                                       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torchrl.envs import EnvBase

from mtmarl.envs import MoveBoxEnv, make_movebox_env


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name"), or the platform's best guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def agent_steps_per_s(env: EnvBase, td, steps: int) -> tuple[float, object]:
    """Agent-steps per second over ``steps`` rand_action + step_and_maybe_reset calls."""
    n_agents = env.full_action_spec["agents", "action"].shape[-1]
    sync = torch.cuda.synchronize if env.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        td = env.rand_action(td)
        _, td = env.step_and_maybe_reset(td)
    sync()
    elapsed = time.perf_counter() - start
    return steps * env.batch_size.numel() * n_agents / elapsed, td


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=4096, help="batched side's num_envs")
    parser.add_argument("--steps", type=int, default=200, help="batched steps per round")
    parser.add_argument("--single-steps", type=int, default=2000, help="num_envs=1 steps/round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", type=str, default="cpu")
    parser.add_argument(
        "--phase-mode", default="phase", help="PhaseEncoding mode, or 'none' to leave it out"
    )
    parser.add_argument("--json", type=str, default=None, help="write results to this file")
    args = parser.parse_args()

    torch.manual_seed(0)
    phase = None if args.phase_mode == "none" else args.phase_mode
    stack = {"phase_mode": phase, "device": args.device, "seed": 0}
    envs = {
        "batched": make_movebox_env("easy", num_envs=args.num_envs, **stack),
        "single": make_movebox_env("easy", num_envs=1, **stack),
        "raw": MoveBoxEnv.easy(num_envs=args.num_envs, device=args.device, seed=0),
    }
    steps = {"batched": args.steps, "single": args.single_steps, "raw": args.steps}
    tds = {name: env.reset() for name, env in envs.items()}
    for name, env in envs.items():  # warm-up
        _, tds[name] = agent_steps_per_s(env, tds[name], max(steps[name] // 10, 5))

    rates: dict[str, list[float]] = {name: [] for name in envs}
    for _ in range(args.rounds):
        for name, env in envs.items():
            rate, tds[name] = agent_steps_per_s(env, tds[name], steps[name])
            rates[name].append(rate)
    ratio = statistics.median(b / s for b, s in zip(rates["batched"], rates["single"]))

    results = {
        "machine": cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": args.device,
        "num_envs": args.num_envs,
        "phase_mode": args.phase_mode,
        "rounds": args.rounds,
        "batched_agent_steps_per_s": statistics.median(rates["batched"]),
        "single_agent_steps_per_s": statistics.median(rates["single"]),
        "raw_env_agent_steps_per_s": statistics.median(rates["raw"]),
        "speedup_batched_vs_single": ratio,
    }
    print(
        f"MoveBoxEnv easy + StepCounter + ActionFrequencyMask + PhaseEncoding({args.phase_mode}), "
        f"rand_action + "
        f"step_and_maybe_reset, {args.device}, {torch.get_num_threads()} threads, "
        f"{results['machine']}"
    )
    print(
        f"  batched ({args.num_envs} envs): {results['batched_agent_steps_per_s'] / 1e6:.2f} M "
        f"agent-steps/s (target >= 2 M)"
    )
    print(
        f"  single (1 env):          {results['single_agent_steps_per_s'] / 1e3:.2f} k "
        f"agent-steps/s"
    )
    print(f"  ratio batched / single:  {ratio:.0f}x (target >= 50x)")
    print(
        f"  raw env, no transforms ({args.num_envs} envs): "
        f"{results['raw_env_agent_steps_per_s'] / 1e6:.2f} M agent-steps/s"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
