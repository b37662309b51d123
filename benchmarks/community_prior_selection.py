"""Community energy trading: choosing the rule-based controller's ``ev_spread``.

``RuleBasedSelfConsumptionPolicy(env, ev_spread=s)`` lets a plugged-in car wait in off-peak
hours while the rate its need requires is below ``s`` times the slow charger. This script
rolls the controller out for several ``s`` on a community that neither the benchmark's
training (env seeds 0-2 and their validation communities, 10000-10002) nor its evaluation
(``community_results.EVAL_SEED``) uses, and prints the KPIs per community size. The value of
the ``rule_based_spread`` prior (``mtmarl.training.experiments.COMMUNITY_EV_SPREAD``) is the
best mean return over the three sizes::

    OMP_NUM_THREADS=1 python benchmarks/community_ev_spread.py

``--eval`` rolls out on the benchmark's evaluation community instead (to report, not to
choose).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import community_results as cr  # noqa: E402

from mtmarl.envs.community import RuleBasedSelfConsumptionPolicy  # noqa: E402

SELECTION_SEED = 30_000
SPREADS = (0.0, 0.25, 0.4, 0.5, 0.6, 0.75)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(cr.BUDGETS))
    parser.add_argument("--spreads", type=float, nargs="+", default=list(SPREADS))
    parser.add_argument("--eval", action="store_true", help="the evaluation community")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    returns: dict[float, list[float]] = {s: [] for s in args.spreads}
    print(
        "| N | ev_spread | cost / day | peak import (kW) | overload (h) | ramping (kW) | return |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        episodes = cr.BUDGETS[n]["eval_episodes"]
        env = cr.eval_env(n, episodes, "basic", seed=cr.EVAL_SEED if args.eval else SELECTION_SEED)
        for spread in args.spreads:
            policy = RuleBasedSelfConsumptionPolicy(env, ev_spread=spread)
            k = cr.kpis(cr.rollout(env, policy, deterministic=True))
            returns[spread].append(k["return"])
            print(
                f"| {n} | {spread:g} | {k['cost']:.2f} | {k['peak_kw']:.1f} | "
                f"{k['overload_hours']:.2f} | {k['ramping_kw']:.0f} | {k['return']:.2f} |",
                flush=True,
            )
    best = max(returns, key=lambda s: sum(returns[s]) / len(returns[s]))
    print(f"\nbest mean return over N = {args.sizes}: ev_spread = {best:g}")


if __name__ == "__main__":
    main()
