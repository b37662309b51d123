"""Receding-horizon model-predictive control of a whole community from the agents' forecasts.

:class:`ModelPredictiveController` is the model-based yardstick between the rules and the
perfect-foresight plan (:mod:`~mtmarl.envs.community.reference`): a central controller
that knows every home's device and building models and sees what the agents see -- each
home's noisy 3-hour forecast of PV, load and price, its device state and its context --
and nothing of the future beyond that window. At every step it solves one linear program
over the next ``horizon`` steps for every community of the batch (HiGHS,
:func:`scipy.optimize.linprog`), applies the first step of the plan to the batteries and
heat pumps, and plans again at the next step. With ``scope="home"`` every home plans alone
instead, from its own observation and models and for its own grid bill: decentralised
model-based control, blind to the transformer. Where the learned policies' gap to the
perfect-foresight bound comes from -- the information a policy has, or how well it uses
it -- is what this controller measures.

The program is the perfect-foresight plan's (the env's objective: energy cost,
``overload_weight`` x kWh above the transformer's rating, ``comfort_weight`` x deg C h
outside the comfort band) on the window, with what the window does not tell filled in:

* **outdoor temperature**: held at its current value (persistence; the agents see only the
  current one);
* **internal heat gains**: the env's ``0.2 kW + solar gain x GHI / 1000`` with the GHI
  estimated from the home's PV forecast over its rating (``pv / kWp``);
* **EV charging**: not planned. The cars' levels come from ``ev_policy`` (by default the
  rule-based controller), and the program holds the chosen level's power over the window
  while the car is plugged in and still needs energy;
* **after the window** (``tail_hours`` > 0), hourly steps from expectations a home's
  energy-management system learns from history: the station's TMY PV, outdoor temperature
  and irradiance averaged over the same hour of the 15 days around the day of the year, the
  homes' mean load profiles and the time-of-use tariff (the cars: as above);
* **stored battery energy** at the plan's end is worth ``battery_value`` per kWh: without
  it a 3-hour plan empties every battery before the window closes;
* **the episode's end**: by default the windows run on past it, as for a controller that
  operates day after day; with ``episode_end_value`` a window stops at the episode's last
  step, where the stored energy is worth that value instead.

What it relaxes, as the perfect-foresight plan does: a battery may charge and discharge in
one step (the action is the net power), and the transformer's limit is the env's penalty,
not a constraint.

``studies/community/mpc.py`` measures it against the prior, the learners and the bound
(``benchmarks/README.md``): with the chosen ``battery_value`` it leads the prior by at most
0.17 in return, and the tail of expectations lowered the return.

Shape glossary: ``E`` the batch's communities (flattened ``*B``), ``N`` prosumers, ``H``
the window's 15-min steps (``horizon``, ``<= 12``), ``K = H + tail_hours`` the plan's steps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from mtmarl.envs.community.baselines import (
    _CONTEXT,
    _COS_TOD,
    _DEVICE,
    _FORECAST,
    _MODE,
    _NEED,
    _PLUGGED,
    _POWER,
    _SIN_TOD,
    _T_OUT,
    _TO_DEPARTURE,
    RuleBasedSelfConsumptionPolicy,
    _check_env,
)
from mtmarl.envs.community.env import (
    _BATTERY_ETA,
    _EV_ETA,
    _HVAC_COP,
    _START_HOUR,
    CommunityEnergyEnv,
)
from mtmarl.envs.community.reference import _dynamics, _Program

__all__ = ["ModelPredictiveController"]

_WHO = "ModelPredictiveController"
_WINDOW = 12
_DOY_SIN = CommunityEnergyEnv.CONTEXT_FEATURES.index("sin_day_of_year")
_DOY_COS = CommunityEnergyEnv.CONTEXT_FEATURES.index("cos_day_of_year")
#: days either side of the day of the year the tail's weather expectations average over
_CLIMATOLOGY_DAYS = 7
#: the mean of the env's load events (probability 0.04 a step, 0.5-2 kW), kW
_LOAD_EVENT_MEAN = 0.04 * 1.25


def _hour_mean(series: np.ndarray, per_hour: int) -> np.ndarray:
    """At each slot of ``series`` (last axis, circular), the mean of the hour starting there."""
    return np.stack([np.roll(series, -j, axis=-1) for j in range(per_hour)]).mean(0)


def _climatology(series: np.ndarray, per_hour: int) -> np.ndarray:
    """``(C, 365 * spd)`` 15-min series -> at each slot, the mean of the hour starting there
    over the ``_CLIMATOLOGY_DAYS`` days either side (circular over the year)."""
    C, S = series.shape
    days = series.reshape(C, 365, S // 365)
    width = 2 * _CLIMATOLOGY_DAYS + 1
    smooth = sum(np.roll(days, d, axis=1) for d in range(-_CLIMATOLOGY_DAYS, _CLIMATOLOGY_DAYS + 1))
    return _hour_mean((smooth / width).reshape(C, S), per_hour)


class ModelPredictiveController(TensorDictModuleBase):
    """Receding-horizon LP control of every community's batteries and heat pumps (see the
    module for the program and what it assumes).

    Reads ``("agents", "forecast")`` ``(*B, N, 12, 3)``, ``("agents", "device_state")``
    ``(*B, N, 3)`` and ``("agents", "context")`` ``(*B, N, 8)`` (plus whatever
    ``ev_policy`` reads) and writes ``("agents", "action", "mode")`` ``(*B, N)`` int64 (from
    ``ev_policy``) and ``("agents", "action", "power")`` ``(*B, N, 2)`` float32 in
    ``[-1, 1]`` (battery, heat pump), as the community's other baselines do. Unlike them it
    holds the community's device and building models (ratings, capacities, thermal
    resistance and capacitance, solar gains), so it controls the community of ``env`` only.
    It solves one LP per call on the CPU, without gradients.

    Args:
        env (CommunityEnergyEnv): the community (or a ``TransformedEnv`` of it) whose models
            the controller uses.

    Keyword Args:
        ev_policy (Callable[[TensorDictBase], TensorDictBase] | None): chooses the cars'
            charging levels: called on a shallow copy of the tensordict, its
            ``("agents", "action", "mode")`` is taken. ``None`` builds
            ``RuleBasedSelfConsumptionPolicy(env)``. Defaults to ``None``.
        horizon (int): 15-min steps planned from the agents' forecasts, in ``[1, 12]`` (the
            forecast window). Defaults to ``12`` (3 hours).
        tail_hours (int): hourly steps planned after the window from expectations (see the
            module), in ``[0, 48]``; ``0`` plans the window alone. Defaults to ``0``.
        battery_value (float): value per kWh stored in a battery at the window's end,
            ``>= 0``; about the import price the energy will displace later. Defaults to
            ``0.15``.
        comfort_margin (float): deg C by which the program narrows the comfort band on each
            side, a hedge against its model errors (the gains and outdoor temperature it
            estimates); in ``[0, half the band)``. Defaults to ``0.0``.
        scope (str): ``"community"``: one program for the whole community, which pays for
            its net exchange and for the transformer's overload (a central controller).
            ``"home"``: every home plans alone from its own observation and models, for its
            own grid bill (buying and selling at the grid's prices; the community market's
            better internal rate and the transformer are not in its program) -- decentralised
            model-based control. Defaults to ``"community"``.
        episode_end_value (float | None): ``None``: the windows run on past the episode's
            end (noon), as a controller that operates day after day plans. A float ``>= 0``:
            a window that reaches the episode's last step stops there (nothing after it
            counts, as in the env's return and the perfect-foresight plan) and the energy
            left in the batteries then is worth this much per kWh instead of
            ``battery_value``; ``0.0`` is the episode's own objective. Defaults to ``None``.

    Examples:
        >>> env = CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0)
        >>> mpc = ModelPredictiveController(env, horizon=4)
        >>> td = env.rollout(8, mpc)
        >>> td["agents", "action", "power"].shape
        torch.Size([2, 8, 3, 2])
        >>> bool(td["agents", "action", "power"].abs().max() <= 1)
        True
    """

    def __init__(
        self,
        env: CommunityEnergyEnv,
        *,
        ev_policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        horizon: int = _WINDOW,
        tail_hours: int = 0,
        battery_value: float = 0.15,
        comfort_margin: float = 0.0,
        scope: str = "community",
        episode_end_value: float | None = None,
    ) -> None:
        base = _check_env(env, _WHO)
        if isinstance(horizon, bool) or not isinstance(horizon, int):
            raise TypeError(f"{_WHO} expected an int horizon, got {type(horizon).__name__}")
        if not 1 <= horizon <= _WINDOW:
            raise ValueError(
                f"{_WHO} expected horizon in [1, {_WINDOW}] (the forecast window), got {horizon}"
            )
        if isinstance(tail_hours, bool) or not isinstance(tail_hours, int):
            raise TypeError(f"{_WHO} expected an int tail_hours, got {type(tail_hours).__name__}")
        if not 0 <= tail_hours <= 48:
            raise ValueError(f"{_WHO} expected tail_hours in [0, 48], got {tail_hours}")
        if not (
            isinstance(battery_value, (int, float))
            and np.isfinite(battery_value)
            and battery_value >= 0
        ):
            raise ValueError(f"{_WHO} expected a finite battery_value >= 0, got {battery_value!r}")
        lo, hi = base.comfort_band
        if not (isinstance(comfort_margin, (int, float)) and 0 <= comfort_margin < (hi - lo) / 2):
            raise ValueError(
                f"{_WHO} expected comfort_margin in [0, {(hi - lo) / 2:g}) (half the comfort "
                f"band {lo:g}-{hi:g} deg C), got {comfort_margin!r}"
            )
        if episode_end_value is not None and not (
            isinstance(episode_end_value, (int, float))
            and np.isfinite(episode_end_value)
            and episode_end_value >= 0
        ):
            raise ValueError(
                f"{_WHO} expected episode_end_value None or a finite float >= 0, got "
                f"{episode_end_value!r}"
            )
        if scope not in ("community", "home"):
            raise ValueError(f"{_WHO} expected scope 'community' or 'home', got {scope!r}")
        if ev_policy is not None and not callable(ev_policy):
            raise TypeError(
                f"{_WHO} expected ev_policy to be callable or None, got {type(ev_policy).__name__}"
            )
        super().__init__()
        self.ev_policy = RuleBasedSelfConsumptionPolicy(env) if ev_policy is None else ev_policy
        self.horizon = horizon
        self.tail_hours = tail_hours
        self.battery_value = float(battery_value)
        self.comfort_margin = float(comfort_margin)
        self.scope = scope
        self.episode_end_value = None if episode_end_value is None else float(episode_end_value)
        self._episode_steps = int(base.HORIZON)
        ev_in = list(getattr(self.ev_policy, "in_keys", []))
        self.in_keys = list(dict.fromkeys([_FORECAST, _DEVICE, _CONTEXT, *ev_in]))
        self.out_keys = [_MODE, _POWER]
        f64 = lambda x: x.detach().double().cpu().numpy()  # noqa: E731
        self._n = base.n_prosumers
        self._dt = float(base.DT_H)
        self._bat_cap, self._bat_pmax = f64(base._bat_cap), f64(base._bat_pmax)
        self._hvac_pmax, self._ev_cap = f64(base._hvac_pmax), f64(base._ev_cap)
        self._pv_kwp, self._solar_gain = f64(base._pv_kwp), f64(base._solar_gain)
        self._r, self._c = f64(base._hvac_r), f64(base._hvac_c)
        self._chargers = f64(base._chargers)
        self._band = tuple(float(t) for t in base.comfort_band)
        self._t_out_norm = tuple(float(x) for x in base.OUTDOOR_TEMPERATURE_NORM)
        self._sell = float(base.sell_price)
        self._rating = float(base.transformer_rating_kw)
        self._weights = (float(base.comfort_weight), float(base.overload_weight))
        # the tail's expectations, by 15-min slot of the year (each the mean of the hour
        # starting there, over the days either side): TMY PV per kWp, outdoor temperature, GHI
        self._per_hour = int(round(1.0 / self._dt))
        self._orientation = base._orientation.cpu().numpy()
        self._load_mean = f64(base._load_mean)
        self._clim_pv = _climatology(f64(base._pv_unit), self._per_hour)
        self._clim_t_out = _climatology(f64(base._temp_air)[None], self._per_hour)[0]
        self._clim_ghi = _climatology(f64(base._ghi)[None], self._per_hour)[0]
        # the daily schedules by 15-min slot of the day (the env's start at noon)
        spd = 24 * self._per_hour
        of_episode = (np.arange(spd) - _START_HOUR * self._per_hour) % spd
        self._clim_load = _hour_mean(f64(base._load_shape)[of_episode], self._per_hour)
        self._clim_tou = _hour_mean(f64(base._tou)[of_episode], self._per_hour)

    def _ev_power(
        self, context: np.ndarray, mode: np.ndarray, begins: np.ndarray, dts: np.ndarray
    ) -> np.ndarray:
        """``(K, E, N)`` kW: the chosen level held while plugged in and the car needs energy,
        over steps starting ``begins`` ``(K,)`` hours from now and lasting ``dts`` hours."""
        plugged = context[..., _PLUGGED] > 0.5  # (E, N)
        hours_left = context[..., _TO_DEPARTURE] * 24.0  # until departure
        need = context[..., _NEED] * self._ev_cap  # kWh into the car
        power = self._chargers[mode] * plugged  # (E, N)
        out = np.zeros((dts.size, *mode.shape))
        for k, (begin, dt) in enumerate(zip(begins, dts)):
            # the share of the step before the car leaves, and no more than its need
            share = np.clip((hours_left - begin) / dt, 0.0, 1.0)
            out[k] = np.minimum(power * share, need / (_EV_ETA * dt))
            need = need - _EV_ETA * dt * out[k]
        return out

    def _climatology(
        self, context: np.ndarray, hour: np.ndarray, start_h: float
    ) -> dict[str, np.ndarray]:
        """The tail's hourly expectations ``(tail_hours, E, N)`` / ``(tail_hours, E, 1)``,
        for the hours starting ``start_h`` hours after the current step (at ``hour`` o'clock,
        ``(E,)``)."""
        T = self.tail_hours
        spd = 24 * self._per_hour
        doy = np.arctan2(context[:, 0, _DOY_SIN], context[:, 0, _DOY_COS]) % (2 * np.pi)
        day = np.rint(doy * 365 / (2 * np.pi)).astype(int) % 365
        # slots of the year (15-min) each tail hour starts at: (T, E)
        first = np.rint((hour + start_h) * self._per_hour).astype(int)
        slot = (day * spd + first)[None] + self._per_hour * np.arange(T)[:, None]
        slot = slot % self._clim_t_out.size
        of_day = slot % spd  # the schedules (load shape, tariff) repeat daily
        pv = self._clim_pv[:, slot]  # (n_orient, T, E) kW per kWp, hourly mean
        pv = pv[self._orientation].transpose(1, 2, 0) * self._pv_kwp  # (T, E, N)
        load = self._load_mean * self._clim_load[of_day][..., None] + _LOAD_EVENT_MEAN
        ghi = self._clim_ghi[slot][..., None]
        return {
            "pv": pv,
            "load": load,
            "buy": self._clim_tou[of_day][..., None],
            "t_out": self._clim_t_out[slot][..., None],
            "gains": 0.2 + self._solar_gain * ghi / 1000.0,
        }

    def plan(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """Solve the program for every community of ``tensordict``.

        Args:
            tensordict (TensorDictBase): batch ``*B`` with the keys the controller reads.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: the EV levels ``(*B, N)`` int64 from
            ``ev_policy`` and the planned battery and heat-pump power ``(*B, K, N, 2)``
            float64 over their ratings (``> 0``: charging, heating), ``K = horizon +
            tail_hours`` steps (the window's 15-min steps, then the tail's hours).

        Raises:
            ValueError: if the tensordict's prosumer dim is not the env's ``N``.
            RuntimeError: if HiGHS does not reach the optimum.
        """
        forecast = tensordict.get(_FORECAST)
        batch, N = forecast.shape[:-3], forecast.shape[-3]
        if N != self._n:
            raise ValueError(
                f"{_WHO} expected {self._n} prosumers (the env's), got a forecast of shape "
                f"{tuple(forecast.shape)}"
            )
        with torch.no_grad():
            modes = self.ev_policy(tensordict.select(*self.in_keys)).get(_MODE)

        def f64(x: torch.Tensor) -> np.ndarray:  # (*B, N, ...) -> (E, N, ...)
            return x.detach().double().cpu().reshape(-1, *x.shape[len(batch) :]).numpy()

        fc = f64(forecast)
        device, context = f64(tensordict.get(_DEVICE)), f64(tensordict.get(_CONTEXT))
        mode = modes.detach().long().cpu().reshape(-1, N).numpy()
        E, H, dt = fc.shape[0], self.horizon, self._dt
        K = H + self.tail_hours
        dts = np.r_[np.full(H, dt), np.ones(self.tail_hours)]  # (K,) hours per step
        begins = np.cumsum(dts) - dts  # (K,) hours from now
        col = dts[:, None, None]  # (K, 1, 1)
        hour = (np.arctan2(context[:, 0, _SIN_TOD], context[:, 0, _COS_TOD]) * (12 / np.pi)) % 24
        # (K, E, N) per home and (K, E, 1) per community: the window's first H leads ...
        offset, scale = self._t_out_norm
        window = {
            "pv": fc[:, :, :H, 0].transpose(2, 0, 1),
            "load": fc[:, :, :H, 1].transpose(2, 0, 1),
            "buy": fc[:, 0, :H, 2].T[..., None],
            "t_out": np.broadcast_to(context[:, 0, _T_OUT] * scale + offset, (H, E))[..., None],
        }
        window["gains"] = 0.2 + self._solar_gain * window["pv"] / np.maximum(self._pv_kwp, 1e-6)
        if self.tail_hours:  # ... then the tail's hourly expectations
            tail = self._climatology(context, hour, H * dt)
            window = {k: np.concatenate((v, tail[k]), 0) for k, v in window.items()}
        pv, load, buy, t_out, gains = (window[k] for k in ("pv", "load", "buy", "t_out", "gains"))
        sell = np.minimum(buy, self._sell)
        ev = self._ev_power(context, mode, begins, dts)
        lo, hi = self._band
        temp0 = (lo + hi) / 2 + device[..., 2] * (hi - lo) / 2  # (E, N) deg C

        # (K, E): the steps inside the episode (all, unless episode_end_value is set)
        last = np.full(E, K - 1)  # the step whose stored energy is valued
        value = np.full(E, self.battery_value)
        inside = np.ones((K, E))
        if self.episode_end_value is not None:
            left_h = (self._episode_steps - np.rint(((hour - _START_HOUR) % 24.0) / dt)) * dt
            inside = (begins[:, None] < left_h[None] - 1e-9).astype(float)
            ends = left_h <= dts.sum() + 1e-9  # the episode ends within the plan
            last = np.where(ends, inside.sum(0) - 1, K - 1).astype(int)
            value = np.where(ends, self.episode_end_value, value)

        lp = _Program(_WHO)
        charge = lp.var((K, E, N), 0.0, self._bat_pmax)
        discharge = lp.var((K, E, N), 0.0, self._bat_pmax)
        terminal = np.zeros((K, E, N))
        terminal[last, np.arange(E)] = -value[:, None]
        stored = lp.var((K, E, N), 0.0, self._bat_cap, terminal)
        heat = lp.var((K, E, N), 0.0, self._hvac_pmax)
        cool = lp.var((K, E, N), 0.0, self._hvac_pmax)
        temp = lp.var((K, E, N), -np.inf, np.inf)
        comfort_weight, overload_weight = self._weights
        w = inside[..., None]  # (K, E, 1): nothing after the episode's end counts
        discomfort = lp.var((K, E, N), 0.0, np.inf, comfort_weight * col * w)
        S = N if self.scope == "home" else 1  # who exchanges with the grid: each home, or all
        imp = lp.var((K, E, S), 0.0, np.inf, buy * w)
        exp = lp.var((K, E, S), 0.0, np.inf, -sell * w)

        eta = _BATTERY_ETA
        _dynamics(
            lp,
            stored,
            [(charge, eta * col), (discharge, -col / eta)],
            decay=1.0,
            forcing=np.zeros((K, E, N)),
            initial=device[..., 0] * self._bat_cap,
        )
        a = np.exp(-col / (self._r * self._c))  # (K, 1, N)
        gain = (1.0 - a) * self._r * _HVAC_COP
        _dynamics(
            lp,
            temp,
            [(heat, gain), (cool, -gain)],
            decay=a,
            forcing=(1.0 - a) * (t_out + self._r * gains),
            initial=temp0,
        )
        m = self.comfort_margin
        lp.at_most([(temp, -1.0), (discomfort, -1.0)], np.full((K, E, N), -(lo + m)))
        lp.at_most([(temp, 1.0), (discomfort, -1.0)], np.full((K, E, N), hi - m))
        devices = [(charge, -col), (discharge, col), (heat, -col), (cool, -col)]
        net = col * (load - pv + ev)  # (K, E, N) kWh before the devices
        if self.scope == "community":
            net = net.sum(-1, keepdims=True)
        lp.equal([(imp, 1.0), (exp, -1.0), *devices], net)
        if self.scope == "community":  # a home does not see the transformer
            over = lp.var((K, E, 1), 0.0, np.inf, overload_weight * col * w)
            rating = np.full((K, E, 1), self._rating)
            per_h = 1.0 / col
            lp.at_most([(imp, per_h), (exp, -per_h), (over, -1.0)], rating)
            lp.at_most([(imp, -per_h), (exp, per_h), (over, -1.0)], rating)
        x = lp.solve()
        battery = (x[charge] - x[discharge]) / self._bat_pmax
        hvac = (x[heat] - x[cool]) / self._hvac_pmax
        power = torch.as_tensor(np.stack((battery, hvac), -1).transpose(1, 0, 2, 3))
        return modes, power.reshape(*batch, K, N, 2)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write the EV levels and the plan's first battery and heat-pump step (returned)."""
        modes, power = self.plan(tensordict)
        dev = tensordict.get(_FORECAST).device
        tensordict.set(_MODE, modes.to(device=dev, dtype=torch.int64))
        first = power[..., 0, :, :].clamp(-1.0, 1.0)
        tensordict.set(_POWER, first.to(device=dev, dtype=torch.float32))
        return tensordict
