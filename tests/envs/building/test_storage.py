"""Tests for mtmarl.envs.building.storage: exact energy balance, bounds, step-length consistency."""

from __future__ import annotations

import pytest
import torch

from mtmarl.envs.building.storage import EnergyStorage

F64 = torch.float64


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_energy_balance_is_exact_with_the_efficiencies(batch):
    es = EnergyStorage()
    gen = torch.Generator().manual_seed(0)
    energy = 10 + 30 * torch.rand(batch, generator=gen, dtype=F64)
    cmd = -15 + 30 * torch.rand(batch, generator=gen, dtype=F64)
    dt = 1 / 60
    new, power = es.step(energy, cmd, dt_hours=dt)
    assert torch.equal(power, cmd)  # far from the bounds: executed as commanded
    charged = torch.where(cmd > 0, 0.95 * cmd * dt, cmd / 0.9 * dt)
    assert torch.allclose(new - energy, charged, atol=1e-12)


def test_soc_stays_within_bounds_and_clipping_is_exact():
    es = EnergyStorage(min_energy=3.0, max_energy=50.0)
    gen = torch.Generator().manual_seed(1)
    energy = torch.full((256,), 26.5, dtype=F64)
    for _ in range(500):
        sign = torch.where(torch.rand(256, generator=gen) < 0.5, -1.0, 1.0).to(F64)
        cmd = sign * 40 * torch.rand(256, generator=gen, dtype=F64)  # beyond the power limit
        new, power = es.step(energy, cmd, dt_hours=0.25)
        assert (new >= 3.0).all() and (new <= 50.0).all()
        assert (power.abs() <= 15.0 + 1e-12).all()
        assert torch.allclose(new - energy, es.energy_change(power, dt_hours=0.25), atol=1e-9)
        energy = new
    assert (energy < 3.5).any() and (energy > 49.5).any()  # both bounds were reached


@pytest.mark.parametrize("command", [15.0, 6.0, -4.0, -15.0])
@pytest.mark.parametrize("initial", [4.0, 20.0, 49.0])
def test_four_quarter_hours_equal_one_hour(command, initial):
    es = EnergyStorage()
    cmd = torch.tensor([command], dtype=F64)
    e15, grid15 = torch.tensor([initial], dtype=F64), 0.0
    for _ in range(4):
        e15, p = es.step(e15, cmd, dt_hours=0.25)
        grid15 += float(p) * 0.25
    e60, p60 = es.step(torch.tensor([initial], dtype=F64), cmd, dt_hours=1.0)
    assert float(e15) == pytest.approx(float(e60), abs=1e-9)
    assert grid15 == pytest.approx(float(p60), abs=1e-9)  # same grid energy (kWh)


def test_power_limit_and_reported_capacity():
    es = EnergyStorage(max_power=5.0)
    _, p = es.step(torch.tensor([20.0]), torch.tensor([9.0]), dt_hours=1 / 60)
    assert float(p) == 5.0
    assert es.capacity == 47.0


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(min_energy=10.0, max_energy=5.0), ValueError, "min_energy < max_energy"),
        (dict(charge_efficiency=1.5), ValueError, "charge_efficiency"),
        (dict(discharge_efficiency=0.0), ValueError, "discharge_efficiency"),
        (dict(max_power=-1.0), ValueError, "max_power"),
        (dict(max_power="15"), TypeError, "max_power"),
    ],
)
def test_bad_configuration(kwargs, err, match):
    with pytest.raises(err, match=match):
        EnergyStorage(**kwargs)
