"""Reproduce (and try to beat) Table I of seed 004 on Move Box.

Trains every (difficulty, algorithm, variant, seed) combination with the same frame budget per
difficulty, in parallel worker processes, then writes

* ``OUT/runs.json``        -- one record per run (final eval, frames to first 100% eval, curve);
* ``OUT/results.md``       -- the table (success %, mean return, frames to first 100% eval);
* ``OUT/curves_<difficulty>.png`` -- eval success and return against frames, mean over seeds.

Usage (the committed results were produced with exactly this)::

    python studies/movebox/results.py --out studies/movebox/results --workers 2

``--seeds-mappo 5 --seeds-coma 5 --coma-budget 5`` are the defaults (COMA's budget: 5x the
preset's iterations, its settings from ``Experiment.config_for("coma")``); ``--quick`` shrinks everything for a smoke
test. A run counts as a *success* when its final deterministic evaluation (100 episodes) solves
every episode (100%), as in the paper's Table I, which reports the share of training seeds that
solve the task.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

VARIANTS = ("basic", "recurrent", "onehot", "phasic")
#: COMA's variants, as the paper runs them; ``phasic4`` is "Phasic COMA (4)": the PFNN with
#: its own period 4 (``model.pfnn_period=4``) instead of the env's L
COMA_VARIANTS = ("basic", "recurrent", "onehot", "phasic", "phasic4")
#: variant labels that are a variant plus overrides
LABELS = {"phasic4": ("phasic", ("model.pfnn_period=4",))}


def run_one(job: dict) -> dict:
    """Train one configuration in this process; return a summary record."""
    import torch

    torch.set_num_threads(1)
    from mtmarl.training import apply_overrides, get_experiment, train

    exp = get_experiment(f"movebox-{job['difficulty']}")
    variant, extra = LABELS.get(job["variant"], (job["variant"], ()))
    overrides = [
        f"variant={variant}",
        f"seed={job['seed']}",
        "run.progress=false",
        *extra,
        *job["overrides"],
    ]
    # the preset's settings for the algorithm (e.g. COMA's lambda and learning rate)
    config = apply_overrides(exp.config_for(job["algorithm"]), overrides)
    if job.get("budget_factor", 1) != 1:
        iterations = config.collector.iterations * job["budget_factor"]
        config = apply_overrides(config, [f"collector.iterations={iterations}"])
    name = config.run_name if variant == job["variant"] else f"{config.run_name}-{job['variant']}"
    run_dir = Path(job["out"]) / "runs" / name
    start = time.perf_counter()
    result = train(config, run_dir=run_dir, resume=(run_dir / "checkpoints" / "last.pt").exists())
    wall = time.perf_counter() - start
    curve = [
        {k: h[k] for k in ("frames", "eval/return", "eval/success_rate") if k in h}
        for h in result.history
        if "eval/success_rate" in h
    ]
    first_full = next((c["frames"] for c in curve if c["eval/success_rate"] >= 1.0), None)
    return {
        **{k: job[k] for k in ("difficulty", "algorithm", "variant", "seed")},
        "frames": result.frames,
        "wall_s": wall,
        "final_success_rate": result.evaluation.success_rate,
        "final_return": result.evaluation.return_mean,
        "frames_to_first_full_success": first_full,
        "curve": curve,
    }


def summarise(records: list[dict]) -> str:
    rows = {}
    for r in records:
        rows.setdefault((r["difficulty"], r["algorithm"], r["variant"]), []).append(r)
    lines = [
        "| difficulty | algorithm | variant | seeds | solved seeds (100% eval) | mean final "
        "success | mean final return | frames to first 100% eval (median; seeds that reached it) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (diff, algo, variant), rs in sorted(rows.items()):
        solved = [r for r in rs if r["final_success_rate"] >= 1.0]
        firsts = sorted(
            r["frames_to_first_full_success"] for r in rs if r["frames_to_first_full_success"]
        )
        median = firsts[len(firsts) // 2] if firsts else None
        lines.append(
            f"| {diff} | {algo} | {variant} | {len(rs)} | "
            f"{len(solved)}/{len(rs)} ({100 * len(solved) / len(rs):.0f}%) | "
            f"{100 * sum(r['final_success_rate'] for r in rs) / len(rs):.0f}% | "
            f"{sum(r['final_return'] for r in rs) / len(rs):.1f} | "
            f"{f'{median} ({len(firsts)}/{len(rs)})' if median is not None else '-'} |"
        )
    return "\n".join(lines)


def plot(records: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    for diff in sorted({r["difficulty"] for r in records}):
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        groups = {}
        for r in records:
            if r["difficulty"] == diff:
                groups.setdefault((r["algorithm"], r["variant"]), []).append(r)
        for (algo, variant), rs in sorted(groups.items()):
            frames = np.array([c["frames"] for c in rs[0]["curve"]])
            n = min(len(r["curve"]) for r in rs)
            succ = np.array([[c["eval/success_rate"] for c in r["curve"][:n]] for r in rs])
            ret = np.array([[c["eval/return"] for c in r["curve"][:n]] for r in rs])
            style = "-" if algo == "mappo" else "--"
            label = f"{algo} {variant} ({len(rs)} seeds)"
            axes[0].plot(frames[:n], 100 * succ.mean(0), style, label=label)
            axes[1].plot(frames[:n], ret.mean(0), style, label=label)
        axes[0].set_ylabel("eval success (%)")
        axes[1].set_ylabel("eval return")
        for ax in axes:
            ax.set_xlabel("frames")
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=7)
        fig.suptitle(f"Move Box {diff}: mean over seeds")
        fig.tight_layout()
        fig.savefig(out / f"curves_{diff}.png", dpi=100)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="studies/movebox/results")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--difficulties", nargs="+", default=["easy", "hard"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--coma-variants", nargs="+", default=list(COMA_VARIANTS))
    parser.add_argument("--seeds-mappo", type=int, default=5, help="0 re-runs COMA only")
    parser.add_argument("--seeds-coma", type=int, default=5)
    parser.add_argument(
        "--coma-budget",
        type=int,
        default=5,
        help="COMA's iterations as a multiple of the preset's (MAPPO's) budget",
    )
    parser.add_argument(
        "--override", action="append", default=[], help="extra key=value for every run"
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test budget")
    parser.add_argument(
        "--report", action="store_true", help="only rebuild the table and figures from runs.json"
    )
    args = parser.parse_args()

    out = Path(args.out)
    if args.report:
        records = json.loads((out / "runs.json").read_text())
        (out / "results.md").write_text(summarise(records) + "\n")
        plot(records, out)
        print(summarise(records))
        return
    out.mkdir(parents=True, exist_ok=True)
    overrides = list(args.override)
    if args.quick:
        overrides += ["collector.iterations=2", "eval.episodes=8", "eval.interval=1"]
    # (algorithm, variants, seeds, extra job fields): MAPPO at the presets' budgets, COMA
    # at --coma-budget times them
    plans = [
        ("mappo", args.variants, args.seeds_mappo, {}),
        ("coma", args.coma_variants, args.seeds_coma, {"budget_factor": args.coma_budget}),
    ]
    jobs = [
        {
            "difficulty": diff,
            "algorithm": algorithm,
            "variant": variant,
            "seed": seed,
            "overrides": overrides,
            **extra,
            "out": str(out),
        }
        for diff in args.difficulties
        for algorithm, variants, seeds, extra in plans
        for variant in variants
        for seed in range(seeds)
    ]
    start = time.perf_counter()
    records = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for record in pool.map(run_one, jobs):
            records.append(record)
            print(
                f"{record['difficulty']:>4} {record['algorithm']:>5} {record['variant']:>9} "
                f"seed {record['seed']}: success {100 * record['final_success_rate']:.0f}% "
                f"return {record['final_return']:.1f} ({record['wall_s']:.0f} s)",
                flush=True,
            )
    # merge with earlier records (a partial re-run replaces only its own rows)
    runs_file = out / "runs.json"
    if runs_file.exists():
        fresh = {(r["difficulty"], r["algorithm"], r["variant"], r["seed"]) for r in records}
        old = json.loads(runs_file.read_text())
        records = [
            r
            for r in old
            if (r["difficulty"], r["algorithm"], r["variant"], r["seed"]) not in fresh
        ] + records
    runs_file.write_text(json.dumps(records, indent=1))
    table = summarise(records)
    (out / "results.md").write_text(table + "\n")
    plot(records, out)
    print(table)
    print(f"total wall-clock: {time.perf_counter() - start:.0f} s with {args.workers} workers")


if __name__ == "__main__":
    main()
