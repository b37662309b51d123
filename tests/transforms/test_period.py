"""Tests of mtmarl.transforms.period.multi_timescale_period."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mtmarl.transforms import multi_timescale_period


def _is_lcm(value: int, numbers: list[int]) -> bool:
    """``value`` is a common multiple of ``numbers`` and no smaller positive one exists."""
    if any(value % k for k in numbers):
        return False
    return all(any(m % k for k in numbers) for m in range(1, value))


@pytest.mark.parametrize(
    ("omegas", "env_period", "expected"),
    [
        ((5, 5, 1, 3), 1, 15),  # the example
        ((1,), 1, 1),
        ((2, 3), 1, 6),  # Move Box hard
        ((1, 2), 1, 2),  # Move Box easy
        ((4, 6), 1, 12),
        ((1, 2), 24, 24),  # an hourly env with a daily cycle
        ((5,), 3, 15),
        ((4, 4, 4), 1, 4),
    ],
)
def test_known_periods(omegas, env_period, expected):
    assert multi_timescale_period(omegas, env_period) == expected
    assert _is_lcm(expected, [*omegas, env_period])


@given(
    omegas=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    env_period=st.integers(1, 12),
)
def test_is_the_least_common_multiple(omegas, env_period):
    period = multi_timescale_period(omegas, env_period=env_period)
    assert isinstance(period, int)
    assert _is_lcm(period, [*omegas, env_period])


def test_accepts_tuples_tensors_and_iterables():
    assert multi_timescale_period(torch.tensor([2, 3])) == 6
    assert multi_timescale_period(iter([4, 6])) == 12
    assert multi_timescale_period(range(1, 5)) == 12


def test_order_and_duplicates_do_not_matter():
    assert multi_timescale_period([3, 5, 5, 1]) == multi_timescale_period([5, 1, 3])


@pytest.mark.parametrize(
    ("omegas", "env_period", "error", "match"),
    [
        ([], 1, ValueError, "at least one action frequency"),
        ([2, 0], 1, ValueError, r"action_frequencies\[1\] to be >= 1, got 0"),
        ([-3], 1, ValueError, r"action_frequencies\[0\] to be >= 1, got -3"),
        ([1.5], 1, TypeError, r"action_frequencies\[0\] to be an int >= 1, got float"),
        ([True], 1, TypeError, "got bool"),
        ([2], 0, ValueError, "env_period to be >= 1, got 0"),
        ([2], 2.0, TypeError, "env_period to be an int"),
        ("12", 1, TypeError, "sequence of ints, got a str"),
        (3, 1, TypeError, "sequence of ints, got int"),
    ],
)
def test_bad_arguments(omegas, env_period, error, match):
    with pytest.raises(error, match=match):
        multi_timescale_period(omegas, env_period=env_period)
