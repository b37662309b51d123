"""Tests for mtmarl.envs.community.devices: energy balance, bounds, step-length consistency."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtmarl.envs.community.devices import battery_step, ev_step, hvac_step

F64 = torch.float64
BATCHES = [(), (2,), (3, 2)]


def rand(shape, lo, hi, g):
    return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=F64)


def battery_params(shape, g):
    return {
        "capacity": rand(shape, 5.0, 15.0, g),
        "eta_c": rand(shape, 0.85, 1.0, g),
        "eta_d": rand(shape, 0.85, 1.0, g),
        "p_max": rand(shape, 2.0, 6.0, g),
    }


def run_steps(step, state, power, dt, n, **kw):
    grids = []
    for _ in range(n):
        state, grid = step(state, power, dt, **kw)
        grids.append(grid)
    return state, torch.stack(grids)


# --------------------------------------------------------------------------- battery
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("self_discharge", [0.0, 0.02])
def test_battery_four_quarter_hours_equal_one_hour(batch, self_discharge):
    g = torch.Generator().manual_seed(1)
    params = battery_params(batch, g)
    soc = rand(batch, 0.3, 0.7, g)
    # powers small enough that no bound is hit within the hour
    power = rand(batch, -1.0, 1.0, g) * params["p_max"] * 0.25
    q_soc, q_grid = run_steps(
        battery_step, soc, power, 0.25, 4, self_discharge=self_discharge, **params
    )
    h_soc, h_grid = battery_step(soc, power, 1.0, self_discharge=self_discharge, **params)
    torch.testing.assert_close(q_soc, h_soc, rtol=0, atol=1e-12)
    torch.testing.assert_close(q_grid * 0.25, (h_grid * 1.0).expand_as(q_grid) / 4)
    torch.testing.assert_close(h_grid, power)  # nothing clipped
    # 1-minute steps too
    m_soc, _ = run_steps(
        battery_step, soc, power, 1 / 60, 60, self_discharge=self_discharge, **params
    )
    torch.testing.assert_close(m_soc, h_soc, rtol=0, atol=1e-11)


@pytest.mark.parametrize("batch", BATCHES)
def test_battery_exact_energy_balance(batch):
    g = torch.Generator().manual_seed(2)
    params = battery_params(batch, g)
    soc = rand(batch, 0.0, 1.0, g)
    power = rand(batch, -10.0, 10.0, g)  # many hit p_max or a SoC bound
    new_soc, grid = battery_step(soc, power, 0.25, **params)
    stored = (new_soc - soc) * params["capacity"]
    expected = torch.where(grid >= 0, params["eta_c"] * grid, grid / params["eta_d"]) * 0.25
    torch.testing.assert_close(stored, expected)
    # losses are never negative: the bus never gets more than the battery gives up
    assert bool((grid * 0.25 >= stored - 1e-12).all())
    assert bool((grid.abs() <= params["p_max"] + 1e-12).all())


def test_battery_bounds_and_clipping():
    soc = torch.tensor([0.0, 1.0, 0.99, 0.01, 0.5], dtype=F64)
    power = torch.tensor([-5.0, 5.0, 100.0, -100.0, 0.0], dtype=F64)
    new_soc, grid = battery_step(soc, power, 0.25, capacity=10.0, eta_c=0.9, eta_d=0.9, p_max=5.0)
    torch.testing.assert_close(new_soc, torch.tensor([0.0, 1.0, 1.0, 0.0, 0.5], dtype=F64))
    # filling the last 1 % (0.1 kWh) at eta 0.9 over 15 min needs 0.1 / 0.9 / 0.25 kW
    torch.testing.assert_close(grid[2], torch.tensor(0.1 / 0.9 / 0.25, dtype=F64))
    torch.testing.assert_close(grid[3], torch.tensor(-0.1 * 0.9 / 0.25, dtype=F64))
    assert grid[0] == 0 and grid[1] == 0 and grid[4] == 0


def test_battery_self_discharge_decays_exponentially():
    soc = torch.tensor([0.8], dtype=F64)
    new_soc, grid = battery_step(
        soc,
        torch.zeros(1, dtype=F64),
        10.0,
        capacity=10.0,
        eta_c=1.0,
        eta_d=1.0,
        p_max=1.0,
        self_discharge=0.01,
    )
    torch.testing.assert_close(new_soc, soc * torch.exp(torch.tensor(-0.1, dtype=F64)))
    assert grid.item() == 0.0


@settings(max_examples=150, deadline=None)
@given(
    soc=st.floats(0.0, 1.0),
    power=st.floats(-1e4, 1e4, allow_nan=False),
    dt=st.floats(1 / 60, 2.0),
    cap=st.floats(0.5, 100.0),
    eta_c=st.floats(0.5, 1.0),
    eta_d=st.floats(0.5, 1.0),
    p_max=st.floats(0.1, 50.0),
    rate=st.sampled_from([0.0, 1e-3, 0.05]),
)
def test_battery_soc_stays_in_bounds(soc, power, dt, cap, eta_c, eta_d, p_max, rate):
    soc_t = torch.tensor([soc], dtype=F64)
    new_soc, grid = battery_step(
        soc_t,
        torch.tensor([power], dtype=F64),
        dt,
        capacity=cap,
        eta_c=eta_c,
        eta_d=eta_d,
        p_max=p_max,
        self_discharge=rate,
    )
    assert 0.0 <= new_soc.item() <= 1.0
    assert abs(grid.item()) <= p_max + 1e-9
    assert grid.item() * power >= 0  # never reverses the requested direction


def test_battery_float32_and_bad_input():
    new_soc, grid = battery_step(
        torch.full((4, 3), 0.5),
        torch.full((4, 3), 2.0),
        0.25,
        capacity=torch.full((3,), 10.0),
        eta_c=0.95,
        eta_d=0.95,
        p_max=5.0,
    )
    assert new_soc.dtype == grid.dtype == torch.float32 and new_soc.shape == (4, 3)
    with pytest.raises(TypeError, match="soc to be a floating-point tensor"):
        battery_step(
            torch.tensor([1]),
            torch.tensor([1.0]),
            0.25,
            capacity=1.0,
            eta_c=1.0,
            eta_d=1.0,
            p_max=1.0,
        )


# --------------------------------------------------------------------------- EV
@pytest.mark.parametrize("batch", BATCHES)
def test_ev_delivers_at_most_requested(batch):
    g = torch.Generator().manual_seed(3)
    cap = rand(batch, 30.0, 80.0, g)
    soc = rand(batch, 0.0, 0.9, g)
    target = rand(batch, 0.5, 1.0, g)
    power = rand(batch, -5.0, 22.0, g)
    plugged = torch.rand(batch, generator=g) < 0.7
    plugged.view(-1)[0] = True  # at least one car that can reach its target
    power.view(-1)[0] = 22.0
    start = soc
    requested = (target - start).clamp_min(0) * cap
    delivered = torch.zeros_like(soc)
    for _ in range(40):  # ten hours of 15-min steps
        new_soc, grid = ev_step(
            soc, power, 0.25, capacity=cap, eta=0.9, target_soc=target, plugged=plugged
        )
        assert bool((grid >= 0).all() and (grid <= power.clamp_min(0) + 1e-12).all())
        torch.testing.assert_close((new_soc - soc) * cap, 0.9 * grid * 0.25)  # energy balance
        delivered += (new_soc - soc) * cap
        soc = new_soc
    assert bool((delivered <= requested + 1e-9).all())
    assert bool((soc <= torch.maximum(target, start) + 1e-12).all())
    # unplugged cars do not charge; plugged ones with positive power reach the target
    assert bool((soc[~plugged] == start[~plugged]).all())
    reach = plugged & (power * 0.9 * 10.0 >= requested)
    assert bool(reach.any())
    torch.testing.assert_close(soc[reach], torch.maximum(target, start)[reach])


def test_ev_step_length_consistency():
    soc = torch.tensor([0.2, 0.6], dtype=F64)
    power = torch.tensor([3.7, 11.0], dtype=F64)
    kw = {"capacity": 60.0, "eta": 0.92, "target_soc": 1.0}
    q_soc, _ = run_steps(ev_step, soc, power, 0.25, 4, **kw)
    h_soc, h_grid = ev_step(soc, power, 1.0, **kw)
    torch.testing.assert_close(q_soc, h_soc)
    torch.testing.assert_close(h_grid, power)


# --------------------------------------------------------------------------- HVAC
@pytest.mark.parametrize("batch", BATCHES)
def test_hvac_four_quarter_hours_equal_one_hour(batch):
    g = torch.Generator().manual_seed(4)
    kw = {
        "t_out": rand(batch, -10.0, 35.0, g),
        "r": rand(batch, 2.0, 6.0, g),
        "c": rand(batch, 2.0, 8.0, g),
        "cop": rand(batch, 2.5, 4.0, g),
        "p_max": rand(batch, 1.0, 3.0, g),
        "gains": rand(batch, 0.0, 1.0, g),
    }
    temp = rand(batch, 15.0, 28.0, g)
    power = rand(batch, -4.0, 4.0, g)
    q_temp, q_grid = run_steps(hvac_step, temp, power, 0.25, 4, **kw)
    h_temp, h_grid = hvac_step(temp, power, 1.0, **kw)
    torch.testing.assert_close(q_temp, h_temp, rtol=0, atol=1e-12)
    torch.testing.assert_close(h_grid, power.abs().minimum(kw["p_max"]))
    assert bool(torch.isfinite(h_temp).all())


def test_hvac_physics():
    temp = torch.tensor([20.0, 20.0, 20.0], dtype=F64)
    kw = {"t_out": 0.0, "r": 4.0, "c": 5.0, "cop": 3.0, "p_max": 2.0}
    # without power the house relaxes toward outside with time constant r c = 20 h
    t_free, grid = hvac_step(temp, torch.zeros(3, dtype=F64), 20.0, **kw)
    torch.testing.assert_close(t_free, 20.0 * torch.exp(torch.tensor(-1.0, dtype=F64)).expand(3))
    assert float(grid.abs().sum()) == 0.0
    # the steady state at full heating is t_out + r cop p_max = 24 deg C
    t_long, _ = hvac_step(temp, torch.full((3,), 5.0, dtype=F64), 1e4, **kw)
    torch.testing.assert_close(t_long, torch.full((3,), 24.0, dtype=F64))
    # heating warms, cooling cools, relative to doing nothing
    t_h, _ = hvac_step(temp, torch.tensor([1.0, 0.0, -1.0], dtype=F64), 0.25, **kw)
    assert t_h[0] > t_h[1] > t_h[2]
