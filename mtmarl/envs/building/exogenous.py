"""Exogenous inputs of the five-zone building: outdoor temperature, solar and internal gains.

PowerGridworld's exogenous data file is not available; this module rebuilds the same
signals from real weather (:func:`~mtmarl.envs.weather.load_tmy3`) and an office
occupancy schedule, once, as a per-minute table the environment indexes.

* **Outdoor temperature**: the TMY3 dry-bulb temperature.
* **Solar gains** (kW per zone): ``q_solar,z = SHGC * A_z * I_z / 1000`` with ``I_z`` the
  irradiance on the zone's glazing from pvlib's transposition
  (:meth:`~mtmarl.envs.weather.Weather.plane_of_array`). The zones are read as the
  five-zone office of the ROM: zones 1-4 the perimeter zones facing south, east, north
  and west (vertical windows), zone 5 the core (the largest flow bounds), lit by a
  horizontal skylight. Default glazing ``A = (15, 15, 15, 15, 5)`` m^2, ``SHGC = 0.4``:
  peak gains of a few kW, the scale at which the ROM's solar coefficients give
  plausible temperature swings.
* **Internal gains** (kW per zone): ``q_int,z = peak_z * occupancy(t)``, with the hourly
  occupancy fractions of an office (after the ASHRAE 90.1 office schedules: weekdays
  0.95 in working hours with a lunch dip, Saturdays partly occupied, Sundays nearly
  empty) and ``peak = (2, 2, 2, 2, 4)`` kW (people, lights, plug loads). The year starts
  on a Monday (Jan 1, 1990 was one). Note that the published ROM does not select the
  internal-gain input (see :mod:`~mtmarl.envs.building.thermal_model`): with the
  published coefficients these gains do not change the temperatures.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtmarl.envs.weather import Weather

__all__ = [
    "OFFICE_OCCUPANCY",
    "ZONE_ORIENTATIONS",
    "office_occupancy",
    "building_exogenous",
]

OFFICE_OCCUPANCY: dict[str, tuple[float, ...]] = {
    "weekday": (0, 0, 0, 0, 0, 0, 0.1, 0.2, 0.95, 0.95, 0.95, 0.95)
    + (0.5, 0.95, 0.95, 0.95, 0.95, 0.3, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05),
    "saturday": (0, 0, 0, 0, 0, 0, 0.1, 0.1, 0.3, 0.3, 0.3, 0.3)
    + (0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0, 0, 0, 0, 0),
    "sunday": (0.0,) * 6 + (0.05,) * 12 + (0.0,) * 6,
}
"""Hourly occupancy fractions (24 per day type) of the office."""

ZONE_ORIENTATIONS: tuple[tuple[float, float], ...] = (
    (90.0, 180.0),  # zone 1: south facade
    (90.0, 90.0),  # zone 2: east facade
    (90.0, 0.0),  # zone 3: north facade
    (90.0, 270.0),  # zone 4: west facade
    (0.0, 180.0),  # zone 5: core, horizontal skylight
)
"""``(tilt, azimuth)`` of each zone's glazing, degrees (azimuth clockwise from north)."""

_MINUTES_PER_DAY = 1440


def office_occupancy(minute: torch.Tensor) -> torch.Tensor:
    """Occupancy fraction of the office at minutes of the year (the year starts on a Monday).

    Args:
        minute (torch.Tensor): ``(*S,)`` integer minutes of the year.

    Returns:
        torch.Tensor: ``(*S,)`` float32 fractions in ``[0, 1]``, constant within each hour.

    Examples:
        >>> monday_10h, sunday_10h = 10 * 60, 6 * 1440 + 10 * 60
        >>> office_occupancy(torch.tensor([monday_10h, sunday_10h])).tolist()
        [0.949999988079071, 0.05000000074505806]
    """
    table = torch.tensor(
        [OFFICE_OCCUPANCY["weekday"]] * 5
        + [OFFICE_OCCUPANCY["saturday"], OFFICE_OCCUPANCY["sunday"]],
        dtype=torch.float32,
        device=minute.device,
    ).reshape(-1)  # (7 * 24,) hours of the week
    hour_of_week = torch.div(minute, 60, rounding_mode="floor") % (7 * 24)
    return table.index_select(0, hour_of_week.reshape(-1)).reshape(minute.shape)


def building_exogenous(
    weather: Weather,
    *,
    window_areas: Sequence[float] = (15.0, 15.0, 15.0, 15.0, 5.0),
    shgc: float = 0.4,
    internal_gain_peaks: Sequence[float] = (2.0, 2.0, 2.0, 2.0, 4.0),
) -> torch.Tensor:
    """The building's per-minute exogenous table.

    Args:
        weather (Weather): the year of weather (its device and dtype are used).

    Keyword Args:
        window_areas (Sequence[float]): glazing area per zone, m^2 (5 values >= 0).
            Defaults to ``(15, 15, 15, 15, 5)``.
        shgc (float): solar heat gain coefficient of the glazing, in ``[0, 1]``.
            Defaults to ``0.4``.
        internal_gain_peaks (Sequence[float]): internal gain per zone at full
            occupancy, kW (5 values >= 0). Defaults to ``(2, 2, 2, 2, 4)``.

    Returns:
        torch.Tensor: ``(525600, 11)``: column 0 outdoor temperature (deg C), columns
        1-5 solar gains per zone (kW), columns 6-10 internal gains per zone (kW).

    Examples:
        >>> from mtmarl.envs.weather import load_tmy3
        >>> table = building_exogenous(load_tmy3("greensboro"))
        >>> table.shape, bool((table[:, 1:] >= 0).all())
        (torch.Size([525600, 11]), True)
    """
    areas = _five_nonneg(window_areas, "window_areas")
    peaks = _five_nonneg(internal_gain_peaks, "internal_gain_peaks")
    if isinstance(shgc, bool) or not isinstance(shgc, (int, float)) or not 0.0 <= shgc <= 1.0:
        raise ValueError(f"building_exogenous expected shgc in [0, 1], got {shgc!r}")
    table = weather.table
    solar = torch.stack(
        [
            weather.plane_of_array(tilt=tilt, azimuth=azimuth) * (shgc * area / 1000.0)
            for (tilt, azimuth), area in zip(ZONE_ORIENTATIONS, areas)
        ],
        dim=-1,
    )
    minutes = torch.arange(weather.MINUTES_PER_YEAR, device=table.device)
    occupancy = office_occupancy(minutes).to(table.dtype)
    internal = occupancy.unsqueeze(-1) * torch.tensor(peaks, dtype=table.dtype, device=table.device)
    return torch.cat((weather.channel("temp_air").unsqueeze(-1), solar, internal), dim=-1)


def _five_nonneg(values: Sequence[float], name: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise TypeError(
            f"building_exogenous expected {name} to be 5 floats, got {values!r}"
        ) from None
    if len(out) != 5 or any(not v >= 0.0 for v in out):
        raise ValueError(f"building_exogenous expected {name} to be 5 floats >= 0, got {values!r}")
    return out
