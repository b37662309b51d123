"""Community energy trading: how far every method is from the perfect-foresight optimum.

On the evaluation days of ``results.py`` (``common.eval_env`` and ``common.rollout``, the
same episodes every method of ``results.md`` is evaluated on), :func:`~mtmarl.envs.community.perfect_foresight_plan`
solves each day as a linear program with the whole day known:

* ``bound``: the EV charger relaxed to any power up to the fast level. No policy can beat
  its return on these days.
* ``prior EV + LP``: the EV levels of the learned methods' prior (``rule-preheat``) held
  fixed, with the best battery and heat-pump control for them. The row is what the env
  gives when it runs this plan (at most the LP's return, and equal to it unless the LP heats
  and cools at once somewhere, which the env's heat pumps cannot).
* ``bound, peak price p``: the bound with a price ``p`` per kW of each day's peak import.
  Sweeping ``p`` traces the least cost at a given mean daily peak (the frontier).
* ``bound, batteries kept`` and ``prior EV + LP, batteries kept``: the same with every
  battery ending the day holding at least the energy it started with
  (``keep_battery_energy=True``). The episode ends at noon and nothing after it counts, so
  the plain LP empties the batteries in the morning; the learned methods' critics bootstrap
  at that truncation and value the stored energy instead. ``gap closed, kept`` measures
  against this bound.

It reads the methods' rows from ``runs.json`` (written by ``results.py``, which must have
run first) and reports the share of the gap between the prior and the bound that
each method closes. It writes ``reference.md`` (the table) and ``reference_frontier.png`` (cost
against peak per community size: the frontier and every method)::

    OMP_NUM_THREADS=1 python studies/community/reference.py

about 9 min in all on one core, most of it at N = 100.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import common
import torch

from mtmarl.envs.community import CommunityEnergyEnv, perfect_foresight_plan

PEAK_PRICES = (0.0, 0.1, 0.5, 2.0)
#: the bounds the table has: (peak price, keep_battery_energy)
BOUNDS = (*((p, False) for p in PEAK_PRICES), (0.0, True))
PRIOR = common.PRIOR


_KEYS = ("cost", "peak_kw", "overload_hours", "comfort", "ev_unmet_kwh", "return")


def _bound_name(peak_price: float, keep_battery_energy: bool = False) -> str:
    """The table's row name of the bound at a peak price (with the batteries kept)."""
    name = "bound" if peak_price == 0 else f"bound, peak price {peak_price:g}"
    return f"{name}, batteries kept" if keep_battery_energy else name


KEPT = _bound_name(0.0, True)


def _summary(plan, rating_kw: float) -> dict[str, float]:
    over = (plan.exchange_kw.abs() - rating_kw) > 1e-6
    return {
        "cost": plan.cost.mean().item(),
        "peak_kw": plan.peak_kw.mean().item(),
        "overload_hours": (over.double().sum(-1) * CommunityEnergyEnv.DT_H).mean().item(),
        "comfort": plan.comfort.mean().item(),
        "ev_unmet_kwh": plan.ev_unmet_kwh.mean().item(),
        "return": plan.episode_return.mean().item(),
    }


def reference_rows(n: int) -> dict[str, dict[str, float]]:
    env = common.eval_env(n, common.BUDGETS[n]["test_episodes"], "basic")
    rating = env.base_env.transformer_rating_kw
    prior = common.rollout(env, common.BASELINES[PRIOR](env), deterministic=True)
    rows = {}
    for p, keep in BOUNDS:
        env.set_seed(common.EVAL_EPISODES_SEED)
        env.reset()
        start = time.perf_counter()
        plan = perfect_foresight_plan(env, peak_price=p, keep_battery_energy=keep)
        name = _bound_name(p, keep)
        rows[name] = _summary(plan, rating)
        print(n, name, rows[name], f"{time.perf_counter() - start:.1f}s", flush=True)
    for keep, name in ((False, "prior EV + LP"), (True, "prior EV + LP, batteries kept")):
        plan, ran = common.lp_rollout(
            env, prior["agents", "action", "mode"], keep_battery_energy=keep
        )
        returns = ran["next", "reward"].sum((1, 2)).double()
        # the env runs the plan; it matches the LP unless the LP heated and cooled (or charged
        # and discharged) at once, which the env's devices cannot do
        if not bool((returns <= plan.episode_return + 1e-3).all()):
            raise SystemExit(
                f"the env's return {returns.tolist()} > the LP's {plan.episode_return}"
            )
        rows[name] = {k: v for k, v in common.kpis(ran).items() if k in _KEYS}
        print(n, f"{name}, the LP's own return:", plan.episode_return.mean().item())
        print(n, name, rows[name], flush=True)
    return rows


