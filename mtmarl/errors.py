"""The library's error for a bad configuration, and the checks that raise it.

:class:`ConfigError` lives here, below every sub-package, so that the module builders
(:mod:`mtmarl.modules`), the algorithms (:mod:`mtmarl.algorithms`) and the training configs
(:mod:`mtmarl.training`) raise the same type, and the command line turns every one of them into
a one-line message with exit code 2. The checks name the option (``owner.name``), what was
expected and what came; non-finite numbers (``nan``, ``inf``) never pass a range check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["ConfigError", "check_choice", "check_finite", "check_positive", "check_range"]


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range.

    Examples:
        >>> issubclass(ConfigError, ValueError)
        True
        >>> try:
        ...     check_positive("optim", lr=float("nan"))
        ... except ConfigError as err:
        ...     print(err)
        optim.lr must be a finite number > 0, got nan
    """


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_finite(owner: str, **values: object) -> None:
    """Refuse a value that is not a finite number, naming ``owner.name``.

    Examples:
        >>> check_finite("loss", gamma=0.9)
        >>> try:
        ...     check_finite("loss", critic_coeff=float("inf"))
        ... except ConfigError as err:
        ...     print(err)
        loss.critic_coeff must be a finite number, got inf
    """
    for name, value in values.items():
        if not _is_number(value) or not math.isfinite(value):
            raise ConfigError(f"{owner}.{name} must be a finite number, got {value!r}")


def check_positive(owner: str, **values: object) -> None:
    """Refuse a value that is not a finite number ``> 0``, naming ``owner.name``.

    Examples:
        >>> check_positive("collector", num_envs=4)
        >>> try:
        ...     check_positive("collector", num_envs=0)
        ... except ConfigError as err:
        ...     print(err)
        collector.num_envs must be a finite number > 0, got 0
    """
    for name, value in values.items():
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{owner}.{name} must be a finite number > 0, got {value!r}")


def check_range(
    owner: str, name: str, value: object, *, low: float, high: float | None = None
) -> None:
    """Refuse a value outside ``[low, high]`` (``high=None``: no upper bound) or not finite.

    Examples:
        >>> check_range("loss", "lmbda", 0.95, low=0.0, high=1.0)
        >>> try:
        ...     check_range("loss", "lmbda", 1.5, low=0.0, high=1.0)
        ... except ConfigError as err:
        ...     print(err)
        loss.lmbda must be in [0.0, 1.0], got 1.5
    """
    bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
    if (
        not _is_number(value)
        or not math.isfinite(value)
        or value < low
        or (high is not None and value > high)
    ):
        raise ConfigError(f"{owner}.{name} must be {bound}, got {value!r}")


def check_choice(owner: str, name: str, value: object, choices: Sequence[str]) -> None:
    """Refuse a value that is not one of ``choices``.

    Examples:
        >>> try:
        ...     check_choice("run", "logger", "wandb", ["csv", "tensorboard"])
        ... except ConfigError as err:
        ...     print(err)
        run.logger must be one of ['csv', 'tensorboard'], got 'wandb'
    """
    if value not in choices:
        raise ConfigError(f"{owner}.{name} must be one of {list(choices)}, got {value!r}")
