"""Tests for mtmarl.objectives.group_baseline.leave_one_out."""

from __future__ import annotations

import pytest
import torch

from mtmarl.objectives import leave_one_out


@pytest.mark.parametrize("rest", [(), (2,), (3, 2)])
@pytest.mark.parametrize("g", [2, 4])
def test_removes_what_a_group_shares_and_keeps_the_rest(rest, g):
    torch.manual_seed(0)
    E = 3 * g
    own = torch.randn(E, *rest, dtype=torch.float64)
    shared = torch.randn(E // g, *rest, dtype=torch.float64).repeat_interleave(g, 0) * 100.0
    out = leave_one_out(own + shared, g)
    assert out.shape == own.shape
    # the shared part is gone: the output is the same with or without it
    torch.testing.assert_close(out, leave_one_out(own, g))
    # each env against the mean of the others of its group
    grouped = own.reshape(E // g, g, *rest)
    expected = grouped - (grouped.sum(1, keepdim=True) - grouped) / (g - 1)
    torch.testing.assert_close(out, expected.reshape(own.shape))
    # within a group the baselined advantages sum to zero
    torch.testing.assert_close(
        out.reshape(E // g, g, *rest).sum(1),
        torch.zeros(E // g, *rest, dtype=torch.float64),
        atol=1e-9,
        rtol=0,
    )


def test_keeps_the_policy_gradient_unbiased():
    """The baseline does not depend on an env's own action: the score-weighted mean of the
    baselined advantages matches that of the raw ones, over many groups."""
    torch.manual_seed(1)
    groups, g = 200_000, 4
    action = torch.randn(groups * g)  # the score of a unit normal policy at mean 0 is `action`
    day = torch.randn(groups).repeat_interleave(g) * 5.0  # what a group shares
    advantage = day + 0.3 * action  # the true effect of the action: 0.3
    raw = (action * advantage).mean()
    baselined = (action * leave_one_out(advantage, g)).mean()
    assert abs(baselined.item() - 0.3) < 0.01
    assert abs(raw.item() - 0.3) < 0.05
    # ... and its variance is far lower
    assert (action * leave_one_out(advantage, g)).var() < 0.05 * (action * advantage).var()


@pytest.mark.parametrize(
    "shape, g, match",
    [((4,), 1, "group_size >= 2"), ((4,), True, "group_size >= 2"), ((6,), 4, "multiple of")],
)
def test_bad_input(shape, g, match):
    with pytest.raises(ValueError, match=match):
        leave_one_out(torch.zeros(shape), g)
    with pytest.raises(ValueError, match="multiple of"):
        leave_one_out(torch.tensor(1.0), 2)
