"""Non-learned baselines for :class:`~mtmarl.envs.community.CommunityEnergyEnv`.

* :class:`NoFlexibilityPolicy` -- what a community without any control does: batteries idle,
  every EV charges at the fast level from its arrival until it reaches its target
  (uncontrolled charging), heat pumps run a thermostat.
* :class:`RuleBasedSelfConsumptionPolicy` -- the usual home-energy-management rules: the
  battery absorbs the household's PV surplus and covers its deficit, the EV charges slowly
  while there is PV surplus or the price is off-peak and faster only when its deadline needs
  it, the heat pump runs the same thermostat.

Both are stateless ``TensorDictModuleBase`` policies ``policy(tensordict) -> tensordict``
(with ``in_keys`` / ``out_keys``, no parameters) usable as
``env.rollout(max_steps, policy)``, in a collector, or as the base controller of an
:class:`~mtmarl.modules.ActionPrior` (also on a ``TransformedEnv`` of the community env) and
read only the agents' local observations, the devices' ratings included (the env gives only
its charger levels and prices at construction), so one policy object serves any community
built with the same tariff and chargers. They write ``("agents", "action", "mode")`` ``(*B, N)`` int64 and
``("agents", "action", "power")`` ``(*B, N, 2)`` float in ``[-1, 1]``, where ``*B`` is the
tensordict's batch.

Keys read: ``("agents", "forecast")`` ``(*B, N, 12, 3)`` (lead 0 = the coming interval:
PV kW, load kW, price), ``("agents", "device_state")`` ``(*B, N, 3)`` (battery SoC, EV SoC,
normalised indoor temperature) and ``("agents", "context")`` ``(*B, N, 8)``
(:attr:`CommunityEnergyEnv.CONTEXT_FEATURES`) and ``("agents", "ratings")`` ``(*B, N, 5)``
(:attr:`CommunityEnergyEnv.RATING_FEATURES` over :attr:`CommunityEnergyEnv.RATING_SCALES`).
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from mtmarl.envs.community.env import _BATTERY_ETA, _EV_ETA, CommunityEnergyEnv

__all__ = ["NoFlexibilityPolicy", "RuleBasedSelfConsumptionPolicy", "thermostat"]

_FORECAST = ("agents", "forecast")
_DEVICE = ("agents", "device_state")
_CONTEXT = ("agents", "context")
_RATINGS = ("agents", "ratings")
_RATING = {name: i for i, name in enumerate(CommunityEnergyEnv.RATING_FEATURES)}
_MODE = ("agents", "action", "mode")
_POWER = ("agents", "action", "power")
_PLUGGED = CommunityEnergyEnv.CONTEXT_FEATURES.index("ev_plugged")
_TO_DEPARTURE = CommunityEnergyEnv.CONTEXT_FEATURES.index("ev_time_to_departure")
_NEED = CommunityEnergyEnv.CONTEXT_FEATURES.index("ev_energy_needed")
_SIN_TOD = CommunityEnergyEnv.CONTEXT_FEATURES.index("sin_time_of_day")
_COS_TOD = CommunityEnergyEnv.CONTEXT_FEATURES.index("cos_time_of_day")
_T_OUT = CommunityEnergyEnv.CONTEXT_FEATURES.index("outdoor_temperature")


def thermostat(
    temperature: torch.Tensor, *, gain: float = 2.0, deadband: float = 0.0
) -> torch.Tensor:
    """A proportional thermostat on the normalised indoor temperature, with a deadband.

    ``u = clip(-gain * (temperature - clip(temperature, -deadband, deadband)) / (1 - deadband),
    -1, 1)``: the heat pump idles while the temperature is within ``deadband`` half-bands of
    the middle of the comfort band, heats (``u > 0``) below that and cools above it, in
    proportion to the distance past the deadband's edge. The proportional band shrinks with
    the room left between the deadband and the comfort band's edge, so full power comes at
    the same fraction of it: ``1 / gain`` of the way (halfway for the default gain).
    ``deadband = 0`` holds the middle of the band. A deadband lets the temperature float with
    the weather inside the band, which is most of the heat pump's energy on mild days:
    holding the middle means heating at night and cooling at noon. With the env's ratings a
    gain of 2 without deadband is stable (one step at full power moves the temperature by at
    most about a quarter of a half-band).

    Args:
        temperature (torch.Tensor): ``(*B, N)`` indoor temperature normalised so that the
            comfort band is ``[-1, 1]`` (``("agents", "device_state")[..., 2]``).

    Keyword Args:
        gain (float): proportional gain, > 0. Defaults to ``2.0``.
        deadband (float): half-width of the idle zone around the band's middle, in
            half-bands, in ``[0, 1)``. Defaults to ``0.0``.

    Returns:
        torch.Tensor: ``(*B, N)`` normalised HVAC power in ``[-1, 1]``.

    Examples:
        >>> import torch
        >>> thermostat(torch.tensor([-1.0, 0.0, 0.25, 2.0])).tolist()
        [1.0, -0.0, -0.5, -1.0]
        >>> thermostat(torch.tensor([-1.0, 0.0, 0.5, 0.8125]), deadband=0.75).tolist()
        [1.0, -0.0, -0.0, -0.5]
    """
    if not gain > 0:
        raise ValueError(f"thermostat expected gain > 0, got {gain}")
    if not 0.0 <= deadband < 1.0:
        raise ValueError(f"thermostat expected deadband in [0, 1), got {deadband}")
    excess = temperature - temperature.clamp(-deadband, deadband)
    return (-gain * excess / (1.0 - deadband)).clamp(-1.0, 1.0)


def _check_env(env: object, who: str) -> CommunityEnergyEnv:
    base = getattr(env, "base_env", env)
    if not isinstance(base, CommunityEnergyEnv):
        raise TypeError(
            f"{who} expected a CommunityEnergyEnv (or a TransformedEnv of one), got "
            f"{type(env).__name__}"
        )
    return base


def _write(td: TensorDictBase, mode: torch.Tensor, battery: torch.Tensor, hvac: torch.Tensor):
    td.set(_MODE, mode.to(torch.int64))
    td.set(_POWER, torch.stack((battery, hvac), -1).clamp(-1.0, 1.0).to(torch.float32))
    return td


class NoFlexibilityPolicy(TensorDictModuleBase):
    """Uncontrolled community: idle batteries, fast EV charging on arrival, thermostats.

    Every step: battery power 0; EV mode 2 (fast) -- the env charges only while the car is
    plugged in and stops at its target, so this is charging at full power from arrival
    until full; HVAC from :func:`thermostat` on the indoor temperature.

    Args:
        env (CommunityEnergyEnv): the env (or a ``TransformedEnv`` of it); only checked, the
            policy needs no rating.

    Keyword Args:
        thermostat_gain (float): see :func:`thermostat`. Defaults to ``2.0``.
        thermostat_deadband (float): see :func:`thermostat`. Defaults to ``0.0``.

    Examples:
        >>> env = CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0)
        >>> td = env.rollout(96, NoFlexibilityPolicy(env))
        >>> battery = td["agents", "action", "power"][..., 0]
        >>> td["next", "done"][:, -1].all().item(), battery.abs().max().item()
        (True, 0.0)
    """

    def __init__(
        self,
        env: CommunityEnergyEnv,
        *,
        thermostat_gain: float = 2.0,
        thermostat_deadband: float = 0.0,
    ) -> None:
        _check_env(env, "NoFlexibilityPolicy")
        thermostat(torch.zeros(()), gain=thermostat_gain, deadband=thermostat_deadband)
        super().__init__()
        self.in_keys = [_DEVICE]
        self.out_keys = [_MODE, _POWER]
        self.thermostat_gain = float(thermostat_gain)
        self.thermostat_deadband = float(thermostat_deadband)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write the uncontrolled joint action into ``tensordict`` (returned)."""
        temp = tensordict.get(_DEVICE)[..., 2]
        hvac = thermostat(temp, gain=self.thermostat_gain, deadband=self.thermostat_deadband)
        mode = torch.full(temp.shape, 2, dtype=torch.int64, device=temp.device)
        return _write(tensordict, mode, torch.zeros_like(temp), hvac)


