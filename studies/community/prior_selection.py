"""Community energy trading: choosing the rule-based prior's ``ev_spread``, battery pacing and
thermostat deadband.

``RuleBasedSelfConsumptionPolicy(env, ev_spread=s, thermostat_deadband=d, battery_spread=b,
battery_refill_hour=h)`` lets a plugged-in car wait in off-peak hours while the rate its need
requires is below ``s`` times the slow charger, idles the heat pump while the indoor
temperature is within ``d`` half-bands of the comfort band's middle, and discharges the
battery no faster than ``1 / b`` times the pace that spreads its energy until ``h`` o'clock.
This script rolls the controller out on a grid of ``d``, ``s``, ``b`` and ``h``
on a community that neither the studies' training (env seeds 0-2 and their validation
communities, 10000-10002) nor their evaluation (``common.EVAL_SEED``) uses
(``common.SELECTION_SEED``), on as many days as the evaluation (``test_episodes``), and
prints the KPIs per community size. The values of the preset's priors
(``mtmarl.training.experiments.COMMUNITY_EV_SPREAD``, ``COMMUNITY_THERMOSTAT_DEADBAND``,
``COMMUNITY_BATTERY_SPREAD`` and ``COMMUNITY_BATTERY_REFILL_HOUR``) are the best mean return
over the three sizes, chosen in two stages (``d`` and ``s`` without pacing, then ``b`` and
``h`` -- with ``s`` again -- at the chosen ``d``)::

    OMP_NUM_THREADS=1 python studies/community/prior_selection.py
    OMP_NUM_THREADS=1 python studies/community/prior_selection.py --deadbands 0.9 \
        --spreads 0.5 0.6 0.75 --battery-spreads 0 0.5 0.75 1 --refill-hours 4 5 6 7 8

A third stage grids the heat pumps' pre-heating (``preheat_target`` and the window's opening
hour, the window closing at 16 h) at the chosen values; its choice
(``COMMUNITY_PREHEAT_TARGET``, ``COMMUNITY_PREHEAT_HOURS``) is the preset's prior::

    OMP_NUM_THREADS=1 python studies/community/prior_selection.py --deadbands 0.9 \
        --spreads 0.6 --battery-spreads 1 --refill-hours 5 \
        --preheat-targets 0 0.2 0.3 0.45 0.6 --preheat-starts 11 12 13 14

``--eval`` rolls out on the evaluation community instead (to report, not to choose). The
tables of the three stages are in ``studies/community/results/prior_selection.md``.
"""

from __future__ import annotations

import argparse
import itertools
import os

import common
import torch

from mtmarl.envs.community import RuleBasedSelfConsumptionPolicy

SPREADS = (0.0, 0.4, 0.5, 0.6, 0.75)
DEADBANDS = (0.0, 0.5, 0.75, 0.9)
BATTERY_SPREADS = (0.0,)
REFILL_HOURS = (7.0,)
PREHEAT_TARGETS = (0.0,)
PREHEAT_STARTS = (12.0,)
PREHEAT_END = 16.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(common.BUDGETS))
    parser.add_argument("--spreads", type=float, nargs="+", default=list(SPREADS))
    parser.add_argument("--deadbands", type=float, nargs="+", default=list(DEADBANDS))
    parser.add_argument("--battery-spreads", type=float, nargs="+", default=list(BATTERY_SPREADS))
    parser.add_argument("--refill-hours", type=float, nargs="+", default=list(REFILL_HOURS))
    parser.add_argument("--preheat-targets", type=float, nargs="+", default=list(PREHEAT_TARGETS))
    parser.add_argument(
        "--preheat-starts",
        type=float,
        nargs="+",
        default=list(PREHEAT_STARTS),
        help=f"local hours the pre-heating window opens (it closes at {PREHEAT_END:g})",
    )
    parser.add_argument("--eval", action="store_true", help="the evaluation community")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    grid = list(
        itertools.product(
            args.deadbands,
            args.spreads,
            args.battery_spreads,
            args.refill_hours,
            args.preheat_targets,
            args.preheat_starts,
        )
    )
    returns: dict[tuple[float, ...], list[float]] = {g: [] for g in grid}
    print(
        "| N | thermostat deadband | ev_spread | battery_spread | refill hour | preheat target "
        "| preheat from | cost / day | peak import (kW) | overload (h) | comfort viol. (degC h) "
        "| return |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        episodes = common.BUDGETS[n]["test_episodes"]
        env = common.eval_env(
            n, episodes, "basic", seed=common.EVAL_SEED if args.eval else common.SELECTION_SEED
        )
        for g in grid:
            deadband, spread, battery_spread, refill_hour, preheat, start = g
            policy = RuleBasedSelfConsumptionPolicy(
                env,
                ev_spread=spread,
                thermostat_deadband=deadband,
                battery_spread=battery_spread,
                battery_refill_hour=refill_hour,
                preheat_target=preheat,
                preheat_hours=(start, PREHEAT_END),
            )
            k = common.kpis(common.rollout(env, policy, deterministic=True))
            returns[g].append(k["return"])
            print(
                f"| {n} | {deadband:g} | {spread:g} | {battery_spread:g} | {refill_hour:g} | "
                f"{preheat:g} | {start:g} | "
                f"{k['cost']:.2f} | {k['peak_kw']:.1f} | {k['overload_hours']:.2f} | "
                f"{k['comfort']:.2f} | {k['return']:.2f} |",
                flush=True,
            )
    deadband, spread, battery_spread, refill_hour, preheat, start = max(
        returns, key=lambda g: sum(returns[g]) / len(returns[g])
    )
    print(
        f"\nbest mean return over N = {args.sizes}: thermostat_deadband = {deadband:g}, "
        f"ev_spread = {spread:g}, battery_spread = {battery_spread:g}, "
        f"battery_refill_hour = {refill_hour:g}, preheat_target = {preheat:g}, "
        f"preheat_hours = ({start:g}, {PREHEAT_END:g})"
    )


if __name__ == "__main__":
    main()
