"""Tests for mtmarl.envs.community.market: balances, rationality, reference cases, batching."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtmarl.envs.community.market import (
    MarketClearing,
    clear_mid_market,
    grid_only_bill,
    mid_market_rate,
)

TOL = 1e-9  # float64 throughout the property tests


# --------------------------------------------------------------------------- reference model
def ref_clearing(net, b, s):
    """Plain-Python MMR of the reference design (Long et al. 2017), one community.

    Returns per-prosumer bills, written case by case as in /work/shared/reference/community.md.
    """
    p = (b + s) / 2
    G = sum(-x for x in net if x < 0)
    D = sum(x for x in net if x > 0)
    bills = []
    for x in net:
        if x > 0:  # buyer
            if G >= D:
                bills.append(x * p)
            else:  # buyers share G * p + (D - G) * b pro rata
                bills.append((G * p + (D - G) * b) * x / D)
        elif x < 0:  # seller
            g = -x
            if G >= D:  # sellers share D * p + (G - D) * s pro rata
                bills.append(-(D * p + (G - D) * s) * g / G)
            else:
                bills.append(-g * p)
        else:
            bills.append(0.0)
    return bills


# --------------------------------------------------------------------------- strategies
energies = st.one_of(
    st.floats(-50.0, 50.0, allow_nan=False, allow_subnormal=False),
    st.just(0.0),
)
batch_shapes = st.sampled_from([(), (2,), (3, 2)])


@st.composite
def communities(draw):
    """(net_load (*B, N) float64, buy (*B,), sell (*B,)) with 0 <= sell <= buy."""
    batch = draw(batch_shapes)
    n = draw(st.integers(1, 25))
    size = math.prod(batch) * n
    net = torch.tensor(draw(st.lists(energies, min_size=size, max_size=size)), dtype=torch.float64)
    m = math.prod(batch)
    sell = draw(st.lists(st.floats(0.0, 0.5), min_size=m, max_size=m))
    spread = draw(st.lists(st.floats(0.0, 0.5), min_size=m, max_size=m))
    sell = torch.tensor(sell, dtype=torch.float64).reshape(batch)
    buy = sell + torch.tensor(spread, dtype=torch.float64).reshape(batch)
    return net.reshape(*batch, n), buy, sell


# --------------------------------------------------------------------------- properties
@settings(max_examples=150, deadline=None)
@given(communities())
def test_energy_balance(community):
    net, b, s = community
    out = clear_mid_market(net, b, s)
    for name in ("internal_buy", "internal_sell", "grid_import", "grid_export"):
        x = getattr(out, name)
        assert x.shape == net.shape and bool((x >= 0).all()), name
    # each prosumer's own balance
    own = out.internal_buy + out.grid_import - out.internal_sell - out.grid_export
    torch.testing.assert_close(own, net, atol=TOL * 50, rtol=0)
    # internal buys equal internal sells, the grid sees the community's net load
    torch.testing.assert_close(
        out.internal_buy.sum(-1), out.internal_sell.sum(-1), atol=TOL * 1e3, rtol=0
    )
    torch.testing.assert_close(
        out.grid_import.sum(-1) - out.grid_export.sum(-1), net.sum(-1), atol=TOL * 1e3, rtol=0
    )
    # nobody both imports and exports; the community does not import and export at once
    assert bool((torch.minimum(out.grid_import.sum(-1), out.grid_export.sum(-1)) <= 1e-9).all())
    torch.testing.assert_close(out.supply, (-net).clamp_min(0).sum(-1))
    torch.testing.assert_close(out.demand, net.clamp_min(0).sum(-1))


@settings(max_examples=150, deadline=None)
@given(communities())
def test_money_balance(community):
    net, b, s = community
    out = clear_mid_market(net, b, s)
    grid_bill = out.grid_import.sum(-1) * b - out.grid_export.sum(-1) * s
    torch.testing.assert_close(out.bill.sum(-1), grid_bill, atol=1e-8, rtol=0)
    # buyers pay what sellers receive for the internal trades
    internal = (out.internal_buy.sum(-1) - out.internal_sell.sum(-1)) * out.price
    torch.testing.assert_close(internal, torch.zeros_like(internal), atol=1e-8, rtol=0)


@settings(max_examples=150, deadline=None)
@given(communities())
def test_nobody_pays_more_than_with_the_grid_alone(community):
    net, b, s = community
    out = clear_mid_market(net, b, s)
    alone = grid_only_bill(net, b, s)
    assert bool((out.bill <= alone + 1e-9).all())
    # and the community as a whole saves exactly the traded energy times the spread
    saving = alone.sum(-1) - out.bill.sum(-1)
    traded = out.internal_buy.sum(-1)
    torch.testing.assert_close(saving, traded * (b - s), atol=1e-8, rtol=0)


@settings(max_examples=100, deadline=None)
@given(communities())
def test_matches_reference_formulas(community):
    net, b, s = community
    out = clear_mid_market(net, b, s)
    flat_net = net.reshape(-1, net.shape[-1])
    flat_bill = out.bill.reshape(-1, net.shape[-1])
    for row, bill, bb, ss in zip(flat_net, flat_bill, b.reshape(-1), s.reshape(-1)):
        ref = torch.tensor(ref_clearing(row.tolist(), bb.item(), ss.item()), dtype=torch.float64)
        torch.testing.assert_close(bill, ref, atol=1e-8, rtol=1e-9)


@settings(max_examples=100, deadline=None)
@given(communities())
def test_average_prices_between_bounds(community):
    net, b, s = community
    out = clear_mid_market(net, b, s)
    torch.testing.assert_close(out.price, (b + s) / 2)
    assert bool((out.buy_price >= out.price - TOL).all() and (out.buy_price <= b + TOL).all())
    assert bool((out.sell_price <= out.price + TOL).all() and (out.sell_price >= s - TOL).all())
    # the average prices reproduce the buyers' and sellers' money
    pay = out.bill.clamp_min(0).sum(-1)
    torch.testing.assert_close(pay, out.buy_price * out.demand, atol=1e-8, rtol=1e-9)


# --------------------------------------------------------------------------- worked cases
def test_surplus_community():
    # G = 4 >= D = 1: the buyer pays p; sellers share 1 * p + 3 * s in proportion 3 : 1
    out = clear_mid_market(torch.tensor([1.0, -3.0, -1.0]), 0.30, 0.10)
    torch.testing.assert_close(out.internal_sell, torch.tensor([0.0, 0.75, 0.25]))
    torch.testing.assert_close(out.grid_export, torch.tensor([0.0, 2.25, 0.75]))
    torch.testing.assert_close(out.bill, torch.tensor([0.2, -(0.2 + 0.3) * 0.75, -0.5 * 0.25]))


def test_one_sided_communities_trade_with_the_grid_only():
    out = clear_mid_market(torch.tensor([[2.0, 1.0], [-2.0, -1.0], [0.0, 0.0]]), 0.3, 0.1)
    torch.testing.assert_close(out.bill, torch.tensor([[0.6, 0.3], [-0.2, -0.1], [0.0, 0.0]]))
    assert float(out.internal_buy.abs().sum() + out.internal_sell.abs().sum()) == 0.0
    assert bool(torch.isfinite(out.buy_price).all() and torch.isfinite(out.sell_price).all())


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_batched_equals_one_by_one(batch):
    g = torch.Generator().manual_seed(0)
    net = torch.randn(*batch, 7, generator=g) * 3
    b = 0.2 + torch.rand(batch, generator=g)
    s = b * torch.rand(batch, generator=g)
    out = clear_mid_market(net, b, s)
    assert out.bill.shape == (*batch, 7) and out.price.shape == batch
    flat = [
        clear_mid_market(x, bb, ss) for x, bb, ss in zip(net.view(-1, 7), b.view(-1), s.view(-1))
    ]
    for name in MarketClearing._fields:
        stacked = torch.stack([getattr(o, name) for o in flat]).reshape(getattr(out, name).shape)
        torch.testing.assert_close(getattr(out, name), stacked)


def test_gradients_flow_to_net_load():
    net = torch.tensor([[1.5, -0.5, -2.0], [2.0, 1.0, -0.3]], dtype=torch.float64)
    net.requires_grad_(True)
    torch.autograd.gradcheck(lambda x: clear_mid_market(x, 0.3, 0.1).bill, (net,))


def test_mid_market_rate():
    torch.testing.assert_close(
        mid_market_rate(torch.tensor([0.4, 0.2]), 0.1), torch.tensor([0.25, 0.15])
    )


# --------------------------------------------------------------------------- bad input
def test_bad_inputs():
    with pytest.raises(TypeError, match="floating-point tensor"):
        clear_mid_market(torch.tensor([1, -1]), 0.3, 0.1)
    with pytest.raises(ValueError, match=r"\(\*B, N\)"):
        clear_mid_market(torch.tensor(1.0), 0.3, 0.1)
    with pytest.raises(ValueError, match="buy_price broadcastable"):
        clear_mid_market(torch.zeros(2, 3), torch.tensor([0.3, 0.3, 0.3]), 0.1)
    with pytest.raises(ValueError, match="sell_price <= buy_price"):
        clear_mid_market(torch.zeros(2, 3), 0.1, 0.3, validate=True)
    with pytest.raises(ValueError, match="finite"):
        clear_mid_market(torch.tensor([1.0, float("nan")]), 0.3, 0.1, validate=True)
    clear_mid_market(torch.zeros(2, 3), torch.tensor([0.3, 0.4]), 0.1, validate=True)
