"""Real weather for the energy environments: a TMY3 year that pvlib ships, at 1-min resolution.

A TMY3 file ("typical meteorological year", NREL's National Solar Radiation Data Base)
holds 8760 hourly rows: dry-bulb temperature and global / direct / diffuse irradiance
among others. :func:`load_tmy3` reads one with :func:`pvlib.iotools.read_tmy3` and
interpolates it (periodically, so that Dec 31 wraps to Jan 1) to one value per minute of
the year, ``M = 525600`` rows, converted once to tensors. Environments then look weather
up by minute-of-year with :meth:`Weather.lookup` (an ``index_select``, no host sync),
and derive device-specific signals from it, e.g. the irradiance on a window or a PV panel
with :meth:`Weather.plane_of_array` (pvlib's sky-diffuse transposition).

**Time stamps.** TMY3 row ``i`` (0-based) is stamped at the *end* of hour ``i + 1``
(local standard time, ``01:00`` ... ``24:00``). Temperatures are instantaneous readings,
placed at ``i + 1`` hours; irradiances are energy totals over the hour ending at the
stamp (Wh/m^2, i.e. the hour's mean power in W/m^2), placed at its middle, ``i + 0.5``
hours. Minute ``m`` of the year (``0 <= m < M``) is the instant ``m`` minutes after
Jan 1, 00:00 local standard time. TMY rows come from different calendar years; the
year is treated as a non-leap year without daylight saving time.

The files need no network: pvlib installs them in ``pvlib/data`` (see
:data:`TMY3_STATIONS`).
"""

from __future__ import annotations

import datetime
import functools
import os
import warnings
from typing import ClassVar

import numpy as np
import torch

__all__ = ["TMY3_STATIONS", "Weather", "load_tmy3", "lookup_rows"]

TMY3_STATIONS: dict[str, str] = {
    "greensboro": "723170TYA.CSV",
    "sand_point": "703165TY.csv",
}
"""TMY3 files shipped with pvlib, by short name: Greensboro, NC (humid subtropical, cooling
season May-September) and Sand Point, AK (subarctic)."""

MINUTES_PER_YEAR = 525600
HOURS_PER_YEAR = 8760
# channels of Weather.table, in order
_CHANNELS = ("temp_air", "ghi", "dni", "dhi")


def _pvlib():
    try:
        import pvlib
    except ImportError as err:  # pragma: no cover - pvlib is a core dependency
        raise ImportError(
            "mtmarl's energy environments read real weather with pvlib: `pip install pvlib`"
        ) from err
    return pvlib


def _resolve(station: str | os.PathLike) -> str:
    if isinstance(station, str) and station in TMY3_STATIONS:
        pvlib = _pvlib()
        return os.path.join(os.path.dirname(pvlib.__file__), "data", TMY3_STATIONS[station])
    path = os.fspath(station)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"load_tmy3 expected a station name in {sorted(TMY3_STATIONS)} or the path of a "
            f"TMY3 file, got {station!r}"
        )
    return path


