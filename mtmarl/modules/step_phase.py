"""Feed a phase-functioned network the phase of its own period, computed from the step count.

The env-side phase (root ``"phase"``, written by ``PhaseEncoding(mode="phase")``) is
``(t mod L) / L`` for the environment's multi-timescale period ``L``. Seed 004 also runs a
PFNN whose period ``P`` differs from ``L`` ("Phasic COMA (4)"): its phase
``(t mod P) / P`` cannot be recovered from ``(t mod L) / L`` when ``P`` does not divide
``L``, so it is computed from the step count ``t`` (root ``"step_count"``, written by
:class:`torchrl.envs.StepCounter`). :class:`PhaseFromStepCount` wraps any core that takes
``(x, phase)`` so that it takes ``(x, step_count)`` instead.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PhaseFromStepCount"]


class PhaseFromStepCount(nn.Module):
    """Wrap a ``core(x, phase)`` network so that it reads an integer step count instead.

    ``forward(x, step_count) = core(x, (step_count mod period) / period)``: the phase is
    the fraction of the PFNN period ``P`` elapsed since the last multiple of ``P``.

    Args:
        core (nn.Module): a network called as ``core(x, phase)`` with a float phase in
            ``[0, 1)``, e.g. :class:`mtmarl.nn.PhaseMLP` or a
            :class:`~mtmarl.modules.SharedAgentNet` around one.

    Keyword Args:
        period (int): the PFNN period ``P`` in env steps (>= 1).

    Examples:
        >>> import torch
        >>> from mtmarl.nn import PhaseMLP
        >>> net = PhaseFromStepCount(PhaseMLP(3, 2, num_cells=(8,)), period=4)
        >>> x = torch.randn(6, 3)
        >>> t = torch.arange(6).unsqueeze(-1)            # (B, 1) int64 step counts
        >>> net.phase(t).squeeze(-1).tolist()
        [0.0, 0.25, 0.5, 0.75, 0.0, 0.25]
        >>> torch.allclose(net(x, t), net.core(x, net.phase(t)))
        True
    """

    def __init__(self, core: nn.Module, *, period: int) -> None:
        super().__init__()
        if not isinstance(core, nn.Module):
            raise TypeError(
                f"PhaseFromStepCount expected core to be an nn.Module, got {type(core)}"
            )
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise ValueError(
                f"PhaseFromStepCount expected period to be an int >= 1, got {period!r}"
            )
        self.core = core
        self.period = period

    def phase(self, step_count: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The phase ``(step_count mod period) / period``, same shape as ``step_count``.

        Args:
            step_count (torch.Tensor): integer step counts, any shape.
            dtype (torch.dtype, optional): floating dtype of the result. Defaults to the
                default dtype.

        Returns:
            torch.Tensor: floating phase in ``[0, 1)``.
        """
        if not isinstance(step_count, torch.Tensor):
            raise TypeError(
                f"PhaseFromStepCount expected step_count to be a torch.Tensor, "
                f"got {type(step_count).__name__}"
            )
        if (
            step_count.is_floating_point()
            or step_count.is_complex()
            or step_count.dtype == (torch.bool)
        ):
            raise TypeError(
                f"PhaseFromStepCount expected an integer step_count (e.g. StepCounter's "
                f"int64 'step_count'), got dtype {step_count.dtype}"
            )
        dtype = dtype or torch.get_default_dtype()
        # integer remainder first: exact for any t, then one division
        return torch.remainder(step_count, self.period).to(dtype) / self.period

    def forward(self, x: torch.Tensor, step_count: torch.Tensor) -> torch.Tensor:
        """Apply ``core(x, phase(step_count))``.

        Args:
            x (torch.Tensor): the core's input, ``(*B, F)`` (e.g. ``(*E, N, F)``).
            step_count (torch.Tensor): integer, of a shape the core accepts as phase
                (e.g. ``(*E, 1)`` broadcasting over the agent dim).

        Returns:
            torch.Tensor: the core's output.
        """
        dtype = x.dtype if x.is_floating_point() else None
        return self.core(x, self.phase(step_count, dtype))

    def extra_repr(self) -> str:
        return f"period={self.period}"
