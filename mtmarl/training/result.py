"""What a training run returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtmarl.training.evaluation import EvalResult

__all__ = ["TrainResult"]


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        run_dir (Path): the run directory.
        iterations (int): iterations completed (over all sessions of a resumed run).
        frames (int): environment steps collected.
        interrupted (bool): the run stopped on SIGINT/SIGTERM after checkpointing.
        evaluation (EvalResult or None): final deterministic evaluation.
        history (list[dict]): per-iteration metrics.
        best_iteration (int or None): iteration of the best evaluation (``0``: the initial
            policy) when ``eval.keep_best``; its actor is ``run_dir/checkpoints/best.pt``.
        best_return (float or None): that evaluation's mean return.

    Examples:
        >>> from pathlib import Path
        >>> TrainResult(Path("runs/x"), 2, 160, False, None).frames
        160
    """

    run_dir: Path
    iterations: int
    frames: int
    interrupted: bool
    evaluation: EvalResult | None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_iteration: int | None = None
    best_return: float | None = None
