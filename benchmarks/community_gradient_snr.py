"""Community energy trading: how much of MATPPO's policy gradient at the prior is signal.

The learners start at the prior and stay there (``benchmarks/README.md``): their updates move
the actor, but not toward a better one. This script measures why. It fits the critic of the
``MATPPO`` run of ``community_results.py`` (N = 10) with the actor held at its initial
parameters (``optim.critic_warmup``, 15 iterations by default: explained variance about 0.8),
then collects ``--batches`` independent batches of the run's size (16 days) with that actor
and takes, for each, the gradient of PPO's objective (``loss_objective``) with respect to
the actor's parameters. The batch was collected by the same actor, so the importance ratio
is 1 and that gradient is the policy gradient with the normalised per-agent GAE advantages
that the first update of a run sees. (The script drives the trainer's own steps,
``Trainer.collect``, ``Trainer.update`` and ``MAPPO.estimate_advantage``, so that its batches and
advantages are exactly a run's.)

With ``g_i`` the batch gradients (``M`` of them) it reports, per parameter tensor:

* ``signal`` = ``|E g|^2``, estimated without bias as
  ``(|sum g_i|^2 - sum |g_i|^2) / (M (M - 1))`` (it can come out negative when it is small);
* ``noise`` = ``E |g - E g|^2``, the trace of one batch's gradient covariance;
* ``batches for cos 0.5``: ``noise / signal``, how many batches of 16 days one gradient
  estimate needs before two independent estimates have an expected cosine of 0.5;

the mean pairwise cosine of batches of 16, 32 and 64 days, and a step test: the actor moved
by a few lengths along the normalised mean gradient as PPO would move it (all parameters,
only the heads' output biases, or all but those), along its opposite, and along a
direction of pure noise (the difference of the two halves' mean gradients), each rolled out
on the selection community (``community_prior_selection.SELECTION_SEED``, 64 days) both
deterministically (as the benchmark evaluates) and sampled (as PPO collects, with the same
action noise for every move). An offset scan then adds a constant to the battery or the
heat-pump command of the initial actor and rolls it out the same two ways: the shape of the
return around the prior along the two directions that carry most of the gradient's signal::

    OMP_NUM_THREADS=1 python benchmarks/community_gradient_snr.py

about 5 min on one core with the defaults. Writes ``results/community/gradient_snr.md``
(``gradient_snr_<tag>.md`` with ``--tag``). ``--set`` changes the run's config, e.g. the
leave-one-out baseline over episode groups::

    OMP_NUM_THREADS=1 python benchmarks/community_gradient_snr.py --tag group4 \\
        --set collector.episode_group_size=4 loss.group_baseline=true
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import community_results as cr  # noqa: E402
from community_prior_selection import SELECTION_SEED  # noqa: E402

from mtmarl.training import Trainer  # noqa: E402

#: lengths (parameter-space norm) of the step test's moves
STEP_SIZES = (0.01, 0.03, 0.1, 0.3)
#: the torch seed of every sampled rollout of the step test (the same action noise for each move)
SAMPLING_SEED = 0
#: the offset scan's shifts of one power command (in its [-1, 1] action units)
OFFSETS = (-0.1, -0.03, -0.01, 0.0, 0.01, 0.03, 0.1)
#: the seed of the first gradient batch's collection (later ones count up); far from the
#: iterations a run collects (``Trainer._iteration_seed``)
BATCH_SEED = 100_000


class Offset(torch.nn.Module):
    """``actor`` with ``delta`` added to one power command (``index`` 0: battery, 1: heat
    pump) of every agent at every step, after the actor has acted (clipped to [-1, 1])."""

    def __init__(self, actor, index: int, delta: float) -> None:
        super().__init__()
        self.actor, self.index, self.delta = actor, index, delta

    def forward(self, td):
        td = self.actor(td)
        power = td["agents", "action", "power"].clone()
        power[..., self.index] = (power[..., self.index] + self.delta).clamp(-1.0, 1.0)
        td.set(("agents", "action", "power"), power)
        return td


def both_returns(env, policy) -> tuple[dict[str, float], float]:
    """The KPIs of ``policy``'s deterministic rollout on ``env`` and its sampled rollout's
    return, the sampling seeded with ``SAMPLING_SEED`` (the same action noise every call)."""
    torch.manual_seed(SAMPLING_SEED)
    sampled = cr.kpis(cr.rollout(env, policy, deterministic=False))["return"]
    return cr.kpis(cr.rollout(env, policy, deterministic=True)), sampled


def offset_scan(actor, env) -> list[str]:
    """The initial actor's returns with one command shifted by each of ``OFFSETS``."""
    lines = [
        "",
        "Offset scan: the initial actor with a constant added to one power command of every "
        "agent at every step (action units, the command's range is [-1, 1]), rolled out on "
        "the selection community deterministically and sampled (the same torch seed for "
        "every row).\n",
        "| command | offset | return | sampled return |",
        "|---|---|---|---|",
    ]
    for index, command in enumerate(("battery", "heat pump")):
        for delta in OFFSETS:
            det, sam = both_returns(env, Offset(actor, index, delta))
            lines.append(f"| {command} | {delta:+g} | {det['return']:.3f} | {sam:.3f} |")
            print(lines[-1], flush=True)
    return lines


