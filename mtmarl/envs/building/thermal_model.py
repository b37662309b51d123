r"""The five-zone reduced-order thermal model (ROM) of a small office building, and its HVAC power.

NREL published the model in PowerGridworld (``five_zone_rom_dynamics.py``, the ROM of
Biagioni et al. 2022, "From model-based to model-free: learning building control for
demand response"). Each zone ``z`` is a first-order discrete-time linear model at 5-min
steps,

.. math::

    x_{k+1} = A_z x_k + B_z^\top u_{z,k}, \qquad T_z = x + \bar T, \quad \bar T = 25.604\,^\circ C,

where ``u_z`` holds 4 of 8 candidate inputs (1-based numbering as published):

1. ``T_oa - T_z`` (outdoor minus zone temperature, K),
2. ``q_solar,z`` (solar heat gain of the zone, kW),
3. ``q_int,z`` (internal heat gain, kW),
4. -- 7. ``T_n - T_z`` for the zone's 4 neighbours ``n`` (K),
8. ``m_z (T_dis - T_z)`` (supply mass flow kg/s times discharge-air minus zone
   temperature, kg K/s: the cooling input).

Zones 1-2 use inputs ``(1, 8, 7, 2)`` and zones 3-5 ``(1, 8, 6, 2)``, with the published
coefficients :data:`ROM_A` and :data:`ROM_B` (in selection order). The internal gains
(input 3) are *not* selected by the published model: they are computed by the
environment (office occupancy schedule) and reach the zones only if a custom
``input_selection`` selects input 3. The neighbour lists live in PowerGridworld's pickled
model file, which is not available; we take each zone's 4 neighbours to be the other four
zones in index order (:data:`ROM_NEIGHBOURS`), so input 7 of zones 1-2 is the difference
to zone 5 (the core) and input 6 of zones 3, 4, 5 the difference to zones 4, 3, 3.

**Resampling from 5 min to 1 min.** Read the published model as the zero-order-hold
discretisation of a continuous model :math:`\dot x = a x + b^\top u` with step
:math:`\Delta_5 = 5` min: :math:`A_5 = e^{a \Delta_5}`, :math:`B_5 = \frac{A_5 - 1}{a} b`.
The same system sampled every :math:`\Delta_1 = 1` min has

.. math::

    A_1 = e^{a \Delta_1} = A_5^{1/5}, \qquad
    B_1 = \frac{A_1 - 1}{a} b = B_5 \frac{1 - A_1}{1 - A_5},

and five 1-min steps with the same (held) input give
:math:`A_1^5 x + (1 + A_1 + \dots + A_1^4) B_1 u = A_5 x + \frac{1 - A_1^5}{1 - A_1} B_1 u
= A_5 x + B_5 u`: exactly one published 5-min step (:func:`resample_rom` does this for any
ratio of step lengths). In the environment the inputs are re-evaluated every minute
(the zone temperature inside ``u`` is fed back each minute), a finer and slightly more
accurate simulation of the same continuous dynamics.

**HVAC power** (PowerGridworld ``get_p_consumed``; kW): fan
``0.0076 (sum_z m_z)^3 + 4.8865`` and chiller ``max(0, sum_z m_z (T_oa - T_dis)) / COP``
with ``COP = 3`` (the 1/3 scaling of NREL's learning-building-control code;
``COP = 1`` gives PowerGridworld's formula).

Shape glossary: ``*B`` any batch dims, ``Z = 5`` zones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "ROM_A",
    "ROM_B",
    "ROM_INPUT_SELECTION",
    "ROM_NEIGHBOURS",
    "ROM_MEAN_OUTPUT",
    "ROM_STEP_MINUTES",
    "ZONE_FLOW_BOUNDS",
    "MAX_TOTAL_FLOW",
    "DISCHARGE_TEMP_BOUNDS",
    "FiveZoneROM",
    "resample_rom",
    "fan_power",
    "chiller_power",
    "project_total_flow",
]

N_ZONES = 5
N_CANDIDATES = 8

ROM_A: tuple[float, ...] = (0.9961, 0.998, 0.99402, 0.9941, 0.99673)
"""Published per-zone state coefficients ``A_z`` at 5-min steps."""
ROM_B: tuple[tuple[float, ...], ...] = (
    (0.0027886, 0.01273, 0.0080364, 0.015767),
    (0.0030471, 0.031063, 0.01201, 0.022105),
    (0.0040229, 0.013401, 0.0044284, 0.012504),
    (0.0055396, 0.03525, 0.0029069, 0.021674),
    (0.0015872, 0.0043806, 0.001, 0.0080219),
)
"""Published per-zone input coefficients ``B_z`` at 5-min steps, in selection order."""
ROM_INPUT_SELECTION: tuple[tuple[int, ...], ...] = (
    (1, 8, 7, 2),
    (1, 8, 7, 2),
    (1, 8, 6, 2),
    (1, 8, 6, 2),
    (1, 8, 6, 2),
)
"""Published 1-based candidate inputs used by each zone (see the module docstring)."""
ROM_NEIGHBOURS: tuple[tuple[int, ...], ...] = tuple(
    tuple(j for j in range(N_ZONES) if j != z) for z in range(N_ZONES)
)
"""0-based neighbours of each zone behind candidate inputs 4-7 (the other zones in order)."""
ROM_MEAN_OUTPUT: float = 25.604
"""Output offset ``T = x + 25.604`` deg C."""
ROM_STEP_MINUTES: float = 5.0
"""Step length of the published coefficients, minutes."""
ZONE_FLOW_BOUNDS: tuple[tuple[float, float], ...] = (
    (0.22, 2.2),
    (0.22, 2.2),
    (0.22, 2.2),
    (0.22, 2.2),
    (0.32, 3.2),
)
"""Per-zone supply mass-flow bounds, kg/s."""
MAX_TOTAL_FLOW: float = 10.0
"""Upper bound of the summed supply mass flow, kg/s."""
DISCHARGE_TEMP_BOUNDS: tuple[float, float] = (10.0, 16.0)
"""Bounds of the chiller's discharge-air temperature, deg C."""

