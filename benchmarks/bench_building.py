"""BuildingEnv stepping speed: the usual stack at many parallel environments, in one process.

Times ``make_building_env(phase_mode=...)`` (``BuildingEnv`` + ``StepCounter`` +
``ActionFrequencyMask(hold)`` [+ ``PhaseEncoding``]) through the collector's path,
``env.rand_action(td)`` then ``env.step_and_maybe_reset(td)`` (auto-resets included),
and the raw ``BuildingEnv`` the same way. Throughput is in agent-steps/s
(``num_envs * 7`` per step); the median over interleaved rounds is reported.

Usage::

    python benchmarks/bench_building.py [--num-envs 4096] [--steps 100] [--rounds 5]
                                        [--threads 1] [--device cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torchrl.envs import EnvBase

from mtmarl.envs.building import BuildingEnv, make_building_env


def agent_steps_per_s(env: EnvBase, td, steps: int) -> tuple[float, object]:
    """Agent-steps per second over ``steps`` rand_action + step_and_maybe_reset calls."""
    sync = torch.cuda.synchronize if env.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        td = env.rand_action(td)
        _, td = env.step_and_maybe_reset(td)
    sync()
    elapsed = time.perf_counter() - start
    return steps * env.batch_size.numel() * BuildingEnv.N_AGENTS / elapsed, td


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=100, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", type=str, default="cpu")
    parser.add_argument("--json", type=str, default=None, help="write results to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    n, dev = args.num_envs, args.device
    envs = {
        "stack": make_building_env(num_envs=n, device=dev, seed=0),
        "stack + PhaseEncoding(onehot)": make_building_env(
            phase_mode="onehot", num_envs=n, device=dev, seed=0
        ),
        "raw BuildingEnv": BuildingEnv(num_envs=n, device=dev, seed=0),
    }
    tds = {name: env.reset() for name, env in envs.items()}
    for name, env in envs.items():  # warm-up
        _, tds[name] = agent_steps_per_s(env, tds[name], max(args.steps // 10, 5))
    results: dict[str, list[float]] = {name: [] for name in envs}
    for _ in range(args.rounds):
        for name, env in envs.items():
            rate, tds[name] = agent_steps_per_s(env, tds[name], args.steps)
            results[name].append(rate)
    summary = {name: statistics.median(rates) for name, rates in results.items()}
    print(f"num_envs={n}, device={dev}, threads={args.threads}, torch {torch.__version__}")
    for name, rate in summary.items():
        ms = n * BuildingEnv.N_AGENTS / rate * 1e3
        print(f"{name:32s} {rate / 1e6:6.2f} M agent-steps/s  ({ms:.2f} ms per batched step)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "agent_steps_per_s": summary}, f, indent=2)


if __name__ == "__main__":
    main()
