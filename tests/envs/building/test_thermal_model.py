"""Tests for mtmarl.envs.building.thermal_model: published ROM, 1-min resampling, HVAC power."""

from __future__ import annotations

import pytest
import torch

from mtmarl.envs.building.thermal_model import (
    MAX_TOTAL_FLOW,
    ROM_A,
    ROM_B,
    ROM_INPUT_SELECTION,
    ROM_MEAN_OUTPUT,
    ROM_NEIGHBOURS,
    ZONE_FLOW_BOUNDS,
    FiveZoneROM,
    chiller_power,
    fan_power,
    project_total_flow,
    resample_rom,
)

BATCHES = [(), (2,), (3, 2)]
F64 = torch.float64


def published_inputs(temp, toa, qs, qi, m, tdis):
    """Plain-Python 8 candidate inputs of one building (PowerGridworld's build_u_vector)."""
    u = []
    for z in range(5):
        row = [toa - temp[z], qs[z], qi[z]]
        row += [temp[y] - temp[z] for y in ROM_NEIGHBOURS[z]]
        row += [m[z] * (tdis - temp[z])]
        u.append(row)
    return u


def published_step(temp, u):
    """One published 5-min step: x' = A x + B u_selected, T = x + 25.604 (plain Python)."""
    out = []
    for z in range(5):
        x = temp[z] - ROM_MEAN_OUTPUT
        sel = [u[z][i - 1] for i in ROM_INPUT_SELECTION[z]]
        x = ROM_A[z] * x + sum(b * v for b, v in zip(ROM_B[z], sel))
        out.append(x + ROM_MEAN_OUTPUT)
    return out


def random_inputs(batch, gen, dtype=F64):
    temp = 20 + 10 * torch.rand(*batch, 5, generator=gen, dtype=dtype)
    kw = dict(
        outdoor_temp=15 + 20 * torch.rand(batch, generator=gen, dtype=dtype),
        q_solar=3 * torch.rand(*batch, 5, generator=gen, dtype=dtype),
        q_internal=2 * torch.rand(*batch, 5, generator=gen, dtype=dtype),
        mass_flow=0.2 + 3 * torch.rand(*batch, 5, generator=gen, dtype=dtype),
        discharge_temp=10 + 6 * torch.rand(batch, generator=gen, dtype=dtype),
    )
    return temp, kw


@pytest.mark.parametrize("batch", BATCHES)
def test_five_one_minute_steps_equal_one_published_five_minute_step(batch):
    gen = torch.Generator().manual_seed(0)
    temp, kw = random_inputs(batch, gen)
    rom1 = FiveZoneROM(step_minutes=1.0, dtype=F64)
    u = rom1.candidate_inputs(temp, **kw)  # held constant over the five minutes
    t1 = temp
    for _ in range(5):
        t1 = rom1.advance(t1, u)
    flat_t, flat_u = temp.reshape(-1, 5), u.reshape(-1, 5, 8)
    expected = torch.tensor(
        [published_step(flat_t[i].tolist(), flat_u[i].tolist()) for i in range(flat_t.shape[0])],
        dtype=F64,
    ).reshape(temp.shape)
    assert torch.allclose(t1, expected, atol=1e-10)
    # and the 5-min model of the class is the published one
    rom5 = FiveZoneROM(step_minutes=5.0, dtype=F64)
    assert torch.allclose(rom5.advance(temp, u), expected, atol=1e-12)


def test_candidate_inputs_match_the_published_construction():
    gen = torch.Generator().manual_seed(1)
    temp, kw = random_inputs((), gen)
    rom = FiveZoneROM(dtype=F64)
    u = rom.candidate_inputs(temp, **kw)
    ref = published_inputs(
        temp.tolist(),
        float(kw["outdoor_temp"]),
        kw["q_solar"].tolist(),
        kw["q_internal"].tolist(),
        kw["mass_flow"].tolist(),
        float(kw["discharge_temp"]),
    )
    assert torch.allclose(u, torch.tensor(ref, dtype=F64))


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_fused_forward_equals_literal_form(batch, dtype):
    gen = torch.Generator().manual_seed(2)
    temp, kw = random_inputs(batch, gen, dtype)
    rom = FiveZoneROM(dtype=dtype)
    fused = rom(temp, **kw)
    literal = rom.advance(temp, rom.candidate_inputs(temp, **kw))
    assert fused.shape == temp.shape and fused.dtype == dtype
    tol = 1e-12 if dtype == F64 else 1e-4
    assert torch.allclose(fused, literal, atol=tol)