@functools.lru_cache(maxsize=8)
def _read_hourly(path: str) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Hourly columns (float64, (8760,)) and metadata of a TMY3 file (cached per path)."""
    pvlib = _pvlib()
    data, meta = pvlib.iotools.read_tmy3(path, map_variables=True)
    if len(data) != HOURS_PER_YEAR:
        raise ValueError(
            f"load_tmy3 expected {HOURS_PER_YEAR} hourly rows in {path!r}, got {len(data)}"
        )
    cols = {name: data[name].to_numpy(dtype=np.float64) for name in _CHANNELS}
    for name in _CHANNELS[1:]:
        cols[name] = np.clip(cols[name], 0.0, None)
    return cols, dict(meta)


def _to_minutes(hourly: np.ndarray, *, offset_h: float) -> np.ndarray:
    """Periodic linear interpolation of 8760 hourly values placed at ``i + offset_h`` hours."""
    xp = np.arange(HOURS_PER_YEAR, dtype=np.float64) + offset_h
    x = np.arange(MINUTES_PER_YEAR, dtype=np.float64) / 60.0
    return np.interp(x, xp, hourly, period=float(HOURS_PER_YEAR))


@functools.lru_cache(maxsize=8)
def _minute_table(path: str) -> np.ndarray:
    """``(M, 4)`` float64: temp_air (deg C), ghi, dni, dhi (W/m^2) per minute (cached)."""
    cols, _ = _read_hourly(path)
    return np.stack(
        [_to_minutes(cols["temp_air"], offset_h=1.0)]
        + [_to_minutes(cols[name], offset_h=0.5) for name in _CHANNELS[1:]],
        axis=-1,
    )


class Weather:
    """A TMY3 year at 1-min resolution, as tensors (build it with :func:`load_tmy3`).

    Attributes:
        table (torch.Tensor): ``(M, 4)`` with ``M = 525600`` minutes, columns
            :attr:`CHANNELS` = ``("temp_air", "ghi", "dni", "dhi")``: dry-bulb
            temperature (deg C), global horizontal, direct normal and diffuse horizontal
            irradiance (W/m^2).
        name (str): station name from the file header.
        latitude (float): degrees north.
        longitude (float): degrees east.
        altitude (float): metres.
        utc_offset (float): hours of local standard time ahead of UTC (e.g. ``-5.0``).
        path (str): the TMY3 file.

    Examples:
        >>> w = load_tmy3("greensboro")
        >>> w.table.shape, w.CHANNELS
        (torch.Size([525600, 4]), ('temp_air', 'ghi', 'dni', 'dhi'))
        >>> noon, midnight = w.lookup(torch.tensor([180 * 1440 + 720, 180 * 1440]))[:, 1]
        >>> bool(noon > 300.0), bool(midnight == 0.0)  # GHI on a summer day
        (True, True)
    """

    CHANNELS: ClassVar[tuple[str, ...]] = _CHANNELS
    """Column names of :attr:`table`."""
    MINUTES_PER_YEAR: ClassVar[int] = MINUTES_PER_YEAR
    """Rows of :attr:`table` (365 days of 1440 minutes)."""

    def __init__(
        self,
        path: str,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"Weather expected a floating-point dtype, got {dtype!r}")
        self.path = path
        _, meta = _read_hourly(path)
        self.name = str(meta.get("Name", "")).strip('"')
        self.latitude = float(meta["latitude"])
        self.longitude = float(meta["longitude"])
        self.altitude = float(meta["altitude"])
        self.utc_offset = float(meta["TZ"])
        self.table = torch.as_tensor(_minute_table(path), dtype=dtype, device=device)

    # ----------------------------------------------------------------- lookups
    @property
    def device(self) -> torch.device:
        """Device of :attr:`table`."""
        return self.table.device

    def channel(self, name: str) -> torch.Tensor:
        """One column of :attr:`table`.

        Args:
            name (str): one of :attr:`CHANNELS`.

        Returns:
            torch.Tensor: ``(M,)`` view of the column.

        Examples:
            >>> t = load_tmy3("greensboro").channel("temp_air")
            >>> t.shape, bool(-30.0 < t.min() < t.max() < 45.0)
            (torch.Size([525600]), True)
        """
        if name not in self.CHANNELS:
            raise KeyError(f"Weather expected a channel in {self.CHANNELS}, got {name!r}")
        return self.table[:, self.CHANNELS.index(name)]

    def lookup(self, minute: torch.Tensor) -> torch.Tensor:
        """Weather at integer minutes of the year (wrapped modulo ``M``).

        Args:
            minute (torch.Tensor): ``(*S,)`` integer minutes; any integer, taken modulo
                ``M`` (so ``start + t`` may run past Dec 31).

        Returns:
            torch.Tensor: ``(*S, 4)`` rows of :attr:`table`.

        Examples:
            >>> w = load_tmy3("greensboro")
            >>> torch.equal(w.lookup(torch.tensor([5])), w.lookup(torch.tensor([5 + 525600])))
            True
        """
        return lookup_rows(self.table, minute)

    def to(self, device: torch.device | str) -> Weather:
        """Moves :attr:`table` to ``device`` (in place).

        Args:
            device (torch.device | str): target device.

        Returns:
            Weather: ``self``.

        Examples:
            >>> load_tmy3("greensboro").to("cpu").device.type
            'cpu'
        """
        self.table = self.table.to(device)
        return self

    # -------------------------------------------------------- derived signals
    def plane_of_array(
        self,
        *,
        tilt: float,
        azimuth: float,
        albedo: float = 0.2,
        model: str = "haydavies",
    ) -> torch.Tensor:
        """Irradiance on a tilted plane (a window, a PV panel), per minute of the year.

        The transposition runs with pvlib on the hourly TMY3 data, with the sun's
        position (:func:`pvlib.solarposition.get_solarposition`) at the middle of each
        hour (the irradiance values are hourly means), and
        :func:`pvlib.irradiance.get_total_irradiance`; the hourly plane-of-array
        irradiance is then interpolated to minutes like the other irradiances.

        Keyword Args:
            tilt (float): surface tilt from horizontal, degrees (``90`` for a wall).
            azimuth (float): surface azimuth, degrees clockwise from north (``180``
                south-facing).
            albedo (float): ground reflectance. Defaults to ``0.2``.
            model (str): pvlib sky-diffuse model, e.g. ``"isotropic"``, ``"haydavies"``,
                ``"perez"``. Defaults to ``"haydavies"``.

        Returns:
            torch.Tensor: ``(M,)`` plane-of-array irradiance (W/m^2, ``>= 0``), on the
            device and dtype of :attr:`table`.

        Examples:
            >>> w = load_tmy3("greensboro")
            >>> south, north = (w.plane_of_array(tilt=90.0, azimuth=a) for a in (180.0, 0.0))
            >>> south.shape, bool(south.sum() > north.sum())  # northern hemisphere
            (torch.Size([525600]), True)
        """
        poa = _poa_minutes(self.path, float(tilt), float(azimuth), float(albedo), model)
        return torch.as_tensor(poa, dtype=self.table.dtype, device=self.table.device)

    def __repr__(self) -> str:
        return (
            f"Weather(name={self.name!r}, latitude={self.latitude}, longitude={self.longitude}, "
            f"table={tuple(self.table.shape)}, device={self.device})"
        )


def lookup_rows(table: torch.Tensor, minute: torch.Tensor) -> torch.Tensor:
    """Rows of a per-minute table at integer minutes, wrapped modulo its length.

    Uses ``index_select`` (much faster than advanced indexing on CPU) and never
    synchronises with the host.

    Args:
        table (torch.Tensor): ``(M, C)`` per-minute table.
        minute (torch.Tensor): ``(*S,)`` integer minutes.

    Returns:
        torch.Tensor: ``(*S, C)``.

    Examples:
        >>> table = torch.arange(6.0).reshape(3, 2)
        >>> lookup_rows(table, torch.tensor([[0, 4]])).tolist()
        [[[0.0, 1.0], [2.0, 3.0]]]
    """
    index = torch.remainder(minute, table.shape[0]).reshape(-1)
    return table.index_select(0, index).reshape(*minute.shape, table.shape[-1])


@functools.lru_cache(maxsize=32)
def _poa_minutes(path: str, tilt: float, azimuth: float, albedo: float, model: str) -> np.ndarray:
    pvlib = _pvlib()
    import pandas as pd

    cols, meta = _read_hourly(path)
    tz = datetime.timezone(datetime.timedelta(hours=float(meta["TZ"])))
    with warnings.catch_warnings():  # pandas deprecation notices raised inside pvlib
        warnings.simplefilter("ignore")
        return _poa_hourly_to_minutes(pvlib, pd, cols, meta, tz, tilt, azimuth, albedo, model)


def _poa_hourly_to_minutes(pvlib, pd, cols, meta, tz, tilt, azimuth, albedo, model) -> np.ndarray:  # noqa: ANN001
    # middle of each hour of a non-leap year, local standard time
    times = pd.date_range("1990-01-01 00:30", periods=HOURS_PER_YEAR, freq="h", tz=tz)
    sun = pvlib.solarposition.get_solarposition(
        times, float(meta["latitude"]), float(meta["longitude"]), altitude=float(meta["altitude"])
    )
    dni_extra = pvlib.irradiance.get_extra_radiation(times)
    airmass = pvlib.atmosphere.get_relative_airmass(sun["apparent_zenith"])
    poa = pvlib.irradiance.get_total_irradiance(
        surface_tilt=tilt,
        surface_azimuth=azimuth,
        solar_zenith=sun["apparent_zenith"],
        solar_azimuth=sun["azimuth"],
        dni=cols["dni"],
        ghi=cols["ghi"],
        dhi=cols["dhi"],
        dni_extra=dni_extra,
        airmass=airmass,
        albedo=albedo,
        model=model,
    )["poa_global"]
    hourly = np.clip(np.nan_to_num(poa.to_numpy(dtype=np.float64)), 0.0, None)
    return _to_minutes(hourly, offset_h=0.5)


def load_tmy3(
    station: str | os.PathLike = "greensboro",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Weather:
    """Reads a TMY3 year with pvlib and returns it at 1-min resolution as tensors.

    Parsing and interpolation are cached per file (numpy, float64), so building many
    environments (or :class:`~torchrl.envs.ParallelEnv` workers) reads the file once per
    process; each call returns a new :class:`Weather` with its own tensors.

    Args:
        station (str | os.PathLike): a key of :data:`TMY3_STATIONS` (a file pvlib
            ships) or the path of a TMY3 CSV file. Defaults to ``"greensboro"``.

    Keyword Args:
        device (torch.device | str | None): device of the tensors. Defaults to ``None``
            (CPU).
        dtype (torch.dtype): floating dtype of the tensors. Defaults to
            ``torch.float32``.

    Returns:
        Weather: the year, ``table`` of shape ``(525600, 4)``.

    Raises:
        FileNotFoundError: an unknown station name that is not a file either.
        ValueError: a file without 8760 hourly rows.

    Examples:
        >>> w = load_tmy3("greensboro")
        >>> w.name, round(w.latitude, 1), w.utc_offset
        ('GREENSBORO PIEDMONT TRIAD INT', 36.1, -5.0)
        >>> hourly_mean = float(w.channel("temp_air").mean())  # the year's mean, deg C
        >>> 10.0 < hourly_mean < 20.0
        True
    """
    return Weather(_resolve(station), device=device, dtype=dtype)
