"""How MATPPO's training cost grows with the number of prosumers N: Transformer vs MLP critic.

One command::

    OMP_NUM_THREADS=1 python benchmarks/bench_community_scaling.py

For every N in ``--sizes`` (default 10 50 100 200) and both critics, a fresh Python
process builds the ``community`` preset's trainer (LSTM encoder actor, ``model.hidden_size=32``
as in ``studies/community/results.py``) with ``model.critic=transformer`` or ``model.critic=mlp``,
the same ``--num-envs`` envs x 96 steps per iteration, and runs ``--iterations``
iterations. Reported per point: wall-clock per training iteration (collection + GAE + PPO
update; the median over the iterations after the first), the collection part, the peak
resident memory of the process (``resource.getrusage`` ``ru_maxrss``), the critic's input
features (the MLP reads the flat global state, ``10 N + 12``; the Transformer reads 10
features per agent token plus a 12-feature aggregate token, whatever N) and its parameter
count. Writes ``benchmarks/results/community/scaling.json`` and ``scaling.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def measure(n: int, critic: str, num_envs: int, iterations: int) -> dict:
    """Runs in the child process."""
    import torch

    from mtmarl.training import Trainer, apply_overrides, get_experiment

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg = apply_overrides(
        get_experiment("community").config,
        [
            f"env.n_prosumers={n}",
            f"model.critic={critic}",
            "model.hidden_size=32",
            f"collector.num_envs={num_envs}",
            f"collector.iterations={iterations}",
            f"optim.minibatch_size={num_envs * 96 // 2}",
            "eval.episodes=1",
            "eval.interval=1000",
            "run.progress=false",
        ],
    )
    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(cfg, run_dir=d)
        history = trainer.train().history
    frames = num_envs * 96
    after_first = history[1:] or history
    if critic == "mlp":
        inputs = trainer.state_dim
    else:
        spec = trainer.observation_spec
        inputs = spec["agents", "critic_observation"].shape[-1] + spec["aggregate"].shape[-1]
    return {
        "n": n,
        "critic": critic,
        "num_envs": num_envs,
        "iterations": iterations,
        "s_per_iteration": statistics.median(frames / h["time/fps"] for h in after_first),
        "collect_s": statistics.median(frames / h["time/collect_fps"] for h in after_first),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "critic_input_features": int(inputs),
        "critic_parameters": sum(p.numel() for p in trainer.critic.parameters()),
    }


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(12, 3.6))
    for critic, style in (("transformer", "o-"), ("mlp", "s--")):
        pts = sorted((p for p in points if p["critic"] == critic), key=lambda p: p["n"])
        ns = [p["n"] for p in pts]
        ax1.plot(ns, [p["s_per_iteration"] for p in pts], style, label=f"{critic} critic")
        ax2.plot(ns, [p["peak_rss_mb"] for p in pts], style, label=f"{critic} critic")
        ax3.plot(ns, [p["critic_input_features"] for p in pts], style, label=f"{critic} critic")
    if points:
        n0 = min(p["n"] for p in points)
        base = [p for p in points if p["n"] == n0 and p["critic"] == "transformer"]
        if base:
            ns = sorted({p["n"] for p in points})
            ax1.plot(
                ns,
                [base[0]["s_per_iteration"] * n / n0 for n in ns],
                ":",
                c="grey",
                label="linear in N (from transformer)",
            )
    ax1.set(xlabel="prosumers N", ylabel="s / training iteration", title="wall-clock")
    ax2.set(xlabel="prosumers N", ylabel="peak RSS (MB)", title="memory")
    ax3.set(xlabel="prosumers N", ylabel="features", title="critic input size")
    for ax in (ax1, ax2, ax3):
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100, 200])
    parser.add_argument("--critics", nargs="+", default=["transformer", "mlp"])
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/community"))
    parser.add_argument("--worker", nargs=2, metavar=("N", "CRITIC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = measure(int(args.worker[0]), args.worker[1], args.num_envs, args.iterations)
        print("RESULT " + json.dumps(result))
        return
    points = []
    for n in args.sizes:
        for critic in args.critics:
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                str(n),
                critic,
                "--num-envs",
                str(args.num_envs),
                "--iterations",
                str(args.iterations),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            point = json.loads(out.split("RESULT ", 1)[1])
            points.append(point)
            print(
                f"N={n:4d} {critic:11s} {point['s_per_iteration']:7.2f} s/it "
                f"(collect {point['collect_s']:.2f}) {point['peak_rss_mb']:7.0f} MB "
                f"critic input {point['critic_input_features']:5d} "
                f"params {point['critic_parameters']}",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scaling.json").write_text(json.dumps(points, indent=1))
    plot(points, args.out / "scaling.png")


if __name__ == "__main__":
    main()