def _mean(records: list[dict], key: str) -> float:
    return sum(r["kpi"][key] for r in records) / len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(common.BUDGETS))
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    runs_json = args.out / "runs.json"
    if not runs_json.exists():
        raise SystemExit(f"no {runs_json}: run studies/community/results.py first")
    records = json.loads(runs_json.read_text())
    lines = [
        "# Community energy trading: every method against the perfect-foresight optimum\n",
        "Generated by `OMP_NUM_THREADS=1 python studies/community/reference.py` (see its "
        "docstring) on the evaluation days of `results.md`. `bound`: the LP optimum with the "
        "whole day known and the EV charger relaxed to any power; no policy beats its return "
        "on these days. `prior EV + LP`: the prior's EV levels with the best batteries and "
        "heat pumps, as the env runs it. `batteries kept`: every battery ends the day with at "
        "least the energy it started with (the plain LP empties them before the noon episode "
        "end, which a bootstrapping critic looks past). `gap closed`: "
        "(return - prior's) / (bound's - prior's); `gap closed, kept`: the same against "
        "`bound, batteries kept`. Learned methods: means over seeds. The "
        "LP plans sit at the transformer's rating; where the env's float32 exchange rounds "
        "above it, the env-run row counts an overload step.\n",
    ]
    figure = {}
    for n in args.sizes:
        rows = reference_rows(n)
        ours = [r for r in records if r["n"] == n]
        methods = list(dict.fromkeys(r["method"] for r in ours))
        measured = {
            m: {k: _mean([r for r in ours if r["method"] == m], k) for k in _KEYS} for m in methods
        }
        prior, bound = measured[PRIOR]["return"], rows["bound"]["return"]
        kept = rows[KEPT]["return"]
        lines += [
            f"\n## N = {n}\n",
            "| method | cost / day | peak import (kW) | overload (h) | comfort viol. (degC h) "
            "| EV unmet (kWh) | return | gap closed | gap closed, kept |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, k in {**measured, **rows}.items():
            closed = (k["return"] - prior) / (bound - prior)
            closed_kept = (k["return"] - prior) / (kept - prior)
            lines.append(
                f"| {name} | {k['cost']:.2f} | {k['peak_kw']:.1f} | {k['overload_hours']:.2f} | "
                f"{k['comfort']:.2f} | {k['ev_unmet_kwh']:.2f} | {k['return']:.2f} | "
                f"{closed:.0%} | {closed_kept:.0%} |"
            )
        figure[n] = (measured, rows)
    (args.out / "reference.md").write_text("\n".join(lines) + "\n")
    _plot(figure, args.out / "reference_frontier.png")
    print("\n".join(lines))


def _plot(figure, path: Path) -> None:
    """Cost against peak per size: the frontier, the runnable plan and every method (no-flex
    is off the chart: 2-3x the cost)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {m: f"C{i}" for i, m in enumerate(common.ORDER)}
    fig, axes = plt.subplots(1, len(figure), figsize=(5 * len(figure), 4), squeeze=False)
    for ax, (n, (measured, rows)) in zip(axes[0], figure.items()):
        frontier = [rows[_bound_name(p)] for p in PEAK_PRICES]
        ax.plot(
            [r["peak_kw"] for r in frontier],
            [r["cost"] for r in frontier],
            "k.-",
            label="perfect-foresight frontier",
        )
        lp = rows["prior EV + LP"]
        ax.plot(lp["peak_kw"], lp["cost"], "ks", mfc="none", label="prior EV + LP")
        kept = rows[KEPT]
        ax.plot(kept["peak_kw"], kept["cost"], "k^", mfc="none", label=KEPT)
        for m, k in measured.items():
            if m != "no-flex":
                ax.plot(k["peak_kw"], k["cost"], "o", color=colours.get(m, "k"), label=m)
        ax.set_title(f"N = {n}")
        ax.set_xlabel("mean daily peak import (kW)")
        ax.set_ylabel("community cost / day")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
