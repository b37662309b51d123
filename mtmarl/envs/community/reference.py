"""Perfect-foresight planning for :class:`~mtmarl.envs.community.CommunityEnergyEnv`.

The yardstick every learned or rule-based controller of the community can be held against.
Given the episodes an env has just drawn, it plans each day with the whole day known in
advance (PV, loads, prices, outdoor temperature, the cars' arrivals and departures), as one
linear program solved by HiGHS (:func:`scipy.optimize.linprog`). It uses the env's own
device models, which are linear for an input held over a step
(:mod:`~mtmarl.envs.community.devices`), and the community's grid bill, which depends only
on the community's net exchange (the mid-market-rate platform neither earns nor loses
money, :mod:`~mtmarl.envs.community.market`).

What the program relaxes, so that its optimum is a **bound** no policy can beat on those
episodes:

* the EV charger is continuous in ``[0, fast]`` while plugged in; the env's charger has
  three levels (off, slow, fast);
* a battery may charge and discharge in the same step, and a heat pump heat and cool in the
  same step; the env's device does one or the other. At the optimum this only happens where
  wasting energy lowers the objective, e.g. against reverse overload at noon;
* the plan sees the true exogenous series; a policy sees noisy forecasts.

With ``ev_modes`` (a schedule of EV levels, e.g. the one a policy chose along a rollout) the
EV charging is fixed to what the env does with those levels. The batteries and heat pumps
are then the only decisions, and the plan is one the env can run
(:meth:`PerfectForesightPlan.actions`): the best battery and heat-pump control for that EV
schedule. The env then gives the plan's return exactly, unless the LP charged and
discharged a battery, or heated and cooled a home, in the same step (the env nets the two,
so its return is then lower).

The objective is the env's: energy cost + ``overload_weight`` x kWh through the transformer
above its rating + ``comfort_weight`` x deg C h outside the comfort band + ``ev_weight`` x
kWh of unmet EV energy, so ``-reward_scale`` times it is the best achievable team return.
``peak_price`` adds a price on each day's peak import (kW). Sweeping it traces the cost /
peak frontier: the least cost at a given mean daily peak.

The day ends at the episode's last step, and nothing after it counts: the plan empties the
batteries by then if that pays, energy a policy that values the next day (a critic that
bootstraps at the env's truncation) would keep. ``keep_battery_energy=True`` makes every
battery end the day holding at least the energy it started with, which removes that
end-of-horizon gain from the bound.

Shape glossary: ``E`` envs (one episode each), ``T`` steps per episode
(:attr:`CommunityEnergyEnv.HORIZON`, 96), ``N`` prosumers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import linprog
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import EnvBase

from mtmarl.envs.community.baselines import _check_env
from mtmarl.envs.community.devices import ev_step
from mtmarl.envs.community.env import _BATTERY_ETA, _EV_ETA, _HVAC_COP, CommunityEnergyEnv

__all__ = ["PerfectForesightPlan", "perfect_foresight_plan"]

_WHO = "perfect_foresight_plan"


@dataclass(frozen=True)
class PerfectForesightPlan:
    """The optimal plans of :func:`perfect_foresight_plan`, one per env (episode).

    Per-episode totals are ``(E,)`` float64 tensors, trajectories ``(E, T, N)`` (per prosumer)
    or ``(E, T)`` (community), in the env's units (kW, kWh, deg C).

    Attributes:
        objective (torch.Tensor): ``(E,)`` the optimum: ``cost + overload_weight *
            overload_kwh + comfort_weight * comfort + ev_weight * ev_unmet_kwh +
            peak_price * peak_kw``.
        episode_return (torch.Tensor): ``(E,)`` the team return of the plan,
            ``-reward_scale * (objective - peak_price * peak_kw)``.
        cost (torch.Tensor): ``(E,)`` the community's energy bill over the day.
        peak_kw (torch.Tensor): ``(E,)`` the day's highest net import (kW, ``>= 0``).
        overload_kwh (torch.Tensor): ``(E,)`` energy through the transformer above its rating.
        comfort (torch.Tensor): ``(E,)`` deg C h outside the comfort band, summed over homes.
        ev_unmet_kwh (torch.Tensor): ``(E,)`` EV energy still missing at departure.
        exchange_kw (torch.Tensor): ``(E, T)`` the community's net import (``< 0`` export).
        battery_kw (torch.Tensor): ``(E, T, N)`` battery grid-side power (``> 0`` charging).
        ev_kw (torch.Tensor): ``(E, T, N)`` EV charging power.
        battery_kwh (torch.Tensor): ``(E, T, N)`` energy stored in each battery at the end of
            each step (kWh).
        hvac_kw (torch.Tensor): ``(E, T, N)`` signed heat-pump power (``> 0`` heating).
        ev_modes (torch.Tensor | None): ``(E, T, N)`` int64, the fixed EV levels the plan was
            made for, or ``None`` (relaxed EV charging: a bound, not a runnable plan).
        battery_pmax (torch.Tensor): ``(N,)`` the batteries' power ratings (kW).
        hvac_pmax (torch.Tensor): ``(N,)`` the heat pumps' power ratings (kW).

    Examples:
        A runnable plan: the rule-based controller's EV levels, the best batteries and heat
        pumps for them. The env reproduces the plan's return when it runs it.

        >>> import torch
        >>> from mtmarl.envs.community import RuleBasedSelfConsumptionPolicy
        >>> env = CommunityEnergyEnv(n_prosumers=3, num_envs=2, seed=0)
        >>> _ = env.set_seed(1)
        >>> rules = env.rollout(96, RuleBasedSelfConsumptionPolicy(env))
        >>> _ = env.set_seed(1)
        >>> td = env.reset()
        >>> plan = perfect_foresight_plan(env, ev_modes=rules["agents", "action", "mode"])
        >>> ran = plan.rollout(env, td)
        >>> ran.shape
        torch.Size([2, 96])
        >>> total = ran["next", "reward"].sum((1, 2)).double()
        >>> torch.allclose(total, plan.episode_return, atol=1e-3)
        True
    """

    objective: torch.Tensor
    episode_return: torch.Tensor
    cost: torch.Tensor
    peak_kw: torch.Tensor
    overload_kwh: torch.Tensor
    comfort: torch.Tensor
    ev_unmet_kwh: torch.Tensor
    exchange_kw: torch.Tensor
    battery_kw: torch.Tensor
    ev_kw: torch.Tensor
    battery_kwh: torch.Tensor
    hvac_kw: torch.Tensor
    ev_modes: torch.Tensor | None
    battery_pmax: torch.Tensor
    hvac_pmax: torch.Tensor

    def actions(self, t: int) -> TensorDict:
        """The env's joint action at step ``t`` of the plan, to run it in the env.

        Args:
            t (int): the step, in ``[0, T)``.

        Returns:
            TensorDict: batch ``(E,)`` with ``("agents", "action", "mode")`` ``(E, N)``
            int64 (the fixed EV levels) and ``("agents", "action", "power")`` ``(E, N, 2)``
            float32 (battery and heat-pump power over their ratings, in ``[-1, 1]``).

        Raises:
            ValueError: if the plan relaxed the EV charging (made without ``ev_modes``), or
                ``t`` is out of range.
        """
        if self.ev_modes is None:
            raise ValueError(
                "PerfectForesightPlan.actions expected a plan made with ev_modes (a runnable "
                "plan), got one with relaxed EV charging (a bound only)"
            )
        T = self.battery_kw.shape[1]
        if not 0 <= t < T:
            raise ValueError(f"PerfectForesightPlan.actions expected t in [0, {T}), got {t}")
        power = torch.stack(
            (self.battery_kw[:, t] / self.battery_pmax, self.hvac_kw[:, t] / self.hvac_pmax), -1
        )
        E, N = self.ev_modes.shape[0], self.ev_modes.shape[-1]
        action = TensorDict(
            {"mode": self.ev_modes[:, t], "power": power.clamp(-1.0, 1.0).float()},
            batch_size=(E, N),
        )
        return TensorDict({"agents": TensorDict({"action": action}, batch_size=(E, N))}, (E,))

    def rollout(self, env: EnvBase, tensordict: TensorDictBase) -> TensorDictBase:
        """Run the plan in ``env``, as ``env.rollout`` runs a policy.

        Args:
            env (EnvBase): the env the plan was made on (or a ``TransformedEnv`` of it), in
                the state the plan was made in.
            tensordict (TensorDictBase): ``(E,)`` the reset the plan was made on (what
                ``env.reset()`` returned just before :func:`perfect_foresight_plan`).

        Returns:
            TensorDictBase: ``(E, T)`` the steps (the observation, the plan's action and
            ``"next"``), stacked along time as ``env.rollout`` stacks them.

        Raises:
            ValueError: if the plan is not runnable (see :meth:`actions`) or ``tensordict``'s
                batch is not the plan's ``(E,)``.
        """
        E, T = self.battery_kw.shape[:2]
        if tuple(tensordict.batch_size) != (E,):
            raise ValueError(
                f"PerfectForesightPlan.rollout expected a tensordict of batch ({E},) (the "
                f"reset the plan was made on), got {tuple(tensordict.batch_size)}"
            )
        steps = []
        for t in range(T):
            step, tensordict = env.step_and_maybe_reset(tensordict.update(self.actions(t)))
            steps.append(step.clone())
        return torch.stack(steps, dim=1)


class _Program:
    """A sparse LP under construction: variable blocks, rows as (row, col, value) triplets;
    ``who`` names the caller in the error of a failed solve."""

    def __init__(self, who: str = _WHO) -> None:
        self.who = who
        self.n_vars = 0
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.cost: list[np.ndarray] = []
        self.eq: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.ub: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.b_eq: list[np.ndarray] = []
        self.b_ub: list[np.ndarray] = []
        self.n_eq = 0
        self.n_ub = 0

    def var(self, shape: tuple[int, ...], lo, hi, cost=0.0) -> np.ndarray:
        n = int(np.prod(shape))
        idx = np.arange(self.n_vars, self.n_vars + n).reshape(shape)
        self.n_vars += n
        self.lower.append(np.broadcast_to(np.asarray(lo, float), shape).reshape(-1))
        self.upper.append(np.broadcast_to(np.asarray(hi, float), shape).reshape(-1))
        self.cost.append(np.broadcast_to(np.asarray(cost, float), shape).reshape(-1))
        return idx

    def _rows(self, kind: str, terms, rhs) -> None:
        """Rows ``sum_k coef_k * x[idx_k] (= or <=) rhs``; each idx_k and coef broadcast to rhs."""
        rhs = np.asarray(rhs, float)
        count = self.n_eq if kind == "eq" else self.n_ub
        rows = count + np.arange(rhs.size).reshape(rhs.shape)
        store = self.eq if kind == "eq" else self.ub
        for idx, coef in terms:
            idx, coef = np.broadcast_arrays(idx, np.asarray(coef, float), rows)[:2]
            r = np.broadcast_to(rows, idx.shape)
            store.append((r.reshape(-1), idx.reshape(-1), coef.reshape(-1)))
        if kind == "eq":
            self.b_eq.append(rhs.reshape(-1))
            self.n_eq += rhs.size
        else:
            self.b_ub.append(rhs.reshape(-1))
            self.n_ub += rhs.size

    def equal(self, terms, rhs) -> None:
        self._rows("eq", terms, rhs)

    def at_most(self, terms, rhs) -> None:
        self._rows("ub", terms, rhs)

    def solve(self) -> np.ndarray:
        def matrix(store, n_rows):
            r, c, v = (np.concatenate(x) for x in zip(*store))
            return sparse.csr_array((v, (r, c)), shape=(n_rows, self.n_vars))

        bounds = np.stack((np.concatenate(self.lower), np.concatenate(self.upper)), -1)
        result = linprog(
            np.concatenate(self.cost),
            A_ub=matrix(self.ub, self.n_ub),
            b_ub=np.concatenate(self.b_ub),
            A_eq=matrix(self.eq, self.n_eq),
            b_eq=np.concatenate(self.b_eq),
            bounds=bounds,
            method="highs",
        )
        if result.status != 0:
            raise RuntimeError(f"{self.who}: HiGHS did not find the optimum: {result.message}")
        return result.x


def _check_args(
    env: object, peak_price: float, ev_modes, keep_battery_energy: bool
) -> CommunityEnergyEnv:
    base = _check_env(env, _WHO)
    if not (isinstance(peak_price, (int, float)) and np.isfinite(peak_price) and peak_price >= 0):
        raise ValueError(f"{_WHO} expected a finite peak_price >= 0, got {peak_price!r}")
    if not isinstance(keep_battery_energy, bool):
        raise TypeError(
            f"{_WHO} expected keep_battery_energy to be a bool, got "
            f"{type(keep_battery_energy).__name__}"
        )
    if bool((base._t != 0).any()):
        raise ValueError(
            f"{_WHO} plans whole episodes from their first step: expected every env at step "
            f"0 (call env.reset() first), got steps {base._t.tolist()}"
        )
    E, N, T = base.num_envs, base.n_prosumers, base.HORIZON
    if ev_modes is not None:
        if not isinstance(ev_modes, torch.Tensor) or ev_modes.shape != (E, T, N):
            raise ValueError(
                f"{_WHO} expected ev_modes of shape {(E, T, N)} (envs, steps, prosumers), got "
                f"{tuple(getattr(ev_modes, 'shape', ())) or type(ev_modes).__name__}"
            )
        if ev_modes.dtype.is_floating_point or ev_modes.dtype == torch.bool:
            raise TypeError(f"{_WHO} expected integer ev_modes, got dtype {ev_modes.dtype}")
        if ev_modes.numel() and (ev_modes.min() < 0 or ev_modes.max() >= base.N_MODES):
            raise ValueError(
                f"{_WHO} expected ev_modes in [0, {base.N_MODES - 1}] (off, slow, fast), got "
                f"values in [{int(ev_modes.min())}, {int(ev_modes.max())}]"
            )
    return base


def _fixed_ev_power(env: CommunityEnergyEnv, e: int, modes: np.ndarray) -> np.ndarray:
    """``(T, N)`` the EV power the env draws under the EV levels ``modes`` ``(T, N)``."""
    cpu = lambda x: x.detach().cpu()  # noqa: E731
    chargers, soc = cpu(env._chargers).double(), cpu(env._ev_soc[e]).double()
    arrival, departure = cpu(env._ev_arrival[e]), cpu(env._ev_departure[e])
    out = []
    for t in range(modes.shape[0]):
        soc, p = ev_step(
            soc,
            chargers[torch.as_tensor(modes[t])],
            env.DT_H,
            capacity=cpu(env._ev_cap).double(),
            eta=_EV_ETA,
            target_soc=cpu(env._ev_target[e]).double(),
            plugged=(t >= arrival) & (t < departure),
        )
        out.append(p)
    return torch.stack(out).numpy()


def _dynamics(lp: _Program, state, inputs, *, decay, forcing, initial) -> None:
    """``state[t] = decay[t] * state[t - 1] + sum_k coef_k[t] * input_k[t] + forcing[t]``.

    ``state`` and the inputs are index arrays ``(T, ...)`` with time first; ``decay``, the
    coefficients and ``forcing`` broadcast to their shape (per step, e.g. for steps of
    different lengths, or constant); ``state[-1]`` is ``initial`` ``(...)``.
    """
    full = lambda x: np.broadcast_to(np.asarray(x, float), state.shape)  # noqa: E731
    decay = full(decay)
    terms = [(x, -full(cf)) for x, cf in inputs]
    lp.equal(
        [(state[:1], 1.0), *((x[:1], cf[:1]) for x, cf in terms)],
        forcing[:1] + decay[:1] * initial,
    )
    lp.equal(
        [(state[1:], 1.0), (state[:-1], -decay[1:]), *((x[1:], cf[1:]) for x, cf in terms)],
        forcing[1:],
    )


def _plan_episode(
    env: CommunityEnergyEnv, e: int, peak_price: float, modes, keep_battery_energy: bool
) -> dict:
    T, N, dt = env.HORIZON, env.n_prosumers, env.DT_H
    f64 = lambda x: x.detach().double().cpu().numpy()  # noqa: E731
    pv, load, gains = (f64(x) for x in env._series[e, :T].unbind(-1))  # (T, N)
    buy, t_out = (f64(x) for x in env._series_env[e, :T].unbind(-1))  # (T,)
    sell = np.minimum(buy, env.sell_price)
    bat_cap, bat_pmax = f64(env._bat_cap), f64(env._bat_pmax)  # (N,)
    ev_cap, hvac_pmax = f64(env._ev_cap), f64(env._hvac_pmax)
    r, c = f64(env._hvac_r), f64(env._hvac_c)
    steps = np.arange(T)[:, None]
    arrival = env._ev_arrival[e].cpu().numpy()
    departure = env._ev_departure[e].cpu().numpy()  # (N,) the car leaves after step departure - 1
    plugged = (steps >= arrival) & (steps < departure)  # (T, N)
    ev_target = f64(env._ev_target[e]) * ev_cap  # (N,) kWh
    ev_start = f64(env._ev_soc[e]) * ev_cap
    lo, hi = env.comfort_band
    zeros = np.zeros((T, N))

    lp = _Program()
    charge = lp.var((T, N), 0.0, bat_pmax)  # battery grid-side kW, charging
    discharge = lp.var((T, N), 0.0, bat_pmax)  # ... and discharging
    stored = lp.var((T, N), 0.0, bat_cap)  # kWh at the end of each step
    if modes is None:  # relaxed: any power up to the fast charger while plugged in
        ev = lp.var((T, N), 0.0, np.where(plugged, float(env._chargers.max()), 0.0))
    else:
        fixed = _fixed_ev_power(env, e, modes)
        ev = lp.var((T, N), fixed, fixed)
    ev_energy = lp.var((T, N), 0.0, np.maximum(ev_target, ev_start))  # never past the target
    heat = lp.var((T, N), 0.0, hvac_pmax)  # heat-pump electric kW, heating
    cool = lp.var((T, N), 0.0, hvac_pmax)  # ... and cooling
    temp = lp.var((T, N), -np.inf, np.inf)  # indoor deg C at the end of each step
    discomfort = lp.var((T, N), 0.0, np.inf, env.comfort_weight * dt)  # deg C outside the band
    unmet = lp.var((N,), 0.0, np.inf, env.ev_weight)  # kWh missing at departure
    imp = lp.var((T,), 0.0, np.inf, buy)  # kWh the community buys from the grid
    exp = lp.var((T,), 0.0, np.inf, -sell)  # kWh it sells
    over = lp.var((T,), 0.0, np.inf, env.overload_weight * dt)  # kW above the rating
    peak = lp.var((1,), 0.0, np.inf, peak_price)  # the day's peak net import, kW

    eta = _BATTERY_ETA
    bat_start = f64(env._bat_soc[e]) * bat_cap
    _dynamics(
        lp,
        stored,
        [(charge, eta * dt), (discharge, -dt / eta)],
        decay=1.0,
        forcing=zeros,
        initial=bat_start,
    )
    if keep_battery_energy:  # stored[T - 1] >= the energy at the start of the day
        lp.at_most([(stored[-1], -1.0)], -bat_start)
    _dynamics(lp, ev_energy, [(ev, _EV_ETA * dt)], decay=1.0, forcing=zeros, initial=ev_start)
    # the unmet energy of the car leaving at the end of step departure - 1
    leave = ev_energy[np.clip(departure - 1, 0, T - 1), np.arange(N)]
    lp.at_most([(leave, -1.0), (unmet, -1.0)], -ev_target)
    # 1R1C dwelling, exact for a held input: temp[t] = a temp[t-1] + (1 - a) steady[t]
    a = np.exp(-dt / (r * c))
    gain = (1.0 - a) * r * _HVAC_COP
    _dynamics(
        lp,
        temp,
        [(heat, gain), (cool, -gain)],
        decay=a,
        forcing=(1.0 - a) * (t_out[:, None] + r * gains),
        initial=f64(env._temp[e]),
    )
    lp.at_most([(temp, -1.0), (discomfort, -1.0)], np.full((T, N), -lo))
    lp.at_most([(temp, 1.0), (discomfort, -1.0)], np.full((T, N), hi))
    # the community's net exchange (kWh): imp - exp = dt * sum_n (load - pv + devices)
    devices = [(charge, -dt), (discharge, dt), (ev, -dt), (heat, -dt), (cool, -dt)]
    lp.equal(
        [(imp[:, None], 1.0), (exp[:, None], -1.0), *devices],
        dt * (load - pv).sum(-1, keepdims=True),
    )
    # over >= |exchange| - rating (kW), peak >= exchange
    rating = np.full(T, env.transformer_rating_kw)
    lp.at_most([(imp, 1.0 / dt), (exp, -1.0 / dt), (over, -1.0)], rating)
    lp.at_most([(imp, -1.0 / dt), (exp, 1.0 / dt), (over, -1.0)], rating)
    lp.at_most([(imp, 1.0 / dt), (exp, -1.0 / dt), (np.repeat(peak, T), -1.0)], np.zeros(T))

    x = lp.solve()
    exchange = (x[imp] - x[exp]) / dt
    return {
        "cost": float(buy @ x[imp] - sell @ x[exp]),
        "peak_kw": float(max(exchange.max(), 0.0)),
        "overload_kwh": float(
            np.clip(np.abs(exchange) - env.transformer_rating_kw, 0, None).sum() * dt
        ),
        "comfort": float(x[discomfort].sum() * dt),
        "ev_unmet_kwh": float(x[unmet].sum()),
        "exchange_kw": exchange,
        "battery_kw": x[charge] - x[discharge],
        "ev_kw": x[ev],
        "battery_kwh": x[stored],
        "hvac_kw": x[heat] - x[cool],
    }


def perfect_foresight_plan(
    env: CommunityEnergyEnv,
    *,
    peak_price: float = 0.0,
    ev_modes: torch.Tensor | None = None,
    keep_battery_energy: bool = False,
) -> PerfectForesightPlan:
    """Plan every episode the env has just drawn with the whole day known (see the module).

    Call it right after ``env.reset()`` (every env at step 0). The env is only read. To plan
    the episodes a policy is evaluated on, seed the env as the evaluation does, reset it, and
    plan: ``env.set_seed(s); env.reset(); perfect_foresight_plan(env)``.

    Args:
        env (CommunityEnergyEnv): the env, or a ``TransformedEnv`` of one (its base env is
            planned).

    Keyword Args:
        peak_price (float): price per kW of each day's peak net import, added to the env's
            objective (``>= 0``); sweep it for the cost / peak frontier. Defaults to ``0.0``
            (the env's own objective: the plan's return is the best achievable).
        ev_modes (torch.Tensor | None): ``(E, T, N)`` int64 EV levels (0 off, 1 slow, 2 fast)
            to hold the EV charging to, e.g. ``rollout["agents", "action", "mode"]`` of a
            policy's rollout on the same episodes; the plan is then runnable
            (:meth:`PerfectForesightPlan.actions`). ``None`` relaxes the charger to any power
            up to the fast level: the plan is a bound. Defaults to ``None``.
        keep_battery_energy (bool): every battery ends the day with at least the energy it
            started with, so the plan gains nothing from emptying the batteries before an
            episode end that a bootstrapping critic looks past (see the module). Defaults to
            ``False`` (the episode's own objective).

    Returns:
        PerfectForesightPlan: the optimal plan and its KPIs per episode.

    Raises:
        TypeError: if ``env`` is not a community env, ``ev_modes`` is not integer, or
            ``keep_battery_energy`` is not a bool.
        ValueError: if an env is not at its first step, ``peak_price`` is negative or not
            finite, or ``ev_modes`` has the wrong shape or levels out of range.
        RuntimeError: if HiGHS does not reach the optimum.

    Examples:
        >>> from mtmarl.envs.community import RuleBasedSelfConsumptionPolicy
        >>> env = CommunityEnergyEnv(n_prosumers=4, num_envs=2, seed=0)
        >>> _ = env.set_seed(1)
        >>> _ = env.reset()
        >>> plan = perfect_foresight_plan(env)
        >>> _ = env.set_seed(1)  # the same episodes again
        >>> rules = env.rollout(96, RuleBasedSelfConsumptionPolicy(env))
        >>> rules_return = rules["next", "reward"].sum((1, 2))
        >>> bool((plan.episode_return >= rules_return.double() - 1e-6).all())  # a bound
        True
    """
    base = _check_args(env, peak_price, ev_modes, keep_battery_energy)
    modes = None if ev_modes is None else ev_modes.detach().cpu().numpy()
    plans = [
        _plan_episode(
            base, e, float(peak_price), None if modes is None else modes[e], keep_battery_energy
        )
        for e in range(base.num_envs)
    ]
    stack = lambda k: torch.as_tensor(np.stack([p[k] for p in plans]))  # noqa: E731
    cost, overload = stack("cost"), stack("overload_kwh")
    comfort, unmet, peak = stack("comfort"), stack("ev_unmet_kwh"), stack("peak_kw")
    penalty = (
        cost
        + base.overload_weight * overload
        + base.comfort_weight * comfort
        + base.ev_weight * unmet
    )
    return PerfectForesightPlan(
        objective=penalty + peak_price * peak,
        episode_return=-base.reward_scale * penalty,
        cost=cost,
        peak_kw=peak,
        overload_kwh=overload,
        comfort=comfort,
        ev_unmet_kwh=unmet,
        exchange_kw=stack("exchange_kw"),
        battery_kw=stack("battery_kw"),
        ev_kw=stack("ev_kw"),
        battery_kwh=stack("battery_kwh"),
        hvac_kw=stack("hvac_kw"),
        ev_modes=None if ev_modes is None else ev_modes.detach().cpu().long(),
        battery_pmax=base._bat_pmax.detach().double().cpu(),
        hvac_pmax=base._hvac_pmax.detach().double().cpu(),
    )
