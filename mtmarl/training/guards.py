"""Checks of a run that need its machine or its state: the device and logger before any work,
finite losses and parameters after every update, the evaluation horizon an env knows."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torchrl.envs import EnvBase

from mtmarl.errors import ConfigError
from mtmarl.training.env_stack import transforms_of

if TYPE_CHECKING:
    from mtmarl.training.config import TrainConfig
    from mtmarl.training.trainer import Trainer

__all__ = ["NonFiniteError", "check_finite", "check_run_options", "env_horizon"]


def env_horizon(env: EnvBase) -> int | None:
    """The episode length the env knows: a ``StepCounter``'s ``max_steps``, or the base env's
    ``max_steps`` / ``horizon`` / ``HORIZON``."""
    from torchrl.envs import StepCounter, TransformedEnv

    if isinstance(env, TransformedEnv):
        for transform in transforms_of(env):
            if isinstance(transform, StepCounter) and transform.max_steps is not None:
                return int(transform.max_steps)
        env = env.base_env
    for name in ("max_steps", "horizon", "HORIZON"):
        value = getattr(env, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class NonFiniteError(RuntimeError):
    """A loss or a parameter became non-finite during training; the run stopped before
    saving it (its last checkpoint holds the last finite state).

    Examples:
        >>> issubclass(NonFiniteError, RuntimeError)
        True
    """


def check_finite(trainer: Trainer, metrics: dict[str, Any]) -> None:
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    bad = [k for k in bad if k.startswith("train/loss") or k == "train/grad_norm"]
    named = list(trainer.loss_module.named_parameters())
    finite = torch.stack([p.detach().isfinite().all() for _, p in named]).cpu()  # one sync
    params = [name for (name, _), ok in zip(named, finite.tolist()) if not ok]
    if bad or params:
        what = bad[0] if bad else f"parameter {params[0]}"
        value = metrics[bad[0]] if bad else "non-finite"
        saved = trainer.saved_iteration
        where = f"iteration {saved}, at {trainer.checkpoint_path}" if saved is not None else "none"
        raise NonFiniteError(
            f"iteration {trainer.iteration + 1}: {what} is {value}; the run stopped without "
            f"saving it (last checkpoint: {where}); lower optim.lr or check the env's rewards"
        )


def check_run_options(config: TrainConfig) -> None:
    """Choices that need this machine (a device, a logger's package), refused before work."""
    try:
        device = torch.device(config.device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device={config.device!r} is not a torch device: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={config.device!r}, but this torch build has no usable CUDA device "
            f"(torch {torch.__version__}); use device=cpu"
        )
    if config.run.logger == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError(
                "run.logger=tensorboard needs the tensorboard package (pip install tensorboard)"
            ) from None
