"""Community energy trading (seed 000): baselines, IPPO, MAPPO, MATPPO side by side.

One command trains and evaluates every method at every size (the budgets are the ``BUDGETS``
table; several hours on one CPU core)::

    OMP_NUM_THREADS=1 python benchmarks/community_results.py

The published table (``benchmarks/README.md``) has every method at N = 10 and IPPO, MAPPO-MLP
and MATPPO at N = 50 and 100. It ran as two processes with disjoint methods, about 50 min
on two cores. Each process merges its rows into ``runs.json`` as it finishes a size and
rewrites the table::

    OMP_NUM_THREADS=1 python benchmarks/community_results.py --sizes 10 --methods MATPPO MATPPO-team MATPPO-phasic MATPPO-scratch; \
      OMP_NUM_THREADS=1 python benchmarks/community_results.py --sizes 50 100 --methods MATPPO &
    OMP_NUM_THREADS=1 python benchmarks/community_results.py --sizes 10 --methods IPPO MAPPO-MLP; \
      OMP_NUM_THREADS=1 python benchmarks/community_results.py --sizes 50 100 --methods IPPO MAPPO-MLP

writes ``benchmarks/results/community/``: ``results.md`` (KPI table per community size),
``runs.json`` (every method, seed and KPI), ``flows_n10.png`` (one day of the community's
energy flows and internal prices under MATPPO) and the training runs under ``runs/``
(config, metrics, checkpoint). Finished runs are reloaded from their checkpoints, so the
command can be re-run (e.g. ``--sizes 10`` first, ``--sizes 50 100`` later) and the table
covers every run present.

Methods (all learned ones but ``MATPPO-scratch`` share the actor: the parameter-shared hybrid
actor on MATPPO's LSTM forecast encoder, ``model.encoder=lstm``, centred on the rule-based
controller with spread EV charging, paced batteries and pre-heated homes (``rule-preheat``)
by an :class:`~mtmarl.modules.ActionPrior`, ``model.action_prior=rule_based_preheat``; they
differ in the critic; every baseline's heat pumps run the priors' deadband thermostat,
``thermostat_deadband=COMMUNITY_THERMOSTAT_DEADBAND``, 0.9, from
``community_prior_selection.py``):

* ``no-flex``: :class:`~mtmarl.envs.community.baselines.NoFlexibilityPolicy`;
* ``rule-based``: :class:`~mtmarl.envs.community.baselines.RuleBasedSelfConsumptionPolicy`;
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

Every method is evaluated on the same episodes: one community (env seed ``EVAL_SEED``,
which fixes the prosumers) and the same days, loads, prices and forecast noise
(``env.set_seed(EVAL_EPISODES_SEED)`` before the rollout), learned policies deterministic
(argmax mode, ``tanh(loc)`` powers). Training communities are drawn from the training seed,
so the learned policies are evaluated on a community they never trained on.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path

import torch

from mtmarl.envs.community import CommunityEnergyEnv, clear_mid_market, perfect_foresight_plan
from mtmarl.envs.community.baselines import NoFlexibilityPolicy
from mtmarl.training import Trainer, apply_overrides, get_experiment
from mtmarl.training.experiments import COMMUNITY_THERMOSTAT_DEADBAND

EVAL_SEED = 20_000
EVAL_EPISODES_SEED = 7

#: Per community size: training iterations, envs per iteration (x 96 steps), seeds of the
#: learned methods, the trainer's validation episodes (``eval.episodes``, every ``every``
#: iterations) and the benchmark's evaluation days (``test_episodes``, drawn at random from
#: the year). The same frame budget for every method at a size. 4-16 evaluation days (the
#: validation's count) were too few to stand for the year: at N = 10 the prior's return was
#: -3.63, -6.14 and -5.05 on three draws of 16 days of the evaluation community, and -5.09,
#: -5.52 and -4.76 on three draws of 64 (benchmarks/README.md).
BUDGETS = {
    10: {
        "iterations": 50,
        "num_envs": 16,
        "seeds": (0, 1, 2),
        "eval_episodes": 16,
        "every": 5,
        "test_episodes": 64,
    },
    50: {
        "iterations": 40,
        "num_envs": 4,
        "seeds": (0, 1, 2),
        "eval_episodes": 8,
        "every": 5,
        "test_episodes": 32,
    },
    100: {
        "iterations": 24,
        "num_envs": 4,
        "seeds": (0, 1, 2),
        "eval_episodes": 4,
        "every": 4,
        "test_episodes": 16,
    },
}
#: Shared training overrides on top of the ``community`` preset (MATPPO), spelled out so that
#: the table does not change when the preset does: every learned method starts from the
#: rule-based controller with spread EV charging, paced batteries and pre-heated homes
#: (``model.action_prior=rule_based_preheat``, ``rule-preheat`` below; a residual policy, initial
#: exploration scale 0.1, logit bonus 5 on the controller's EV level; session 7's 0.3 and 3
#: let the final iterates fall below the paced prior: results/community/ablation_exploration.md),
#: samples EV levels from the env's deadline mask, runs GAE (lambda 0.99) on each
#: prosumer's difference reward (``loss.agent_rewards``, the env's ``agent_rewards``) and is
#: anchored to its initial actor by a KL penalty (``loss.reference_kl_coeff=0.1``; without it
#: the final iterates drifted below the prior: results/community/ablation_reference_kl.md).
COMMON = [
    "model.hidden_size=32",
    "optim.lr=1e-3",
    "model.action_prior=rule_based_preheat",
    "model.init_scale=0.1",
    "model.action_prior_bonus=5",
    "loss.agent_rewards=true",
    "loss.lmbda=0.99",
    "loss.reference_kl_coeff=0.1",
    "run.progress=false",
    "eval.keep_best=true",
]
LEARNED = {
    "IPPO": ["model.critic=local"],
    "MAPPO-MLP": ["model.critic=mlp"],
    "MATPPO": ["model.critic=transformer"],
    # MATPPO with GAE on the community reward broadcast to every prosumer, as the paper
    # describes it (the other rows run GAE on each prosumer's difference reward)
    "MATPPO-team": ["model.critic=transformer", "loss.agent_rewards=false"],
    "MATPPO-phasic": ["model.critic=transformer", "variant=phasic"],
    # MATPPO as the paper trains it: no prior, initial exploration scale 1
    "MATPPO-scratch": [
        "model.critic=transformer",
        "model.action_prior=null",
        "model.init_scale=1.0",
        # no prior: its bonus does nothing; the default keeps the runs' config (and resumable)
        "model.action_prior_bonus=3.0",
        # and no anchor: it would hold the actor at its random initialisation
        "loss.reference_kl_coeff=0",
    ],
}
#: ``--set`` overrides, applied last to every learned method (after ``COMMON``, ``LEARNED`` and
#: the size's budget)
EXTRA: list[str] = []
ORDER = ["no-flex", "rule-based", "rule-spread", "rule-preheat", *LEARNED]
#: the baseline the learned methods start from (``COMMON``'s ``model.action_prior``)
PRIOR = "rule-preheat"
_PRIORS = get_experiment("community").action_priors
BASELINES = {
    # every baseline's heat pumps run the priors' deadband thermostat
    "no-flex": functools.partial(
        NoFlexibilityPolicy, thermostat_deadband=COMMUNITY_THERMOSTAT_DEADBAND
    ),
    "rule-based": _PRIORS["rule_based"],
    "rule-spread": _PRIORS["rule_based_spread"],
    # the learned methods' prior (model.action_prior=rule_based_preheat) as a baseline
    "rule-preheat": _PRIORS["rule_based_preheat"],
}
KPIS = {  # name: (column title, format)
    "cost": ("community cost / day", "{:.2f}"),
    "peak_kw": ("peak import (kW)", "{:.1f}"),
    "overload_hours": ("overload (h)", "{:.2f}"),
    "self_sufficiency": ("self-sufficiency", "{:.3f}"),
    "comfort": ("comfort viol. (degC h)", "{:.2f}"),
    "ev_unmet_kwh": ("EV unmet (kWh)", "{:.2f}"),
    "ramping_kw": ("ramping (kW)", "{:.0f}"),
    "one_minus_load_factor": ("1 - load factor", "{:.3f}"),
    "stored_kwh_change": ("stored energy, end - start (kWh)", "{:+.1f}"),
    "return": ("return", "{:.2f}"),
}


def _rank(method: str) -> int:
    return ORDER.index(method) if method in ORDER else len(ORDER)


def eval_env(n: int, episodes: int, variant: str, *, seed: int = EVAL_SEED):
    """The community preset's env stack for ``variant`` (its phase encoding included)."""
    experiment = get_experiment("community")
    config = apply_overrides(experiment.config, [f"variant={variant}", f"env.n_prosumers={n}"])
    return experiment.make_env(config, num_envs=episodes, seed=seed)


