"""Community energy trading: baselines vs IPPO / MAPPO / MATPPO, side by side.

One command trains and evaluates every method at every size (the budgets are
``common.BUDGETS``; about 37 min of wall time as the two processes below)::

    OMP_NUM_THREADS=1 python studies/community/results.py

On two cores, run two processes with disjoint methods; each merges its rows into
``runs.json`` as it finishes a size and rewrites the table::

    OMP_NUM_THREADS=1 python studies/community/results.py --sizes 10 --methods MATPPO MATPPO-team MATPPO-phasic MATPPO-scratch; \
      OMP_NUM_THREADS=1 python studies/community/results.py --sizes 50 100 --methods MATPPO &
    OMP_NUM_THREADS=1 python studies/community/results.py --sizes 10 --methods IPPO MAPPO-MLP; \
      OMP_NUM_THREADS=1 python studies/community/results.py --sizes 50 100 --methods IPPO MAPPO-MLP

It writes ``studies/community/results/``: ``results.md`` (KPI table per community size),
``runs.json`` (every method, seed and KPI), ``flows_n10.png`` (one day of the community's
energy flows and internal prices under MATPPO) and the training runs under ``runs/``
(config, metrics, checkpoint; not in git). Finished runs are reloaded from their
checkpoints, so the command can be re-run (e.g. ``--sizes 10`` first, ``--sizes 50 100``
later) and the table covers every run present.

Methods (all learned ones but ``MATPPO-scratch`` share the actor: the parameter-shared hybrid
actor on MATPPO's LSTM forecast encoder, ``model.encoder=lstm``, centred on the rule-based
controller with spread EV charging, paced batteries and pre-heated homes (``rule-preheat``)
by an :class:`~mtmarl.modules.ActionPrior`, ``model.action_prior=rule_based_preheat``; they
differ in the critic; every baseline's heat pumps run the priors' deadband thermostat,
``thermostat_deadband=COMMUNITY_THERMOSTAT_DEADBAND``, 0.9, chosen by
``prior_selection.py``):

* ``no-flex``: :class:`~mtmarl.envs.community.NoFlexibilityPolicy`;
* ``rule-based``: :class:`~mtmarl.envs.community.RuleBasedSelfConsumptionPolicy`;
* ``rule-spread``: the same with ``ev_spread=COMMUNITY_EV_SPREAD`` (0.6; off-peak EV
  charging spread over the night) and paced batteries (``battery_spread=
  COMMUNITY_BATTERY_SPREAD``, ``battery_refill_hour=COMMUNITY_BATTERY_REFILL_HOUR``: no faster
  than a multiple of the pace that spreads the stored energy until the morning);
* ``rule-preheat``: ``rule-spread`` whose heat pumps also pre-condition the homes in the
  afternoon (``preheat_target=COMMUNITY_PREHEAT_TARGET``, 0.2 half-bands toward the side the
  day needs, in ``preheat_hours=COMMUNITY_PREHEAT_HOURS``, 13-16 h), so that they run less
  through the evening's peak price: the learned methods' prior;
* ``IPPO``: ``model.critic=local`` (per-agent critic on the agent's own observation);
* ``MAPPO-MLP``: ``model.critic=mlp`` (MLP on the concatenated global state);
* ``MATPPO``: ``model.critic=transformer`` (the ``community`` preset);
* ``MATPPO-team``: MATPPO with GAE on the community reward broadcast to every prosumer
  (``loss.agent_rewards=false``), as the paper describes it;
* ``MATPPO-phasic``: MATPPO with PhaseMLP heads on the daily phase (``variant=phasic``);
* ``MATPPO-scratch``: MATPPO without the prior (``model.action_prior=null``), as the paper
  trains it.

Model selection: each learned run keeps the actor of its best validation evaluation
(``eval.keep_best``; the initial policy and every ``every`` iterations, on the trainer's own
evaluation community, seed + 10000) -- that actor is the table's row; the final iterate is
reported too.

Every method is evaluated on the same episodes (``common``'s evaluation protocol:
:func:`~mtmarl.envs.community.evaluation_rollout` on the days ``EVAL_EPISODES_SEED`` draws
of the community ``EVAL_SEED``, KPIs by :func:`~mtmarl.envs.community.community_kpis`).
Training communities are drawn from the training seed, so the learned policies are evaluated
on a community they never trained on.
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
    LEARNED,
    RESULTS,
    add_seeds_argument,
    baseline_records,
    eval_env,
    learned_record,
    rank,
    table,
    train_run,
)

from mtmarl.envs.community import clear_mid_market


def flows_figure(td, env, path: Path) -> None:
    """One day (episode 0) of community energy flows and internal prices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = env.base_env
    dt = base.DT_H
    rating = dict(zip(base.RATING_FEATURES, base.ratings.unbind(-1), strict=True))  # (N,) each
    ep = td[0]  # (T,)
    crit = ep["agents", "critic_observation"]  # true current values per agent
    pv, load = crit[..., 3], crit[..., 4]  # (T, N) kW
    soc = ep["agents", "device_state"][..., 0]
    soc_next = ep["next", "agents", "device_state"][..., 0]
    d_e = (soc_next - soc) * rating["battery_kwh"]  # kWh stored
    battery = torch.where(d_e > 0, d_e / 0.95, d_e * 0.95) / dt  # grid-side kW
    plugged = ep["agents", "context"][..., 5] > 0.5
    ev_soc = ep["agents", "device_state"][..., 1]
    ev_next = ep["next", "agents", "device_state"][..., 1]
    ev = ((ev_next - ev_soc).clamp_min(0) * rating["ev_kwh"] / 0.9 / dt) * plugged
    hvac = ep["agents", "action", "power"][..., 1].clamp(-1, 1).abs() * rating["hvac_kw"]
    k = ep["next", "kpi"]
    exchange = torch.where(
        k["peak"] > 0, k["peak"], -k["transformer_loading"] * base.transformer_rating_kw
    ).squeeze(-1)
    buy = ep["aggregate"][..., 5]
    sell = buy.clamp_max(base.sell_price)
    market = clear_mid_market((load + battery + ev + hvac - pv) * dt, buy, sell)
    hours = 12 + torch.arange(pv.shape[0]) * dt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for series, label in (
        (pv.sum(-1), "PV"),
        (load.sum(-1), "base load"),
        (battery.sum(-1), "battery (+ charge)"),
        (ev.sum(-1), "EV charging"),
        (hvac.sum(-1), "heat pump / AC"),
        (exchange, "grid exchange (+ import)"),
    ):
        ax1.plot(hours, series, label=label, lw=1.6 if "grid" in label else 1.1)
    ax1.axhline(base.transformer_rating_kw, color="k", ls="--", lw=0.8, label="transformer rating")
    ax1.axhline(0, color="grey", lw=0.5)
    ax1.set_ylabel("community power (kW)")
    ax1.legend(fontsize=7, ncol=3, loc="upper left")
    ax1.set_title(f"MATPPO, one evaluation day, N = {pv.shape[-1]} prosumers")
    ax2.plot(hours, buy, label="grid import price")
    ax2.plot(hours, sell, label="feed-in price")
    ax2.plot(hours, market.price, label="mid-market rate", ls="--")
    active = market.demand > 0
    ax2.plot(hours[active], market.buy_price[active], ".", ms=3, label="internal buy (avg)")
    active = market.supply > 0
    ax2.plot(hours[active], market.sell_price[active], ".", ms=3, label="internal sell (avg)")
    ax2.set_ylabel("price per kWh")
    ax2.set_xlabel("hour (noon to noon)")
    ax2.set_xticks(range(12, 37, 3), [f"{h % 24:02d}" for h in range(12, 37, 3)])
    ax2.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(BUDGETS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=sorted(LEARNED),
        default=list(LEARNED),
        help="learned methods to train / evaluate (the others' records in runs.json are kept); "
        "e.g. two processes with disjoint --methods (each merges its rows into runs.json)",
    )
    add_seeds_argument(parser)
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="extra config overrides for every learned method, applied last (they win over "
        "the shared ones and the size's budget; for ablations: write them to their own --out "
        "and pass the same --set to every later call on it; the table's budget line does not "
        "show them)",
    )
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    runs_json = out / "runs.json"
    records = json.loads(runs_json.read_text()) if runs_json.exists() else []
    # a reloaded run keeps the training time its record had (None where none was measured)
    trained_s = {(r["n"], r["method"], r["seed"]): r.get("train_s") for r in records}
    fresh: set[tuple[int, str]] = set()  # (size, method) this process has measured
    for n in args.sizes:
        budget = BUDGETS[n]
        records = [
            r
            for r in records
            if r["n"] != n or (r["seed"] is not None and r["method"] not in args.methods)
        ]
        env = eval_env(n, budget["test_episodes"], "basic")
        for record in baseline_records(n, env):
            records.append(record)
            print(n, record["method"], record["kpi"], flush=True)
        for name in args.methods:
            for seed in args.seeds or budget["seeds"]:
                trainer, seconds = train_run(name, n, seed, out, args.set)
                env = eval_env(n, budget["test_episodes"], trainer.config.variant)
                train_s = trained_s.get((n, name, seed)) if seconds is None else round(seconds, 1)
                record, td = learned_record(trainer, name, n, seed, env, train_s)
                records.append(record)
                print(
                    n,
                    name,
                    seed,
                    records[-1]["kpi"],
                    f"best@{record['best_iteration']}",
                    f"final return {record['kpi_final']['return']:.2f}",
                    "reloaded" if seconds is None else f"{seconds:.0f}s",
                    flush=True,
                )
                if n == 10 and name == "MATPPO" and seed == budget["seeds"][0]:
                    flows_figure(td, env, out / "flows_n10.png")
        fresh |= {(n, name) for name in (*BASELINES, *args.methods)}
        if runs_json.exists():  # the rest as on disk now: what a parallel process wrote meanwhile
            records = [r for r in records if (r["n"], r["method"]) in fresh] + [
                r for r in json.loads(runs_json.read_text()) if (r["n"], r["method"]) not in fresh
            ]
        records.sort(key=lambda r: (r["n"], rank(r["method"]), r["seed"] or 0))
        runs_json.write_text(json.dumps(records, indent=1))
    sizes = sorted({r["n"] for r in records})
    parts = [
        "# Community energy trading: baselines vs IPPO / MAPPO / MATPPO\n",
        "Generated by `OMP_NUM_THREADS=1 python studies/community/results.py` (see its "
        "docstring). KPIs per evaluation day (noon to noon), averaged over the evaluation "
        "episodes; learned methods: mean ± std over seeds. All methods run on the same "
        "evaluation episodes of one community the learned policies never trained on. A learned "
        "run's policy is the actor of its best validation evaluation (the trainer's "
        "`eval.keep_best`: the initial policy and every `eval.interval` iterations, on "
        "episodes of yet another community); the final iterates follow each table.\n",
    ]
    for n in sizes:
        b = BUDGETS[n]
        frames = b["iterations"] * b["num_envs"] * 96
        parts.append(
            f"\n## N = {n} prosumers\n\nTraining budget per learned run: {b['iterations']} "
            f"iterations x {b['num_envs']} envs x 96 steps = {frames} env steps "
            f"({frames * n} agent-steps); {b['test_episodes']} evaluation days.\n\n"
            + table(records, n)
            + "\n\nThe same learned runs at their final iteration (no model selection):\n\n"
            + table([r for r in records if r["seed"] is not None], n, key="kpi_final")
            + "\n"
        )
    (out / "results.md").write_text("".join(parts))
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
