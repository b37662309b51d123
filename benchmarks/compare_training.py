"""Is a refactor numerically neutral? Train a preset briefly and compare the parameters.

Trains ``EXPERIMENT`` with the given overrides for a few iterations (deterministic on one
thread) and saves the loss module's ``state_dict`` (actor, critic and the algorithm's other
parameters); ``--compare A B`` reports whether two such files are bit-identical. Run it from
two checkouts (e.g. ``git worktree add /tmp/old <commit>``) to check that a change to the
training code trains exactly as before::

    (cd /tmp/old && PYTHONPATH=. python benchmarks/compare_training.py building old.pt variant=phasic)
    PYTHONPATH=. python benchmarks/compare_training.py building new.pt variant=phasic
    python benchmarks/compare_training.py --compare /tmp/old/old.pt new.pt
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import torch


def train_and_save(experiment: str, out: str, overrides: list[str], iterations: int) -> None:
    from mtmarl.training import Trainer, apply_overrides, get_experiment

    torch.set_num_threads(1)
    cfg = apply_overrides(
        get_experiment(experiment).config,
        [
            "collector.num_envs=16",
            f"collector.iterations={iterations}",
            "eval.episodes=8",
            f"eval.interval={iterations}",
            "run.progress=false",
            *overrides,
        ],
    )
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, run_dir=run_dir)
        result = trainer.train()
        torch.save({k: v.clone() for k, v in trainer.loss_module.state_dict().items()}, out)
    print(f"{experiment} {overrides}: final evaluation return {result.evaluation.return_mean}")


def compare(a_path: str, b_path: str) -> bool:
    a, b = torch.load(a_path, weights_only=True), torch.load(b_path, weights_only=True)
    differ = sorted(k for k in set(a) & set(b) if not torch.equal(a[k], b[k]))
    only = sorted(set(a) ^ set(b))
    same = not differ and not only
    print(f"{len(a)} / {len(b)} tensors; only in one: {only}; differing: {differ}")
    print("bit-identical" if same else "NOT identical")
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?")
    parser.add_argument("out", nargs="?", help="where to save the state_dict")
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"))
    args = parser.parse_args()
    if args.compare:
        sys.exit(0 if compare(*args.compare) else 1)
    if not (args.experiment and args.out):
        parser.error("give EXPERIMENT OUT [key=value ...], or --compare A B")
    train_and_save(args.experiment, args.out, args.overrides, args.iterations)


if __name__ == "__main__":
    main()