_FAN_CUBIC = 0.0076
_FAN_IDLE = 4.8865


def resample_rom(
    a: torch.Tensor, b: torch.Tensor, *, from_minutes: float, to_minutes: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Re-discretises a zero-order-hold first-order model to another step length.

    ``A' = A^r``, ``B' = B (1 - A') / (1 - A)`` with ``r = to_minutes / from_minutes``
    (the derivation is in the module docstring).

    Args:
        a (torch.Tensor): ``(Z,)`` state coefficients, each in ``(0, 1)``.
        b (torch.Tensor): ``(Z, K)`` input coefficients.

    Keyword Args:
        from_minutes (float): step length of ``a, b``.
        to_minutes (float): new step length.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: ``(Z,)`` and ``(Z, K)`` coefficients for the
        new step.

    Examples:
        >>> a5, b5 = torch.tensor(ROM_A, dtype=torch.float64), torch.tensor(ROM_B, dtype=torch.float64)
        >>> a1, b1 = resample_rom(a5, b5, from_minutes=5.0, to_minutes=1.0)
        >>> geometric = ((1 - a1**5) / (1 - a1)).unsqueeze(-1)  # 1 + a1 + ... + a1^4
        >>> torch.allclose(a1**5, a5), torch.allclose(geometric * b1, b5)
        (True, True)
    """
    if not (from_minutes > 0 and to_minutes > 0):
        raise ValueError(
            f"resample_rom expected positive step lengths, got from_minutes={from_minutes}, "
            f"to_minutes={to_minutes}"
        )
    if a.ndim != 1 or b.ndim != 2 or b.shape[0] != a.shape[0]:
        raise ValueError(
            f"resample_rom expected a of shape (Z,) and b of shape (Z, K), got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )
    if not bool(((a > 0) & (a < 1)).all()):
        raise ValueError(f"resample_rom expected every A_z in (0, 1), got {a.tolist()}")
    a_new = a ** (to_minutes / from_minutes)
    return a_new, b * ((1 - a_new) / (1 - a)).unsqueeze(-1)


def fan_power(total_flow: torch.Tensor) -> torch.Tensor:
    """Supply-fan electric power, ``0.0076 m^3 + 4.8865`` kW.

    Args:
        total_flow (torch.Tensor): ``(*B,)`` summed supply mass flow, kg/s.

    Returns:
        torch.Tensor: ``(*B,)`` kW.

    Examples:
        >>> fan_power(torch.tensor([0.0, 10.0])).tolist()
        [4.886499881744385, 12.486499786376953]
    """
    return _FAN_CUBIC * total_flow**3 + _FAN_IDLE


def chiller_power(
    total_flow: torch.Tensor,
    outdoor_temp: torch.Tensor,
    discharge_temp: torch.Tensor,
    *,
    cop: float = 3.0,
) -> torch.Tensor:
    """Chiller electric power, ``max(0, m (T_oa - T_dis)) / cop`` kW.

    Args:
        total_flow (torch.Tensor): ``(*B,)`` summed supply mass flow, kg/s.
        outdoor_temp (torch.Tensor): ``(*B,)`` deg C.
        discharge_temp (torch.Tensor): ``(*B,)`` deg C.

    Keyword Args:
        cop (float): coefficient of performance. Defaults to ``3.0``.

    Returns:
        torch.Tensor: ``(*B,)`` kW, ``>= 0``.

    Examples:
        >>> chiller_power(torch.tensor([6.0, 6.0]), torch.tensor([31.0, 5.0]), torch.tensor([13.0, 13.0])).tolist()
        [36.0, 0.0]
    """
    return (total_flow * (outdoor_temp - discharge_temp)).clamp_min(0.0) / cop


def project_total_flow(
    flow: torch.Tensor, low: torch.Tensor, *, max_total: float = MAX_TOTAL_FLOW
) -> torch.Tensor:
    """Enforces ``sum_z m_z <= max_total`` by scaling every zone's flow above its minimum.

    ``m_z <- low_z + s (m_z - low_z)`` with one factor
    ``s = min(1, (max_total - sum low) / sum (m - low))`` per batch entry: flows within
    the limit are unchanged, per-zone bounds stay satisfied, every zone gives up the same
    fraction of its flow above minimum (so the zones' ranking is kept), and the map is
    continuous. (Not the Euclidean projection, which would cut equal amounts and clip at
    the minima.)

    Args:
        flow (torch.Tensor): ``(*B, Z)`` flows within their per-zone bounds, kg/s.
        low (torch.Tensor): ``(Z,)`` per-zone minimum flows, with ``sum low <= max_total``.

    Keyword Args:
        max_total (float): limit of the summed flow, kg/s. Defaults to ``10.0``.

    Returns:
        torch.Tensor: ``(*B, Z)`` projected flows.

    Examples:
        >>> low = torch.tensor([0.22, 0.22, 0.22, 0.22, 0.32])
        >>> m = project_total_flow(torch.tensor([[2.2, 2.2, 2.2, 2.2, 3.2]]), low)
        >>> round(float(m.sum()), 4), bool((m >= low).all())
        (10.0, True)
    """
    excess = flow - low
    room = max_total - low.sum()
    scale = (room / excess.sum(-1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    return low + excess * scale


def _as_table(value: object, shape: tuple[int, ...], name: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64)
    if tuple(t.shape) != shape:
        raise ValueError(f"FiveZoneROM expected {name} of shape {shape}, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"FiveZoneROM expected finite {name}, got {t.tolist()}")
    return t


class FiveZoneROM(nn.Module):
    r"""The five-zone reduced-order thermal model, batched, at any step length.

    Holds the published (or given) coefficients resampled to ``step_minutes`` and
    advances zone temperatures: ``forward`` is the fused fast path the environment uses,
    :meth:`candidate_inputs` and :meth:`advance` the literal ``x' = A x + B u`` form of
    the published model (they agree to rounding; a test checks it).

    Keyword Args:
        step_minutes (float): step length of the simulation, minutes. Defaults to ``1.0``.
        a (Sequence[float]): ``(5,)`` state coefficients at ``source_minutes`` steps.
            Defaults to :data:`ROM_A`.
        b (Sequence[Sequence[float]]): ``(5, 4)`` input coefficients, in selection order.
            Defaults to :data:`ROM_B`.
        input_selection (Sequence[Sequence[int]]): ``(5, 4)`` 1-based candidate inputs
            of each zone (in ``[1, 8]``, distinct per zone). Defaults to
            :data:`ROM_INPUT_SELECTION`.
        neighbours (Sequence[Sequence[int]]): ``(5, 4)`` 0-based zones behind candidate
            inputs 4-7. Defaults to :data:`ROM_NEIGHBOURS`.
        mean_output (float): output offset ``T = x + mean_output``, deg C. Defaults to
            :data:`ROM_MEAN_OUTPUT`.
        source_minutes (float): step length of ``a`` and ``b``. Defaults to ``5.0``.
        dtype (torch.dtype): dtype of the buffers. Defaults to ``torch.float32``.

    Attributes:
        a (torch.Tensor): ``(5,)`` state coefficients at ``step_minutes``.
        b_full (torch.Tensor): ``(5, 8)`` coefficients of the 8 candidate inputs at
            ``step_minutes`` (zero where an input is not selected).

    Examples:
        >>> rom = FiveZoneROM(step_minutes=1.0)
        >>> temp = torch.full((2, 5), 26.0)
        >>> nxt = rom(temp, outdoor_temp=torch.full((2,), 32.0), q_solar=torch.zeros(2, 5),
        ...           q_internal=torch.zeros(2, 5), mass_flow=torch.full((2, 5), 2.0),
        ...           discharge_temp=torch.full((2,), 10.0))
        >>> nxt.shape, bool((nxt < temp).all())  # strong cooling wins over a hot day
        (torch.Size([2, 5]), True)
    """

    N_ZONES: int = N_ZONES
    """Number of zones."""

    def __init__(
        self,
        *,
        step_minutes: float = 1.0,
        a: Sequence[float] = ROM_A,
        b: Sequence[Sequence[float]] = ROM_B,
        input_selection: Sequence[Sequence[int]] = ROM_INPUT_SELECTION,
        neighbours: Sequence[Sequence[int]] = ROM_NEIGHBOURS,
        mean_output: float = ROM_MEAN_OUTPUT,
        source_minutes: float = ROM_STEP_MINUTES,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        for name, value in (("step_minutes", step_minutes), ("source_minutes", source_minutes)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"FiveZoneROM expected {name} > 0, got {value!r}")
        a64 = _as_table(a, (N_ZONES,), "a")
        b64 = _as_table(b, (N_ZONES, 4), "b")
        sel = torch.as_tensor(input_selection)
        if tuple(sel.shape) != (N_ZONES, 4) or sel.dtype.is_floating_point:
            raise ValueError(
                f"FiveZoneROM expected input_selection of 5 x 4 ints in [1, 8], got {input_selection!r}"
            )
        if bool(((sel < 1) | (sel > N_CANDIDATES)).any()) or any(
            len(set(row.tolist())) != 4 for row in sel
        ):
            raise ValueError(
                f"FiveZoneROM expected input_selection rows of 4 distinct ints in [1, 8], got "
                f"{sel.tolist()}"
            )
        nb = torch.as_tensor(neighbours)
        if (
            tuple(nb.shape) != (N_ZONES, 4)
            or nb.dtype.is_floating_point
            or bool(((nb < 0) | (nb >= N_ZONES)).any())
            or bool((nb == torch.arange(N_ZONES).unsqueeze(-1)).any())
        ):
            raise ValueError(
                f"FiveZoneROM expected neighbours of 5 x 4 zone indices in [0, 4], none equal "
                f"to its own zone, got {neighbours!r}"
            )
        self.step_minutes = float(step_minutes)
        self.source_minutes = float(source_minutes)
        self.mean_output = float(mean_output)
        self.input_selection = tuple(tuple(int(i) for i in row) for row in sel.tolist())
        self.neighbours = tuple(tuple(int(j) for j in row) for row in nb.tolist())
        a_new, b_new = resample_rom(
            a64, b64, from_minutes=self.source_minutes, to_minutes=self.step_minutes
        )
        b_full = torch.zeros(N_ZONES, N_CANDIDATES, dtype=torch.float64)
        b_full.scatter_(1, sel.long() - 1, b_new)
        # fused form: T' = T @ M^T + k0 + c_oa T_oa + c_s q_s + c_i q_i + c_c m (T_dis - T)
        c_oa, c_nb = b_full[:, 0], b_full[:, 3:7]
        coupling = torch.zeros(N_ZONES, N_ZONES, dtype=torch.float64)
        coupling.scatter_add_(1, nb.long(), c_nb)
        mix = torch.diag(a_new - c_oa - c_nb.sum(-1)) + coupling
        self.register_buffer("a", a_new.to(dtype))
        self.register_buffer("b_full", b_full.to(dtype))
        self.register_buffer("neighbour_index", nb.long())
        self.register_buffer("_mix_t", mix.T.contiguous().to(dtype))
        self.register_buffer("_k0", (self.mean_output * (1 - a_new)).to(dtype))

    def candidate_inputs(
        self,
        zone_temp: torch.Tensor,
        *,
        outdoor_temp: torch.Tensor,
        q_solar: torch.Tensor,
        q_internal: torch.Tensor,
        mass_flow: torch.Tensor,
        discharge_temp: torch.Tensor,
    ) -> torch.Tensor:
        """The 8 candidate inputs of every zone (numbered as in the module docstring).

        Args:
            zone_temp (torch.Tensor): ``(*B, 5)`` deg C.

        Keyword Args:
            outdoor_temp (torch.Tensor): ``(*B,)`` deg C.
            q_solar (torch.Tensor): ``(*B, 5)`` kW.
            q_internal (torch.Tensor): ``(*B, 5)`` kW.
            mass_flow (torch.Tensor): ``(*B, 5)`` kg/s.
            discharge_temp (torch.Tensor): ``(*B,)`` deg C.

        Returns:
            torch.Tensor: ``(*B, 5, 8)``.

        Examples:
            >>> rom = FiveZoneROM()
            >>> z = torch.zeros(5)
            >>> u = rom.candidate_inputs(torch.arange(5.0), outdoor_temp=torch.tensor(10.0),
            ...     q_solar=z, q_internal=z, mass_flow=torch.ones(5), discharge_temp=torch.tensor(12.0))
            >>> u.shape, u[0].tolist()  # zone 1 at 0 deg C: T_oa - T, gains, neighbours 1..4, cooling
            (torch.Size([5, 8]), [10.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 12.0])
        """
        neigh = zone_temp.index_select(-1, self.neighbour_index.reshape(-1))
        neigh = neigh.reshape(*zone_temp.shape, 4) - zone_temp.unsqueeze(-1)
        return torch.cat(
            (
                (outdoor_temp.unsqueeze(-1) - zone_temp).unsqueeze(-1),
                q_solar.unsqueeze(-1),
                q_internal.unsqueeze(-1),
                neigh,
                (mass_flow * (discharge_temp.unsqueeze(-1) - zone_temp)).unsqueeze(-1),
            ),
            dim=-1,
        )

    def advance(self, zone_temp: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """One step of ``x' = A x + B u`` with given candidate inputs (held over the step).

        Args:
            zone_temp (torch.Tensor): ``(*B, 5)`` deg C.
            inputs (torch.Tensor): ``(*B, 5, 8)`` candidate inputs (unselected ones are
                ignored).

        Returns:
            torch.Tensor: ``(*B, 5)`` zone temperatures after one step, deg C.

        Examples:
            >>> rom = FiveZoneROM()
            >>> nxt = rom.advance(torch.full((5,), ROM_MEAN_OUTPUT), torch.zeros(5, 8))
            >>> torch.allclose(nxt, torch.tensor(ROM_MEAN_OUTPUT))  # no input: x = 0 is at rest
            True
        """
        x = zone_temp - self.mean_output
        return self.a * x + (self.b_full * inputs).sum(-1) + self.mean_output

    def forward(
        self,
        zone_temp: torch.Tensor,
        *,
        outdoor_temp: torch.Tensor,
        q_solar: torch.Tensor,
        q_internal: torch.Tensor,
        mass_flow: torch.Tensor,
        discharge_temp: torch.Tensor,
    ) -> torch.Tensor:
        """One step with the inputs evaluated at the current zone temperatures.

        Args:
            zone_temp (torch.Tensor): ``(*B, 5)`` deg C.

        Keyword Args:
            outdoor_temp (torch.Tensor): ``(*B,)`` deg C.
            q_solar (torch.Tensor): ``(*B, 5)`` kW.
            q_internal (torch.Tensor): ``(*B, 5)`` kW.
            mass_flow (torch.Tensor): ``(*B, 5)`` kg/s.
            discharge_temp (torch.Tensor): ``(*B,)`` deg C.

        Returns:
            torch.Tensor: ``(*B, 5)`` zone temperatures after one step, deg C.

        Examples:
            >>> rom = FiveZoneROM()
            >>> t = torch.full((5,), 24.0)
            >>> kw = dict(outdoor_temp=torch.tensor(30.0), q_solar=torch.zeros(5),
            ...           q_internal=torch.zeros(5), mass_flow=torch.full((5,), 0.5),
            ...           discharge_temp=torch.tensor(12.0))
            >>> torch.allclose(rom(t, **kw), rom.advance(t, rom.candidate_inputs(t, **kw)))
            True
        """
        b = self.b_full
        out = zone_temp @ self._mix_t + self._k0
        out = out + b[:, 0] * outdoor_temp.unsqueeze(-1) + b[:, 1] * q_solar + b[:, 2] * q_internal
        return out + b[:, 7] * mass_flow * (discharge_temp.unsqueeze(-1) - zone_temp)

    def extra_repr(self) -> str:
        return f"step_minutes={self.step_minutes}, input_selection={self.input_selection}"
