"""Learning-curve figures (matplotlib, headless)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["plot_learning_curve"]


def plot_learning_curve(
    history: Sequence[Mapping[str, float]],
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """Plot training return and evaluation metrics against frames and save a PNG.

    Args:
        history (Sequence[Mapping[str, float]]): one mapping per iteration with ``"frames"``
            and any of ``"train/return"``, ``"eval/return"``, ``"eval/success_rate"``
            (missing entries are skipped).
        path (str or PathLike): output file (``.png``).

    Keyword Args:
        title (str): figure title. Defaults to ``""``.

    Returns:
        Path: the written file.

    Examples:
        >>> import tempfile
        >>> hist = [{"frames": 10, "train/return": 1.0}, {"frames": 20, "train/return": 2.0,
        ...          "eval/return": 2.5, "eval/success_rate": 0.5}]
        >>> with tempfile.TemporaryDirectory() as d:
        ...     plot_learning_curve(hist, f"{d}/curve.png").stat().st_size > 1000
        True
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    def series(key: str) -> tuple[list[float], list[float]]:
        pts = [(h["frames"], h[key]) for h in history if key in h and h[key] is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    has_success = bool(series("eval/success_rate")[0])
    fig, axes = plt.subplots(1, 2 if has_success else 1, figsize=(10 if has_success else 5, 3.5))
    ax = axes[0] if has_success else axes
    for key, label in (("train/return", "train (stochastic)"), ("eval/return", "eval")):
        x, y = series(key)
        if x:
            ax.plot(x, y, marker="." if key.startswith("eval") else None, label=label)
    ax.set_xlabel("frames")
    ax.set_ylabel("episode return")
    ax.legend()
    ax.grid(alpha=0.3)
    if has_success:
        x, y = series("eval/success_rate")
        axes[1].plot(x, [100 * v for v in y], marker=".", color="C2")
        axes[1].set_xlabel("frames")
        axes[1].set_ylabel("eval success (%)")
        axes[1].set_ylim(-5, 105)
        axes[1].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