def test_internal_gains_only_matter_when_selected():
    gen = torch.Generator().manual_seed(3)
    temp, kw = random_inputs((4,), gen)
    rom = FiveZoneROM(dtype=F64)
    more = dict(kw, q_internal=kw["q_internal"] + 5.0)
    assert torch.equal(rom(temp, **kw), rom(temp, **more))  # published: input 3 unused
    custom = FiveZoneROM(input_selection=[(1, 8, 7, 3)] * 2 + [(1, 8, 6, 3)] * 3, dtype=F64)
    assert (custom(temp, **more) > custom(temp, **kw)).all()


def test_resample_composes():
    a5, b5 = torch.tensor(ROM_A, dtype=F64), torch.tensor(ROM_B, dtype=F64)
    a1, b1 = resample_rom(a5, b5, from_minutes=5.0, to_minutes=1.0)
    a15, b15 = resample_rom(a5, b5, from_minutes=5.0, to_minutes=15.0)
    a15b, b15b = resample_rom(a1, b1, from_minutes=1.0, to_minutes=15.0)
    assert torch.allclose(a15, a15b) and torch.allclose(b15, b15b)
    assert torch.allclose(a15, a5**3)
    # three held 5-min steps = one 15-min step
    x, u = torch.randn(5, dtype=F64), torch.randn(5, 4, dtype=F64)
    y = x
    for _ in range(3):
        y = a5 * y + (b5 * u).sum(-1)
    assert torch.allclose(y, a15 * x + (b15 * u).sum(-1))


def test_temperatures_stay_finite_and_bounded_under_extreme_actions():
    gen = torch.Generator().manual_seed(4)
    rom = FiveZoneROM()
    low = torch.tensor([b[0] for b in ZONE_FLOW_BOUNDS])
    high = torch.tensor([b[1] for b in ZONE_FLOW_BOUNDS])
    temp = torch.full((64, 5), 25.0)
    for _ in range(3000):  # ~2 days of 1-min steps, bang-bang actions
        pick = torch.rand(64, 5, generator=gen) < 0.5
        flow = project_total_flow(torch.where(pick, high, low), low)
        temp = rom(
            temp,
            outdoor_temp=-20 + 70 * torch.rand(64, generator=gen),
            q_solar=5 * torch.rand(64, 5, generator=gen),
            q_internal=torch.zeros(64, 5),
            mass_flow=flow,
            discharge_temp=torch.where(torch.rand(64, generator=gen) < 0.5, 10.0, 16.0),
        )
    assert torch.isfinite(temp).all()
    assert (temp > -20).all() and (temp < 60).all()


def test_powers():
    m = torch.tensor([0.0, 1.2, 10.0])
    assert torch.allclose(fan_power(m), 0.0076 * m**3 + 4.8865)
    toa, tdis = torch.tensor([30.0, 30.0, 8.0]), torch.tensor([10.0, 16.0, 10.0])
    got = chiller_power(m, toa, tdis, cop=2.0)
    assert torch.allclose(got, torch.tensor([0.0, 1.2 * 14 / 2, 0.0]))


@pytest.mark.parametrize("batch", BATCHES)
def test_project_total_flow(batch):
    gen = torch.Generator().manual_seed(5)
    low = torch.tensor([b[0] for b in ZONE_FLOW_BOUNDS])
    high = torch.tensor([b[1] for b in ZONE_FLOW_BOUNDS])
    flow = low + (high - low) * torch.rand(*batch, 5, generator=gen)
    out = project_total_flow(flow, low)
    assert out.shape == flow.shape
    assert (out.sum(-1) <= MAX_TOTAL_FLOW + 1e-5).all()
    assert (out >= low - 1e-6).all() and (out <= flow + 1e-6).all()
    inside = flow.sum(-1) <= MAX_TOTAL_FLOW
    assert torch.equal(out[inside], flow[inside])
    outside = ~inside
    assert torch.allclose(out.sum(-1)[outside], torch.tensor(MAX_TOTAL_FLOW))
    # same fraction above minimum in every zone
    frac = (out - low) / (flow - low)
    assert torch.allclose(frac, frac[..., :1].expand_as(frac), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(step_minutes=0.0), "step_minutes"),
        (dict(a=[0.9] * 4), "a of shape"),
        (dict(a=[1.2] * 5), r"A_z in \(0, 1\)"),
        (dict(b=[[0.0] * 3] * 5), "b of shape"),
        (dict(input_selection=[(1, 8, 7, 9)] * 5), "distinct ints in"),
        (dict(input_selection=[(1, 1, 7, 2)] * 5), "distinct ints in"),
        (dict(neighbours=[(0, 1, 2, 3)] * 5), "neighbours"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FiveZoneROM(**kwargs)
