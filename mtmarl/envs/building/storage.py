r"""An energy-storage unit (battery) with charge/discharge efficiencies, exact at any step length.

Defaults are PowerGridworld's ``energy_storage_env.py``: usable energy 3-50 kWh, charge
efficiency 0.95, discharge efficiency 0.9, power limit 15 kW.

The power ``P`` is measured at the grid side (kW, ``> 0`` charging, ``< 0``
discharging). Over a step of ``dt`` hours the stored energy changes by

.. math::

    \Delta E = dt\,(\eta_c P^+ - P^- / \eta_d), \qquad P^\pm = \max(\pm P, 0):

charging stores only ``eta_c`` of the energy drawn; discharging removes ``1 / eta_d``
times the energy delivered. A command is first clipped to ``[-P_max, P_max]`` and then to
what the step can absorb without leaving ``[E_min, E_max]``:
``P <= (E_max - E) / (eta_c dt)`` and ``P >= -(E - E_min) eta_d / dt``. The executed power
is held constant over the step, so the balance above holds exactly for every step
length: ``k`` steps of ``dt / k`` at a constant command draw the same grid energy and end
at the same stored energy as one step of ``dt`` (also when a bound is reached, since
the clipped single step draws exactly the energy that fills / empties the unit).
"""

from __future__ import annotations

import torch

__all__ = ["EnergyStorage"]


class EnergyStorage:
    """Batched energy-storage physics (parameters only; the state lives in the caller's tensors).

    Keyword Args:
        min_energy (float): lower bound of the stored energy, kWh. Defaults to ``3.0``.
        max_energy (float): upper bound of the stored energy, kWh. Defaults to ``50.0``.
        charge_efficiency (float): ``eta_c`` in ``(0, 1]``. Defaults to ``0.95``.
        discharge_efficiency (float): ``eta_d`` in ``(0, 1]``. Defaults to ``0.9``.
        max_power (float): grid-side power limit, kW. Defaults to ``15.0``.

    Examples:
        >>> es = EnergyStorage()
        >>> energy, power = es.step(torch.tensor([10.0]), torch.tensor([15.0]), dt_hours=1 / 60)
        >>> round(float(energy), 6), float(power)  # 15 kW for a minute stores 0.2375 kWh
        (10.2375, 15.0)
    """

    def __init__(
        self,
        *,
        min_energy: float = 3.0,
        max_energy: float = 50.0,
        charge_efficiency: float = 0.95,
        discharge_efficiency: float = 0.9,
        max_power: float = 15.0,
    ) -> None:
        values = {
            "min_energy": min_energy,
            "max_energy": max_energy,
            "charge_efficiency": charge_efficiency,
            "discharge_efficiency": discharge_efficiency,
            "max_power": max_power,
        }
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(
                    f"EnergyStorage expected {name} to be a float, got {type(value).__name__} "
                    f"{value!r}"
                )
        if not 0.0 <= min_energy < max_energy:
            raise ValueError(
                f"EnergyStorage expected 0 <= min_energy < max_energy, got min_energy="
                f"{min_energy}, max_energy={max_energy}"
            )
        for name in ("charge_efficiency", "discharge_efficiency"):
            if not 0.0 < values[name] <= 1.0:
                raise ValueError(f"EnergyStorage expected {name} in (0, 1], got {values[name]}")
        if max_power <= 0:
            raise ValueError(f"EnergyStorage expected max_power > 0, got {max_power}")
        self.min_energy = float(min_energy)
        self.max_energy = float(max_energy)
        self.charge_efficiency = float(charge_efficiency)
        self.discharge_efficiency = float(discharge_efficiency)
        self.max_power = float(max_power)

    @property
    def capacity(self) -> float:
        """Usable energy ``max_energy - min_energy``, kWh."""
        return self.max_energy - self.min_energy

    def feasible_power(
        self, energy: torch.Tensor, power: torch.Tensor, *, dt_hours: float
    ) -> torch.Tensor:
        """Clips a power command to the power limit and to the energy bounds over one step.

        Args:
            energy (torch.Tensor): ``(*B,)`` stored energy, kWh, within the bounds.
            power (torch.Tensor): ``(*B,)`` grid-side command, kW (``> 0`` charging).

        Keyword Args:
            dt_hours (float): step length, hours.

        Returns:
            torch.Tensor: ``(*B,)`` executable power, kW.

        Examples:
            >>> es = EnergyStorage()
            >>> es.feasible_power(torch.tensor([3.0, 50.0]), torch.tensor([-15.0, 15.0]), dt_hours=0.25).tolist()
            [0.0, 0.0]
        """
        high = (self.max_energy - energy) / (self.charge_efficiency * dt_hours)
        low = (self.min_energy - energy) * (self.discharge_efficiency / dt_hours)
        power = power.clamp(-self.max_power, self.max_power)
        return torch.minimum(torch.maximum(power, low), high)

    def energy_change(self, power: torch.Tensor, *, dt_hours: float) -> torch.Tensor:
        """Change of the stored energy under a constant grid-side power.

        Args:
            power (torch.Tensor): ``(*B,)`` kW.

        Keyword Args:
            dt_hours (float): step length, hours.

        Returns:
            torch.Tensor: ``(*B,)`` kWh, ``dt (eta_c P+ - P- / eta_d)``.

        Examples:
            >>> EnergyStorage().energy_change(torch.tensor([10.0, -9.0]), dt_hours=1.0).tolist()
            [9.5, -10.0]
        """
        charge = power.clamp_min(0.0) * self.charge_efficiency
        discharge = power.clamp_max(0.0) / self.discharge_efficiency
        return (charge + discharge) * dt_hours

    def step(
        self, energy: torch.Tensor, power: torch.Tensor, *, dt_hours: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Executes a power command for one step.

        Args:
            energy (torch.Tensor): ``(*B,)`` stored energy, kWh.
            power (torch.Tensor): ``(*B,)`` grid-side command, kW.

        Keyword Args:
            dt_hours (float): step length, hours.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: the new energy ``(*B,)`` kWh (clamped to
            the bounds against rounding) and the executed power ``(*B,)`` kW.

        Examples:
            >>> es = EnergyStorage()
            >>> energy, power = es.step(torch.tensor([4.0]), torch.tensor([-15.0]), dt_hours=1.0)
            >>> float(energy), round(float(power), 4)  # only 1 kWh left: 0.9 kWh delivered
            (3.0, -0.9)
        """
        power = self.feasible_power(energy, power, dt_hours=dt_hours)
        new = energy + self.energy_change(power, dt_hours=dt_hours)
        return new.clamp(self.min_energy, self.max_energy), power

    def __repr__(self) -> str:
        return (
            f"EnergyStorage(energy=[{self.min_energy}, {self.max_energy}] kWh, "
            f"eta_c={self.charge_efficiency}, eta_d={self.discharge_efficiency}, "
            f"max_power={self.max_power} kW)"
        )
