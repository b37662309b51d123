"""Community energy trading (seed 000): N prosumers trading through a mid-market-rate platform.

Each prosumer (an agent) owns rooftop PV, a residential base load, a stationary battery, an
electric vehicle and a reversible heat pump / AC. Every 15 minutes it chooses a hybrid action
-- an EV charging level (off / slow / fast) and continuous battery and HVAC powers -- from a
local observation (a 3-hour forecast of its PV, load and the price, its device triplet and
time features). The resulting net loads are cleared by the cloud trading platform at the
mid-market rate (:func:`~mtmarl.envs.community.market.clear_mid_market`); the community's
grid exchange flows through one distribution transformer. The team reward is minus the
community's cost after the market plus comfort, unmet-EV-energy and transformer-overload
penalties. See :class:`CommunityEnergyEnv` for the full model and the keys.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Binary, Bounded, Categorical, Composite, Unbounded

from mtmarl._checks import bounded_int
from mtmarl.envs._batched import (
    BatchedTorchEnv,
    action_entry,
    check_action_layout,
    non_finite_summary,
)
from mtmarl.envs.community.devices import battery_step, ev_step, hvac_step
from mtmarl.envs.community.market import clear_mid_market
from mtmarl.envs.weather import TMY3_STATIONS, load_tmy3

__all__ = ["CommunityEnergyEnv"]

_WHO = "CommunityEnergyEnv"
_MODE_KEY = ("agents", "action", "mode")
_POWER_KEY = ("agents", "action", "power")
_STEPS_PER_DAY = 96
_DT_H = 0.25
_WINDOW = 12
_EV_ETA = 0.9  # EV charging efficiency
_BATTERY_ETA = 0.95  # battery charging and discharging efficiency (each way)
_HVAC_COP = 3.0  # heat-pump coefficient of performance
_START_HOUR = 12  # episodes run noon to noon (see the class docstring)
_SLOTS_PER_YEAR = 365 * _STEPS_PER_DAY

# hourly shape of the residential base load (mean 1 after normalisation): night trough,
# morning peak 7-9 h, daytime plateau, evening peak 18-21 h
_LOAD_SHAPE_24 = (
    0.55, 0.45, 0.40, 0.38, 0.38, 0.42, 0.60, 0.90, 1.00, 0.85, 0.75, 0.72,
    0.75, 0.72, 0.70, 0.75, 0.90, 1.20, 1.50, 1.65, 1.55, 1.30, 1.00, 0.75,
)  # fmt: skip
# PV orientations (tilt, azimuth) in degrees: south, south-east, south-west, flat-ish east
_PV_ORIENTATIONS = ((30.0, 180.0), (25.0, 135.0), (25.0, 225.0), (10.0, 90.0))


# --------------------------------------------------------------------------- validation
def _check_int(value: object, name: str, *, low: int) -> int:
    return bounded_int(value, name, low=low, who=_WHO)


def _check_float(value: object, name: str, *, low: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(
            f"{_WHO} expected {name} to be a finite float, got {type(value).__name__} {value!r}"
        )
    if value < low or (strict and value == low):
        raise ValueError(f"{_WHO} expected {name} {'>' if strict else '>='} {low}, got {value}")
    return float(value)


def _check_floats(value: object, name: str, n: int, *, increasing: bool) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != n:
        raise ValueError(f"{_WHO} expected {name} to be a sequence of {n} floats, got {value!r}")
    out = tuple(_check_float(v, f"{name}[{i}]", low=-math.inf) for i, v in enumerate(value))
    if increasing and any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"{_WHO} expected {name} to be strictly increasing, got {out}")
    return out


def _ar1_matrix(length: int, rho: float) -> torch.Tensor:
    """``(T, T)`` lower-triangular ``L`` with ``x = L e`` a unit-variance AR(1) for white ``e``."""
    t = torch.arange(length, dtype=torch.float64)
    lag = t[:, None] - t[None, :]
    mat = torch.where(lag >= 0, rho ** lag.clamp_min(0), torch.zeros(()))
    mat[:, 1:] *= math.sqrt(1.0 - rho * rho)
    return mat.to(torch.float32)


def _quarter_hour_means(minutes: torch.Tensor) -> torch.Tensor:
    """``(M,)`` per-minute series -> ``(M // 15,)`` means over each 15-min interval."""
    return minutes.view(-1, 15).mean(-1)


@functools.lru_cache(maxsize=4)
def _pv_unit_profiles(station: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PVWatts AC output per kWp per 15-min slot, outdoor temperature and GHI per slot.

    Returns ``(pv (n_orientations, 35040), temp_air (35040,), ghi (35040,))`` float32 CPU,
    cached per station (callers must not modify them in place).
    """
    import pvlib  # a dependency of mtmarl.envs.weather

    weather = load_tmy3(station, dtype=torch.float64)
    temp_air = weather.channel("temp_air").numpy()
    profiles = []
    for tilt, azimuth in _PV_ORIENTATIONS:
        poa = weather.plane_of_array(tilt=tilt, azimuth=azimuth).numpy()
        # cell temperature (Faiman, 1 m/s wind: TMY3 wind is not part of Weather's table),
        # PVWatts DC with the usual -0.4 %/K, 14 % system losses, PVWatts inverter
        temp_cell = pvlib.temperature.faiman(poa, temp_air, wind_speed=1.0)
        pdc = pvlib.pvsystem.pvwatts_dc(poa, temp_cell, pdc0=1.0, gamma_pdc=-0.004) * 0.86
        pac = pvlib.inverter.pvwatts(pdc, pdc0=1.0 / 1.1)  # DC/AC ratio 1.1
        profiles.append(np.clip(np.nan_to_num(pac), 0.0, None))
    pv = torch.as_tensor(np.stack(profiles), dtype=torch.float64)
    pv = pv.view(len(_PV_ORIENTATIONS), -1, 15).mean(-1)
    return (
        pv.float(),
        _quarter_hour_means(weather.channel("temp_air")).float(),
        _quarter_hour_means(weather.channel("ghi")).float(),
    )


class CommunityEnergyEnv(BatchedTorchEnv):
    """Batched, pure-torch community of prosumers trading energy at the mid-market rate.

    ``num_envs`` communities of ``n_prosumers`` agents step together as one tensor program
    (no Python loop over environments, agents or time in :meth:`step`), on CPU or CUDA.

    **Time.** 15-min steps, 96 steps per episode. An episode is one day running from
    noon to noon (local standard time), on a day of the year drawn at every reset (from
    ``days`` if given): the overnight EV session -- arrival in the evening, departure the
    next morning -- then lies inside one episode, with its deadline. The environment counts
    steps itself and truncates at 96 (``truncated``; it never terminates).

    **Weather and PV.** Real weather from a TMY3 year that pvlib ships
    (:func:`~mtmarl.envs.weather.load_tmy3`), averaged to 15-min slots. PV output per kWp is
    computed once at construction with pvlib's models: plane-of-array irradiance (Hay-Davies
    transposition), Faiman cell temperature, PVWatts DC (-0.4 %/K, 14 % system losses) and
    the PVWatts inverter (DC/AC ratio 1.1), for four roof orientations.

    **Prosumers** (heterogeneous, drawn once at construction from ``seed``):

    * PV: ``U(2, 8)`` kWp on one of four orientations (south, south-east, south-west,
      low-tilt east);
    * base load: mean ``U(0.25, 0.6)`` kW with a residential daily shape (morning and
      evening peaks), times a log-normal AR(1) factor (std ``load_noise``, correlation 0.9
      per step) plus random appliance events (probability 0.04 per step, ``U(0.5, 2)`` kW);
      a new trajectory is drawn at every reset;
    * battery: ``U(5, 13.5)`` kWh, power limit ``U(0.35, 0.5)`` x capacity per hour,
      efficiencies 0.95 / 0.95 (:func:`~mtmarl.envs.community.devices.battery_step`);
      initial state of charge ``U(0.2, 0.8)`` at each reset;
    * EV: ``U(40, 80)`` kWh, charging efficiency 0.9, charger levels ``ev_charger_kw``
      (:func:`~mtmarl.envs.community.devices.ev_step`); each episode the car arrives at
      ``U(16, 21)`` h with state of charge ``U(0.4, 0.7)`` and leaves at ``U(6, 9)`` h the
      next morning wanting ``U(0.8, 1.0)``; the energy still missing at departure is the
      unmet EV energy;
    * heat pump / AC: a 1R1C dwelling with ``R ~ U(3, 6)`` deg C/kW and ``C ~ U(3, 6)``
      kWh/deg C, electric power limit ``U(1.1, 1.5)`` x the heat loss at 22 deg C inside and
      -8 deg C outside (``30 / R`` kW thermal) divided by the COP 3, internal gains 0.2 kW and
      solar gains ``U(0.5, 1.5)`` kW per kW/m^2 of GHI
      (:func:`~mtmarl.envs.community.devices.hvac_step`); initial indoor temperature uniform
      in ``comfort_band``.

    **Price.** A time-of-use import price (``tou_prices`` = off-peak 0-7 h and 22-24 h,
    shoulder 7-16 h and 21-22 h, peak 16-21 h) times a log-normal AR(1) factor (std
    ``price_noise``, correlation 0.95 per step) drawn at every reset; the export price is
    ``sell_price`` (never above the import price).

    **Forecasts.** ``("agents", "forecast")`` holds the 12 next 15-min intervals (3 h,
    starting with the one the action applies to) of the prosumer's PV (kW), base load (kW)
    and import price, each multiplied by ``1 + forecast_noise * sqrt((k + 1) / 12) * eps``
    at lead ``k`` (fresh noise every step; the price forecast is the same for all prosumers
    of a community; PV and load forecasts are clipped at 0). ``forecast_noise = 0`` gives
    perfect forecasts.

    **Step.** With ``mode`` and ``power = (battery, hvac)`` in ``[-1, 1]`` (clipped):
    battery power ``power[..., 0] * p_max`` (``> 0`` charges), HVAC electric power
    ``power[..., 1] * p_max_hvac`` (``> 0`` heats, ``< 0`` cools), EV charger power
    ``ev_charger_kw[mode - 1]`` (0 for ``mode = 0``; only while plugged in, never past the
    target). Net load per prosumer = base load + battery + EV + HVAC - PV (kWh over the
    step), cleared by :func:`~mtmarl.envs.community.market.clear_mid_market`. The
    transformer's loading is the community's net grid exchange (import or export) from the
    cleared flows, in kW, over ``transformer_rating_kw``.

    **Reward** (team, root, ``(E, 1)``)::

        - reward_scale * (cost + comfort_weight * comfort + ev_weight * ev_unmet
                          + overload_weight * overload_kwh)

    with ``cost`` the sum of the market bills, ``comfort`` the deg C h outside
    ``comfort_band`` (temperature at the end of the step times the step length, summed
    over prosumers), ``ev_unmet`` the kWh missing at the departures of this step and
    ``overload_kwh`` the energy through the transformer above its rating.

    Keys (``E = num_envs``, ``N = n_prosumers``):

    * in: ``("agents", "action", "mode")`` -- ``(E, N)`` int64 in ``{0, 1, 2}`` (EV off /
      slow / fast); ``("agents", "action", "power")`` -- ``(E, N, 2)`` float32 in
      ``[-1, 1]`` (battery, HVAC; finite values outside are clipped). A missing entry
      raises ``KeyError``, a wrong shape ``ValueError``, another dtype ``TypeError``
      (nothing is cast: float64 powers would turn the state float64) and, with
      ``validate_actions``, a mode outside ``[0, 2]`` or a NaN / inf power ``ValueError``;
      all name the key and are raised before the state changes.
    * out, per agent: ``("agents", "forecast")`` ``(E, N, 12, 3)`` (PV kW, load kW, price);
      ``("agents", "device_state")`` ``(E, N, 3)`` = (battery SoC, EV SoC -- 0 while the car
      is away --, indoor temperature normalised ``(T - mid) / half_width`` of the comfort
      band, so the band is ``[-1, 1]``); ``("agents", "context")`` ``(E, N, 8)`` =
      :attr:`CONTEXT_FEATURES`; ``("agents", "ratings")`` ``(E, N, 5)`` = the household's
      static nameplate ratings :attr:`RATING_FEATURES` divided by :attr:`RATING_SCALES`
      (what its energy-management system knows; a shared policy needs them to act on
      devices of different sizes); ``("agents", "observation")`` ``(E, N, 52)`` = forecast
      flattened (interval-major: ``pv_0, load_0, price_0, pv_1, ...``), device state,
      context, ratings.
    * out, root: ``"state"`` ``(E, N * 10 + 12)`` -- per-agent blocks
      :attr:`STATE_AGENT_FEATURES` (agent-major) then :attr:`STATE_AGGREGATE_FEATURES`
      (split it with :meth:`split_state`); the same two blocks separately, for critics that
      tokenise agents (e.g. :class:`~mtmarl.modules.TransformerCritic`):
      ``("agents", "critic_observation")`` ``(E, N, 10)`` and ``"aggregate"`` ``(E, 12)``;
      ``"reward"`` ``(E, 1)``; ``"done"``,
      ``"terminated"``, ``"truncated"`` ``(E, 1)`` bool; ``"kpi"`` -- a sub-tensordict of
      ``(E, 1)`` float32 per-step KPIs :attr:`KPI_KEYS`: ``cost`` (community bill after the
      market), ``grid_import`` (kWh), ``peak`` (community grid import power, kW; take its
      max over an episode), ``transformer_loading`` (net exchange / rating),
      ``transformer_overload`` (``max(loading - 1, 0)``), ``self_sufficiency`` (1 - grid
      import / consumption incl. battery charging, in ``[0, 1]``), ``comfort_violation``
      (deg C h), ``ev_unmet`` (kWh), ``ev_delivered`` (kWh), ``ramping`` (kW: the change of
      the community's net grid exchange since the previous step, ``|x_t - x_{t-1}|``, 0 on
      an episode's first step; CityLearn's ramping is its sum over the episode). The reset
      writes zeros.

    Keyword Args:
        n_prosumers (int): number of prosumers (agents). Defaults to ``10``.
        num_envs (int): number of communities stepped together; the env's ``batch_size``
            is ``(num_envs,)``. Defaults to ``1``.
        episode_group_size (int): envs come in consecutive groups of this size (envs
            ``g * k`` to ``g * k + g - 1``) that share every episode drawn at a reset (the
            day, its exogenous series, the initial device states and the cars' schedules) and
            every step's forecast noise, so that the envs of a group differ only by the
            actions they are given: common random numbers, e.g. for the leave-one-out
            baseline of the trainer's ``loss.group_baseline``. Must divide ``num_envs``;
            ``1`` draws every env's episode independently (and its random stream is the
            same as before this option existed). Defaults to ``1``.
        station (str): TMY3 station (a key of
            :data:`~mtmarl.envs.weather.TMY3_STATIONS`). Defaults to ``"greensboro"``.
        days (Sequence[int] | None): days of the year (0-364) episodes may start on, e.g. a
            train / test split; ``None`` for all. Defaults to ``None``.
        forecast_noise (float): relative forecast error std at the 3-hour lead.
            Defaults to ``0.1``.
        load_noise (float): std of the base load's log-normal factor. Defaults to ``0.3``.
        price_noise (float): std of the import price's log-normal factor. Defaults to
            ``0.1``.
        tou_prices (tuple[float, float, float]): off-peak, shoulder and peak import prices
            per kWh. Defaults to ``(0.12, 0.20, 0.32)``.
        sell_price (float): export (feed-in) price per kWh. Defaults to ``0.05``.
        ev_charger_kw (tuple[float, float]): slow and fast EV charger powers (kW).
            Defaults to ``(3.7, 11.0)``.
        comfort_band (tuple[float, float]): indoor comfort band (deg C). Defaults to
            ``(20.0, 24.0)``.
        transformer_rating_kw (float | None): transformer rating in kW; ``None`` for 3 kW
            per prosumer. Defaults to ``None``.
        comfort_weight (float): penalty per deg C h outside the band. Defaults to ``1.0``.
        ev_weight (float): penalty per kWh of unmet EV energy. Defaults to ``0.5``.
        overload_weight (float): penalty per kWh through the transformer above its rating.
            Defaults to ``1.0``.
        reward_scale (float | None): factor on the reward; ``None`` for ``1 / n_prosumers``
            (a per-prosumer scale that keeps returns comparable across ``N``). Defaults to
            ``None``.
        ev_deadline_mask (bool): also observe ``("agents", "action_mask")`` ``(E, N, 3)``
            bool, the EV levels that still reach the car's target by its departure when it
            charges fast afterwards (see :meth:`ev_action_mask`): a policy that samples
            from a ``MaskedCategorical`` on it cannot miss a feasible deadline, and a car
            that is away or full has the single choice "off". The env itself accepts any
            level. Defaults to ``True``.
        agent_rewards (bool): also write a reward per prosumer, ``("agents", "reward")``
            ``(E, N, 1)``: its *difference reward* (Wolpert & Tumer), the community's reward
            minus the community's reward had this prosumer's battery, EV charger and heat
            pump been idle this step (its base load and PV unchanged), plus its own comfort
            and unmet-EV terms, times ``N`` (the scale of the team reward). Energy cost and
            transformer overload are functions of the community's net exchange alone (the
            mid-market clearing's bills add up to the grid bill), so the counterfactual is
            exact and costs one extra evaluation of those two terms per prosumer; a
            prosumer's action moves its reward exactly as it moves the team's, without the
            other prosumers' noise. For per-agent credit assignment (GAE per prosumer:
            ``loss.agent_rewards`` of the trainer). With two reward entries torchrl's
            ``env.reward_key`` is ambiguous (use ``env.reward_keys``). Defaults to
            ``False``.
        validate_actions (bool): check every step that modes are in ``{0, 1, 2}`` and powers
            finite, raising ``ValueError`` (one host synchronisation per step; free on CPU, a
            stall on CUDA); powers outside ``[-1, 1]`` are always clipped. ``False`` keeps the
            step loop free of host syncs; out-of-range modes and NaN / inf powers are then
            undefined behaviour. The keys' presence, the shapes and the dtypes (int64, float32)
            are always checked. Defaults to ``True``.
        device (torch.device | str | None): device of all tensors. Defaults to ``None``
            (CPU).
        seed (int | None): seed of the community's composition and of the env's random
            generator (``set_seed`` later re-seeds the episodes, not the composition);
            ``None`` draws one from torch's global generator. Defaults to ``None``.

    Examples:
        >>> env = CommunityEnergyEnv(n_prosumers=4, num_envs=2, seed=0)
        >>> td = env.reset()
        >>> td["agents", "forecast"].shape, td["agents", "observation"].shape
        (torch.Size([2, 4, 12, 3]), torch.Size([2, 4, 52]))
        >>> td = env.rand_step(td)
        >>> td["next", "reward"].shape, td["next", "state"].shape
        (torch.Size([2, 1]), torch.Size([2, 52]))
        >>> sorted(td["next", "kpi"].keys())[:3]
        ['comfort_violation', 'cost', 'ev_delivered']
        >>> env = CommunityEnergyEnv(n_prosumers=4, seed=0, agent_rewards=True)
        >>> env.reward_keys
        ['reward', ('agents', 'reward')]
        >>> env.rand_step(env.reset())["next", "agents", "reward"].shape  # difference rewards
        torch.Size([1, 4, 1])
    """

    HORIZON: int = _STEPS_PER_DAY
    """Steps per episode (one day of 15-min steps)."""
    DT_H: float = _DT_H
    """Step length in hours."""
    WINDOW: int = _WINDOW
    """Forecast window length in steps (3 h)."""
    N_MODES: int = 3
    """EV charging levels: 0 off, 1 slow, 2 fast."""
    FORECAST_FEATURES: tuple[str, ...] = ("pv", "load", "price")
    """Channels of ``("agents", "forecast")``."""
    DEVICE_FEATURES: tuple[str, ...] = ("battery_soc", "ev_soc", "indoor_temperature")
    """Channels of ``("agents", "device_state")``."""
    CONTEXT_FEATURES: tuple[str, ...] = (
        "sin_time_of_day",
        "cos_time_of_day",
        "sin_day_of_year",
        "cos_day_of_year",
        "outdoor_temperature",  # (T_out - 20) / 10, OUTDOOR_TEMPERATURE_NORM
        "ev_plugged",
        "ev_time_to_departure",  # hours / 24, 0 while away
        "ev_energy_needed",  # (target - soc) as a fraction of capacity, 0 while away
    )
    """Channels of ``("agents", "context")``."""
    OUTDOOR_TEMPERATURE_NORM: tuple[float, float] = (20.0, 10.0)
    """``(offset, scale)`` in deg C of the context's ``outdoor_temperature``, which is
    ``(T_out - offset) / scale``."""
    RATING_FEATURES: tuple[str, ...] = (
        "battery_kw",  # battery power rating
        "battery_kwh",  # battery capacity
        "hvac_kw",  # heat pump electric power rating
        "ev_kwh",  # EV battery capacity
        "pv_kwp",  # PV peak power
    )
    """Channels of ``("agents", "ratings")`` (static per prosumer)."""
    RATING_SCALES: tuple[float, ...] = (10.0, 10.0, 10.0, 100.0, 10.0)
    """Divisors of :attr:`RATING_FEATURES` in the observation (values of order 0.1-1)."""
    STATE_AGENT_FEATURES: tuple[str, ...] = (
        "battery_soc",
        "ev_soc",
        "indoor_temperature",
        "pv_kw",
        "load_kw",
        "ev_plugged",
        "ev_time_to_departure",
        "ev_energy_needed",
        "battery_capacity",  # kWh / 10
        "pv_peak",  # kWp / 10
    )
    """Per-agent block of the global ``"state"`` (true current values, not forecasts)."""
    STATE_AGGREGATE_FEATURES: tuple[str, ...] = (
        "community_net_load",  # uncontrolled (load - PV) now, kW per prosumer
        "supply_share",  # G / (G + D) of the uncontrolled net loads now (0.5 if both 0)
        "mid_market_price",
        "average_buy_price",  # of the uncontrolled clearing now
        "average_sell_price",
        "import_price",
        "last_net_exchange",  # community grid exchange of the last step, kW per prosumer
        "last_transformer_loading",
        "sin_time_of_day",
        "cos_time_of_day",
        "sin_day_of_year",
        "cos_day_of_year",
    )
    """Aggregate block at the end of the global ``"state"``."""
    KPI_KEYS: tuple[str, ...] = (
        "cost",
        "grid_import",
        "peak",
        "transformer_loading",
        "transformer_overload",
        "self_sufficiency",
        "comfort_violation",
        "ev_unmet",
        "ev_delivered",
        "ramping",
    )
    """Per-step KPIs written under ``("next", "kpi")``."""

    batch_locked = True

    def __init__(
        self,
        *,
        n_prosumers: int = 10,
        num_envs: int = 1,
        episode_group_size: int = 1,
        station: str = "greensboro",
        days: Sequence[int] | None = None,
        forecast_noise: float = 0.1,
        load_noise: float = 0.3,
        price_noise: float = 0.1,
        tou_prices: Sequence[float] = (0.12, 0.20, 0.32),
        sell_price: float = 0.05,
        ev_charger_kw: Sequence[float] = (3.7, 11.0),
        comfort_band: Sequence[float] = (20.0, 24.0),
        transformer_rating_kw: float | None = None,
        comfort_weight: float = 1.0,
        ev_weight: float = 0.5,
        overload_weight: float = 1.0,
        reward_scale: float | None = None,
        ev_deadline_mask: bool = True,
        agent_rewards: bool = False,
        validate_actions: bool = True,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ) -> None:
        # ---------------------------------------------------------------- validation
        n = _check_int(n_prosumers, "n_prosumers", low=1)
        num_envs = _check_int(num_envs, "num_envs", low=1)
        group = _check_int(episode_group_size, "episode_group_size", low=1)
        if num_envs % group:
            raise ValueError(
                f"{_WHO} expected episode_group_size to divide num_envs={num_envs}, got {group}"
            )
        if station not in TMY3_STATIONS:
            raise ValueError(f"{_WHO} expected station in {sorted(TMY3_STATIONS)}, got {station!r}")
        if days is not None:
            if isinstance(days, (str, bytes)) or not isinstance(days, Sequence) or not days:
                raise ValueError(
                    f"{_WHO} expected days to be a non-empty sequence of ints in [0, 364] or "
                    f"None, got {days!r}"
                )
            for i, d in enumerate(days):
                _check_int(d, f"days[{i}]", low=0)
                if d > 364:
                    raise ValueError(f"{_WHO} expected days[{i}] in [0, 364], got {d}")
        forecast_noise = _check_float(forecast_noise, "forecast_noise")
        load_noise = _check_float(load_noise, "load_noise")
        price_noise = _check_float(price_noise, "price_noise")
        tou = _check_floats(tou_prices, "tou_prices", 3, increasing=False)
        if min(tou) <= 0:
            raise ValueError(f"{_WHO} expected positive tou_prices, got {tou}")
        sell_price = _check_float(sell_price, "sell_price")
        if sell_price > min(tou):
            raise ValueError(
                f"{_WHO} expected sell_price <= the lowest import price {min(tou)}, got "
                f"{sell_price}"
            )
        chargers = _check_floats(ev_charger_kw, "ev_charger_kw", 2, increasing=True)
        if chargers[0] <= 0:
            raise ValueError(f"{_WHO} expected positive ev_charger_kw, got {chargers}")
        band = _check_floats(comfort_band, "comfort_band", 2, increasing=True)
        rating = (
            3.0 * n
            if transformer_rating_kw is None
            else _check_float(transformer_rating_kw, "transformer_rating_kw", strict=True)
        )
        comfort_weight = _check_float(comfort_weight, "comfort_weight")
        ev_weight = _check_float(ev_weight, "ev_weight")
        overload_weight = _check_float(overload_weight, "overload_weight")
        scale = (
            1.0 / n
            if reward_scale is None
            else _check_float(reward_scale, "reward_scale", strict=True)
        )
        if not isinstance(validate_actions, bool):
            raise TypeError(
                f"{_WHO} expected validate_actions to be a bool, got "
                f"{type(validate_actions).__name__} {validate_actions!r}"
            )
        super().__init__(num_envs=num_envs, device=device, seed=seed, who=_WHO)
        self.n_prosumers = n
        self.episode_group_size = group
        self.station = station
        self.days = None if days is None else tuple(days)
        self.forecast_noise = forecast_noise
        self.load_noise = load_noise
        self.price_noise = price_noise
        self.tou_prices = tou
        self.sell_price = sell_price
        self.ev_charger_kw = chargers
        self.comfort_band = band
        self.transformer_rating_kw = rating
        self.comfort_weight = comfort_weight
        self.ev_weight = ev_weight
        self.overload_weight = overload_weight
        self.reward_scale = scale
        self.validate_actions = validate_actions
        self.ev_deadline_mask = bool(ev_deadline_mask)
        self.agent_rewards = bool(agent_rewards)

        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        self._build_community(seed)
        self._generator = torch.Generator(device=self.device)
        self.set_seed(seed)
        self._make_specs()
        # a first episode, so that the env has a valid state before reset()
        self._reset(None)

    # -------------------------------------------------------------- construction
    def _build_community(self, seed: int) -> None:
        """Static tensors: weather tables, prosumer parameters, schedules (all on CPU first)."""
        n, dev = self.n_prosumers, self.device
        g = torch.Generator().manual_seed(seed)

        def u(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(n, generator=g)

        pv_unit, temp_air, ghi = _pv_unit_profiles(self.station)
        self._pv_unit = pv_unit  # (n_orient, 35040) kW per kWp
        self._temp_air = temp_air  # (35040,)
        self._ghi = ghi  # (35040,)
        self._orientation = torch.randint(0, len(_PV_ORIENTATIONS), (n,), generator=g)
        self._pv_kwp = u(2.0, 8.0)
        self._load_mean = u(0.25, 0.6)
        self._bat_cap = u(5.0, 13.5)
        self._bat_pmax = self._bat_cap * u(0.35, 0.5)
        self._ev_cap = u(40.0, 80.0)
        self._hvac_r = u(3.0, 6.0)
        self._hvac_c = u(3.0, 6.0)
        # heat pumps sized to the dwelling: 1.1-1.5 x the heat loss at 22 deg C inside and
        # -8 deg C outside (a design temperature below Greensboro's TMY3 minimum), COP 3
        self._hvac_pmax = u(1.1, 1.5) * 30.0 / (3.0 * self._hvac_r)
        self._solar_gain = u(0.5, 1.5)

        # 15-min schedules over the episode's slots (slot k of an episode starts at noon + k/4 h)
        T = _STEPS_PER_DAY + _WINDOW
        hours = (_START_HOUR + torch.arange(T, dtype=torch.float64) * _DT_H) % 24
        shape24 = torch.tensor(_LOAD_SHAPE_24, dtype=torch.float64)
        shape24 = shape24 / shape24.mean()
        self._load_shape = shape24[hours.floor().long()].float()  # (T,)
        off, mid, peak = self.tou_prices
        tou = torch.full((T,), off, dtype=torch.float64)
        tou[((hours >= 7) & (hours < 16)) | ((hours >= 21) & (hours < 22))] = mid
        tou[(hours >= 16) & (hours < 21)] = peak
        self._tou = tou.float()  # (T,)
        self._ar_load = _ar1_matrix(T, 0.9)  # (T, T)
        self._ar_price = _ar1_matrix(T, 0.95)
        lead = torch.arange(1, _WINDOW + 1, dtype=torch.float32)
        self._forecast_std = self.forecast_noise * (lead / _WINDOW).sqrt()  # (12,)
        self._window = torch.arange(_WINDOW)
        self._slots = torch.arange(T)
        self._chargers = torch.tensor((0.0, *self.ev_charger_kw))
        # static: the observation's ratings, computed once
        self._ratings_obs = self.ratings / torch.tensor(self.RATING_SCALES)  # (N, 5)
        self._days = (
            torch.arange(365) if self.days is None else torch.tensor(self.days, dtype=torch.long)
        )
        for name in self._TENSOR_ATTRS:
            if hasattr(self, name):
                setattr(self, name, getattr(self, name).to(dev))

        # dynamic state, (E, N) unless noted; filled by _reset
        E = self.num_envs
        z = torch.zeros((E, n), device=dev)
        self._t = torch.zeros((E,), dtype=torch.long, device=dev)
        self._day = torch.zeros((E,), dtype=torch.long, device=dev)
        self._bat_soc, self._ev_soc, self._temp = z.clone(), z.clone(), z.clone()
        self._ev_arrival = torch.zeros((E, n), dtype=torch.long, device=dev)
        self._ev_departure = torch.zeros((E, n), dtype=torch.long, device=dev)
        self._ev_target = z.clone()
        # exogenous trajectories of the episode, time-major so that a window of every env is
        # one index_select: per prosumer (pv kW, base load kW, heat gains kW), per community
        # (import price, outdoor temperature)
        self._series = torch.zeros((E, T, n, 3), device=dev)
        self._series_env = torch.zeros((E, T, 2), device=dev)
        self._row0 = torch.arange(E, device=dev) * T  # first row of each env in (E * T, ...)
        self._last_exchange = torch.zeros((E,), device=dev)
        self._last_loading = torch.zeros((E,), device=dev)
        self._false = torch.zeros((E, 1), dtype=torch.bool, device=dev)

    _TENSOR_ATTRS = (
        "_pv_unit",
        "_temp_air",
        "_ghi",
        "_orientation",
        "_pv_kwp",
        "_load_mean",
        "_bat_cap",
        "_bat_pmax",
        "_ev_cap",
        "_hvac_r",
        "_hvac_c",
        "_hvac_pmax",
        "_solar_gain",
        "_load_shape",
        "_tou",
        "_ar_load",
        "_ar_price",
        "_forecast_std",
        "_window",
        "_slots",
        "_chargers",
        "_ratings_obs",
        "_days",
        "_t",
        "_day",
        "_bat_soc",
        "_ev_soc",
        "_temp",
        "_ev_arrival",
        "_ev_departure",
        "_ev_target",
        "_series",
        "_series_env",
        "_row0",
        "_last_exchange",
        "_last_loading",
        "_false",
    )

    @property
    def observation_dim(self) -> int:
        """Size of ``("agents", "observation")``: ``12 * 3 + 3 + 8 + 5 = 52``.

        Examples:
            >>> CommunityEnergyEnv(n_prosumers=2, seed=0).observation_dim
            52
        """
        return (
            _WINDOW * len(self.FORECAST_FEATURES)
            + len(self.DEVICE_FEATURES)
            + len(self.CONTEXT_FEATURES)
            + len(self.RATING_FEATURES)
        )

    @property
    def ratings(self) -> torch.Tensor:
        """``(N, 5)`` the prosumers' nameplate ratings :attr:`RATING_FEATURES` in physical
        units (kW, kWh, kWp), fixed at construction by the seed.

        The observation ``("agents", "ratings")`` carries them divided by
        :attr:`RATING_SCALES`.

        Examples:
            >>> env = CommunityEnergyEnv(n_prosumers=2, seed=0)
            >>> td = env.reset()
            >>> scales = torch.tensor(env.RATING_SCALES)
            >>> torch.allclose(td["agents", "ratings"][0] * scales, env.ratings)
            True
        """
        return torch.stack(
            (self._bat_pmax, self._bat_cap, self._hvac_pmax, self._ev_cap, self._pv_kwp), -1
        )

    @property
    def state_dim(self) -> int:
        """Size of the global ``"state"``: ``N * 10 + 12``.

        Examples:
            >>> CommunityEnergyEnv(n_prosumers=3, seed=0).state_dim
            42
        """
        return self.n_prosumers * len(self.STATE_AGENT_FEATURES) + len(
            self.STATE_AGGREGATE_FEATURES
        )

    def split_state(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Splits a global ``"state"`` into its per-agent and aggregate blocks.

        Args:
            state (torch.Tensor): ``(*B, N * 10 + 12)``.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: per-agent features ``(*B, N, 10)`` (columns
            :attr:`STATE_AGENT_FEATURES`) and the aggregate ``(*B, 12)`` (columns
            :attr:`STATE_AGGREGATE_FEATURES`), views of ``state``.

        Examples:
            >>> env = CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0)
            >>> agents, aggregate = env.split_state(env.reset()["state"])
            >>> agents.shape, aggregate.shape
            (torch.Size([2, 3, 10]), torch.Size([2, 12]))
        """
        if state.shape[-1] != self.state_dim:
            raise ValueError(
                f"{_WHO}.split_state expected a last dim of {self.state_dim}, got "
                f"{tuple(state.shape)}"
            )
        fa = len(self.STATE_AGENT_FEATURES)
        n_agent = self.n_prosumers * fa
        agents = state[..., :n_agent].unflatten(-1, (self.n_prosumers, fa))
        return agents, state[..., n_agent:]

    def _make_specs(self) -> None:
        E, N, dev = self.num_envs, self.n_prosumers, self.device

        def unb(*shape: int) -> Unbounded:
            return Unbounded(shape=shape, dtype=torch.float32, device=dev)

        self.observation_spec = Composite(
            agents=Composite(
                forecast=unb(E, N, _WINDOW, len(self.FORECAST_FEATURES)),
                device_state=unb(E, N, len(self.DEVICE_FEATURES)),
                context=unb(E, N, len(self.CONTEXT_FEATURES)),
                ratings=unb(E, N, len(self.RATING_FEATURES)),
                observation=unb(E, N, self.observation_dim),
                critic_observation=unb(E, N, len(self.STATE_AGENT_FEATURES)),
                **(
                    {
                        "action_mask": Binary(
                            n=self.N_MODES, shape=(E, N, self.N_MODES), dtype=torch.bool, device=dev
                        )
                    }
                    if self.ev_deadline_mask
                    else {}
                ),
                shape=(E, N),
                device=dev,
            ),
            state=unb(E, self.state_dim),
            aggregate=unb(E, len(self.STATE_AGGREGATE_FEATURES)),
            kpi=Composite({k: unb(E, 1) for k in self.KPI_KEYS}, shape=(E,), device=dev),
            shape=(E,),
            device=dev,
        )
        self.action_spec = Composite(
            agents=Composite(
                action=Composite(
                    mode=Categorical(n=self.N_MODES, shape=(E, N), dtype=torch.int64, device=dev),
                    power=Bounded(
                        low=-1.0, high=1.0, shape=(E, N, 2), dtype=torch.float32, device=dev
                    ),
                    shape=(E, N),
                    device=dev,
                ),
                shape=(E, N),
                device=dev,
            ),
            shape=(E,),
            device=dev,
        )
        self._set_team_reward_and_done_specs(E, dev)
        if self.agent_rewards:
            self.reward_spec = Composite(
                reward=unb(E, 1),
                agents=Composite(reward=unb(E, N, 1), shape=(E, N), device=dev),
                shape=(E,),
                device=dev,
            )

    # -------------------------------------------------------------------- seeding

    # ------------------------------------------------------------------- episodes
    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self._generator, device=self.device)

    def _randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self._generator, device=self.device)

    def _ungroup(self, x: torch.Tensor) -> torch.Tensor:
        """``(E / g, ...)`` per group -> ``(E, ...)`` per env (``g = episode_group_size``)."""
        g = self.episode_group_size
        return x if g == 1 else x.repeat_interleave(g, dim=0)

    def _draw_episodes(self) -> dict[str, torch.Tensor]:
        """A fresh day for every env (every group of ``episode_group_size`` envs): exogenous
        trajectories and initial device states."""
        E, N, T = (
            self.num_envs // self.episode_group_size,
            self.n_prosumers,
            _STEPS_PER_DAY + _WINDOW,
        )
        pick = (self._rand(E) * self._days.numel()).long().clamp_max(self._days.numel() - 1)
        day = self._days[pick]  # (E,)
        slots = (day.unsqueeze(-1) * _STEPS_PER_DAY + _START_HOUR * 4 + self._slots) % (
            _SLOTS_PER_YEAR
        )  # (E, T)
        flat = slots.reshape(-1)
        pv_unit = self._pv_unit.index_select(1, flat)  # (n_orient, E * T)
        pv = pv_unit.index_select(0, self._orientation).T.view(E, T, N) * self._pv_kwp
        t_out = self._temp_air.index_select(0, flat).view(E, T)
        ghi = self._ghi.index_select(0, flat).view(E, T, 1)
        gains = 0.2 + self._solar_gain * (ghi / 1000.0)  # (E, T, N)

        s = self.load_noise
        noise = self._ar_load @ self._randn(E, T, N)  # AR(1) along time
        events = (self._rand(E, T, N) < 0.04) * (0.5 + 1.5 * self._rand(E, T, N))
        shape = self._load_shape.unsqueeze(-1)  # (T, 1)
        load = self._load_mean * shape * torch.exp(s * noise - s * s / 2) + events
        sp = self.price_noise
        price = self._tou * torch.exp(sp * (self._randn(E, T) @ self._ar_price.T) - sp * sp / 2)

        arrival = ((16.0 + 5.0 * self._rand(E, N) - _START_HOUR) * 4).round().long()
        departure = ((6.0 + 3.0 * self._rand(E, N) + 24 - _START_HOUR) * 4).round().long()
        lo, hi = self.comfort_band
        drawn = {
            "_day": day,
            "_series": torch.stack((pv, load, gains), -1),
            "_series_env": torch.stack((price, t_out), -1),
            "_bat_soc": 0.2 + 0.6 * self._rand(E, N),
            "_ev_soc": 0.4 + 0.3 * self._rand(E, N),
            "_ev_target": 0.8 + 0.2 * self._rand(E, N),
            "_ev_arrival": arrival,
            "_ev_departure": departure,
            "_temp": lo + (hi - lo) * self._rand(E, N),
        }
        return {
            **{k: self._ungroup(v) for k, v in drawn.items()},
            "_t": torch.zeros_like(self._t),
            "_last_exchange": torch.zeros_like(self._last_exchange),
            "_last_loading": torch.zeros_like(self._last_loading),
        }

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: object) -> TensorDictBase:
        fresh = self._draw_episodes()
        reset = tensordict.get("_reset", None) if tensordict is not None else None
        if reset is None:
            for name, value in fresh.items():
                setattr(self, name, value)
        else:
            mask = reset.reshape(self.num_envs)
            for name, value in fresh.items():
                old = getattr(self, name)
                m = mask.view(-1, *([1] * (old.ndim - 1)))
                setattr(self, name, torch.where(m, value, old))
        out = self._observe()
        zeros = torch.zeros((self.num_envs, 1), device=self.device)
        out.set("kpi", TensorDict({k: zeros.clone() for k in self.KPI_KEYS}, [self.num_envs]))
        out.set("done", self._false.clone())
        out.set("terminated", self._false.clone())
        out.set("truncated", self._false.clone())
        return out

    # ---------------------------------------------------------------- observation
    def _ev_features(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """plugged (E, N) bool for the interval starting now, hours-to-departure / 24, need."""
        t = self._t.unsqueeze(-1)
        plugged = (t >= self._ev_arrival) & (t < self._ev_departure)
        to_dep = (self._ev_departure - t).float() * (_DT_H / 24.0) * plugged
        need = (self._ev_target - self._ev_soc).clamp_min(0) * plugged
        return plugged, to_dep, need

    def ev_action_mask(self) -> torch.Tensor:
        """``(E, N, 3)`` bool: the EV charging levels (off, slow, fast) allowed now.

        A level is allowed while the car is plugged in with energy still needed if, charging
        at that level for this step and at the fast level for every step after it until
        departure, the car still reaches its target: ``need - eta P_level dt <= eta P_fast
        dt (steps_left - 1)`` (``eta = 0.9``; the same physics as the step). Fast is always
        allowed then (a target that cannot be reached any more gets as close as it can). A
        car that is away or already at its target has the single choice "off" (the level
        has no effect), so a ``MaskedCategorical`` spends no log-probability on it.

        Examples:
            >>> env = CommunityEnergyEnv(n_prosumers=4, num_envs=2, seed=0)
            >>> mask = env.ev_action_mask()
            >>> mask.shape, bool(mask[..., 2].any() or mask[..., 0].all())
            (torch.Size([2, 4, 3]), True)
            >>> bool(mask.any(-1).all())  # never an empty choice
            True
        """
        plugged, _, need_frac = self._ev_features()
        return self._ev_mask(plugged, need_frac)

    def _ev_mask(self, plugged: torch.Tensor, need_frac: torch.Tensor) -> torch.Tensor:
        """:meth:`ev_action_mask` from the ``_ev_features`` the caller already has."""
        need = need_frac * self._ev_cap  # (E, N) kWh
        steps_left = (self._ev_departure - self._t.unsqueeze(-1)).clamp_min(1)  # incl. now
        per_step = self._chargers * (_EV_ETA * _DT_H)  # (3,) kWh into the car
        later = (steps_left - 1).float() * per_step[-1]  # (E, N)
        feasible = need.unsqueeze(-1) - per_step <= later.unsqueeze(-1) + 1e-6
        feasible[..., -1] = True
        active = (plugged & (need > 1e-6)).unsqueeze(-1)
        off_only = torch.zeros_like(feasible)
        off_only[..., 0] = True
        return torch.where(active, feasible, off_only)

    def _observe(self) -> TensorDict:
        E, N = self.num_envs, self.n_prosumers
        t = self._t
        # (E, 12); past the horizon (stepping on without a reset) the last slot repeats
        idx = (t.unsqueeze(-1) + self._window).clamp_max(self._slots.numel() - 1)
        rows = (idx + self._row0.unsqueeze(-1)).view(-1)  # (E * 12,)
        T = self._slots.numel()
        window = self._series.view(E * T, N, 3).index_select(0, rows).view(E, _WINDOW, N, 3)
        window = window[..., :2].permute(0, 2, 1, 3)  # (E, N, 12, 2): pv, load
        pv, load = window[..., 0], window[..., 1]
        window_env = self._series_env.view(E * T, 2).index_select(0, rows).view(E, _WINDOW, 2)
        price = window_env[..., 0]  # (E, 12)
        if self.forecast_noise > 0:
            groups = E // self.episode_group_size  # one draw per group
            eps = self._ungroup(self._randn(groups, N, _WINDOW, 2))
            eps = eps * self._forecast_std.unsqueeze(-1)
            pv_f = (pv * (1 + eps[..., 0])).clamp_min(0)
            load_f = (load * (1 + eps[..., 1])).clamp_min(0)
            price_f = price * (1 + self._ungroup(self._randn(groups, _WINDOW)) * self._forecast_std)
        else:
            pv_f, load_f, price_f = pv, load, price
        forecast = torch.stack((pv_f, load_f, price_f.unsqueeze(1).expand(E, N, _WINDOW)), -1)

        plugged, to_dep, need = self._ev_features()
        lo, hi = self.comfort_band
        temp_norm = (self._temp - (lo + hi) / 2) / ((hi - lo) / 2)
        device_state = torch.stack((self._bat_soc, self._ev_soc * plugged, temp_norm), -1)

        hour = (_START_HOUR + t.float() * _DT_H) % 24  # (E,)
        tod = hour * (2 * math.pi / 24)
        doy = (self._day + (t >= (24 - _START_HOUR) * 4)).float() * (2 * math.pi / 365)
        time = torch.stack((tod.sin(), tod.cos(), doy.sin(), doy.cos()), -1)  # (E, 4)
        t_out_now = window_env[:, :1, 1]  # (E, 1)
        t_offset, t_scale = self.OUTDOOR_TEMPERATURE_NORM
        context = torch.cat(
            (
                time.unsqueeze(1).expand(E, N, 4),
                ((t_out_now - t_offset) / t_scale).unsqueeze(1).expand(E, N, 1),
                torch.stack((plugged.float(), to_dep, need), -1),
            ),
            -1,
        )
        ratings = self._ratings_obs.expand(E, N, len(self.RATING_FEATURES))
        observation = torch.cat((forecast.flatten(-2), device_state, context, ratings), -1)

        # global state: true current values per agent, then the community aggregate
        pv_now, load_now = pv[..., 0], load[..., 0]
        agent_state = torch.cat(
            (
                device_state,
                torch.stack((pv_now, load_now, plugged.float(), to_dep, need), -1),
                torch.stack((self._bat_cap, self._pv_kwp), -1).expand(E, N, 2) / 10.0,
            ),
            -1,
        )
        uncontrolled = (load_now - pv_now) * _DT_H
        clearing = clear_mid_market(uncontrolled, price[:, 0], self._sell(price[:, 0]))
        total = (clearing.supply + clearing.demand).clamp_min(1e-6)
        share = torch.where(clearing.supply + clearing.demand > 0, clearing.supply / total, 0.5)
        aggregate = torch.cat(
            (
                torch.stack(
                    (
                        (load_now - pv_now).mean(-1),
                        share,
                        clearing.price,
                        clearing.buy_price,
                        clearing.sell_price,
                        price[:, 0],
                        self._last_exchange / N,
                        self._last_loading,
                    ),
                    -1,
                ),
                time,
            ),
            -1,
        )
        state = torch.cat((agent_state.flatten(-2), aggregate), -1)
        agents = TensorDict(
            {
                "forecast": forecast,
                "device_state": device_state,
                "context": context,
                "ratings": ratings,
                "observation": observation,
                "critic_observation": agent_state,
                **({"action_mask": self._ev_mask(plugged, need)} if self.ev_deadline_mask else {}),
            },
            batch_size=(E, N),
            device=self.device,
        )
        return TensorDict(
            {"agents": agents, "state": state, "aggregate": aggregate},
            batch_size=(E,),
            device=self.device,
        )

    def _sell(self, buy: torch.Tensor) -> torch.Tensor:
        return buy.clamp_max(self.sell_price)

    # ----------------------------------------------------------------------- step
    def _check_action(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's ``(mode, power)``, checked before anything is computed (so a refused
        step changes nothing): both present, shapes ``(E, N)`` and ``(E, N, 2)``, dtypes
        int64 and float32 and (``validate_actions``) modes in ``[0, 2]``, powers finite."""
        E, N = self.num_envs, self.n_prosumers
        mode = action_entry(tensordict, _MODE_KEY, who=_WHO)
        power = action_entry(tensordict, _POWER_KEY, who=_WHO)
        check_action_layout(
            mode,
            _MODE_KEY,
            shape=(E, N),
            dtype=torch.int64,
            who=_WHO,
            dims="num_envs, n_prosumers",
            meaning="integer EV modes 0 off, 1 slow, 2 fast",
        )
        check_action_layout(
            power,
            _POWER_KEY,
            shape=(E, N, 2),
            dtype=torch.float32,
            who=_WHO,
            dims="num_envs, n_prosumers, (battery, hvac)",
            meaning="battery and HVAC powers in [-1, 1]",
        )
        if not self.validate_actions:
            return mode, power
        # one host sync for both checks
        lo, hi, finite = torch.stack(
            (mode.min(), mode.max(), torch.isfinite(power).all().long())
        ).tolist()
        if lo < 0 or hi >= self.N_MODES:
            bad = mode[(mode < 0) | (mode >= self.N_MODES)]
            raise ValueError(
                f"{_WHO} expected {_MODE_KEY!r} to hold EV modes in [0, {self.N_MODES - 1}] "
                f"(off, slow, fast), got {sorted(set(bad.tolist()))}"
            )
        if not finite:
            raise ValueError(
                f"{_WHO} expected {_POWER_KEY!r} to hold finite powers in [-1, 1] (finite "
                f"values outside are clipped), got {non_finite_summary(power)}"
            )
        return mode, power

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        mode, power = self._check_action(tensordict)
        E, N, dt = self.num_envs, self.n_prosumers, _DT_H
        power = power.clamp(-1.0, 1.0)
        t = self._t
        t1 = t.unsqueeze(-1)
        T = self._slots.numel()
        rows = t.clamp_max(T - 1) + self._row0  # (E,) rows of the current slot
        pv, load, gains = self._series.view(E * T, N, 3).index_select(0, rows).unbind(-1)
        buy, t_out = self._series_env.view(E * T, 2).index_select(0, rows).unbind(-1)  # (E,)
        t_out = t_out.unsqueeze(-1)  # (E, 1)

        bat_soc, bat_kw = battery_step(
            self._bat_soc,
            power[..., 0] * self._bat_pmax,
            dt,
            capacity=self._bat_cap,
            eta_c=_BATTERY_ETA,
            eta_d=_BATTERY_ETA,
            p_max=self._bat_pmax,
        )
        plugged = (t1 >= self._ev_arrival) & (t1 < self._ev_departure)
        ev_soc, ev_kw = ev_step(
            self._ev_soc,
            self._chargers.index_select(0, mode.reshape(-1)).view(E, N),
            dt,
            capacity=self._ev_cap,
            eta=_EV_ETA,
            target_soc=self._ev_target,
            plugged=plugged,
        )
        temp, hvac_kw = hvac_step(
            self._temp,
            power[..., 1] * self._hvac_pmax,
            dt,
            t_out=t_out,
            r=self._hvac_r,
            c=self._hvac_c,
            cop=_HVAC_COP,
            p_max=self._hvac_pmax,
            gains=gains,
        )

        net = (load + bat_kw + ev_kw + hvac_kw - pv) * dt  # (E, N) kWh
        sell = self._sell(buy)
        market = clear_mid_market(net, buy, sell)
        cost = market.bill.sum(-1)
        grid_import = market.grid_import.sum(-1)
        exchange = (grid_import - market.grid_export.sum(-1)) / dt  # kW, > 0 import
        loading = exchange.abs() / self.transformer_rating_kw
        overload = (loading - 1.0).clamp_min(0)
        overload_kwh = overload * self.transformer_rating_kw * dt
        ramping = torch.where(t > 0, (exchange - self._last_exchange).abs(), 0.0)

        lo, hi = self.comfort_band
        comfort_n = ((lo - temp).clamp_min(0) + (temp - hi).clamp_min(0)) * dt  # (E, N)
        comfort = comfort_n.sum(-1)
        departing = t1 + 1 == self._ev_departure
        ev_unmet_n = (self._ev_target - ev_soc).clamp_min(0) * self._ev_cap * departing
        ev_unmet = ev_unmet_n.sum(-1)
        ev_delivered = ((ev_soc - self._ev_soc) * self._ev_cap).sum(-1)
        consumption = ((load + ev_kw + hvac_kw + bat_kw.clamp_min(0)) * dt).sum(-1)
        self_sufficiency = torch.where(
            consumption > 0, 1.0 - grid_import / consumption.clamp_min(1e-9), 1.0
        ).clamp(0.0, 1.0)
        grid_penalty = cost + self.overload_weight * overload_kwh  # (E,)
        reward = -self.reward_scale * (
            grid_penalty + self.comfort_weight * comfort + self.ev_weight * ev_unmet
        )

        if self.agent_rewards:
            # difference rewards: the community's cost + overload penalty, a function of its
            # net exchange alone, against the same with prosumer n's devices idle
            idle = net.sum(-1, keepdim=True) - (bat_kw + ev_kw + hvac_kw) * dt  # (E, N) kWh
            idle_penalty = (
                buy.unsqueeze(-1) * idle.clamp_min(0)
                - sell.unsqueeze(-1) * (-idle).clamp_min(0)
                + self.overload_weight * (idle.abs() - self.transformer_rating_kw * dt).clamp_min(0)
            )
            agent_reward = -(N * self.reward_scale) * (
                grid_penalty.unsqueeze(-1)
                - idle_penalty
                + self.comfort_weight * comfort_n
                + self.ev_weight * ev_unmet_n
            )

        new_t = t + 1
        partial = tensordict.get("_step", None)
        if partial is not None:
            m = partial.reshape(E)
            mn = m.unsqueeze(-1)
            bat_soc = torch.where(mn, bat_soc, self._bat_soc)
            ev_soc = torch.where(mn, ev_soc, self._ev_soc)
            temp = torch.where(mn, temp, self._temp)
            exchange = torch.where(m, exchange, self._last_exchange)
            loading = torch.where(m, loading, self._last_loading)
            new_t = torch.where(m, new_t, t)
        self._bat_soc, self._ev_soc, self._temp = bat_soc, ev_soc, temp
        self._last_exchange, self._last_loading = exchange, loading
        self._t = new_t

        out = self._observe()
        kpi = {
            "cost": cost,
            "grid_import": grid_import,
            "peak": exchange.clamp_min(0),
            "transformer_loading": loading,
            "transformer_overload": overload,
            "self_sufficiency": self_sufficiency,
            "comfort_violation": comfort,
            "ev_unmet": ev_unmet,
            "ev_delivered": ev_delivered,
            "ramping": ramping,
        }
        out.set(
            "kpi",
            TensorDict({k: v.unsqueeze(-1) for k, v in kpi.items()}, [E], device=self.device),
        )
        truncated = (new_t >= self.HORIZON).unsqueeze(-1)
        out.set("reward", reward.unsqueeze(-1))
        if self.agent_rewards:
            out.set(("agents", "reward"), agent_reward.unsqueeze(-1))
        out.set("done", truncated.clone())
        out.set("terminated", self._false.clone())
        out.set("truncated", truncated)
        return out
