"""Building energy management (seed 004, V-B): learned variants vs rule-based vs a model-based
reference, on the same evaluation episodes.

1. Trains ``mtmarl train building variant=V seed=S`` for every variant and seed (same frame
   budget: the preset's), in parallel worker processes; finished runs are reused, interrupted
   ones resumed.
2. Evaluates every method deterministically on the same ``--episodes`` evaluation episodes
   (one seeded ``BuildingEnv``; the start states depend only on its seed):

   * ``random``: uniform actions through the hold transform;
   * ``rule-based``: :class:`~mtmarl.envs.building.RuleBasedPolicy`;
   * ``model-based reference``: :func:`~mtmarl.envs.building.plan_open_loop`, each episode's
     whole action sequence optimised over the env's own model with perfect foresight,
     initialised at the rule-based actions -- what a perfect learner would approach;
   * the learned policies (deterministic mode), per seed.

3. Writes ``OUT/runs.json`` (every number), ``OUT/results.md`` (the table: mean episode reward,
   share of the rule-based -> reference gap closed, power-tracking RMSE in kW, comfort
   violation in K min) and ``OUT/episode_phasic.png`` (reference vs achieved power, the agents'
   actions and the zone temperatures over one evaluation episode of the phasic policy).

Usage (the committed results were produced with exactly this)::

    python studies/building/results.py --out studies/building/results --workers 2
    python studies/building/results.py --algorithm coma --out studies/building/results_coma --workers 2

``--algorithm coma`` trains COMA's variants (``phasic4``: PFNN period 4) with the preset's COMA
settings (``Experiment.config_for("coma")``: 5 discrete action levels per agent).

``--quick`` shrinks everything for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

VARIANTS = ("basic", "recurrent", "onehot", "phasic")
#: the variants per algorithm; ``phasic4`` is the paper's "Phasic COMA (4)": PFNN period 4
ALGORITHM_VARIANTS = {"mappo": VARIANTS, "coma": (*VARIANTS, "phasic4")}
#: variant labels that are a variant plus overrides
LABELS = {"phasic4": ("phasic", ("model.pfnn_period=4",))}
EVAL_SEED = 123_457


def run_one(job: dict) -> dict:
    """Train one variant/seed in this process (resuming if a checkpoint exists)."""
    import torch

    torch.set_num_threads(1)
    from mtmarl.training import apply_overrides, get_experiment, train

    variant, extra = LABELS.get(job["variant"], (job["variant"], ()))
    # the preset's settings for the algorithm (COMA: 5 discrete action levels, lambda 0.8)
    config = apply_overrides(
        get_experiment("building").config_for(job["algorithm"]),
        [
            f"variant={variant}",
            f"seed={job['seed']}",
            "run.progress=false",
            *extra,
            *job["overrides"],
        ],
    )
    run_dir = Path(job["run_dir"])
    if (run_dir / "eval.json").exists():
        return {"variant": job["variant"], "seed": job["seed"], "wall_s": None}
    start = time.perf_counter()
    train(config, run_dir=run_dir, resume=(run_dir / "checkpoints" / "last.pt").exists())
    return {"variant": job["variant"], "seed": job["seed"], "wall_s": time.perf_counter() - start}


def _rollout(env, policy, steps: int):
    import torch
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        return env.rollout(steps, policy, auto_reset=True, break_when_any_done=False)


def _metrics(rollout, env) -> dict:
    from mtmarl.envs.building import building_episode_metrics

    m = building_episode_metrics(rollout, comfort_band=env.base_env.comfort_band)
    return {k: v.tolist() for k, v in m.items()}


def evaluate_all(args, jobs: list[dict]) -> dict:
    """Every method on the same evaluation episodes; returns per-episode metrics."""
    import torch

    torch.set_num_threads(1)  # 2 threads stall on tiny kernels when the cores are busy
    from mtmarl.envs.building import (
        OpenLoopPolicy,
        RuleBasedPolicy,
        make_building_env,
        plan_open_loop,
    )
    from mtmarl.training import Trainer, config_from_yaml

    horizon = 30
    out: dict[str, dict] = {}

    def fresh(phase_mode=None):
        return make_building_env(phase_mode=phase_mode, num_envs=args.episodes, seed=EVAL_SEED)

    env = fresh()
    torch.manual_seed(0)
    out["random"] = _metrics(_rollout(env, None, horizon), env)
    env = fresh()
    rule = _rollout(env, RuleBasedPolicy(env.base_env), horizon)
    out["rule-based"] = _metrics(rule, env)

    env = fresh()
    td0 = env.reset()
    start = time.perf_counter()
    plan = plan_open_loop(
        env.base_env,
        iterations=args.plan_iterations,
        lr=args.plan_lr,
        initial_actions=rule["agents", "action"][..., 0],
    )
    plan_s = time.perf_counter() - start
    policy = OpenLoopPolicy(plan.actions)
    with torch.no_grad():
        replay = env.rollout(horizon, policy, auto_reset=False, tensordict=td0)
    out["model-based reference"] = _metrics(replay, env)
    out["model-based reference"]["plan_seconds"] = plan_s
    out["model-based reference"]["iterations"] = args.plan_iterations

    traces = {"rule-based": rule, "model-based reference": replay}
    for job in jobs:
        run_dir = Path(job["run_dir"])
        config = config_from_yaml((run_dir / "config.yaml").read_text())
        trainer = Trainer(config, run_dir=run_dir, resume=True)
        env = trainer.make_env(args.episodes, seed=EVAL_SEED)
        rollout = _rollout(env, trainer.actor, horizon)
        key = f"{job['variant']} {job['algorithm']} seed {job['seed']}"
        out[key] = _metrics(rollout, env)
        if (
            job["variant"] == "phasic"
            and job["seed"] == args.seeds[0]
            and job["algorithm"] == "mappo"
        ):
            traces["phasic MAPPO"] = rollout
    out["_traces"] = traces
    return out


def _mean(values) -> float:
    return sum(values) / len(values)


def _ci(values) -> float:
    n = len(values)
    if n < 2:
        return float("nan")
    m = _mean(values)
    return 1.96 * math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n)


def summarise(results: dict, seeds: list[int], algorithm: str) -> tuple[str, dict]:
    rule = _mean(results["rule-based"]["return"])
    ref = _mean(results["model-based reference"]["return"])
    rows: dict[str, dict] = {}
    for name in ("random", "rule-based", "model-based reference"):
        r = results[name]
        rows[name] = {
            "return": _mean(r["return"]),
            "return_ci": _ci(r["return"]),
            "rmse": _mean(r["tracking_rmse_kw"]),
            "mae": _mean(r["tracking_mae_kw"]),
            "comfort": _mean(r["comfort_degree_minutes"]),
            "seeds": "-",
        }
    for variant in ALGORITHM_VARIANTS[algorithm]:
        keys = [f"{variant} {algorithm} seed {s}" for s in seeds]
        keys = [k for k in keys if k in results]
        if not keys:
            continue
        per_seed = [_mean(results[k]["return"]) for k in keys]
        label = "phasic (4)" if variant == "phasic4" else variant
        rows[f"{label} {algorithm.upper()}"] = {
            "return": _mean(per_seed),
            "return_ci": _ci(per_seed),
            "rmse": _mean([_mean(results[k]["tracking_rmse_kw"]) for k in keys]),
            "mae": _mean([_mean(results[k]["tracking_mae_kw"]) for k in keys]),
            "comfort": _mean([_mean(results[k]["comfort_degree_minutes"]) for k in keys]),
            "seeds": ", ".join(f"{v:.2f}" for v in per_seed),
        }
    lines = [
        "| method | mean episode reward (95% CI) | gap closed (rule -> reference) | tracking "
        "RMSE (kW) | tracking MAE (kW) | comfort violation (K min / episode) | per-seed reward |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        gap = (row["return"] - rule) / (ref - rule) if ref != rule else float("nan")
        row["gap_closed"] = gap
        ci = "" if math.isnan(row["return_ci"]) else f" +- {row['return_ci']:.2f}"
        lines.append(
            f"| {name} | {row['return']:.2f}{ci} | {100 * gap:.0f}% | {row['rmse']:.2f} | "
            f"{row['mae']:.2f} | "
            f"{row['comfort']:.2f} | {row['seeds']} |"
        )
    return "\n".join(lines), rows


def plot_episode(traces: dict, path: Path, episode: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phasic = traces.get("phasic MAPPO")
    main = phasic if phasic is not None else traces["rule-based"]
    minutes = range(main.shape[-1])
    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    ax = axes[0]
    ax.step(
        minutes,
        main["building", "reference_power"][episode, :, 0],
        where="post",
        color="k",
        lw=2,
        label="reference $P_{ref}$",
    )
    styles = {"phasic MAPPO": "C0", "rule-based": "C1", "model-based reference": "C2"}
    for name, color in styles.items():
        if name in traces:
            ax.step(
                minutes,
                traces[name]["next", "building", "power"][episode, :, 0],
                where="post",
                color=color,
                label=name,
            )
    ax.set_ylabel("total power (kW)")
    ax.legend(fontsize=8)
    ax.set_title(f"one evaluation episode ({'phasic MAPPO' if phasic is not None else 'rule'})")
    ax = axes[1]
    executed = main["next", "agents", "prev_action"][episode, :, :, 0]
    names = [f"zone {z + 1} flow" for z in range(5)] + ["chiller $T_{dis}$", "battery power"]
    for n in range(7):
        ax.step(minutes, executed[:, n], where="post", label=names[n], lw=2 if n >= 5 else 1)
    ax.set_ylabel("executed action ([-1, 1])")
    ax.legend(fontsize=7, ncol=4)
    ax = axes[2]
    temp = main["next", "building", "zone_temperature"][episode]
    for z in range(5):
        ax.plot(minutes, temp[:, z], label=f"zone {z + 1}")
    ax.axhspan(22.0, 28.0, color="green", alpha=0.1, label="comfort band")
    ax.set_ylabel("zone temperature (deg C)")
    ax.set_xlabel("minute of the episode")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _command_line(args: argparse.Namespace) -> str:
    parts = []
    for key, value in vars(args).items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts += [flag] if value else []
        elif isinstance(value, list):
            parts += [flag, *map(str, value)] if value else []
        else:
            parts += [flag, str(value)]
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("studies/building/results"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algorithm", default="mappo", choices=sorted(ALGORITHM_VARIANTS))
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        choices=ALGORITHM_VARIANTS["coma"],
        help="default: all of the algorithm's",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=64, help="evaluation episodes")
    parser.add_argument("--plan-iterations", type=int, default=500)
    parser.add_argument("--plan-lr", type=float, default=0.05)
    parser.add_argument("--overrides", nargs="*", default=[], help="extra key=value for training")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.overrides += ["collector.iterations=2", "collector.num_envs=8", "eval.episodes=8"]
        args.episodes, args.plan_iterations = 8, 10
    args.out.mkdir(parents=True, exist_ok=True)
    variants = args.variants or list(ALGORITHM_VARIANTS[args.algorithm])
    prefix = "" if args.algorithm == "mappo" else f"{args.algorithm}_"
    jobs = [
        {
            "algorithm": args.algorithm,
            "variant": v,
            "seed": s,
            "overrides": args.overrides,
            "run_dir": str(args.out / "runs" / f"{prefix}{v}_seed{s}"),
        }
        for s in args.seeds
        for v in variants
    ]
    start = time.perf_counter()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        timings = list(pool.map(run_one, jobs))
    train_s = time.perf_counter() - start
    results = evaluate_all(args, jobs)
    traces = results.pop("_traces")
    table, rows = summarise(results, args.seeds, args.algorithm)
    plot_episode(traces, args.out / "episode_phasic.png")
    record = {
        "command": "python studies/building/results.py " + _command_line(args),
        # runs finished by an earlier invocation are reused and take ~0 s here
        "train_wall_s_this_invocation": train_s,
        "timings": timings,
        "summary": rows,
        "per_episode": results,
    }
    (args.out / "runs.json").write_text(json.dumps(record, indent=1))
    (args.out / "results.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