class RuleBasedSelfConsumptionPolicy(TensorDictModuleBase):
    """Self-consumption rules: the battery follows the household's net load, the EV prefers
    PV surplus and off-peak hours, thermostats.

    Per prosumer and step, with lead-0 forecasts ``pv``, ``load`` and ``price`` (kW, kW,
    per kWh):

    * HVAC: :func:`thermostat`; its electric power ``|u| * p_max_hvac`` counts as load.
      With ``preheat_target = c > 0``, in the local hours ``preheat_hours`` the heat pump
      pre-conditions the home: on a heating day (outdoor temperature below the comfort band)
      it heats at least as much as a thermostat that holds ``+c`` half-bands, on a cooling
      day (above the band) it cools toward ``-c``, so that the home can coast through the
      evening's peak price and the night's EV charging (the perfect-foresight LP pre-heats
      in the afternoon; ``studies/community/results/hourly_n10.md``). The EV and battery
      rules below see the thermostat's own power, not the pre-conditioning's: the extra
      heat is bought from the grid at the afternoon's price, and the battery still fills
      from the PV for the evening (as the LP does).
    * EV (only while plugged in with energy still needed; off otherwise): the *least*
      charging level that still meets the deadline (energy needed / efficiency over the
      hours left, with a ``deadline_margin``) if that is slow or fast; otherwise slow
      charging while the PV surplus ``pv - load - hvac`` is positive or the import price is
      off-peak (below ``cheap_price``), off in the remaining (shoulder / peak) hours.
      With ``ev_spread > 0``, an off-peak step without PV surplus charges only a car whose
      needed rate is at least ``ev_spread`` times the slow level: a car that is ahead of
      that pace waits, so the fleet's charging spreads over the night instead of every car
      starting at the off-peak edge (a decentralised valley filling on each car's own
      laxity; the deadline rule above still applies).
    * Battery: ``-(load + hvac + ev - pv) / p_max``, clipped to ``[-1, 1]``: it charges
      from the surplus and discharges to cover the deficit (the env keeps the state of
      charge in ``[0, 1]``). With ``battery_spread = b > 0`` it discharges no faster than
      ``1 / b`` times the pace that spreads the energy it holds evenly until
      ``battery_refill_hour`` (when the next morning's PV starts to refill it):
      ``soc * capacity * efficiency / hours_left / b``. A battery that covers every deficit
      is empty by midnight, when the community's EV charging loads the transformer; a
      paced one still covers part of each household's deficit through the night (the same
      decentralised valley filling as ``ev_spread``, on the stored energy). Charging is
      unchanged.

    Args:
        env (CommunityEnergyEnv): the env (or a ``TransformedEnv`` of it), for the devices'
            power ratings (battery, heat pump, EV chargers and capacities) and prices.

    Keyword Args:
        thermostat_gain (float): see :func:`thermostat`. Defaults to ``2.0``.
        thermostat_deadband (float): see :func:`thermostat`. Defaults to ``0.0``.
        cheap_price (float or None): import price per kWh below which EVs charge from the
            grid; ``None`` takes the middle of the env's off-peak and shoulder prices.
            Defaults to ``None``.
        deadline_margin (float): hours of slack kept before the EV's departure. Defaults
            to ``1.0``.
        ev_spread (float): in ``[0, 1]``; the fraction of the slow charger's power below
            which a car's needed rate lets it wait in off-peak hours without PV surplus.
            ``0`` charges in every such step (the plain rules). Defaults to ``0.0``.
        battery_spread (float): in ``[0, 1]``; the inverse multiple of the even pace
            (stored energy over the hours to ``battery_refill_hour``) that caps the
            battery's discharge; ``1`` spreads it evenly, ``0`` does not cap it (the plain
            rules). Defaults to ``0.0``.
        battery_refill_hour (float): local hour in ``[0, 24)`` by which a paced battery may
            be empty. Defaults to ``7.0``.
        preheat_target (float): in ``[0, 1)``; the normalised indoor temperature (half-bands
            from the band's middle) the heat pump pre-conditions toward in
            ``preheat_hours``, warm side on heating days and cool side on cooling days.
            ``0`` does not pre-condition. Defaults to ``0.0``.
        preheat_hours (tuple[float, float]): ``(start, end)`` local hours of the
            pre-conditioning window, ``0 <= start < end <= 24``. Defaults to
            ``(12.0, 16.0)``.

    Examples:
        >>> env = CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0)
        >>> rule = env.rollout(96, RuleBasedSelfConsumptionPolicy(env))
        >>> none = env.rollout(96, NoFlexibilityPolicy(env))
        >>> bool(rule["next", "kpi", "self_sufficiency"].mean() >
        ...      none["next", "kpi", "self_sufficiency"].mean())
        True
        >>> env = CommunityEnergyEnv(n_prosumers=20, num_envs=2, seed=0)
        >>> peaks = []
        >>> for ev_spread in (0.0, 0.6):  # the same two days, plain vs spread EV charging
        ...     _ = env.set_seed(1)
        ...     policy = RuleBasedSelfConsumptionPolicy(env, ev_spread=ev_spread)
        ...     peaks.append(env.rollout(96, policy)["next", "kpi", "peak"].amax().item())
        >>> bool(peaks[1] < 0.9 * peaks[0])
        True
        >>> socs = []
        >>> for battery_spread in (0.0, 0.75):  # at 1 a.m. a paced battery still holds energy
        ...     _ = env.set_seed(1)
        ...     policy = RuleBasedSelfConsumptionPolicy(env, battery_spread=battery_spread)
        ...     td = env.rollout(96, policy)
        ...     socs.append(td["agents", "device_state"][:, 52, :, 0].mean().item())
        >>> bool(socs[1] > socs[0] + 0.1)
        True
        >>> temps = []
        >>> for preheat_target in (0.0, 0.5):  # at 4 p.m. a pre-heated home is warmer
        ...     _ = env.set_seed(1)
        ...     policy = RuleBasedSelfConsumptionPolicy(
        ...         env, thermostat_deadband=0.9, preheat_target=preheat_target)
        ...     td = env.rollout(96, policy)
        ...     temps.append(td["agents", "device_state"][:, 16, :, 2].mean().item())
        >>> bool(temps[1] > temps[0] + 0.1)
        True
    """

    def __init__(
        self,
        env: CommunityEnergyEnv,
        *,
        thermostat_gain: float = 2.0,
        thermostat_deadband: float = 0.0,
        cheap_price: float | None = None,
        deadline_margin: float = 1.0,
        ev_spread: float = 0.0,
        battery_spread: float = 0.0,
        battery_refill_hour: float = 7.0,
        preheat_target: float = 0.0,
        preheat_hours: tuple[float, float] = (12.0, 16.0),
    ) -> None:
        base = _check_env(env, "RuleBasedSelfConsumptionPolicy")
        thermostat(torch.zeros(()), gain=thermostat_gain, deadband=thermostat_deadband)
        if deadline_margin < 0:
            raise ValueError(
                f"RuleBasedSelfConsumptionPolicy expected deadline_margin >= 0, got "
                f"{deadline_margin}"
            )
        if not 0.0 <= ev_spread <= 1.0:
            raise ValueError(
                f"RuleBasedSelfConsumptionPolicy expected ev_spread in [0, 1], got {ev_spread}"
            )
        if not 0.0 <= battery_spread <= 1.0:
            raise ValueError(
                f"RuleBasedSelfConsumptionPolicy expected battery_spread in [0, 1], got "
                f"{battery_spread}"
            )
        if not 0.0 <= battery_refill_hour < 24.0:
            raise ValueError(
                f"RuleBasedSelfConsumptionPolicy expected battery_refill_hour in [0, 24), got "
                f"{battery_refill_hour}"
            )
        if not 0.0 <= preheat_target < 1.0:
            raise ValueError(
                f"RuleBasedSelfConsumptionPolicy expected preheat_target in [0, 1), got "
                f"{preheat_target}"
            )
        hours = tuple(float(h) for h in preheat_hours)
        if len(hours) != 2 or not 0.0 <= hours[0] < hours[1] <= 24.0:
            raise ValueError(
                f"RuleBasedSelfConsumptionPolicy expected preheat_hours (start, end) with "
                f"0 <= start < end <= 24, got {tuple(preheat_hours)}"
            )
        super().__init__()
        self.in_keys = [_FORECAST, _DEVICE, _CONTEXT, _RATINGS]
        self.out_keys = [_MODE, _POWER]
        off, shoulder, _ = base.tou_prices
        self.cheap_price = (off + shoulder) / 2 if cheap_price is None else float(cheap_price)
        self.thermostat_gain = float(thermostat_gain)
        self.thermostat_deadband = float(thermostat_deadband)
        self.deadline_margin = float(deadline_margin)
        self.ev_spread = float(ev_spread)
        self.battery_spread = float(battery_spread)
        self.battery_refill_hour = float(battery_refill_hour)
        self.preheat_target = float(preheat_target)
        self.preheat_hours = hours
        self.comfort_band = tuple(float(t) for t in base.comfort_band)
        self.register_buffer("rating_scales", torch.tensor(CommunityEnergyEnv.RATING_SCALES))
        self.register_buffer("chargers_kw", base._chargers.clone())  # (3,): off, slow, fast
        self.ev_efficiency = _EV_ETA

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write the rule-based joint action into ``tensordict`` (returned)."""
        forecast = tensordict.get(_FORECAST)
        device = tensordict.get(_DEVICE)
        context = tensordict.get(_CONTEXT)
        dev = forecast.device
        ratings = tensordict.get(_RATINGS) * self.rating_scales.to(dev)  # kW, kWh, kWp
        battery_kw, hvac_max_kw = (
            ratings[..., _RATING["battery_kw"]],
            ratings[..., _RATING["hvac_kw"]],
        )
        ev_kwh = ratings[..., _RATING["ev_kwh"]]
        pv, load, price = forecast[..., 0, 0], forecast[..., 0, 1], forecast[..., 0, 2]
        hour = torch.atan2(context[..., _SIN_TOD], context[..., _COS_TOD]) * (12 / torch.pi)
        hvac = thermostat(
            device[..., 2], gain=self.thermostat_gain, deadband=self.thermostat_deadband
        )
        hvac_kw = hvac.abs() * hvac_max_kw

        plugged = context[..., _PLUGGED] > 0.5
        hours_left = (context[..., _TO_DEPARTURE] * 24.0 - self.deadline_margin).clamp_min(1e-3)
        need_kwh = context[..., _NEED] * ev_kwh
        rate_needed = need_kwh / (self.ev_efficiency * hours_left)  # kW to finish in time
        chargers = self.chargers_kw.to(dev)
        slow = chargers[1]
        surplus = pv - load - hvac_kw
        # off-peak grid charging waits while the car is ahead of ev_spread x the slow pace
        on_pace = rate_needed >= self.ev_spread * slow
        opportunistic = (surplus > 0) | ((price < self.cheap_price) & on_pace)
        # a deadline the slow charger misses needs the fast one; a car that needs nothing
        # (or is away) does not charge
        mode = torch.where(rate_needed > slow, 2, torch.where(opportunistic, 1, 0))
        mode = torch.where(plugged & (need_kwh > 1e-6), mode, 0)
        ev_kw = torch.minimum(  # the env never charges past the target
            chargers.index_select(0, mode.reshape(-1)).view(mode.shape),
            need_kwh / (self.ev_efficiency * CommunityEnergyEnv.DT_H),
        )
        net_kw = load + hvac_kw + ev_kw - pv
        battery = -net_kw / battery_kw
        if self.battery_spread > 0:
            hours_left = ((self.battery_refill_hour - hour) % 24.0).clamp_min(
                CommunityEnergyEnv.DT_H
            )
            stored_kwh = device[..., 0] * ratings[..., _RATING["battery_kwh"]] * _BATTERY_ETA
            pace_kw = stored_kwh / (hours_left * self.battery_spread)
            battery = torch.maximum(battery, -pace_kw / battery_kw)
        if self.preheat_target > 0:  # after the battery: the extra heat comes from the grid
            hvac = self._precondition(hvac, device[..., 2], hour % 24.0, context[..., _T_OUT])
        return _write(tensordict, mode, battery, hvac)

    def _precondition(
        self, hvac: torch.Tensor, temp: torch.Tensor, hour: torch.Tensor, t_out: torch.Tensor
    ) -> torch.Tensor:
        """Heat toward ``+preheat_target`` (cool toward ``-preheat_target``) in the window on
        heating (cooling) days; ``(*B, N)`` in and out."""
        start, end = self.preheat_hours
        window = (hour >= start) & (hour < end)
        offset, scale = CommunityEnergyEnv.OUTDOOR_TEMPERATURE_NORM
        outdoor = t_out * scale + offset  # deg C
        low, high = self.comfort_band
        c, gain = self.preheat_target, self.thermostat_gain
        heat = torch.maximum(hvac, thermostat(temp - c, gain=gain).clamp_min(0.0))
        cool = torch.minimum(hvac, thermostat(temp + c, gain=gain).clamp_max(0.0))
        hvac = torch.where(window & (outdoor < low), heat, hvac)
        return torch.where(window & (outdoor > high), cool, hvac)
