"""Community energy trading: where a policy's cost and overload come from, hour by hour.

Loads one finished run of ``results.py`` (its best validation actor), rolls it and the
rule-based controllers out on the evaluation days, and prints per hour of
the day (noon to noon, means over the days): the community's cost, grid import and power
above the transformer rating, how many cars charge slow / fast, the batteries' mean state of
charge and command, and -- for the learned actor -- its probabilities of each EV level while
a car is plugged in and still needs energy::

    OMP_NUM_THREADS=1 python studies/community/hourly.py --method MATPPO --seed 0

``--lp`` adds the perfect-foresight plan for the prior's EV levels (``prior EV + LP`` of
``reference.py``: the best batteries and heat pumps for that EV schedule, run in the
env), so the tables show at which hours, and with which device, the prior falls short of the
optimum, and the same plan with every battery ending the day holding at least the energy it
started with (``batteries kept``: no gain from emptying them before the noon episode end; a
few seconds per episode at N = 10; ``--episodes`` draws fewer days).

``--set`` takes the same overrides the run was trained with (e.g. ``--set
model.action_prior=rule_based`` for a run trained on the plain rules), ``--out`` the folder
``results.py`` wrote it to. The run must exist: this script never trains. It prints the
tables (``studies/community/results/hourly_n10.md`` keeps one such output).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import common
import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

from mtmarl.envs.community import CommunityEnergyEnv, community_kpis, physical_rating

_PLUGGED = CommunityEnergyEnv.CONTEXT_FEATURES.index("ev_plugged")
_NEED = CommunityEnergyEnv.CONTEXT_FEATURES.index("ev_energy_needed")


def hourly(td, rating_kw: float) -> str:
    """The per-hour table of one rollout ``(E, 96)`` of a community with that rating."""
    k = td["next", "kpi"]
    over = k["transformer_overload"][..., 0] * rating_kw
    mode = td["agents", "action", "mode"]
    hvac_kw = td["agents", "action", "power"][..., 1].abs() * physical_rating(td, "hvac_kw")
    rows = [
        "| hour | cost | import kW | over rating kW | cars slow | cars fast | battery SoC | "
        "battery cmd | heat pumps kW | indoor temp |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for h in range(24):
        s = slice(4 * h, 4 * h + 4)
        rows.append(
            f"| {(12 + h) % 24:02d} | {k['cost'][:, s].sum(1).mean():.2f} | "
            f"{k['peak'][:, s].mean():.1f} | {over[:, s].mean():.2f} | "
            f"{(mode[:, s] == 1).float().sum(-1).mean():.2f} | "
            f"{(mode[:, s] == 2).float().sum(-1).mean():.2f} | "
            f"{td['agents', 'device_state'][:, s, :, 0].mean():.2f} | "
            f"{td['agents', 'action', 'power'][:, s, :, 0].mean():.2f} | "
            f"{hvac_kw[:, s].sum(-1).mean():.1f} | "
            f"{td['agents', 'device_state'][:, s, :, 2].mean():.2f} |"
        )
    return "\n".join(rows)


def mode_probabilities(actor, td) -> str:
    """The actor's EV-level probabilities per hour, over plugged-in cars that need energy."""
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        out = actor(td.exclude("next").clone())
    probs = out["agents", "params", "mode", "logits"].softmax(-1)
    ctx = td["agents", "context"]
    waiting = (ctx[..., _PLUGGED] > 0.5) & (ctx[..., _NEED] > 0)
    rows = ["| hour | p(off) | p(slow) | p(fast) | car-steps |", "|---|---|---|---|---|"]
    for h in range(24):
        s = slice(4 * h, 4 * h + 4)
        m = waiting[:, s]
        if m.any():
            p = probs[:, s][m].mean(0)
            rows.append(
                f"| {(12 + h) % 24:02d} | {p[0]:.2f} | {p[1]:.2f} | {p[2]:.2f} | {int(m.sum())} |"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="MATPPO", choices=sorted(common.LEARNED))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=10, choices=sorted(common.BUDGETS))
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--lp", action="store_true", help="add the prior EV + LP plan")
    parser.add_argument("--episodes", type=int, default=None, help="default: the size's days")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    trainer = common.finished_run(args.method, args.size, args.seed, args.out, args.set)
    trainer.load_best()
    episodes = args.episodes or common.BUDGETS[args.size]["test_episodes"]
    env = common.eval_env(args.size, episodes, trainer.config.variant)
    policies = {name: cls(env) for name, cls in common.BASELINES.items() if name != "no-flex"}
    policies[args.method] = trainer.actor
    rating_kw = env.base_env.transformer_rating_kw

    def show(name, td):
        kpi = community_kpis(td)
        print(
            f"\n### {name}: cost {kpi['cost']:.2f}, peak {kpi['peak_kw']:.1f} kW, overload "
            f"{kpi['overload_hours']:.2f} h, return {kpi['return']:.2f}\n\n"
            f"{hourly(td, rating_kw)}"
        )

    rollouts = {
        name: common.rollout(env, policy, deterministic=True) for name, policy in policies.items()
    }
    for name, td in rollouts.items():
        show(name, td)
    if args.lp:
        modes = rollouts[common.PRIOR]["agents", "action", "mode"]
        show(f"{common.PRIOR} EV + LP", common.lp_rollout(env, modes)[1])
        kept = common.lp_rollout(env, modes, keep_battery_energy=True)[1]
        show(f"{common.PRIOR} EV + LP, batteries kept", kept)
    actor_td = rollouts[args.method]
    print(
        f"\n### {args.method}: EV-level probabilities\n\n{mode_probabilities(trainer.actor, actor_td)}"
    )


if __name__ == "__main__":
    main()
