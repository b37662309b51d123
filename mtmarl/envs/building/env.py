"""Building energy management: 7 agents on 3 timescales track a power reference (seed 004, V-B).

A five-zone small office (:class:`~mtmarl.envs.building.thermal_model.FiveZoneROM`) is
cooled by a variable-air-volume system and backed by a battery
(:class:`~mtmarl.envs.building.storage.EnergyStorage`). Seven agents share one team
reward: the building's total power must track a demand-response reference while the
zones stay in their comfort band.

Shape glossary: ``E`` = ``num_envs`` (the env's ``batch_size`` is ``(E,)``), ``N = 7``
agents, ``F = 8`` observation features, ``S = 25`` state features.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import Compose, StepCounter, TransformedEnv

from mtmarl._checks import bounded_int
from mtmarl.envs._batched import (
    BatchedTorchEnv,
    action_entry,
    check_action_layout,
    non_finite_summary,
)
from mtmarl.envs.building.exogenous import building_exogenous
from mtmarl.envs.building.storage import EnergyStorage
from mtmarl.envs.building.thermal_model import (
    DISCHARGE_TEMP_BOUNDS,
    MAX_TOTAL_FLOW,
    ZONE_FLOW_BOUNDS,
    FiveZoneROM,
    chiller_power,
    fan_power,
    project_total_flow,
)
from mtmarl.envs.weather import TMY3_STATIONS, load_tmy3, lookup_rows
from mtmarl.transforms import ActionFrequencyMask, PhaseEncoding, multi_timescale_period

__all__ = ["BuildingEnv", "make_building_env"]

_WHO = "BuildingEnv"
_ACTION_KEY = ("agents", "action")
_MINUTES_PER_DAY = 1440
_DAYS_PER_YEAR = 365
# feature scaling of observations and state: (T - 25) / 5, (T_oa - 25) / 10, P / 50
_TEMP_CENTER, _TEMP_SCALE = 25.0, 5.0
_OA_SCALE = 10.0
_POWER_SCALE = 50.0
_SOLAR_SCALE = 5.0


@functools.lru_cache(maxsize=4)
def _exogenous_table(station: str) -> torch.Tensor:
    """Per-minute exogenous table of a station on CPU (built once per process; read-only)."""
    return building_exogenous(load_tmy3(station))


def _check_int(value: object, name: str, *, low: int, high: int | None = None) -> int:
    return bounded_int(value, name, low=low, high=high, who=_WHO)


def _check_float(value: object, name: str, *, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{_WHO} expected {name} to be a finite float, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{_WHO} expected {name} >= {low}, got {value}")
    return float(value)


def _check_range(
    value: object, name: str, *, low: float, high: float, strict: bool = False
) -> tuple[float, float]:
    ok = (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not ok:
        raise TypeError(f"{_WHO} expected {name} to be a pair (low, high), got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not (low <= lo <= hi <= high) or (strict and lo == hi):
        rel = "<" if strict else "<="
        raise ValueError(
            f"{_WHO} expected {name} = (lo, hi) with {low} <= lo {rel} hi <= {high}, got {value!r}"
        )
    return lo, hi


class BuildingEnv(BatchedTorchEnv):
    r"""Batched, pure-torch five-zone building with HVAC and storage agents (seed 004, V-B).

    **Agents** (one continuous action each, ``("agents", "action")`` in ``[-1, 1]``,
    mapped linearly to physical units inside the env; finite values outside ``[-1, 1]``
    are clipped, NaN and inf are refused):

    * agents 0-4, *zone agents*: supply-air mass flow of zone ``z``,
      ``a = -1 .. 1`` -> ``0.22 .. 2.2`` kg/s (zones 1-4), ``0.32 .. 3.2`` kg/s (zone 5);
      act every 5 min. If the flows sum to more than ``10`` kg/s they are projected by
      :func:`~mtmarl.envs.building.thermal_model.project_total_flow` (every zone keeps
      the same fraction of its flow above minimum).
    * agent 5, *chiller agent*: discharge-air temperature ``a = -1 .. 1`` ->
      ``10 .. 16`` deg C; acts every 5 min.
    * agent 6, *storage agent*: battery power ``a * 15`` kW (``> 0`` charging); acts
      every minute. The command is clipped so that the stored energy stays in
      ``[3, 50]`` kWh (:class:`~mtmarl.envs.building.storage.EnergyStorage`).

    The timescales are not enforced here: :func:`make_building_env` composes
    :class:`~mtmarl.transforms.ActionFrequencyMask` ``(5, 5, 5, 5, 5, 5, 1)`` in
    ``"hold"`` mode (setpoint semantics).

    **Step** (1 min): zone temperatures advance by the ROM with the exogenous inputs of
    the current minute; the total power is

    .. math::

        P = \underbrace{0.0076\,m^3 + 4.8865}_{\text{fan}}
          + \underbrace{\max(0, m (T_{oa} - T_{dis})) / \mathrm{COP}}_{\text{chiller}}
          + P_{ES}, \qquad m = \textstyle\sum_z m_z,

    and the team reward is

    .. math::

        r = -w_P\,|P - P_{ref}| - w_T \sum_z \big(\max(0, T_{lo} - T_z') + \max(0, T_z' - T_{hi})\big)

    with ``w_P = tracking_weight`` (1/kW), ``w_T = comfort_weight`` (1/K) and ``T'`` the
    temperatures after the step. (The paper's exact weights were lost in extraction.)

    **Reference power** (piecewise constant, changes every ``reference_interval = 3``
    min, 15-min periodic): ``P_ref(t) = P_base + A * pattern[(t // 3) % 5]`` with the
    default pattern ``(0, 0.5, 1, -0.5, -1)``: a ramp up, a peak and a symmetric
    trough whose mean is zero, like a regulation signal that is energy-neutral over
    15 min. ``P_base`` is the middle of the HVAC power range at the episode's first
    minute (between all-minimum flows at 16 deg C and 10 kg/s at 10 deg C, at that
    outdoor temperature) and ``A = reference_depth * (half the HVAC range + 15 kW)``
    (``reference_depth = 0.8``): the peaks need the battery saturated *and* the HVAC
    moved, so the agents must coordinate. Both are drawn per episode and shown in the
    state.

    **Time.** Episodes start at a random minute (day of year uniform in
    ``start_days``, minute of day uniform in ``start_hours``) and last ``horizon = 30``
    steps (truncated; the env counts steps itself, with or without a
    :class:`~torchrl.envs.StepCounter`). The reference and the agents' decision steps
    both count from the *episode start* (``t = 0, 1, ...``, what ``StepCounter``'s
    ``"step_count"`` holds), so the joint pattern is periodic with
    ``L = LCM(5, 5, 1, 15) = 15`` in episode time whatever the start minute; the
    time of day only drives the (slow) weather, and is in the state as ``sin``/``cos``.

    **Exogenous inputs** from a real TMY3 year shipped with pvlib (default Greensboro,
    NC; :mod:`~mtmarl.envs.building.exogenous`): outdoor temperature, per-zone solar
    gains from pvlib's plane-of-array irradiance, office internal gains; interpolated
    to 1 min and held as a ``(525600, 11)`` tensor, indexed per step with
    ``index_select``.

    Keys (``E = num_envs``, ``N = 7``):

    * in: ``("agents", "action")`` -- ``(E, N, 1)`` float32 in ``[-1, 1]`` (finite values
      outside are clipped). A missing entry raises ``KeyError``, a wrong shape
      ``ValueError``, a dtype other than float32 ``TypeError`` (nothing is cast: float64
      actions would turn the state float64) and, with ``validate_actions``, a NaN or inf
      ``ValueError``; all name the key and are raised before the state changes.
    * out: ``("agents", "observation")`` -- ``(E, N, 8)`` float32, per agent
      ``[own state, T_oa, P_ref, P_last, own last action, is_zone, is_chiller,
      is_storage]`` with own state = own zone temperature (zone agents), mean zone
      temperature (chiller), state of charge (storage); scalings: temperatures
      ``(T - 25) / 5``, outdoor ``(T_oa - 25) / 10``, powers ``P / 50`` kW, state of
      charge ``2 soc - 1`` with ``soc = (E - 3) / 47``; ``P_ref`` is the reference for
      the coming step, ``P_last`` the total power of the last step; last actions are
      the *executed* normalised actions (after the flow projection and the storage
      clipping); after a reset they are ``0`` (the hold transform's initial previous
      action) and ``P_last`` is the power of that action.
    * ``"state"`` -- ``(E, 25)`` float32: zone temperatures (5), ``T_oa``, solar gains
      / 5 kW (5), state of charge, ``P_ref``, ``P_last``, last actions (7),
      ``sin``/``cos`` of the time of day, ``P_base``, ``A`` (same scalings).
    * ``("building", ...)`` -- physical values for analysis and rule-based control,
      batch ``(E,)``: ``"zone_temperature"`` ``(E, 5)`` deg C,
      ``"outdoor_temperature"`` ``(E, 1)`` deg C, ``"storage_energy"`` ``(E, 1)`` kWh,
      ``"reference_power"`` ``(E, 1)`` kW (coming step), ``"power"`` ``(E, 1)`` kW
      (last step), ``"minute_of_year"`` ``(E, 1)`` int64.
    * ``"reward"`` ``(E, 1)`` float32; ``"done"``, ``"terminated"`` (always ``False``),
      ``"truncated"`` ``(E, 1)`` bool.

    Partial resets (``"_reset"`` ``(E, 1)``) and partial steps (``"_step"``) touch only
    the flagged environments.

    Keyword Args:
        num_envs (int): number of environments stepped together. Defaults to ``1``.
        device (torch.device | str | None): device. Defaults to ``None`` (CPU).
        seed (int | None): seed of the env's generator (start times, initial
            temperatures and charge); ``None`` draws one from torch's global generator.
            Defaults to ``None``.
        horizon (int): episode length, minutes. Defaults to ``30``.
        station (str): TMY3 station, a key of :data:`~mtmarl.envs.weather.TMY3_STATIONS`.
            Defaults to ``"greensboro"``.
        start_days (tuple[int, int]): episodes start on a day of year in
            ``[lo, hi)`` (0-based). Defaults to ``(151, 243)``: June 1 - Aug 31, the
            cooling season.
        start_hours (tuple[float, float]): and at a time of day in ``[lo, hi)`` hours.
            Defaults to ``(0.0, 24.0)``.
        comfort_band (tuple[float, float]): ``(T_lo, T_hi)`` deg C. Defaults to
            ``(22.0, 28.0)`` (PowerGridworld's band).
        initial_temperature (tuple[float, float]): zone temperatures at reset are
            uniform in this range, deg C. Defaults to ``(24.0, 27.0)``.
        initial_soc (tuple[float, float]): state of charge at reset is uniform in this
            range (fractions of the usable energy). Defaults to ``(0.25, 0.75)``.
        tracking_weight (float): ``w_P``, per kW of tracking error. Defaults to ``0.1``.
        comfort_weight (float): ``w_T``, per K of comfort violation summed over zones.
            Defaults to ``1.0``.
        reference_pattern (Sequence[float]): reference levels in units of ``A``, one
            per ``reference_interval``. Defaults to ``(0.0, 0.5, 1.0, -0.5, -1.0)``.
        reference_interval (int): minutes between reference changes. Defaults to ``3``.
        reference_depth (float): ``A`` as a fraction of the half-range reachable by
            HVAC and battery. Defaults to ``0.8``.
        chiller_cop (float): chiller coefficient of performance. Defaults to ``3.0``.
        storage (EnergyStorage | None): battery parameters. Defaults to ``None``
            (``EnergyStorage()``: 3-50 kWh, 0.95 / 0.9, 15 kW).
        action_periods (Sequence[int]): every how many minutes each agent acts; stored
            for :func:`make_building_env`, not enforced by the env. Defaults to
            ``(5, 5, 5, 5, 5, 5, 1)``.
        validate_actions (bool): check every step that the actions are finite, raising
            ``ValueError`` (one host synchronisation per step; free on CPU, a stall on
            CUDA); finite actions outside ``[-1, 1]`` are always clipped. ``False`` keeps
            the step loop free of host syncs; a NaN or inf action then enters the zone
            temperatures, the storage and the reward. The key's presence, the shape and the
            dtype (float32) are always checked. Defaults to ``True``.
        action_levels (int | None): ``K >= 2``: discrete actions for algorithms that need
            them (COMA). The action becomes an index ``("agents", "action")`` ``(E, 7)`` int64,
            ``Categorical(K)``, meaning the normalised action ``-1 + 2 k / (K - 1)`` (``K``
            evenly spaced levels, both bounds included); with ``validate_actions`` an index
            out of ``[0, K)`` is refused. ``None``: continuous ``(E, 7, 1)`` actions.
            Defaults to ``None``.

    Examples:
        >>> env = BuildingEnv(num_envs=4, seed=0)
        >>> td = env.reset()
        >>> td["agents", "observation"].shape, td["state"].shape
        (torch.Size([4, 7, 8]), torch.Size([4, 25]))
        >>> td["agents", "action"] = torch.zeros(4, 7, 1)
        >>> td = env.step(td)["next"]
        >>> td["reward"].shape, bool((td["reward"] <= 0).all())
        (torch.Size([4, 1]), True)
    """

    N_AGENTS: int = 7
    """Agents: 5 zones, the chiller, the battery."""
    N_ZONES: int = 5
    """Zones of the building."""
    CHILLER: int = 5
    """Index of the chiller agent."""
    STORAGE: int = 6
    """Index of the storage agent."""
    OBS_DIM: int = 8
    """Features per agent observation."""
    STATE_DIM: int = 25
    """Features of the global state."""

    batch_locked = True

    def __init__(
        self,
        *,
        num_envs: int = 1,
        device: torch.device | str | None = None,
        seed: int | None = None,
        horizon: int = 30,
        station: str = "greensboro",
        start_days: Sequence[int] = (151, 243),
        start_hours: Sequence[float] = (0.0, 24.0),
        comfort_band: Sequence[float] = (22.0, 28.0),
        initial_temperature: Sequence[float] = (24.0, 27.0),
        initial_soc: Sequence[float] = (0.25, 0.75),
        tracking_weight: float = 0.1,
        comfort_weight: float = 1.0,
        reference_pattern: Sequence[float] = (0.0, 0.5, 1.0, -0.5, -1.0),
        reference_interval: int = 3,
        reference_depth: float = 0.8,
        chiller_cop: float = 3.0,
        storage: EnergyStorage | None = None,
        action_periods: Sequence[int] = (5, 5, 5, 5, 5, 5, 1),
        validate_actions: bool = True,
        action_levels: int | None = None,
    ) -> None:
        num_envs = _check_int(num_envs, "num_envs", low=1)
        if action_levels is not None:
            action_levels = _check_int(action_levels, "action_levels", low=2)
        horizon = _check_int(horizon, "horizon", low=1)
        if station not in TMY3_STATIONS:
            raise ValueError(f"{_WHO} expected station in {sorted(TMY3_STATIONS)}, got {station!r}")
        days = _check_range(start_days, "start_days", low=0, high=_DAYS_PER_YEAR, strict=True)
        if days != tuple(int(d) for d in days):
            raise ValueError(f"{_WHO} expected start_days to be two ints, got {start_days!r}")
        hours = _check_range(start_hours, "start_hours", low=0.0, high=24.0, strict=True)
        comfort = _check_range(comfort_band, "comfort_band", low=-50.0, high=60.0)
        init_temp = _check_range(initial_temperature, "initial_temperature", low=-50.0, high=60.0)
        init_soc = _check_range(initial_soc, "initial_soc", low=0.0, high=1.0)
        tracking_weight = _check_float(tracking_weight, "tracking_weight", low=0.0)
        comfort_weight = _check_float(comfort_weight, "comfort_weight", low=0.0)
        if isinstance(reference_pattern, (str, bytes)) or not isinstance(
            reference_pattern, Sequence
        ):
            raise TypeError(
                f"{_WHO} expected reference_pattern to be a sequence of floats, got "
                f"{reference_pattern!r}"
            )
        pattern = tuple(
            _check_float(v, f"reference_pattern[{i}]") for i, v in enumerate(reference_pattern)
        )
        if not pattern:
            raise ValueError(f"{_WHO} expected a non-empty reference_pattern")
        reference_interval = _check_int(reference_interval, "reference_interval", low=1)
        reference_depth = _check_float(reference_depth, "reference_depth", low=0.0)
        chiller_cop = _check_float(chiller_cop, "chiller_cop", low=1e-6)
        if storage is None:
            storage = EnergyStorage()
        elif not isinstance(storage, EnergyStorage):
            raise TypeError(
                f"{_WHO} expected storage to be an EnergyStorage or None, got "
                f"{type(storage).__name__}"
            )
        if isinstance(action_periods, (str, bytes)) or not isinstance(action_periods, Sequence):
            raise TypeError(f"{_WHO} expected action_periods to be 7 ints, got {action_periods!r}")
        periods = tuple(
            _check_int(p, f"action_periods[{i}]", low=1) for i, p in enumerate(action_periods)
        )
        if len(periods) != self.N_AGENTS:
            raise ValueError(
                f"{_WHO} expected {self.N_AGENTS} action_periods (5 zones, chiller, storage), "
                f"got {len(periods)}"
            )
        if not isinstance(validate_actions, bool):
            raise TypeError(
                f"{_WHO} expected validate_actions to be a bool, got "
                f"{type(validate_actions).__name__} {validate_actions!r}"
            )
        super().__init__(num_envs=num_envs, device=device, seed=seed, who=_WHO)
        device = self.device
        self.horizon = horizon
        self.station = station
        self.start_days = (int(days[0]), int(days[1]))
        self.start_hours = hours
        self.comfort_band = comfort
        self.initial_temperature = init_temp
        self.initial_soc = init_soc
        self.tracking_weight = tracking_weight
        self.comfort_weight = comfort_weight
        self.reference_pattern = pattern
        self.reference_interval = reference_interval
        self.reference_depth = reference_depth
        self.chiller_cop = chiller_cop
        self.storage = storage
        self.action_periods = periods
        self.validate_actions = validate_actions
        self.action_levels = action_levels
        self.dt_hours = 1.0 / 60.0

        self.rom = FiveZoneROM(step_minutes=1.0).to(device)
        f32 = {"dtype": torch.float32, "device": device}
        self._exo = _exogenous_table(station).to(device)  # (M, 11), shared, read-only
        bounds = torch.tensor(ZONE_FLOW_BOUNDS, **f32)
        self._flow_low = bounds[:, 0].contiguous()
        self._flow_half = ((bounds[:, 1] - bounds[:, 0]) / 2).contiguous()
        t_lo, t_hi = DISCHARGE_TEMP_BOUNDS
        self._tdis_mid, self._tdis_half = (t_lo + t_hi) / 2, (t_hi - t_lo) / 2
        # reference: level of every minute of one cycle
        self._ref_cycle = torch.tensor(
            [v for v in pattern for _ in range(reference_interval)], **f32
        )
        # HVAC power range at a given outdoor temperature (for P_base and A)
        self._flow_min_total = float(bounds[:, 0].sum())
        self._flow_max_total = min(float(bounds[:, 1].sum()), MAX_TOTAL_FLOW)
        mid_flow = project_total_flow(self._flow_low + self._flow_half, self._flow_low)
        self._flow_mid_total = float(mid_flow.sum())
        # one-hot agent types (zone, chiller, storage), (N, 3)
        types = torch.tensor([0, 0, 0, 0, 0, 1, 2], device=device)
        self._agent_type = torch.nn.functional.one_hot(types, 3).to(torch.float32)
        self._false = torch.zeros((num_envs, 1), dtype=torch.bool, device=device)

        # state
        self._temp = torch.full((num_envs, 5), 25.0, **f32)
        self._energy = torch.full((num_envs,), storage.min_energy, **f32)
        self._t = torch.zeros((num_envs,), dtype=torch.int64, device=device)
        self._minute0 = torch.zeros((num_envs,), dtype=torch.int64, device=device)
        self._exo_now = torch.zeros((num_envs, 11), **f32)
        self._base = torch.zeros((num_envs,), **f32)
        self._amp = torch.zeros((num_envs,), **f32)
        self._last_action = torch.zeros((num_envs, self.N_AGENTS), **f32)
        self._last_power = torch.zeros((num_envs,), **f32)

        self._generator = torch.Generator(device=device)
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        self.set_seed(seed)
        self._make_specs()

    # ---------------------------------------------------------------- helpers
    @property
    def reference_period(self) -> int:
        """Period of the reference signal, minutes (``reference_interval * len(pattern)``)."""
        return self.reference_interval * len(self.reference_pattern)

    @property
    def period(self) -> int:
        """``L = LCM(action periods, reference period)``, 15 by default."""
        return multi_timescale_period(self.action_periods, self.reference_period)

    def action_to_physical(
        self, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Maps normalised actions to physical set-points (before the flow projection).

        Args:
            action (torch.Tensor): ``(*B, 7)`` or ``(*B, 7, 1)`` in ``[-1, 1]``
                (clamped).

        Returns:
            tuple[torch.Tensor, torch.Tensor, torch.Tensor]: zone mass flows ``(*B, 5)``
            kg/s, discharge temperature ``(*B,)`` deg C, battery command ``(*B,)`` kW.

        Examples:
            >>> env = BuildingEnv(seed=0)
            >>> flow, tdis, p = env.action_to_physical(-torch.ones(7))
            >>> [round(f, 2) for f in flow.tolist()], float(tdis), float(p)
            ([0.22, 0.22, 0.22, 0.22, 0.32], 10.0, -15.0)
        """
        if action.shape[-1] == 1 and action.ndim >= 2 and action.shape[-2] == self.N_AGENTS:
            action = action.squeeze(-1)
        a = action.clamp(-1.0, 1.0)
        flow = self._flow_low + (a[..., :5] + 1.0) * self._flow_half
        tdis = self._tdis_mid + self._tdis_half * a[..., 5]
        return flow, tdis, self.storage.max_power * a[..., 6]

    def _hvac_range(self, outdoor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(*B,) lowest / highest HVAC power (kW) at an outdoor temperature."""
        t_lo, t_hi = DISCHARGE_TEMP_BOUNDS
        m_lo = torch.full_like(outdoor, self._flow_min_total)
        m_hi = torch.full_like(outdoor, self._flow_max_total)
        low = fan_power(m_lo) + chiller_power(
            m_lo, outdoor, outdoor.new_tensor(t_hi), cop=self.chiller_cop
        )
        high = fan_power(m_hi) + chiller_power(
            m_hi, outdoor, outdoor.new_tensor(t_lo), cop=self.chiller_cop
        )
        return low, high

    def _reference(self, t: torch.Tensor) -> torch.Tensor:
        level = self._ref_cycle.index_select(0, torch.remainder(t, self._ref_cycle.shape[0]))
        return self._base + self._amp * level

    # -------------------------------------------------------------------- specs
    def _make_specs(self) -> None:
        E, N, device = self.num_envs, self.N_AGENTS, self.device
        self.observation_spec = Composite(
            agents=Composite(
                observation=Unbounded(shape=(E, N, self.OBS_DIM), device=device),
                shape=(E, N),
                device=device,
            ),
            state=Unbounded(shape=(E, self.STATE_DIM), device=device),
            building=Composite(
                zone_temperature=Unbounded(shape=(E, 5), device=device),
                outdoor_temperature=Unbounded(shape=(E, 1), device=device),
                storage_energy=Bounded(
                    low=self.storage.min_energy,
                    high=self.storage.max_energy,
                    shape=(E, 1),
                    device=device,
                ),
                reference_power=Unbounded(shape=(E, 1), device=device),
                power=Unbounded(shape=(E, 1), device=device),
                minute_of_year=Bounded(
                    low=0,
                    high=_DAYS_PER_YEAR * _MINUTES_PER_DAY - 1,
                    shape=(E, 1),
                    dtype=torch.int64,
                    device=device,
                ),
                shape=(E,),
                device=device,
            ),
            shape=(E,),
            device=device,
        )
        action = (
            Bounded(low=-1.0, high=1.0, shape=(E, N, 1), dtype=torch.float32, device=device)
            if self.action_levels is None
            else Categorical(self.action_levels, shape=(E, N), dtype=torch.int64, device=device)
        )
        self.action_spec = Composite(
            agents=Composite(
                action=action,
                shape=(E, N),
                device=device,
            ),
            shape=(E,),
            device=device,
        )
        self._set_team_reward_and_done_specs(E, device)

    # ----------------------------------------------------------------- seeding
    #: the episode state: everything a step reads and writes (a snapshot of these restores
    #: the env, see :func:`~mtmarl.envs.building.plan_open_loop`)
    _STATE_ATTRS = (
        "_temp",
        "_energy",
        "_t",
        "_minute0",
        "_exo_now",
        "_base",
        "_amp",
        "_last_action",
        "_last_power",
    )
    _TENSOR_ATTRS = (
        "_exo",
        "_flow_low",
        "_flow_half",
        "_ref_cycle",
        "_agent_type",
        "_false",
        *_STATE_ATTRS,
    )

    def _moved_to(self, device: torch.device) -> None:
        self.rom = self.rom.to(device)

    # ---------------------------------------------------------------- dynamics
    def _observe(self) -> TensorDict:
        """Observation, state and physical values of the current state (no reward/done)."""
        E, device = self.num_envs, self.device
        temp, exo = self._temp, self._exo_now
        outdoor = exo[:, 0]
        ref = self._reference(self._t)
        storage = self.storage
        soc = (self._energy - storage.min_energy) / storage.capacity
        temp_s = (temp - _TEMP_CENTER) / _TEMP_SCALE
        oa_s = (outdoor - _TEMP_CENTER) / _OA_SCALE
        own = torch.cat(
            (temp_s, temp_s.mean(-1, keepdim=True), (2.0 * soc - 1.0).unsqueeze(-1)), dim=-1
        )
        common = torch.stack(
            (oa_s, ref / _POWER_SCALE, self._last_power / _POWER_SCALE), dim=-1
        )  # (E, 3)
        obs = torch.cat(
            (
                own.unsqueeze(-1),
                common.unsqueeze(1).expand(E, self.N_AGENTS, 3),
                self._last_action.unsqueeze(-1),
                self._agent_type.expand(E, self.N_AGENTS, 3),
            ),
            dim=-1,
        )
        minute = torch.remainder(self._minute0 + self._t, self._exo.shape[0])
        angle = torch.remainder(minute, _MINUTES_PER_DAY).to(torch.float32) * (
            2.0 * math.pi / _MINUTES_PER_DAY
        )
        state = torch.cat(
            (
                temp_s,
                oa_s.unsqueeze(-1),
                exo[:, 1:6] / _SOLAR_SCALE,
                own[:, 6:],
                common[:, 1:],
                self._last_action,
                torch.sin(angle).unsqueeze(-1),
                torch.cos(angle).unsqueeze(-1),
                (self._base / _POWER_SCALE).unsqueeze(-1),
                (self._amp / _POWER_SCALE).unsqueeze(-1),
            ),
            dim=-1,
        )
        building = TensorDict(
            {
                "zone_temperature": temp,
                "outdoor_temperature": outdoor.unsqueeze(-1),
                "storage_energy": self._energy.unsqueeze(-1),
                "reference_power": ref.unsqueeze(-1),
                "power": self._last_power.unsqueeze(-1),
                "minute_of_year": minute.unsqueeze(-1),
            },
            batch_size=(E,),
            device=device,
        )
        return TensorDict(
            {
                "agents": TensorDict({"observation": obs}, batch_size=(E, 7), device=device),
                "state": state,
                "building": building,
            },
            batch_size=(E,),
            device=device,
        )

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: object) -> TensorDictBase:
        E, gen, device = self.num_envs, self._generator, self.device
        u = torch.rand((E, 8), generator=gen, device=device)
        d0, d1 = self.start_days
        h0, h1 = self.start_hours
        day = (d0 + u[:, 0] * (d1 - d0)).floor().to(torch.int64).clamp_(d0, d1 - 1)
        lo_min, hi_min = h0 * 60.0, h1 * 60.0
        mod = (lo_min + u[:, 1] * (hi_min - lo_min)).floor().to(torch.int64)
        mod = mod.clamp_(math.ceil(lo_min), max(math.ceil(hi_min) - 1, math.ceil(lo_min)))
        minute0 = day * _MINUTES_PER_DAY + mod
        t_lo, t_hi = self.initial_temperature
        temp = t_lo + u[:, 2:7] * (t_hi - t_lo)
        s_lo, s_hi = self.initial_soc
        storage = self.storage
        energy = storage.min_energy + storage.capacity * (s_lo + u[:, 7] * (s_hi - s_lo))
        exo = lookup_rows(self._exo, minute0)
        outdoor = exo[:, 0]
        low, high = self._hvac_range(outdoor)
        base = (low + high) / 2
        amp = self.reference_depth * ((high - low) / 2 + storage.max_power)
        m_mid = torch.full_like(outdoor, self._flow_mid_total)
        power0 = fan_power(m_mid) + chiller_power(
            m_mid, outdoor, outdoor.new_tensor(self._tdis_mid), cop=self.chiller_cop
        )

        reset = tensordict.get("_reset", None) if tensordict is not None else None
        if reset is None:
            self._temp, self._energy, self._minute0 = temp, energy, minute0
            self._exo_now, self._base, self._amp, self._last_power = exo, base, amp, power0
            self._t = torch.zeros_like(self._t)
            self._last_action = torch.zeros_like(self._last_action)
        else:
            mask = reset.reshape(E)
            col = mask.unsqueeze(-1)
            self._temp = torch.where(col, temp, self._temp)
            self._energy = torch.where(mask, energy, self._energy)
            self._minute0 = torch.where(mask, minute0, self._minute0)
            self._exo_now = torch.where(col, exo, self._exo_now)
            self._base = torch.where(mask, base, self._base)
            self._amp = torch.where(mask, amp, self._amp)
            self._last_power = torch.where(mask, power0, self._last_power)
            self._t = self._t.masked_fill(mask, 0)
            self._last_action = self._last_action.masked_fill(col, 0.0)
        out = self._observe()
        out.set("done", self._false.clone())
        out.set("terminated", self._false.clone())
        out.set("truncated", self._false.clone())
        return out

    def _check_action(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The step's action, checked before anything is computed (so a refused step changes
        nothing): present, shape ``(E, 7, 1)``, dtype float32 and (``validate_actions``)
        finite."""
        action = action_entry(tensordict, _ACTION_KEY, who=_WHO)
        if self.action_levels is not None:
            return self._level_action(action)
        check_action_layout(
            action,
            _ACTION_KEY,
            shape=(*self.batch_size, self.N_AGENTS, 1),
            dtype=torch.float32,
            who=_WHO,
            dims="num_envs, n_agents, 1",
            meaning="normalised actions in [-1, 1]",
        )
        if self.validate_actions and not bool(torch.isfinite(action).all()):  # one host sync
            raise ValueError(
                f"{_WHO} expected {_ACTION_KEY!r} to hold finite actions in [-1, 1] (finite "
                f"values outside are clipped), got {non_finite_summary(action)}"
            )
        return action

    def _level_action(self, index: torch.Tensor) -> torch.Tensor:
        """``action_levels``: the index ``(E, 7)`` checked, as normalised actions ``(E, 7, 1)``."""
        k = self.action_levels
        check_action_layout(
            index,
            _ACTION_KEY,
            shape=(*self.batch_size, self.N_AGENTS),
            dtype=torch.int64,
            who=_WHO,
            dims="num_envs, n_agents",
            meaning=f"indices of {k} action levels",
        )
        if self.validate_actions and bool(((index < 0) | (index >= k)).any()):  # one host sync
            bad = sorted(set(index[(index < 0) | (index >= k)].tolist()))
            raise ValueError(
                f"{_WHO} expected {_ACTION_KEY!r} to hold level indices in [0, {k}), got {bad}"
            )
        return (-1.0 + 2.0 * index.to(torch.float32) / (k - 1)).unsqueeze(-1)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self._check_action(tensordict)
        E, storage = self.num_envs, self.storage
        flow, tdis, p_cmd = self.action_to_physical(action.reshape(E, self.N_AGENTS))
        flow = project_total_flow(flow, self._flow_low)
        exo = self._exo_now
        outdoor = exo[:, 0]
        temp = self.rom(
            self._temp,
            outdoor_temp=outdoor,
            q_solar=exo[:, 1:6],
            q_internal=exo[:, 6:11],
            mass_flow=flow,
            discharge_temp=tdis,
        )
        energy, p_es = storage.step(self._energy, p_cmd, dt_hours=self.dt_hours)
        total_flow = flow.sum(-1)
        power = (
            fan_power(total_flow)
            + chiller_power(total_flow, outdoor, tdis, cop=self.chiller_cop)
            + p_es
        )
        ref = self._reference(self._t)
        lo, hi = self.comfort_band
        violation = ((lo - temp).clamp_min(0.0) + (temp - hi).clamp_min(0.0)).sum(-1)
        reward = -self.tracking_weight * (power - ref).abs() - self.comfort_weight * violation
        executed = torch.cat(
            (
                (flow - self._flow_low) / self._flow_half - 1.0,
                ((tdis - self._tdis_mid) / self._tdis_half).unsqueeze(-1),
                (p_es / storage.max_power).unsqueeze(-1),
            ),
            dim=-1,
        )
        t = self._t + 1
        exo_next = lookup_rows(self._exo, self._minute0 + t)

        partial = tensordict.get("_step", None)
        if partial is not None:
            mask = partial.reshape(E)
            col = mask.unsqueeze(-1)
            temp = torch.where(col, temp, self._temp)
            energy = torch.where(mask, energy, self._energy)
            power = torch.where(mask, power, self._last_power)
            executed = torch.where(col, executed, self._last_action)
            exo_next = torch.where(col, exo_next, self._exo_now)
            t = torch.where(mask, t, self._t)
        self._temp, self._energy, self._t = temp, energy, t
        self._exo_now, self._last_action, self._last_power = exo_next, executed, power

        out = self._observe()
        truncated = (t >= self.horizon).unsqueeze(-1)
        out.set("reward", reward.unsqueeze(-1))
        out.set("done", truncated.clone())
        out.set("terminated", self._false.clone())
        out.set("truncated", truncated)
        return out


def make_building_env(
    *,
    phase_mode: str | None = None,
    num_envs: int = 1,
    device: torch.device | str | None = None,
    seed: int | None = None,
    horizon: int = 30,
    validate_actions: bool = True,
    action_levels: int | None = None,
) -> TransformedEnv:
    """The usual building stack: env, step counter, action-frequency mask (hold), optional phase.

    Builds ``TransformedEnv(BuildingEnv(...), Compose(StepCounter(),
    ActionFrequencyMask((5, 5, 5, 5, 5, 5, 1), mode="hold")[, PhaseEncoding(15,
    mode=phase_mode)]))``. The :class:`~torchrl.envs.StepCounter` has no ``max_steps``
    (the env truncates at its horizon); its ``"step_count"`` is the episode minute that
    the env's reference also counts, so ``t mod 15`` is the phase of both. Between its
    decision steps an agent's action is replaced by its previously executed one
    (``("agents", "prev_action")``, zeros after a reset: the middle of every range).

    Keys added on top of :class:`BuildingEnv`'s: root ``"step_count"`` ``(E, 1)``
    int64; ``("agents", "can_act")`` ``(E, 7)`` bool and ``("agents", "prev_action")``
    ``(E, 7, 1)``; with ``phase_mode="phase"`` a root ``"phase"`` ``(E, 1)``; with
    ``"onehot"`` (15 features) or ``"sincos"`` (2) the phase appended to
    ``("agents", "observation")`` and to ``"state"``.

    Keyword Args:
        phase_mode (str | None): ``"phase"``, ``"onehot"``, ``"sincos"`` or ``None``
            (time-unaware). Defaults to ``None``.
        num_envs (int): number of environments. Defaults to ``1``.
        device (torch.device | str | None): device. Defaults to ``None`` (CPU).
        seed (int | None): seed of the env's generator. Defaults to ``None``.
        horizon (int): episode length, minutes. Defaults to ``30``.
        validate_actions (bool): the :class:`BuildingEnv` option: refuse NaN and inf
            actions (one host synchronisation per step). Defaults to ``True``.
        action_levels (int | None): ``K >= 2``: the env's discrete actions (``BuildingEnv``'s
            option: ``K`` evenly spaced levels of every agent's normalised action), so that
            the action-frequency mask holds the index, a held action is a forced choice with
            its action mask at ``("agents", "action_mask")`` ``(E, 7, K)`` (after a reset the
            held index is the middle level ``K // 2``); for algorithms that need discrete
            actions (COMA). ``None``: continuous actions. Defaults to ``None``.

    Returns:
        TransformedEnv: the stack.

    Examples:
        >>> env = make_building_env(phase_mode="onehot", num_envs=2, seed=0)
        >>> td = env.reset()
        >>> td["agents", "observation"].shape, td["state"].shape  # + 15 one-hot phase features
        (torch.Size([2, 7, 23]), torch.Size([2, 40]))
        >>> td = env.step(env.rand_action(td))["next"]
        >>> td["agents", "can_act"][0].tolist()  # t = 1: only the battery may act
        [False, False, False, False, False, False, True]
        >>> discrete = make_building_env(action_levels=5, num_envs=2, seed=0)
        >>> discrete.full_action_spec["agents", "action"].n, discrete.reset()["agents", "action_mask"].shape
        (5, torch.Size([2, 7, 5]))
    """
    if phase_mode not in (None, "phase", "onehot", "sincos"):
        raise ValueError(
            f"make_building_env expected phase_mode in (None, 'phase', 'onehot', 'sincos'), "
            f"got {phase_mode!r}"
        )
    env = BuildingEnv(
        num_envs=num_envs,
        device=device,
        seed=seed,
        horizon=horizon,
        validate_actions=validate_actions,
        action_levels=action_levels,
    )
    # with discrete levels, the index held after a reset is the middle level
    hold = {} if action_levels is None else {"null_action": action_levels // 2}
    transforms = [StepCounter(), ActionFrequencyMask(env.action_periods, mode="hold", **hold)]
    if phase_mode is not None:
        in_keys = None if phase_mode == "phase" else [("agents", "observation"), "state"]
        transforms.append(PhaseEncoding(env.period, mode=phase_mode, in_keys=in_keys))
    return TransformedEnv(env, Compose(*transforms))