def rollout(env, policy, *, deterministic: bool):
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    env.set_seed(EVAL_EPISODES_SEED)
    mode = ExplorationType.DETERMINISTIC if deterministic else ExplorationType.RANDOM
    with torch.no_grad(), set_exploration_type(mode):
        return env.rollout(CommunityEnergyEnv.HORIZON, policy, break_when_any_done=False)


def lp_rollout(env, ev_modes, *, keep_battery_energy: bool = False):
    """The perfect-foresight plan for the EV levels ``ev_modes`` ``(E, T, N)`` (e.g. a
    ``rollout``'s) on the evaluation days, and the env's run of it ``(E, T)``;
    ``keep_battery_energy``: see :func:`~mtmarl.envs.community.perfect_foresight_plan`."""
    env.set_seed(EVAL_EPISODES_SEED)  # the same days, from the same reset, as ``rollout``
    td = env.reset()
    plan = perfect_foresight_plan(env, ev_modes=ev_modes, keep_battery_energy=keep_battery_energy)
    return plan, plan.rollout(env, td)


def physical_rating(td, name: str) -> torch.Tensor:
    """The prosumers' rating ``name`` (a :attr:`CommunityEnergyEnv.RATING_FEATURES` entry) in
    physical units (kW, kWh, kWp), from the observation ``("agents", "ratings")`` of ``td``;
    the batch shape of ``td``, e.g. ``(E, T, N)``."""
    i = CommunityEnergyEnv.RATING_FEATURES.index(name)
    return td["agents", "ratings"][..., i] * CommunityEnergyEnv.RATING_SCALES[i]


