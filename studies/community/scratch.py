"""Community energy trading from scratch: IPPO, MAPPO-MLP and MATPPO at N = 10, 50 and 100.

Question: trained from scratch as the paper trains them (no prior, no KL anchor; running
observation normalisation, the ``community-scratch`` preset's choices: ``common.SCRATCH``),
does MATPPO's Transformer critic beat the plain rule-based controller at N = 10, and an MLP
critic on the concatenated state (MAPPO-MLP) and local critics (IPPO) at N = 50 and 100?

Every run has the same budget, 3.07 M agent-steps (``common.SCRATCH_ITERATIONS``: 200
iterations x 16 days at N = 10, 160 x 4 at N = 50, 80 x 4 at N = 100), 3 seeds; the actor of
each run's best validation evaluation is evaluated on the held-out evaluation community of
``results.py`` (``common``'s protocol), and so is its final iterate.

One process per core, disjoint sizes (about 60 min per size on one core of this machine)::

    OMP_NUM_THREADS=1 python studies/community/scratch.py --sizes 10 100 &
    OMP_NUM_THREADS=1 python studies/community/scratch.py --sizes 50

Each process trains (or resumes, or reloads) its runs under ``results/scratch/runs/``
(git-ignored), keeps each run's record there (``record.json``: KPIs, validation curve) and
then rewrites the report from every record present: ``results/scratch/runs.json`` (records
and curves), ``results.md`` (KPI tables, training time, the targets, the updates' metrics), ``curves.png``
(validation return against agent-steps and against training wall-clock) and
``diagnostics.png`` (policy entropy and approximate KL per iteration). ``--report`` rebuilds
the report from ``runs.json`` alone (no runs needed).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from common import (
    BASELINES,
    BUDGETS,
    RESULTS,
    SCRATCH_ITERATIONS,
    add_seeds_argument,
    baseline_records,
    eval_env,
    learned_record,
    rank,
    run_path,
    scratch_overrides,
    table,
    train_run,
)

from mtmarl.training import evaluate_policy
from mtmarl.training.run_dir import atomic_write_bytes, atomic_write_text

OUT = RESULTS / "scratch"
METHODS = ("IPPO", "MAPPO-MLP", "MATPPO")
#: the controller the N = 10 target is set against, and the curves' reference line
REFERENCE = "rule-based"
#: one colour per method in every panel
COLORS = {m: f"C{i}" for i, m in enumerate(METHODS)}


def validation_curve(history: list[dict]) -> dict:
    """A run's validation returns (``Trainer.history``'s ``eval/return``) against env steps
    and against training wall-clock (the collection and update time of the iterations up to
    each validation, from ``time/fps``; the validations themselves excluded)."""
    elapsed, previous, curve = 0.0, 0, {"frames": [], "return": [], "wall_s": []}
    for h in history:
        elapsed += (h["frames"] - previous) / h["time/fps"]
        previous = h["frames"]
        if "eval/return" in h:
            curve["frames"].append(h["frames"])
            curve["return"].append(h["eval/return"])
            curve["wall_s"].append(round(elapsed, 1))
    return curve


#: the update's logged metrics kept per run (``train_curve``): what says why a run declines
DIAGNOSTICS = ("entropy", "kl_approx", "clip_fraction", "grad_norm", "explained_variance")


def train_curve(history: list[dict]) -> dict:
    """A run's update metrics (``DIAGNOSTICS``, ``Trainer.history``'s ``train/*``) against
    env steps, one row per iteration."""
    curve = {"frames": [h["frames"] for h in history]}
    for name in DIAGNOSTICS:
        curve[name] = [round(h[f"train/{name}"], 4) for h in history]
    return curve


def run_record(name: str, n: int, seed: int, out: Path) -> dict:
    """Train (or resume, or reload) one run and evaluate it: its ``learned_record`` on the
    evaluation episodes, its validation curve and the rule-based controller's return on the
    run's own validation episodes (the curve's reference)."""
    trainer, seconds = train_run(name, n, seed, out, scratch_overrides(n))
    run_dir = run_path(out, name, n, seed)
    cached = run_dir / "record.json"
    if seconds is None and cached.exists():
        return json.loads(cached.read_text())
    cfg = trainer.config
    val_env = trainer.make_env(cfg.eval.episodes, seed=cfg.seed + 10_000)
    reference = evaluate_policy(
        val_env, BASELINES[REFERENCE](val_env), max_steps=trainer.max_episode_steps
    ).return_mean
    env = eval_env(n, BUDGETS[n]["test_episodes"], cfg.variant)
    record, _ = learned_record(
        trainer, name, n, seed, env, None if seconds is None else round(seconds, 1)
    )
    record["curve"] = validation_curve(trainer.history)
    record["curve_reference"] = reference
    record["train_curve"] = train_curve(trainer.history)
    atomic_write_text(cached, json.dumps(record))
    print(n, name, seed, f"return {record['kpi']['return']:.2f}", flush=True)
    return record


def gap(records: list[dict], n: int, a: str, b: str, key: str = "kpi") -> tuple[float, float]:
    """Mean return of ``a`` minus that of ``b`` at size ``n``, and the larger seed std of the
    two (0 for a baseline)."""
    means, stds = [], []
    for m in (a, b):
        values = torch.tensor(
            [r.get(key, r["kpi"])["return"] for r in records if r["n"] == n and r["method"] == m]
        )
        means.append(float(values.mean()))
        stds.append(float(values.std()) if len(values) > 1 else 0.0)
    return means[0] - means[1], max(stds)


def target_lines(records: list[dict]) -> list[str]:
    """The issue's targets, one line each: met when MATPPO's mean return leads by more than
    the larger seed std of the two rows (best validation actors; final iterates in
    brackets)."""
    sizes = {r["n"] for r in records}
    pairs = [(10, REFERENCE)] * (10 in sizes) + [
        (n, m) for n in (50, 100) if n in sizes for m in ("MAPPO-MLP", "IPPO")
    ]
    lines = []
    for n, other in pairs:
        if not any(r["n"] == n and r["method"] == "MATPPO" for r in records):
            continue
        d, s = gap(records, n, "MATPPO", other)
        d_final, s_final = gap(records, n, "MATPPO", other, "kpi_final")
        lines.append(
            f"- N = {n}, MATPPO - {other}: {d:+.2f} (seed std {s:.2f}): "
            f"**{'met' if d > s else 'not met'}** (final iterates: {d_final:+.2f}, "
            f"std {s_final:.2f})"
        )
    return lines


def curves_figure(records: list[dict], path: Path) -> None:
    """Validation return minus the rule-based controller's on the same validation episodes
    (each seed validates on its own community; mean +- std over seeds) against agent-steps
    and against training wall-clock, one column per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["n"] for r in records if "curve" in r})
    fig, axes = plt.subplots(2, len(sizes), figsize=(4.2 * len(sizes), 6.5), squeeze=False)
    for col, n in enumerate(sizes):
        runs = [r for r in records if r["n"] == n and "curve" in r]
        for method in sorted({r["method"] for r in runs}, key=rank):
            mine = [r for r in runs if r["method"] == method]
            length = min(len(r["curve"]["return"]) for r in mine)
            ret = torch.tensor(
                [[v - r["curve_reference"] for v in r["curve"]["return"][:length]] for r in mine]
            )
            mean, std = ret.mean(0), ret.std(0) if len(mine) > 1 else torch.zeros(length)
            steps = torch.tensor(mine[0]["curve"]["frames"][:length]) * n / 1e6
            clock = torch.tensor([r["curve"]["wall_s"][:length] for r in mine]).mean(0) / 60
            for ax, x in ((axes[0, col], steps), (axes[1, col], clock)):
                ax.plot(x, mean, label=method, color=COLORS[method])
                ax.fill_between(x, mean - std, mean + std, color=COLORS[method], alpha=0.2)
        for ax in axes[:, col]:
            ax.axhline(0.0, color="k", ls="--", lw=0.8, label=REFERENCE)
            ax.grid(alpha=0.3)
        axes[0, col].set_title(f"N = {n} prosumers")
        axes[0, col].set_xlabel("agent-steps (M)")
        axes[1, col].set_xlabel("training wall-clock (min, one core)")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"validation return - {REFERENCE}'s")
    axes[0, 0].legend(fontsize=8)
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    """Write a matplotlib figure to ``path`` as a PNG, atomically, and close it."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def diagnostics_figure(records: list[dict], path: Path) -> None:
    """The update's policy entropy and approximate KL (log scale) per iteration (mean over
    seeds) against agent-steps, one column per size: where the validation curves decline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["n"] for r in records if "train_curve" in r})
    if not sizes:
        return
    rows = ("entropy", "kl_approx")
    fig, axes = plt.subplots(len(rows), len(sizes), figsize=(4.2 * len(sizes), 6), squeeze=False)
    for col, n in enumerate(sizes):
        runs = [r for r in records if r["n"] == n and "train_curve" in r]
        for method in sorted({r["method"] for r in runs}, key=rank):
            mine = [r["train_curve"] for r in runs if r["method"] == method]
            length = min(len(c["frames"]) for c in mine)
            steps = torch.tensor(mine[0]["frames"][:length]) * n / 1e6
            for ax, key in zip(axes[:, col], rows, strict=True):
                values = torch.tensor([c[key][:length] for c in mine]).mean(0)
                ax.plot(steps, values, label=method, lw=1, color=COLORS[method])
        for ax, key in zip(axes[:, col], rows, strict=True):
            ax.set_ylabel(key if col == 0 else "")
            ax.grid(alpha=0.3)
        axes[1, col].set_yscale("log")  # from 0.003 while stable to 10 after the collapse
        axes[0, col].set_title(f"N = {n} prosumers")
        axes[-1, col].set_xlabel("agent-steps (M)")
    axes[0, 0].legend(fontsize=8)
    save_figure(fig, path)


def diagnostics_table(records: list[dict], n: int) -> str:
    """Markdown table of the update metrics at size ``n`` per method (mean over seeds):
    policy entropy over the first and the last tenth of the iterations, and approximate KL,
    clip fraction, gradient norm and explained variance over the first and the last
    quarter."""
    runs = [r for r in records if r["n"] == n and "train_curve" in r]
    if not runs:
        return ""

    def window(curve: dict, key: str, start: float, stop: float) -> float:
        values = curve[key]
        a, b = int(len(values) * start), max(int(len(values) * stop), int(len(values) * start) + 1)
        return sum(values[a:b]) / (b - a)

    head = ["entropy, first / last tenth"] + [f"{k}, first / last quarter" for k in DIAGNOSTICS[1:]]
    lines = [
        "| method | " + " | ".join(head) + " |",
        "|---" * (len(head) + 1) + "|",
    ]
    for method in sorted({r["method"] for r in runs}, key=rank):
        mine = [r["train_curve"] for r in runs if r["method"] == method]
        cells = []
        for key, (early, late) in zip(
            DIAGNOSTICS, [((0, 0.1), (0.9, 1))] + [((0, 0.25), (0.75, 1))] * 4, strict=True
        ):
            first = sum(window(c, key, *early) for c in mine) / len(mine)
            last = sum(window(c, key, *late) for c in mine) / len(mine)
            cells.append(f"{first:.3g} / {last:.3g}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(records: list[dict], out: Path) -> None:
    """Write ``runs.json``, ``results.md``, ``curves.png`` and ``diagnostics.png`` from
    ``records``."""
    records = sorted(records, key=lambda r: (r["n"], rank(r["method"]), r["seed"] or 0))
    atomic_write_text(out / "runs.json", json.dumps(records, indent=1))
    parts = [
        "# Community energy trading from scratch: IPPO, MAPPO-MLP and MATPPO\n\n"
        "Generated by `OMP_NUM_THREADS=1 python studies/community/scratch.py` (see its "
        "docstring). No prior, no KL anchor, running observation normalisation "
        "(`common.SCRATCH`). KPIs per evaluation day (noon to noon) on the evaluation "
        "episodes of `results.py` (a community no run trained on); learned methods: the actor "
        "of each run's best validation evaluation, mean ± std over seeds; the final iterates "
        "follow each table.\n\n## Targets\n\nA target is met when MATPPO's mean return leads "
        "by more than the larger seed std of the two rows.\n\n",
        "\n".join(target_lines(records)) + "\n",
    ]
    for n in sorted({r["n"] for r in records}):
        b, iterations = BUDGETS[n], SCRATCH_ITERATIONS[n]
        frames = iterations * b["num_envs"] * 96
        learned = [r for r in records if r["n"] == n and r["seed"] is not None]
        minutes = {
            m: [r["curve"]["wall_s"][-1] / 60 for r in learned if r["method"] == m] for m in METHODS
        }
        timing = ", ".join(f"{m} {sum(v) / len(v):.1f}" for m, v in minutes.items() if v)
        parts.append(
            f"\n## N = {n} prosumers\n\nBudget per run: {iterations} iterations x "
            f"{b['num_envs']} envs x 96 steps = {frames} env steps ({frames * n / 1e6:.2f} M "
            f"agent-steps); {b['test_episodes']} evaluation days. Training time per run "
            f"(collection and update, min, one core): {timing}.\n\n"
            + table(records, n)
            + "\n\nFinal iterates (no model selection):\n\n"
            + table(learned, n, key="kpi_final")
            + "\n"
        )
        diagnostics = diagnostics_table(records, n)
        if diagnostics:
            parts.append(
                "\nThe updates (logged per iteration; mean over seeds):\n\n" + diagnostics + "\n"
            )
    atomic_write_text(out / "results.md", "".join(parts))
    curves_figure(records, out / "curves.png")
    diagnostics_figure(records, out / "diagnostics.png")
    print((out / "results.md").read_text())


def add_sizes_argument(parser) -> None:
    """The ``--sizes`` option of the from-scratch scripts (default: every size)."""
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        choices=sorted(SCRATCH_ITERATIONS),
        default=sorted(SCRATCH_ITERATIONS),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sizes_argument(parser)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    add_seeds_argument(parser)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--report", action="store_true", help="only rebuild the report from OUT/runs.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out: Path = args.out
    runs_json = out / "runs.json"
    if args.report:
        if not runs_json.exists():
            parser.error(f"--report needs {runs_json}; run the study first")
        report(json.loads(runs_json.read_text()), out)
        return
    (out / "runs").mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        baselines = out / "runs" / f"n{n}-baselines.json"
        if not baselines.exists():
            env = eval_env(n, BUDGETS[n]["test_episodes"], "basic")
            atomic_write_text(baselines, json.dumps(baseline_records(n, env)))
        for name in args.methods:
            for seed in args.seeds or BUDGETS[n]["seeds"]:
                run_record(name, n, seed, out)
    # every record present: this process's and a parallel one's, and those only in runs.json
    found = {}
    for path in sorted((out / "runs").glob("n*-baselines.json")):
        found.update({(r["n"], r["method"], r["seed"]): r for r in json.loads(path.read_text())})
    for path in sorted((out / "runs").glob("*/record.json")):
        r = json.loads(path.read_text())
        found[(r["n"], r["method"], r["seed"])] = r
    old = json.loads(runs_json.read_text()) if runs_json.exists() else []
    records = [r for r in old if (r["n"], r["method"], r["seed"]) not in found]
    report([*records, *found.values()], out)


if __name__ == "__main__":
    main()
