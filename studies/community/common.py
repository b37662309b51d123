"""Shared settings and helpers of the community studies: the evaluation protocol, the
training budgets and overrides of every method, run folders and the KPI table.

The study scripts of this folder import it as a sibling module (``import common``): Python
puts a script's folder first on ``sys.path``, so ``python studies/community/results.py``
finds it from any working directory.

Evaluation protocol: every method is evaluated on the same episodes, the days
``EVAL_EPISODES_SEED`` draws on one community (env seed ``EVAL_SEED``, which fixes the
prosumers) that no learned policy trained on; learned policies run deterministically (argmax
EV level, ``tanh(loc)`` powers). Choices (the priors' parameters, the MPC's settings) are
made on another community, ``SELECTION_SEED``, which no training, validation or evaluation
uses.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from mtmarl.envs.community import (
    NoFlexibilityPolicy,
    community_kpis,
    evaluation_rollout,
    perfect_foresight_rollout,
)
from mtmarl.training import Trainer, apply_overrides, get_experiment
from mtmarl.training.experiments import COMMUNITY_THERMOSTAT_DEADBAND

#: where the studies write their tables, figures and (git-ignored) training runs
RESULTS = Path(__file__).parent / "results"
#: env seed of the evaluation community (the prosumers every method is evaluated on)
EVAL_SEED = 20_000
#: seed of the evaluation episodes (days, loads, prices, forecast noise)
EVAL_EPISODES_SEED = 7
#: env seed of the selection community: the priors and the MPC's settings are chosen there
SELECTION_SEED = 30_000

#: Per community size: training iterations, envs per iteration (x 96 steps), seeds of the
#: learned methods, the trainer's validation episodes (``eval.episodes``, every ``every``
#: iterations) and the evaluation days (``test_episodes``, drawn at random from the year).
#: The same frame budget for every method at a size. 16 evaluation days are too few to
#: stand for the year: at N = 10 the prior's return was -3.63, -6.14 and -5.05 on three
#: draws of 16 days of the evaluation community, and -5.09, -5.52 and -4.76 on three draws
#: of 64.
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
#: the tables do not change when the preset does: every learned method starts from the
#: rule-based controller with spread EV charging, paced batteries and pre-heated homes
#: (``model.action_prior=rule_based_preheat``, ``rule-preheat``; a residual policy, initial
#: exploration scale 0.1, logit bonus 5 on the controller's EV level:
#: ``results/ablation_exploration.md``), samples EV levels from the env's deadline mask,
#: runs GAE (lambda 0.99: ``results/ablation_gae_lambda.md``) on each prosumer's difference
#: reward (``loss.agent_rewards``) and is anchored to its initial actor by a KL penalty
#: (``loss.reference_kl_coeff=0.1``: ``results/ablation_reference_kl.md``).
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
#: the learned methods: their overrides on top of ``COMMON``
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
#: From scratch (``scratch.py``: the paper's setting), on top of ``COMMON`` and a method's
#: ``LEARNED`` overrides: no prior, initial exploration scale 1, no KL anchor (it would hold
#: the actor at its random initialisation) and running observation normalisation, the
#: ``community-scratch`` preset's choices (the prior's logit bonus does nothing without a
#: prior; 3.0, the default, keeps the runs' configs as they were trained)
SCRATCH = [
    "model.action_prior=null",
    "model.init_scale=1.0",
    "model.action_prior_bonus=3.0",
    "loss.reference_kl_coeff=0",
    "model.obs_norm=true",
]
#: training iterations from scratch per size (``BUDGETS``' envs per iteration): 3.07 M
#: agent-steps at every size (200 x 16 x 96 x 10, 160 x 4 x 96 x 50, 80 x 4 x 96 x 100)
SCRATCH_ITERATIONS = {10: 200, 50: 160, 100: 80}


def scratch_overrides(n: int) -> list[str]:
    """The ``extra`` overrides of a from-scratch run at size ``n`` (``SCRATCH`` and its
    budget)."""
    return [*SCRATCH, f"collector.iterations={SCRATCH_ITERATIONS[n]}"]


ORDER = ["no-flex", "rule-based", "rule-spread", "rule-preheat", *LEARNED]
#: the baseline the learned methods start from (``COMMON``'s ``model.action_prior``)
PRIOR = "rule-preheat"
_PRIORS = get_experiment("community").action_priors
#: the non-learned controllers, built from the env: ``BASELINES[name](env)``
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
#: the table's columns: KPI name (``mtmarl.envs.community.COMMUNITY_KPI_NAMES``): (title, format)
KPIS = {
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


def rank(method: str) -> int:
    """A method's place in the tables (``ORDER``; unknown methods last)."""
    return ORDER.index(method) if method in ORDER else len(ORDER)


def eval_env(n: int, episodes: int, variant: str, *, seed: int = EVAL_SEED):
    """The ``community`` preset's env stack for ``variant`` (its phase encoding included):
    ``episodes`` communities of ``n`` prosumers, env seed ``seed``."""
    experiment = get_experiment("community")
    config = apply_overrides(experiment.config, [f"variant={variant}", f"env.n_prosumers={n}"])
    return experiment.make_env(config, num_envs=episodes, seed=seed)