def kpis(td) -> dict[str, float]:
    """Per-episode KPIs (sums or maxima over the day), averaged over the episodes."""
    k = td["next", "kpi"]
    dt = CommunityEnergyEnv.DT_H
    per_episode = {
        "cost": k["cost"].sum((1, 2)),
        "peak_kw": k["peak"].amax((1, 2)),
        "overload_hours": (k["transformer_overload"] > 0).float().sum((1, 2)) * dt,
        "self_sufficiency": k["self_sufficiency"].mean((1, 2)),  # time-averaged
        "comfort": k["comfort_violation"].sum((1, 2)),
        "ev_unmet_kwh": k["ev_unmet"].sum((1, 2)),
        # CityLearn's grid KPIs: ramping = sum over the day of |change of the net exchange|;
        # load factor = mean / peak of the grid import power over the day
        "ramping_kw": k["ramping"].sum((1, 2)),
        "one_minus_load_factor": 1
        - k["peak"].mean((1, 2)) / k["peak"].amax((1, 2)).clamp_min(1e-9),
        "return": td["next", "reward"].sum((1, 2)),
        # the community's battery energy at the end of the day minus at its start (kWh; < 0:
        # the day spent energy it started with, which the noon episode end does not charge)
        "stored_kwh_change": (
            (
                td["next", "agents", "device_state"][:, -1, :, 0]
                - td["agents", "device_state"][:, 0, :, 0]
            )
            * physical_rating(td, "battery_kwh")[:, 0]
        ).sum(-1),
    }
    return {name: float(v.mean()) for name, v in per_episode.items()}


def run_config(name: str, n: int, seed: int):
    """The ``TrainConfig`` of one run: the preset, ``COMMON``, the method's overrides, the
    size's budget and ``EXTRA``."""
    budget = BUDGETS[n]
    return apply_overrides(
        get_experiment("community").config,
        [
            *COMMON,
            *LEARNED[name],
            f"env.n_prosumers={n}",
            f"seed={seed}",
            f"collector.iterations={budget['iterations']}",
            f"collector.num_envs={budget['num_envs']}",
            f"optim.minibatch_size={budget['num_envs'] * 96 // 2}",
            f"eval.episodes={budget['eval_episodes']}",
            f"eval.interval={budget['every']}",
            *EXTRA,
        ],
    )


def run_path(out: Path, name: str, n: int, seed: int) -> Path:
    """Where ``train_run`` keeps one run under ``out``."""
    return out / "runs" / f"n{n}-{name}-seed{seed}"


