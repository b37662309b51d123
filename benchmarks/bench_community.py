"""CommunityEnergyEnv stepping speed at N = 10 and N = 100 prosumers.

The environment is stepped through the collector's path, ``env.rand_action(td)`` then
``env.step_and_maybe_reset(td)`` (auto-resets at the 96-step horizon included), and its raw
``_step`` (physics, market, observation, no torchrl bookkeeping) is timed as well. Throughput
is reported in env-steps/s (``num_envs`` communities per step) and agent-steps/s
(``num_envs * n_prosumers``). Settings are timed in interleaved rounds and the median per
round is reported, so that load from other processes hits all of them alike.

Usage::

    python benchmarks/bench_community.py [--num-envs 64] [--prosumers 10 100] [--steps 200]
                                         [--rounds 5] [--threads 1] [--device cpu]
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

from mtmarl.envs.community import CommunityEnergyEnv


def cpu_model() -> str:
    """The CPU's model name, or the platform's best guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def env_steps_per_s(env: CommunityEnergyEnv, td, steps: int, *, raw: bool) -> tuple[float, object]:
    """Env-steps per second over ``steps`` steps (collector path, or raw ``_step``)."""
    sync = torch.cuda.synchronize if env.device.type == "cuda" else (lambda: None)
    if raw:
        action = env.rand_action(td.clone())
        env.reset()
    sync()
    start = time.perf_counter()
    for i in range(steps):
        if raw:
            env._step(action)
            if (i + 1) % env.HORIZON == 0:
                env._reset(None)
        else:
            td = env.rand_action(td)
            _, td = env.step_and_maybe_reset(td)
    sync()
    elapsed = time.perf_counter() - start
    if raw:
        td = env.reset()
    return steps * env.num_envs / elapsed, td


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--prosumers", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--steps", type=int, default=200, help="steps per round and setting")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", type=str, default="cpu")
    parser.add_argument("--json", type=str, default=None, help="write results to this file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    envs = {
        n: CommunityEnergyEnv(n_prosumers=n, num_envs=args.num_envs, device=args.device, seed=0)
        for n in args.prosumers
    }
    tds = {n: env.reset() for n, env in envs.items()}
    settings = [(n, raw) for n in envs for raw in (False, True)]
    for n, raw in settings:  # warm-up
        _, tds[n] = env_steps_per_s(envs[n], tds[n], 20, raw=raw)
    rates: dict[tuple[int, bool], list[float]] = {s: [] for s in settings}
    for _ in range(args.rounds):
        for n, raw in settings:
            rate, tds[n] = env_steps_per_s(envs[n], tds[n], args.steps, raw=raw)
            rates[(n, raw)].append(rate)

    results = {
        "machine": cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": args.device,
        "num_envs": args.num_envs,
        "rounds": args.rounds,
        "settings": [
            {
                "n_prosumers": n,
                "path": "raw _step" if raw else "rand_action + step_and_maybe_reset",
                "env_steps_per_s": statistics.median(rates[(n, raw)]),
                "agent_steps_per_s": statistics.median(rates[(n, raw)]) * n,
            }
            for n, raw in settings
        ],
    }
    print(
        f"CommunityEnergyEnv, {args.num_envs} envs, {args.device}, "
        f"{results['threads']} threads, {results['machine']}"
    )
    for row in results["settings"]:
        print(
            f"  N={row['n_prosumers']:>4}  {row['path']:<36} "
            f"{row['env_steps_per_s'] / 1e3:8.2f} k env-steps/s  "
            f"{row['agent_steps_per_s'] / 1e6:6.2f} M agent-steps/s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
