"""The joint period of a multi-timescale system (seed 004).

Agent ``n`` may choose a new action every ``omega_n`` base steps and the
environment itself may be periodic with period ``Z`` (e.g. a daily profile). The
joint process -- who may act, and where in its own cycle the environment is --
repeats every ``L = LCM(omega_1, ..., omega_N, Z)`` steps, so ``t mod L`` is the
phase a time-aware policy needs (see :class:`~mtmarl.transforms.PhaseEncoding`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mtmarl.transforms._utils import check_positive_int

__all__ = ["multi_timescale_period"]


def multi_timescale_period(action_frequencies: Sequence[int], env_period: int = 1) -> int:
    """Least common multiple of the agents' action periods and the environment's period.

    Args:
        action_frequencies (Sequence[int]): ``omega_n >= 1`` for every agent: agent
            ``n`` may act when ``t % omega_n == 0``. Must not be empty.
        env_period (int): period ``Z >= 1`` of the environment's own cycle (``1``
            for an aperiodic environment). Defaults to ``1``.

    Returns:
        int: ``L = LCM(omega_1, ..., omega_N, Z)``.

    Raises:
        TypeError: if a period is not an integer.
        ValueError: if a period is ``< 1`` or ``action_frequencies`` is empty.

    Examples:
        >>> multi_timescale_period([5, 5, 1, 3])
        15
        >>> multi_timescale_period([1, 2], env_period=24)
        24
        >>> multi_timescale_period([2, 3])
        6
    """
    who = "multi_timescale_period"
    if isinstance(action_frequencies, (str, bytes)):
        raise TypeError(
            f"{who} expected action_frequencies to be a sequence of ints, got a "
            f"{type(action_frequencies).__name__}"
        )
    try:
        action_frequencies = list(action_frequencies)
    except TypeError:
        raise TypeError(
            f"{who} expected action_frequencies to be a sequence of ints, "
            f"got {type(action_frequencies).__name__}"
        ) from None
    if len(action_frequencies) == 0:
        raise ValueError(f"{who} expected at least one action frequency, got an empty sequence")
    omegas = [
        check_positive_int(omega, f"action_frequencies[{i}]", who)
        for i, omega in enumerate(action_frequencies)
    ]
    z = check_positive_int(env_period, "env_period", who)
    return math.lcm(*omegas, z)
