"""Device physics of a prosumer: battery, electric vehicle, thermostatic heat pump / AC.

Pure, batched torch functions: every argument broadcasts against the state (``(*B,)``, e.g.
``(num_envs, n_prosumers)``), nothing is stored, nothing synchronises with the host. Powers are
in kW, energies in kWh, times in hours, temperatures in deg C. A positive grid power is
drawn from the household's bus (a consumption), a negative one is delivered to it.

All three devices are integrated *exactly* for a constant input over the step (the input is
piecewise constant: the agent's action holds for a step), so results do not depend on the step
length: four 15-min steps equal one 60-min step at the same power unless a bound is hit. That
is the property CityLearn lost below hourly steps (its storage losses were applied per step, not
per hour; CityLearn #163); the tests check it for every device.

* :func:`battery_step` -- ``dE/dt = -lambda E + P_int`` with charge/discharge efficiencies on the
  conversion (``P_int = eta_c P`` charging, ``P / eta_d`` discharging) and an optional
  self-discharge rate ``lambda`` (1/h). Power is limited to ``[-p_max, p_max]`` and to what
  keeps the state of charge in ``[0, 1]`` at the end of the step (the trajectory is monotone
  for a constant input, so the whole step stays in bounds).
* :func:`ev_step` -- a charge-only EV battery: it charges only while plugged in and never past
  its target state of charge, so the energy delivered never exceeds the energy requested.
* :func:`hvac_step` -- a first-order (1R1C) thermal model of the dwelling,
  ``C dT/dt = (T_out - T) / R + COP * P + gains``, with ``P > 0`` heating and ``P < 0``
  cooling (electric power drawn ``|P|``).
"""

from __future__ import annotations

import torch

__all__ = ["battery_step", "ev_step", "hvac_step"]

TensorLike = torch.Tensor | float