def rollout(env, policy, *, deterministic: bool = True):
    """One day of every env on the evaluation episodes (``EVAL_EPISODES_SEED``)."""
    return evaluation_rollout(env, policy, seed=EVAL_EPISODES_SEED, deterministic=deterministic)


def lp_rollout(env, ev_modes: torch.Tensor, *, keep_battery_energy: bool = False):
    """The perfect-foresight plan for the EV levels ``ev_modes`` ``(E, T, N)`` on the
    evaluation episodes, and the env's run of it (``perfect_foresight_rollout``)."""
    return perfect_foresight_rollout(
        env, ev_modes, seed=EVAL_EPISODES_SEED, keep_battery_energy=keep_battery_energy
    )


kpis = community_kpis


def add_seeds_argument(parser) -> None:
    """The scripts' ``--seeds`` option (``None``: the size's ``BUDGETS`` seeds)."""
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="training seeds (default: the size's budget, 0 1 2)",
    )


def run_config(name: str, n: int, seed: int, extra: Sequence[str] = ()):
    """The ``TrainConfig`` of one run: the preset, ``COMMON``, the method's overrides, the
    size's budget and ``extra`` (applied last: they win over the others)."""
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
            *extra,
        ],
    )


def run_path(out: Path, name: str, n: int, seed: int) -> Path:
    """Where ``train_run`` keeps one run under ``out``."""
    return out / "runs" / f"n{n}-{name}-seed{seed}"


def train_run(
    name: str, n: int, seed: int, out: Path, extra: Sequence[str] = ()
) -> tuple[Trainer, float | None]:
    """Train (or resume, or reload) one run; the seconds this call trained, ``None`` if the
    run had already finished. ``extra``: as for ``run_config`` (a resumed or reloaded run
    needs the overrides it was trained with: its checkpoint is checked against them)."""
    cfg = run_config(name, n, seed, extra)
    run_dir = run_path(out, name, n, seed)
    resume = (run_dir / "checkpoints" / "last.pt").exists()
    trainer = Trainer(cfg, run_dir=run_dir, resume=resume)
    if trainer.iteration >= cfg.collector.iterations:
        return trainer, None
    start = time.perf_counter()
    if trainer.train().interrupted:  # Ctrl-C / SIGTERM: checkpointed, stop the sweep too
        raise SystemExit(f"interrupted in {run_dir}; re-run the command to resume")
    return trainer, time.perf_counter() - start


def finished_run(name: str, n: int, seed: int, out: Path, extra: Sequence[str] = ()) -> Trainer:
    """Reload one run that ``train_run`` has finished (for the scripts that never train).

    Raises:
        SystemExit: if the run has not finished (no ``eval.json``, which the trainer writes
            when a run's training ends), so that ``train_run`` would train.
    """
    run_dir = run_path(out, name, n, seed)
    if not (run_dir / "eval.json").exists():
        raise SystemExit(
            f"no finished run in {run_dir}; train it with studies/community/results.py"
        )
    return train_run(name, n, seed, out, extra)[0]


def baseline_records(n: int, env) -> list[dict]:
    """One record per ``BASELINES`` controller on the evaluation episodes of ``env``."""
    return [
        {
            "n": n,
            "method": name,
            "seed": None,
            "frames": 0,
            "train_s": 0.0,
            "kpi": kpis(rollout(env, policy(env), deterministic=True)),
        }
        for name, policy in BASELINES.items()
    ]


def learned_record(trainer: Trainer, name: str, n: int, seed: int, env, train_s):
    """The record of one finished run on the evaluation episodes of ``env``: the KPIs of
    its best validation actor (``kpi``; the trainer is left holding that actor) and of its
    final iterate (``kpi_final``); and the best actor's rollout."""
    final = kpis(rollout(env, trainer.actor, deterministic=True))
    best_iteration = trainer.load_best()
    td = rollout(env, trainer.actor, deterministic=True)
    record = {
        "n": n,
        "method": name,
        "seed": seed,
        "frames": trainer.frames,
        "train_s": train_s,
        "best_iteration": best_iteration,
        "kpi": kpis(td),
        "kpi_final": final,
    }
    return record, td


def table(records: list[dict], n: int, key: str = "kpi") -> str:
    """Markdown table of the records of size ``n``: mean (± std over seeds) of
    ``record[key]`` per method; baselines always use ``"kpi"``."""
    rows = [{**r, "kpi": r.get(key, r["kpi"])} for r in records if r["n"] == n]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    head = "| method | seeds | " + " | ".join(t for t, _ in KPIS.values()) + " |"
    lines = [head, "|" + "---|" * (len(KPIS) + 2)]
    for m in methods:
        runs = [r for r in rows if r["method"] == m]
        cells = []
        for kpi, (_, fmt) in KPIS.items():
            if any(kpi not in r["kpi"] for r in runs):  # a record without this KPI
                cells.append("-")
                continue
            values = torch.tensor([r["kpi"][kpi] for r in runs])
            cell = fmt.format(values.mean())
            if len(runs) > 1:
                cell += " ± " + fmt.replace("+", "").format(values.std())
            cells.append(cell)
        seeds = "-" if runs[0]["seed"] is None else str(len(runs))
        lines.append(f"| {m} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
