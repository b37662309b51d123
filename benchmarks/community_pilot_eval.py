"""Community energy trading: judge pilot runs on the selection community, not the benchmark's.

The pilots of ``benchmarks/README.md`` (e.g. ``optim.critic_warmup=15``) train with
``community_results.py`` into their own ``--out``; this script reloads those finished runs
(it never trains: a missing run is an error) and rolls out, deterministically, each seed's
best-validation actor and its final iterate on the community the priors and the pilots are
chosen on (``community_prior_selection.SELECTION_SEED``), so that the choice is not made on
the evaluation community the tables report::

    OMP_NUM_THREADS=1 python benchmarks/community_results.py --sizes 10 --methods MATPPO \\
        --out /tmp/warm15 --set optim.critic_warmup=15
    OMP_NUM_THREADS=1 python benchmarks/community_pilot_eval.py --out /tmp/warm15 \\
        --set optim.critic_warmup=15

``--set`` must repeat the pilot's overrides (they rebuild the run's config, which its
checkpoint is checked against). Prints one line per seed and the mean ± population std over
the seeds of the best and the final actors' returns.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import community_results as cr  # noqa: E402
from community_prior_selection import SELECTION_SEED  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the pilot's --out")
    parser.add_argument("--n", type=int, default=10, choices=sorted(cr.BUDGETS), help="prosumers")
    parser.add_argument("--method", default="MATPPO", choices=sorted(cr.LEARNED))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--episodes", type=int, default=64, help="days (default 64)")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cr.EXTRA[:] = args.set
    variant = "phasic" if "phasic" in args.method else "basic"
    env = cr.eval_env(args.n, args.episodes, variant, seed=SELECTION_SEED)
    returns: dict[str, list[float]] = {"best": [], "final": []}
    for seed in args.seeds:
        trainer = cr.finished_run(args.method, args.n, seed, args.out)
        final = cr.kpis(cr.rollout(env, trainer.actor, deterministic=True))
        trainer.load_best()
        best = cr.kpis(cr.rollout(env, trainer.actor, deterministic=True))
        returns["best"].append(best["return"])
        returns["final"].append(final["return"])
        print(
            f"seed {seed}: best (iteration {trainer.best_iteration}) {best['return']:.3f} "
            f"(cost {best['cost']:.2f}, peak {best['peak_kw']:.1f} kW); final "
            f"{final['return']:.3f} (cost {final['cost']:.2f})",
            flush=True,
        )
    for name, values in returns.items():
        print(
            f"{args.out} {name}: {statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f} "
            f"{[round(v, 3) for v in values]}"
        )


if __name__ == "__main__":
    main()