def train_run(name: str, n: int, seed: int, out: Path) -> tuple[Trainer, float | None]:
    """Train (or resume, or reload) one run; the seconds this call trained, ``None`` if the
    run had already finished."""
    cfg = run_config(name, n, seed)
    run_dir = run_path(out, name, n, seed)
    resume = (run_dir / "checkpoints" / "last.pt").exists()
    trainer = Trainer(cfg, run_dir=run_dir, resume=resume)
    if trainer.iteration >= cfg.collector.iterations:
        return trainer, None
    start = time.perf_counter()
    if trainer.train().interrupted:  # Ctrl-C / SIGTERM: checkpointed, stop the sweep too
        raise SystemExit(f"interrupted in {run_dir}; re-run the command to resume")
    return trainer, time.perf_counter() - start


def finished_run(name: str, n: int, seed: int, out: Path) -> Trainer:
    """Reload one run that ``train_run`` has finished (for the scripts that never train).

    Raises:
        SystemExit: if the run has not finished (no ``eval.json``, which the trainer writes
            when a run's training ends), so that ``train_run`` would train.
    """
    run_dir = run_path(out, name, n, seed)
    if not (run_dir / "eval.json").exists():
        raise SystemExit(f"no finished run in {run_dir}; train it with community_results.py")
    return train_run(name, n, seed, out)[0]


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


def table(records: list[dict], n: int, key: str = "kpi") -> str:
    """Mean (± std over seeds) of ``record[key]`` per method; baselines always use ``"kpi"``."""
    rows = [{**r, "kpi": r.get(key, r["kpi"])} for r in records if r["n"] == n]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    head = "| method | seeds | " + " | ".join(t for t, _ in KPIS.values()) + " |"
    lines = [head, "|" + "---|" * (len(KPIS) + 2)]
    for m in methods:
        runs = [r for r in rows if r["method"] == m]
        cells = []
        for key, (_, fmt) in KPIS.items():
            if any(key not in r["kpi"] for r in runs):  # a record from before this KPI
                cells.append("-")
                continue
            values = torch.tensor([r["kpi"][key] for r in runs])
            cell = fmt.format(values.mean())
            if len(runs) > 1:
                cell += " ± " + fmt.replace("+", "").format(values.std())
            cells.append(cell)
        seeds = "-" if runs[0]["seed"] is None else str(len(runs))
        lines.append(f"| {m} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(BUDGETS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/community"))
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=sorted(LEARNED),
        default=list(LEARNED),
        help="learned methods to train / evaluate (the others' records in runs.json are kept); "
        "e.g. two processes with disjoint --methods (each merges its rows into runs.json)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="training seeds (default: the size's budget, 0 1 2); for pilots into their own --out",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="extra config overrides for every learned method, applied last (they win over "
        "the shared ones and the size's budget; for ablations: write them to their own --out, "
        "the table's budget line does not show them)",
    )
    args = parser.parse_args()
    EXTRA[:] = args.set
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
        for name, cls in BASELINES.items():
            records.append(
                {
                    "n": n,
                    "method": name,
                    "seed": None,
                    "frames": 0,
                    "train_s": 0.0,
                    "kpi": kpis(rollout(env, cls(env), deterministic=True)),
                }
            )
            print(n, name, records[-1]["kpi"], flush=True)
        for name in args.methods:
            for seed in args.seeds or budget["seeds"]:
                trainer, seconds = train_run(name, n, seed, out)
                env = eval_env(n, budget["test_episodes"], trainer.config.variant)
                final = kpis(rollout(env, trainer.actor, deterministic=True))
                best_iteration = trainer.load_best()
                td = rollout(env, trainer.actor, deterministic=True)
                records.append(
                    {
                        "n": n,
                        "method": name,
                        "seed": seed,
                        "frames": trainer.frames,
                        "train_s": trained_s.get((n, name, seed))
                        if seconds is None
                        else round(seconds, 1),
                        "best_iteration": best_iteration,
                        "kpi": kpis(td),
                        "kpi_final": final,
                    }
                )
                print(
                    n,
                    name,
                    seed,
                    records[-1]["kpi"],
                    f"best@{best_iteration}",
                    f"final return {final['return']:.2f}",
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
        records.sort(key=lambda r: (r["n"], _rank(r["method"]), r["seed"] or 0))
        runs_json.write_text(json.dumps(records, indent=1))
    sizes = sorted({r["n"] for r in records})
    parts = [
        "# Community energy trading: baselines vs IPPO / MAPPO / MATPPO\n",
        "Generated by `OMP_NUM_THREADS=1 python benchmarks/community_results.py` (see its "
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