def _t(value: TensorLike, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _check_float(x: object, name: str, who: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(
            f"{who} expected {name} to be a floating-point tensor, got {type(x).__name__} "
            f"{getattr(x, 'dtype', '')}".rstrip()
        )
    return x


def _decay(rate: torch.Tensor, dt_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a = exp(-rate dt)`` and ``k = (1 - a) / rate`` (``= dt`` for ``rate = 0``)."""
    x = rate * dt_h
    a = torch.exp(-x)
    # (1 - e^-x) / x -> 1 as x -> 0; -expm1 keeps precision for small x
    ratio = torch.where(x > 1e-12, -torch.expm1(-x) / x.clamp_min(1e-12), 1.0 - x / 2)
    return a, ratio * dt_h


def battery_step(
    soc: torch.Tensor,
    power_kw: torch.Tensor,
    dt_h: TensorLike,
    *,
    capacity: TensorLike,
    eta_c: TensorLike,
    eta_d: TensorLike,
    p_max: TensorLike,
    self_discharge: TensorLike = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of a stationary battery at a constant requested power.

    Stored energy ``E = soc * capacity`` follows ``dE/dt = -self_discharge * E + P_int`` with
    ``P_int = eta_c * P`` while charging (``P > 0``) and ``P / eta_d`` while discharging, solved
    exactly over the step. The requested grid-side power is clipped to ``[-p_max, p_max]``
    and then to the power that ends the step at ``soc`` 0 or 1. Energy balance: without
    self-discharge the stored energy changes by exactly ``eta_c * P * dt`` (charging) or
    ``P * dt / eta_d`` (discharging), with ``P`` the returned grid power.

    Args:
        soc (torch.Tensor): ``(*B,)`` state of charge in ``[0, 1]``.
        power_kw (torch.Tensor): ``(*B,)`` requested grid-side power in kW (``> 0`` charge).
        dt_h (torch.Tensor | float): step length in hours (broadcastable to ``(*B,)``).

    Keyword Args:
        capacity (torch.Tensor | float): usable capacity in kWh (``> 0``), broadcastable.
        eta_c (torch.Tensor | float): charging efficiency in ``(0, 1]``, broadcastable.
        eta_d (torch.Tensor | float): discharging efficiency in ``(0, 1]``, broadcastable.
        p_max (torch.Tensor | float): power limit in kW (both directions), broadcastable.
        self_discharge (torch.Tensor | float): self-discharge rate in 1/h (fraction of the
            stored energy lost per hour for small rates). Defaults to ``0.0``.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: ``(new_soc, grid_power)``, both ``(*B,)``:
        the state of charge after the step and the grid-side power actually exchanged (kW,
        ``> 0`` drawn to charge, ``< 0`` delivered).

    Examples:
        >>> soc, p = battery_step(torch.tensor([0.5, 0.95]), torch.tensor([4.0, 4.0]), 0.25,
        ...                       capacity=10.0, eta_c=0.95, eta_d=0.95, p_max=5.0)
        >>> torch.allclose(soc, torch.tensor([0.595, 1.0])), p[1] < 4.0  # second one fills up
        (True, tensor(True))
    """
    soc = _check_float(soc, "soc", "battery_step")
    power_kw = _check_float(power_kw, "power_kw", "battery_step")
    dt = _t(dt_h, soc)
    cap = _t(capacity, soc)
    eta_c, eta_d = _t(eta_c, soc), _t(eta_d, soc)
    p_max = _t(p_max, soc)
    a, k = _decay(_t(self_discharge, soc), dt)

    energy = soc * cap
    p = torch.maximum(torch.minimum(power_kw, p_max), -p_max)
    p_int = torch.where(p >= 0, p * eta_c, p / eta_d)
    # end-of-step bounds: E a + P_int k in [0, cap]
    kept = energy * a
    p_int = torch.minimum(torch.maximum(p_int, -kept / k), (cap - kept) / k)
    grid = torch.where(p_int >= 0, p_int / eta_c, p_int * eta_d)
    new_soc = ((kept + p_int * k) / cap).clamp(0.0, 1.0)
    return new_soc, grid


def ev_step(
    soc: torch.Tensor,
    power_kw: torch.Tensor,
    dt_h: TensorLike,
    *,
    capacity: TensorLike,
    eta: TensorLike,
    target_soc: TensorLike = 1.0,
    plugged: torch.Tensor | bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of an electric vehicle's charging at a constant charger power (no V2G).

    The car charges only while ``plugged``, never discharges (negative powers count as 0)
    and stops at ``target_soc``: the battery gains ``eta * P * dt`` kWh, with ``P`` the
    returned grid power, and never more than the energy still requested,
    ``max(target_soc - soc, 0) * capacity``.

    Args:
        soc (torch.Tensor): ``(*B,)`` EV state of charge in ``[0, 1]``.
        power_kw (torch.Tensor): ``(*B,)`` charger power in kW requested (e.g. 0 / slow / fast).
        dt_h (torch.Tensor | float): step length in hours (broadcastable).

    Keyword Args:
        capacity (torch.Tensor | float): EV battery capacity in kWh (``> 0``), broadcastable.
        eta (torch.Tensor | float): charging efficiency in ``(0, 1]``, broadcastable.
        target_soc (torch.Tensor | float): state of charge the owner asked for by departure
            (charging stops there), broadcastable. Defaults to ``1.0``.
        plugged (torch.Tensor | bool): ``(*B,)`` bool, whether the car is at its charger.
            Defaults to ``True``.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: ``(new_soc, grid_power)``, both ``(*B,)``; the
        grid power is in ``[0, power_kw]`` (kW).

    Examples:
        >>> soc, p = ev_step(torch.tensor([0.5, 0.89, 0.2]), torch.tensor([7.0, 7.0, 7.0]),
        ...                  0.25, capacity=50.0, eta=0.9, target_soc=0.9,
        ...                  plugged=torch.tensor([True, True, False]))
        >>> torch.allclose(soc, torch.tensor([0.5315, 0.9, 0.2])), p[2].item()
        (True, 0.0)
    """
    soc = _check_float(soc, "soc", "ev_step")
    power_kw = _check_float(power_kw, "power_kw", "ev_step")
    dt = _t(dt_h, soc)
    cap, eta = _t(capacity, soc), _t(eta, soc)
    target = _t(target_soc, soc)
    plugged = torch.as_tensor(plugged, device=soc.device)
    needed = (target - soc).clamp_min(0) * cap  # kWh still requested
    p = torch.minimum(power_kw.clamp_min(0), needed / (eta * dt))
    p = torch.where(plugged, p, torch.zeros_like(p))
    new_soc = torch.where(p > 0, torch.minimum(soc + eta * p * dt / cap, target), soc)
    return new_soc, p


def hvac_step(
    temp: torch.Tensor,
    power_kw: torch.Tensor,
    dt_h: TensorLike,
    *,
    t_out: TensorLike,
    r: TensorLike,
    c: TensorLike,
    cop: TensorLike,
    p_max: TensorLike,
    gains: TensorLike = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of a reversible heat pump / AC in a first-order (1R1C) dwelling.

    ``c dT/dt = (t_out - T) / r + cop * P + gains`` with the signed electric power ``P``
    clipped to ``[-p_max, p_max]`` (``> 0`` heating, ``< 0`` cooling) held constant over the
    step, solved exactly: ``T' = T_ss + (T - T_ss) exp(-dt / (r c))`` with the steady state
    ``T_ss = t_out + r (cop P + gains)``.

    Args:
        temp (torch.Tensor): ``(*B,)`` indoor temperature in deg C.
        power_kw (torch.Tensor): ``(*B,)`` signed electric power requested in kW.
        dt_h (torch.Tensor | float): step length in hours (broadcastable).

    Keyword Args:
        t_out (torch.Tensor | float): outdoor temperature in deg C, broadcastable.
        r (torch.Tensor | float): thermal resistance envelope-to-outside in deg C / kW (``> 0``).
        c (torch.Tensor | float): thermal capacitance in kWh / deg C (``> 0``).
        cop (torch.Tensor | float): coefficient of performance (thermal / electric power).
        p_max (torch.Tensor | float): electric power limit in kW.
        gains (torch.Tensor | float): other heat gains (solar, internal) in kW. Defaults to
            ``0.0``.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: ``(new_temp, grid_power)``, both ``(*B,)``; the
        grid power is the electric power drawn, ``|P| >= 0`` (kW).

    Examples:
        >>> temp, p = hvac_step(torch.tensor([20.0, 20.0]), torch.tensor([2.0, -2.0]), 1.0,
        ...                     t_out=15.0, r=3.0, c=5.0, cop=3.0, p_max=1.5)
        >>> bool(temp[0] > 20.0 > temp[1]), p.tolist()
        (True, [1.5, 1.5])
    """
    temp = _check_float(temp, "temp", "hvac_step")
    power_kw = _check_float(power_kw, "power_kw", "hvac_step")
    dt = _t(dt_h, temp)
    p_max = _t(p_max, temp)
    p = torch.maximum(torch.minimum(power_kw, p_max), -p_max)
    r = _t(r, temp)
    steady = _t(t_out, temp) + r * (_t(cop, temp) * p + _t(gains, temp))
    new_temp = steady + (temp - steady) * torch.exp(-dt / (r * _t(c, temp)))
    return new_temp, p.abs()
