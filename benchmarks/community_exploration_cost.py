"""Community energy trading: what the learners' exploration noise costs around the prior.

PPO improves the policy it samples from; the benchmark reports the deterministic one (argmax
EV level, ``tanh(loc)`` powers). This script builds the initial actor of ``MATPPO`` in
``community_results.py`` (the prior plus heads whose last layers start at 0.01 of their
initialisation) for a grid of exploration settings, and rolls it out on the same days twice:
deterministically, and sampling its actions as the collector does. The gap is what the
training data's policy loses to the policy that is evaluated::

    OMP_NUM_THREADS=2 python benchmarks/community_exploration_cost.py

A second table samples one action leaf at a time at the preset's setting (the EV level,
the battery command, the heat-pump command; the others deterministic), to show whose noise
costs.

``model.init_scale`` is the continuous head's pre-tanh scale (battery and heat-pump
commands), ``model.action_prior_bonus`` the logit bonus on the prior's EV level. The days
are the selection community's (``community_prior_selection.SELECTION_SEED``, the one the
priors and the pilots were chosen on; ``--eval`` takes the benchmark's evaluation
community). Writes ``results/community/exploration_cost.md``.
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

from mtmarl.training import Trainer, apply_overrides  # noqa: E402

#: (init_scale, action_prior_bonus); the first is the preset's
SETTINGS = [(0.1, 5.0), (0.1, 20.0), (0.03, 8.0), (0.01, 5.0), (0.01, 20.0)]
COLUMNS = ["return", "cost", "peak_kw", "overload_hours", "comfort", "ev_unmet_kwh"]


def battery_throughput(td) -> float:
    """Energy in and out of the community's batteries (kWh / day, both directions, at the
    battery), mean over the days."""
    soc = td["agents", "device_state"][..., 0], td["next", "agents", "device_state"][..., 0]
    capacity = cr.physical_rating(td, "battery_kwh")
    return float(((soc[1] - soc[0]).abs() * capacity).sum((1, 2)).mean())


class PartlySampled(torch.nn.Module):
    """``actor`` with only the ``sampled`` leaves (``"mode"``, ``"battery"``, ``"hvac"``) of its
    action sampled and the rest deterministic (the actor runs once in each mode)."""

    def __init__(self, actor, sampled: set[str]) -> None:
        super().__init__()
        self.actor, self.sampled = actor, sampled

    def forward(self, td):
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            det = self.actor(td.clone())["agents", "action"]
        with set_exploration_type(ExplorationType.RANDOM):
            sam = self.actor(td.clone())["agents", "action"]
        pick = lambda leaf: sam if leaf in self.sampled else det  # noqa: E731
        power = torch.stack([pick("battery")["power"][..., 0], pick("hvac")["power"][..., 1]], -1)
        td.set(("agents", "action", "mode"), pick("mode")["mode"])
        td.set(("agents", "action", "power"), power)
        return td


def initial_actor(n: int, init_scale: float, bonus: float, run_dir: str):
    cfg = apply_overrides(
        cr.run_config("MATPPO", n, 0),
        [f"model.init_scale={init_scale}", f"model.action_prior_bonus={bonus}"],
    )
    return Trainer(cfg, run_dir=run_dir).actor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, choices=sorted(cr.BUDGETS), help="prosumers")
    parser.add_argument("--episodes", type=int, default=64, help="days (default 64)")
    parser.add_argument("--eval", action="store_true", help="the evaluation community instead")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/community"))
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    seed = cr.EVAL_SEED if args.eval else SELECTION_SEED
    env = cr.eval_env(args.n, args.episodes, "basic", seed=seed)
    head = "| init_scale | EV bonus | policy | " + " | ".join(cr.KPIS[c][0] for c in COLUMNS)
    lines = [head + " | battery throughput (kWh) |", "|" + "---|" * (len(COLUMNS) + 4)]
    for scale, bonus in SETTINGS:
        with tempfile.TemporaryDirectory() as d:
            actor = initial_actor(args.n, scale, bonus, d)
            for label, deterministic in (("deterministic", True), ("sampled", False)):
                td = cr.rollout(env, actor, deterministic=deterministic)
                k = cr.kpis(td)
                cells = " | ".join(cr.KPIS[c][1].format(k[c]) for c in COLUMNS)
                throughput = battery_throughput(td)
                lines.append(f"| {scale:g} | {bonus:g} | {label} | {cells} | {throughput:.1f} |")
                print(lines[-1], flush=True)
    leaves = ["| sampled leaf | " + " | ".join(cr.KPIS[c][0] for c in COLUMNS) + " |"]
    leaves.append("|" + "---|" * (len(COLUMNS) + 1))
    scale, bonus = SETTINGS[0]
    with tempfile.TemporaryDirectory() as d:
        actor = initial_actor(args.n, scale, bonus, d)
        for leaf in ("mode", "battery", "hvac"):
            k = cr.kpis(cr.rollout(env, PartlySampled(actor, {leaf}), deterministic=True))
            cells = " | ".join(cr.KPIS[c][1].format(k[c]) for c in COLUMNS)
            leaves.append(f"| {leaf} | {cells} |")
            print(leaves[-1], flush=True)
    title = (
        f"# Exploration noise around the prior: N = {args.n}, {args.episodes} days of "
        f"community seed {seed}\n\n"
        "The initial MATPPO actor of `community_results.py`, rolled out deterministically and "
        "sampled, on the same days (`community_exploration_cost.py`).\n\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    second = (
        f"\n\nOne leaf sampled at a time (init_scale {scale:g}, EV bonus {bonus:g}; the other "
        "leaves deterministic):\n\n"
    )
    text = title + "\n".join(lines) + second + "\n".join(leaves) + "\n"
    (args.out / "exploration_cost.md").write_text(text)


if __name__ == "__main__":
    main()
