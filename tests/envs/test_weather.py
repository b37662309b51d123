"""Tests for mtmarl.envs.weather: TMY3 reading, 1-min interpolation, lookups, plane of array."""

from __future__ import annotations

import numpy as np
import pvlib
import pytest
import torch

from mtmarl.envs.weather import TMY3_STATIONS, Weather, load_tmy3, lookup_rows

M = Weather.MINUTES_PER_YEAR


def _hourly(station: str):
    path = f"{pvlib.__path__[0]}/data/{TMY3_STATIONS[station]}"
    data, meta = pvlib.iotools.read_tmy3(path, map_variables=True)
    return data, meta


@pytest.fixture(scope="module")
def greensboro() -> Weather:
    return load_tmy3("greensboro")


@pytest.mark.parametrize("station", sorted(TMY3_STATIONS))
def test_every_shipped_station_loads(station):
    w = load_tmy3(station, dtype=torch.float64)
    _, meta = _hourly(station)
    assert w.table.shape == (M, 4) and w.table.dtype == torch.float64
    assert torch.isfinite(w.table).all()
    assert (w.table[:, 1:] >= 0).all()
    assert w.latitude == pytest.approx(meta["latitude"])
    assert w.utc_offset == pytest.approx(meta["TZ"])


def test_interpolation_hits_the_hourly_values_at_their_stamps(greensboro):
    data, _ = _hourly("greensboro")
    temp = torch.tensor(data["temp_air"].to_numpy(), dtype=torch.float32)
    ghi = torch.tensor(data["ghi"].to_numpy(), dtype=torch.float32)
    hours = torch.arange(8760)
    # temperatures at the end of hour i + 1, irradiance at the middle of hour i
    t_at = greensboro.lookup((hours + 1) * 60)[:, 0]
    g_at = greensboro.lookup(hours * 60 + 30)[:, 1]
    assert torch.allclose(t_at, temp, atol=1e-4)
    assert torch.allclose(g_at, ghi, atol=1e-3)


def test_interpolation_is_linear_between_stamps(greensboro):
    temp = greensboro.channel("temp_air")
    h = 4000  # any hour: the minutes between two stamps lie on the segment
    seg = temp[h * 60 : h * 60 + 61]
    expected = torch.linspace(float(seg[0]), float(seg[-1]), 61)
    assert torch.allclose(seg, expected, atol=1e-4)


def test_year_wraps_periodically(greensboro):
    data, _ = _hourly("greensboro")
    # minute 0 (Jan 1 00:00) is the file's last stamp (Dec 31 24:00)
    assert float(greensboro.lookup(torch.tensor([0]))[0, 0]) == pytest.approx(
        float(data["temp_air"].iloc[-1]), abs=1e-4
    )
    minutes = torch.tensor([[3, M - 1], [M + 3, -1]])
    rows = greensboro.lookup(minutes)
    assert rows.shape == (2, 2, 4)
    assert torch.equal(rows[0], rows[1])


def test_lookup_rows_matches_advanced_indexing():
    table = torch.randn(50, 3)
    idx = torch.randint(-200, 200, (4, 6))
    assert torch.equal(lookup_rows(table, idx), table[idx % 50])


def test_summer_is_warmer_than_winter_and_sun_shines_by_day(greensboro):
    temp, ghi = greensboro.channel("temp_air"), greensboro.channel("ghi")
    july, january = slice(181 * 1440, 212 * 1440), slice(0, 31 * 1440)
    assert temp[july].mean() > temp[january].mean() + 10
    day = ghi.reshape(365, 1440)
    assert (day[:, :180] == 0).all()  # before 3 am: night
    assert day[:, 700:760].mean() > 300  # around noon


def test_plane_of_array(greensboro):
    south = greensboro.plane_of_array(tilt=90.0, azimuth=180.0)
    north = greensboro.plane_of_array(tilt=90.0, azimuth=0.0)
    flat = greensboro.plane_of_array(tilt=0.0, azimuth=180.0)
    ghi = greensboro.channel("ghi")
    for poa in (south, north, flat):
        assert poa.shape == (M,) and (poa >= 0).all() and torch.isfinite(poa).all()
    assert south.sum() > 1.5 * north.sum()
    # a horizontal plane receives the global horizontal irradiance (up to the hour-mid sun)
    assert float(flat.sum() / ghi.sum()) == pytest.approx(1.0, abs=0.05)
    # winter sun is low: the south wall beats the roof in January
    jan = slice(0, 31 * 1440)
    assert south[jan].sum() > flat[jan].sum()


def test_each_load_has_its_own_tensors(greensboro):
    other = load_tmy3("greensboro")
    assert torch.equal(other.table, greensboro.table)
    assert other.table.data_ptr() != greensboro.table.data_ptr()


def test_loading_a_file_by_path():
    path = f"{pvlib.__path__[0]}/data/{TMY3_STATIONS['sand_point']}"
    assert torch.equal(load_tmy3(path).table, load_tmy3("sand_point").table)


def test_errors(greensboro):
    with pytest.raises(FileNotFoundError, match="station name"):
        load_tmy3("atlantis")
    with pytest.raises(TypeError, match="floating-point dtype"):
        load_tmy3("greensboro", dtype=torch.int64)
    with pytest.raises(KeyError, match="channel"):
        greensboro.channel("wind")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda(greensboro):
    w = load_tmy3("greensboro", device="cuda")
    idx = torch.arange(10, device="cuda")
    assert w.lookup(idx).device.type == "cuda"
    assert np.allclose(w.lookup(idx).cpu().numpy(), greensboro.lookup(idx.cpu()).numpy())
