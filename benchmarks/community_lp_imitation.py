"""Community energy trading: can the MATPPO actor imitate the perfect-foresight plan?

``community_reference.py`` shows that with the prior's EV levels and the batteries kept, the
LP's batteries and heat pumps return -2.93 on the evaluation days at N = 10, against the
prior's -4.19. This script asks whether the actor can be taught that plan directly
(behaviour cloning from a privileged teacher) instead of through PPO's gradient:

1. On ``--communities`` communities no benchmark run uses (env seeds 50000, 50001, ...),
   ``--days`` days each, it rolls out the prior (``rule-preheat``), plans the same days with
   :func:`~mtmarl.envs.community.perfect_foresight_plan` for the prior's EV levels
   (``keep_battery_energy=True``), and runs the plan in the env: the demonstrations are the
   plan's observations and its commands.
2. It fits the initial actor of ``MATPPO`` (``community_results.run_config``, seed 0: the
   prior plus the residual heads) by least squares of its deterministic battery and
   heat-pump commands on the plan's (``tanh(loc)``, in ``[-1, 1]``), plus a cross-entropy
   that keeps its EV level on the plan's (the prior's), with Adam (lr ``--lr``), minibatches
   of 512 steps, ``--epochs`` epochs.
3. Every 10 epochs it rolls the actor out deterministically on the selection community
   (``community_prior_selection.SELECTION_SEED``, 64 days) and prints the return, cost,
   peak, comfort violation and the change of the stored battery energy::

    OMP_NUM_THREADS=1 python benchmarks/community_lp_imitation.py

about 10 min with the defaults. Prints its results (``benchmarks/README.md`` quotes them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

sys.path.insert(0, str(Path(__file__).parent))
import community_results as cr  # noqa: E402
from community_prior_selection import SELECTION_SEED  # noqa: E402

from mtmarl.training import Trainer  # noqa: E402

#: the first demonstration community's env seed (away from every benchmark's communities)
DEMO_SEED = 50_000
MINIBATCH = 512
ACTION = ("agents", "action")


def demonstrations(seed: int, days: int):
    """The plan's steps ``(days * 96,)`` on one community, without ``"next"``: the prior's
    rollout and the plan for its EV levels, on the days ``community_results`` draws."""
    env = cr.eval_env(10, days, "basic", seed=seed)
    prior = cr.rollout(env, cr.BASELINES[cr.PRIOR](env), deterministic=True)
    _, ran = cr.lp_rollout(env, prior[(*ACTION, "mode")], keep_battery_energy=True)
    print(
        f"community {seed}: prior {cr.kpis(prior)['return']:.3f}, plan {cr.kpis(ran)['return']:.3f}",
        flush=True,
    )
    return ran.exclude("next").reshape(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communities", type=int, default=8)
    parser.add_argument("--days", type=int, default=32, help="days per community")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()
    if min(args.communities, args.days, args.epochs) < 1 or not args.lr > 0:
        raise SystemExit(f"need positive --communities, --days, --epochs and --lr, got {args}")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(0)
    data = torch.cat([demonstrations(DEMO_SEED + k, args.days) for k in range(args.communities)])
    power, mode = data[(*ACTION, "power")], data[(*ACTION, "mode")]
    obs = data.exclude(ACTION)
    env = cr.eval_env(10, 64, "basic", seed=SELECTION_SEED)
    with tempfile.TemporaryDirectory() as run_dir:
        actor = Trainer(cr.run_config("MATPPO", 10, 0), run_dir=run_dir).actor

        def report(label: str) -> None:
            k = cr.kpis(cr.rollout(env, actor, deterministic=True))
            print(
                f"{label}: return {k['return']:.3f}, cost {k['cost']:.2f}, peak "
                f"{k['peak_kw']:.1f} kW, comfort {k['comfort']:.2f} degC h, stored energy "
                f"{k['stored_kwh_change']:+.1f} kWh",
                flush=True,
            )

        report("initial actor")
        optimizer = torch.optim.Adam(actor.parameters(), lr=args.lr)
        for epoch in range(1, args.epochs + 1):
            total = 0.0
            for idx in torch.randperm(obs.shape[0]).split(MINIBATCH):
                with set_exploration_type(ExplorationType.DETERMINISTIC):
                    out = actor(obs[idx].clone())
                logits = out["agents", "params", "mode", "logits"]
                loss = ((out[(*ACTION, "power")] - power[idx]) ** 2).mean()
                loss = loss + 0.1 * torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), mode[idx].reshape(-1)
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * idx.numel()
            print(f"epoch {epoch}: loss {total / obs.shape[0]:.4f}", flush=True)
            if epoch % 10 == 0:
                report(f"epoch {epoch}")


if __name__ == "__main__":
    main()