def short_name(name: str) -> str:
    """``actor_network_params.module.0.module.1.module.continuous.4.bias`` -> ``continuous.4.bias``."""
    return name.rsplit("module.", 1)[-1]


def batch_gradients(
    trainer: Trainer, iterator, batches: int
) -> tuple[list[str], list, torch.Tensor]:
    """The names and tensors of the actor's parameters in the loss module, and the
    ``(batches, P)`` gradients of ``loss_objective`` on independent batches."""
    named = [
        (n, p)
        for n, p in trainer.loss_module.named_parameters()
        if n.startswith("actor_network_params") and p.requires_grad
    ]
    params = [p for _, p in named]
    grads = []
    for m in range(batches):
        trainer.iteration = BATCH_SEED + m  # collect() seeds each batch by the iteration
        data = trainer.collect()
        trainer.algorithm.estimate_advantage(data)
        loss = trainer.loss_module(data.reshape(-1))["loss_objective"]
        g = torch.autograd.grad(loss, params, allow_unused=True)
        grads.append(
            torch.cat(
                [(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(g, params)]
            )
        )
        print(f"batch {m}: team return {data['next', 'reward'].sum(1).mean():.2f}", flush=True)
    return [n for n, _ in named], params, torch.stack(grads).double()


def signal_noise(g: torch.Tensor) -> tuple[float, float]:
    """Unbiased ``|E g|^2`` and ``E |g - E g|^2`` of the rows of ``g`` ``(M, P)``."""
    m = g.shape[0]
    total = g.sum(0)
    signal = (total.dot(total) - (g * g).sum()) / (m * (m - 1))
    noise = ((g - g.mean(0)) ** 2).sum(1).sum() / (m - 1)
    return float(signal), float(noise)


def mean_cosine(g: torch.Tensor) -> float:
    pairs = itertools.combinations(range(g.shape[0]), 2)
    cos = [torch.nn.functional.cosine_similarity(g[i], g[j], 0) for i, j in pairs]
    return float(torch.stack(cos).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=16, help="gradient batches (default 16)")
    parser.add_argument("--warmup", type=int, default=15, help="critic-only iterations")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/community"))
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of the run's config"
    )
    parser.add_argument("--tag", default="", help="writes gradient_snr_<tag>.md")
    args = parser.parse_args()
    if args.batches < 4 or args.warmup < 1:
        raise SystemExit(
            f"need --batches >= 4 and --warmup >= 1, got {args.batches}, {args.warmup}"
        )
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    # the run's config, with a critic-only warm-up one iteration shorter than the run (the
    # loop below stops at the warm-up's end, before the actor's first update)
    cr.EXTRA[:] = [
        *args.set,
        f"collector.iterations={args.warmup + 1}",
        f"optim.critic_warmup={args.warmup}",
    ]
    env = cr.eval_env(10, 64, "basic", seed=SELECTION_SEED)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cr.run_config("MATPPO", 10, args.seed), run_dir=run_dir)
        iterator = None  # Trainer.collect builds its collector on first use
        for _ in range(args.warmup):  # Trainer.train's iterations, without its evaluations
            metrics = trainer.update(trainer.collect())
            trainer.iteration += 1
        explained = metrics["train/explained_variance"]
        names, params, g = batch_gradients(trainer, iterator, args.batches)
        lines = report(names, params, g, explained, args, trainer.config.collector.num_envs)
        lines += step_test(trainer, env, names, params, g)
        lines += offset_scan(trainer.actor, env)
    name = f"gradient_snr_{args.tag}.md" if args.tag else "gradient_snr.md"
    (args.out / name).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def report(names, params, g, explained: float, args, days: int) -> list[str]:
    total_signal, total_noise = signal_noise(g)
    lines = [
        "# MATPPO's policy gradient at the prior: signal and noise (N = 10)\n",
        f"Generated by `OMP_NUM_THREADS={torch.get_num_threads()} python "
        f"benchmarks/community_gradient_snr.py{''.join(' ' + a for a in sys.argv[1:])}` (see its "
        f"docstring): {args.batches} batches of {days} days each, collected by the initial "
        f"actor of `MATPPO` (seed {args.seed}) after {args.warmup} critic-only iterations "
        f"(explained variance {explained:.2f} on the last)"
        + (f", with `--set {' '.join(args.set)}`" if args.set else "")
        + ". `signal` = |E g|^2, `noise` = "
        "E |g - E g|^2 for one batch's gradient g of `loss_objective`; `batches for cos 0.5` "
        "= noise / signal.\n",
        "| parameters | size | signal | noise | batches for cos 0.5 | share of the signal |",
        "|---|---|---|---|---|---|",
    ]
    rows = []
    offset = 0
    for name, p in zip(names, params):
        block = g[:, offset : offset + p.numel()]
        offset += p.numel()
        rows.append((short_name(name), block))
        if short_name(name).startswith("continuous.") and name.endswith("bias") and p.numel() == 4:
            # the continuous head's output: (loc, scale) x (battery, HVAC), NormalParamExtractor
            for i, part in enumerate(("loc battery", "loc HVAC", "scale battery", "scale HVAC")):
                rows.append((f"  {short_name(name)}[{i}] ({part})", block[:, i : i + 1]))
    for label, block in rows:
        s, n = signal_noise(block)
        ratio = f"{n / s:.1f}" if s > 0 else "inf (signal <= 0)"
        lines.append(
            f"| {label} | {block.shape[1]} | {s:.2e} | {n:.2e} | {ratio} | {s / total_signal:+.2f} |"
        )
    lines.append(
        f"| all | {g.shape[1]} | {total_signal:.2e} | {total_noise:.2e} | "
        f"{total_noise / total_signal:.1f} | 1.00 |"
    )
    lines += [
        "",
        "| batch (days) | mean pairwise cosine of the gradients | batches |",
        "|---|---|---|",
    ]
    for k in (1, 2, 4):
        count = args.batches // k
        if count >= 2:
            merged = g[: count * k].reshape(count, k, -1).mean(1)
            lines.append(f"| {days * k} | {mean_cosine(merged):.3f} | {count} |")
    return lines


