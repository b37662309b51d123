"""PhaseLinear speed, measured side by side in one process (forward + backward, float32).

Compares, at batch 4096 and 256 -> 256 features:

* ``PhaseLinear(256, 256)`` (4 control points) vs ``nn.Linear(256, 4 * 256)``, the floor for any
  4-control-point layer (one matmul against all control points);
* ``PhaseLinear`` vs the naive PFNN route of the reference implementation -- gather the four
  neighbouring control points per sample, mix them into the per-sample weight ``W(u)`` with the
  cubic, then ``bmm`` -- at batch 1024 (the naive route's memory is batch * out * in).

The three variants are timed in interleaved rounds (A, B, C, A, B, C, ...) and the median per
round is reported, so that load from other processes hits all of them alike.

Usage::

    python benchmarks/bench_phase_linear.py [--rounds 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn

from mtmarl.nn import PhaseLinear


def naive_phase_linear(layer: PhaseLinear, x: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """The reference PFNN route (Holden et al.'s ``train_pfnn.py``): per-sample weights.

    Gather the four neighbouring control points of every sample (``(B, O, I)`` each), mix them
    with the cubic Catmull-Rom weights into ``W(u)``, then ``bmm`` -- memory traffic
    proportional to ``B * O * I``.
    """
    k = layer.n_control_points
    s = k * torch.remainder(phase, 1.0)
    k1 = s.floor().long() % k
    w = (s - s.floor()).view(-1, 1, 1)
    a0, a1, a2, a3 = (layer.weight[(k1 + d) % k] for d in (-1, 0, 1, 2))  # (B, O, I) each
    b0, b1, b2, b3 = (layer.bias[(k1 + d) % k] for d in (-1, 0, 1, 2))  # (B, O) each

    def cubic(y0, y1, y2, y3, mu):
        return (
            (-0.5 * y0 + 1.5 * y1 - 1.5 * y2 + 0.5 * y3) * mu**3
            + (y0 - 2.5 * y1 + 2.0 * y2 - 0.5 * y3) * mu**2
            + (-0.5 * y0 + 0.5 * y2) * mu
            + y1
        )

    weight = cubic(a0, a1, a2, a3, w)
    bias = cubic(b0, b1, b2, b3, w.view(-1, 1))
    return torch.bmm(weight, x.unsqueeze(-1)).squeeze(-1) + bias


def dense_mix_phase_linear(
    layer: PhaseLinear, x: torch.Tensor, phase: torch.Tensor
) -> torch.Tensor:
    """A stronger per-sample-weight baseline: ``W(u)`` as one GEMM of the dense coefficients
    ``(B, K)`` against all control points ``(K, O * I)``, then ``bmm``."""
    c = layer.coefficients(phase)  # (B, K)
    w = torch.einsum("bk,koi->boi", c, layer.weight)
    return torch.bmm(w, x.unsqueeze(-1)).squeeze(-1) + c @ layer.bias


def time_fwd_bwd(fn, x, phase, repeats: int) -> float:
    """Seconds per forward + backward, mean over ``repeats`` calls."""
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn(x, phase)
        out.sum().backward()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--naive-batch", type=int, default=1024)
    parser.add_argument("--json", type=str, default=None, help="write results to this file")
    args = parser.parse_args()

    torch.manual_seed(0)
    f = args.features
    phase_layer = PhaseLinear(f, f)
    floor_layer = nn.Linear(f, 4 * f)
    x = torch.randn(args.batch, f, requires_grad=True)
    phase = torch.rand(args.batch)
    xn = torch.randn(args.naive_batch, f, requires_grad=True)
    phase_n = torch.rand(args.naive_batch)
    with torch.no_grad():  # the benchmark's naive route computes the same function
        ref = naive_phase_linear(phase_layer, xn, phase_n)
        torch.testing.assert_close(phase_layer(xn, phase_n), ref, rtol=1e-4, atol=1e-4)
        ref = dense_mix_phase_linear(phase_layer, xn, phase_n)
        torch.testing.assert_close(phase_layer(xn, phase_n), ref, rtol=1e-4, atol=1e-4)

    def floor_fn(x, _phase):
        return floor_layer(x)

    def naive_fn(x, phase):
        return naive_phase_linear(phase_layer, x, phase)

    def dense_fn(x, phase):
        return dense_mix_phase_linear(phase_layer, x, phase)

    for _ in range(3):  # warm-up
        time_fwd_bwd(phase_layer, x, phase, 2)
        time_fwd_bwd(floor_fn, x, phase, 2)
        time_fwd_bwd(dense_fn, xn, phase_n, 1)
    time_fwd_bwd(naive_fn, xn, phase_n, 1)

    t_phase, t_floor, t_phase_n, t_naive, t_dense = [], [], [], [], []
    for _ in range(args.rounds):
        t_phase.append(time_fwd_bwd(phase_layer, x, phase, 5))
        t_floor.append(time_fwd_bwd(floor_fn, x, phase, 5))
        t_phase_n.append(time_fwd_bwd(phase_layer, xn, phase_n, 5))
        t_naive.append(time_fwd_bwd(naive_fn, xn, phase_n, 1))
        t_dense.append(time_fwd_bwd(dense_fn, xn, phase_n, 1))
    ratio_floor = [a / b for a, b in zip(t_phase, t_floor)]
    speedup_naive = [b / a for a, b in zip(t_phase_n, t_naive)]
    speedup_dense = [b / a for a, b in zip(t_phase_n, t_dense)]

    results = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "features": f,
        "phase_linear_ms": 1e3 * statistics.median(t_phase),
        "linear_4x_ms": 1e3 * statistics.median(t_floor),
        "ratio_vs_linear_4x": statistics.median(ratio_floor),
        "naive_batch": args.naive_batch,
        "phase_linear_naive_batch_ms": 1e3 * statistics.median(t_phase_n),
        "naive_ms": 1e3 * statistics.median(t_naive),
        "speedup_vs_naive": statistics.median(speedup_naive),
        "dense_mix_ms": 1e3 * statistics.median(t_dense),
        "speedup_vs_dense_mix": statistics.median(speedup_dense),
    }
    print(f"PhaseLinear({f}, {f}) fwd+bwd, float32, CPU, {torch.get_num_threads()} threads")
    print(
        f"  batch {args.batch}: PhaseLinear {results['phase_linear_ms']:.2f} ms, "
        f"nn.Linear({f}, {4 * f}) {results['linear_4x_ms']:.2f} ms, "
        f"ratio {results['ratio_vs_linear_4x']:.3f} (target <= 1.3)"
    )
    print(
        f"  batch {args.naive_batch}: PhaseLinear {results['phase_linear_naive_batch_ms']:.2f} ms, "
        f"naive per-sample weights (reference PFNN gather + cubic) + bmm "
        f"{results['naive_ms']:.1f} ms, speed-up {results['speedup_vs_naive']:.1f}x (target >= 50x)"
    )
    print(
        f"  batch {args.naive_batch}: per-sample weights by one dense GEMM + bmm "
        f"{results['dense_mix_ms']:.1f} ms, speed-up {results['speedup_vs_dense_mix']:.1f}x"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
