"""How much of the clipped gradient step reaches the actor, per critic, from scratch.

Question: MAPPO clips one gradient norm over the actor's and the critic's parameters together
(``optim.max_grad_norm``, 1.0 in the ``community`` preset). When the critic's gradient is the
larger part of that norm, every clipped step scales the actor's gradient down with it: does
the Transformer critic (MATPPO) leave its actor a smaller step than an MLP critic (MAPPO-MLP)
or local critics (IPPO) do?

For each run of ``scratch.py`` at the given sizes (it must have finished), and for the same
configuration freshly initialised: one collected batch (the run's own training envs, with
GAE as the update computes it), then, over one epoch of its minibatches, the L2 norms of the
PPO loss's gradient with respect to the actor's parameters and to the critic's, and the
factor the clip multiplies the actor's gradient by, ``min(1, max_grad_norm / total)``
(means over minibatches, then over seeds). Nothing is trained or written; prints a markdown
table (kept as ``results/scratch/grad_share.md``)::

    OMP_NUM_THREADS=1 python studies/community/grad_share.py --sizes 10 50 100
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from common import (
    BUDGETS,
    finished_run,
    rank,
    run_config,
    scratch_overrides,
)
from scratch import METHODS, OUT, add_sizes_argument

from mtmarl.training import Trainer


def gradient_norms(trainer: Trainer) -> dict[str, float]:
    """The actor's and the critic's gradient norms of the PPO loss over one epoch of
    minibatches of one collected batch, and the clip's factor on the actor (means)."""
    algorithm, cfg = trainer.algorithm, trainer.config
    batch = trainer.collect()
    algorithm.estimate_advantage(batch)
    loss_module = algorithm.loss_module
    named = dict(loss_module.named_parameters())
    groups = {
        side: [p for name, p in named.items() if name.startswith(f"{side}_network_params")]
        for side in ("actor", "critic")
    }
    if not groups["actor"] or not groups["critic"]:
        raise RuntimeError(f"expected actor and critic parameters, got {sorted(named)[:4]}...")
    rows = []
    for minibatch in algorithm.variant.minibatches(batch.exclude("next"), cfg.optim.minibatch_size):
        with algorithm.variant.context():
            losses = loss_module(minibatch)
        total = sum(v for k, v in losses.items() if k.startswith("loss_"))
        loss_module.zero_grad(set_to_none=True)
        total.backward()
        norms = {
            side: torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in params if p.grad is not None])
            ).item()
            for side, params in groups.items()
        }
        whole = (norms["actor"] ** 2 + norms["critic"] ** 2) ** 0.5
        rows.append({**norms, "clip": min(1.0, cfg.optim.max_grad_norm / whole)})
    loss_module.zero_grad(set_to_none=True)
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sizes_argument(parser)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", type=Path, default=OUT, help="scratch.py's output folder")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(
        "| N | method | model | actor grad norm | critic grad norm | clip factor on the actor |"
        "\n|---|---|---|---|---|---|"
    )
    for n in args.sizes:
        for method in sorted(args.methods, key=rank):
            for label in ("initial", "final"):
                measured = []
                for seed in BUDGETS[n]["seeds"]:
                    if label == "initial":
                        cfg = run_config(method, n, seed, scratch_overrides(n))
                        trainer = Trainer(cfg)
                    else:
                        trainer = finished_run(method, n, seed, args.out, scratch_overrides(n))
                    torch.manual_seed(seed)
                    measured.append(gradient_norms(trainer))
                    trainer.close()
                mean = {k: sum(m[k] for m in measured) / len(measured) for k in measured[0]}
                print(
                    f"| {n} | {method} | {label} | {mean['actor']:.3g} | {mean['critic']:.3g} "
                    f"| {mean['clip']:.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
