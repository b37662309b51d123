"""Community energy trading: choosing the rule-based prior's ``ev_spread`` and thermostat deadband.

``RuleBasedSelfConsumptionPolicy(env, ev_spread=s, thermostat_deadband=d)`` lets a plugged-in
car wait in off-peak hours while the rate its need requires is below ``s`` times the slow
charger, and idles the heat pump while the indoor temperature is within ``d`` half-bands of
the comfort band's middle. This script rolls the controller out on a grid of ``s`` and ``d``
on a community that neither the benchmark's training (env seeds 0-2 and their validation
communities, 10000-10002) nor its evaluation (``community_results.EVAL_SEED``) uses, on as
many days as the benchmark's evaluation (``test_episodes``), and prints the KPIs per
community size. The values of the preset's priors
(``mtmarl.training.experiments.COMMUNITY_EV_SPREAD`` and ``COMMUNITY_THERMOSTAT_DEADBAND``)
are the best mean return over the three sizes::

    OMP_NUM_THREADS=1 python benchmarks/community_prior_selection.py

``--eval`` rolls out on the benchmark's evaluation community instead (to report, not to
choose).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import community_results as cr  # noqa: E402

from mtmarl.envs.community import RuleBasedSelfConsumptionPolicy  # noqa: E402

SELECTION_SEED = 30_000
SPREADS = (0.0, 0.4, 0.5, 0.6, 0.75)
DEADBANDS = (0.0, 0.5, 0.75, 0.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(cr.BUDGETS))
    parser.add_argument("--spreads", type=float, nargs="+", default=list(SPREADS))
    parser.add_argument("--deadbands", type=float, nargs="+", default=list(DEADBANDS))
    parser.add_argument("--eval", action="store_true", help="the evaluation community")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    grid = list(itertools.product(args.deadbands, args.spreads))
    returns: dict[tuple[float, float], list[float]] = {g: [] for g in grid}
    print(
        "| N | thermostat deadband | ev_spread | cost / day | peak import (kW) | overload (h) "
        "| comfort viol. (degC h) | return |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        episodes = cr.BUDGETS[n]["test_episodes"]
        env = cr.eval_env(n, episodes, "basic", seed=cr.EVAL_SEED if args.eval else SELECTION_SEED)
        for deadband, spread in grid:
            policy = RuleBasedSelfConsumptionPolicy(
                env, ev_spread=spread, thermostat_deadband=deadband
            )
            k = cr.kpis(cr.rollout(env, policy, deterministic=True))
            returns[deadband, spread].append(k["return"])
            print(
                f"| {n} | {deadband:g} | {spread:g} | {k['cost']:.2f} | {k['peak_kw']:.1f} | "
                f"{k['overload_hours']:.2f} | {k['comfort']:.2f} | {k['return']:.2f} |",
                flush=True,
            )
    deadband, spread = max(returns, key=lambda g: sum(returns[g]) / len(returns[g]))
    print(
        f"\nbest mean return over N = {args.sizes}: thermostat_deadband = {deadband:g}, "
        f"ev_spread = {spread:g}"
    )


if __name__ == "__main__":
    main()