def step_test(trainer, env, names, params, g) -> list[str]:
    """Move the actor along the normalised mean gradient (descent, as PPO does), its opposite,
    and a direction of pure noise (the difference of two half-sample means, which has the
    gradient's noise profile over the parameters and no signal)."""
    direction = -g.mean(0)
    output_bias = torch.zeros_like(direction, dtype=torch.bool)
    offset = 0
    for name, p in zip(names, params):
        if name.endswith("bias") and p.numel() <= 4:  # the heads' output biases
            output_bias[offset : offset + p.numel()] = True
        offset += p.numel()
    half = g.shape[0] // 2
    moves = {
        "PPO's (descent on the mean gradient), all": direction,
        "PPO's, output biases only": direction * output_bias,
        "PPO's, all but output biases": direction * ~output_bias,
        "the opposite (ascent), all": -direction,
        # no signal, one half-batch mean's noise: where a step of pure noise leads
        "noise: difference of the two halves' means": g[:half].mean(0) - g[half : 2 * half].mean(0),
    }
    start = [p.detach().clone() for p in params]
    initial, initial_sampled = both_returns(env, trainer.actor)
    lines = [
        "",
        "Step test: the actor moved by a length `step` (parameter norm) along each direction "
        "and rolled out on the selection community (64 days), deterministically (as the "
        "benchmark evaluates) and sampled (as PPO collects; the same torch seed for every row, "
        f"so that the rows differ by the move only). The initial actor: return "
        f"{initial['return']:.3f} (sampled {initial_sampled:.3f}), cost {initial['cost']:.2f}, "
        f"peak {initial['peak_kw']:.1f} kW.\n",
        "| direction | step | return | change | sampled return | change | cost / day "
        "| peak import (kW) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, d in moves.items():
        d = d / d.norm()
        for size in STEP_SIZES:
            with torch.no_grad():
                offset = 0
                for p, p0 in zip(params, start):
                    p.copy_(p0 + size * d[offset : offset + p.numel()].view_as(p).to(p.dtype))
                    offset += p.numel()
            k, sampled = both_returns(env, trainer.actor)
            lines.append(
                f"| {label} | {size:g} | {k['return']:.3f} | {k['return'] - initial['return']:+.3f} "
                f"| {sampled:.3f} | {sampled - initial_sampled:+.3f} | {k['cost']:.2f} "
                f"| {k['peak_kw']:.1f} |"
            )
            print(lines[-1], flush=True)
    with torch.no_grad():
        for p, p0 in zip(params, start):
            p.copy_(p0)
    return lines


if __name__ == "__main__":
    main()
