"""A Beta distribution stretched to ``[low, high]``, for bounded continuous actions.

:class:`ScaledBeta` is the alternative to torchrl's ``TanhNormal`` for the continuous head of
:func:`~mtmarl.modules.make_hybrid_actor` (``continuous_distribution="beta"``): its support is
exactly the action box, so no squashing Jacobian and no saturation at the bounds, and its
entropy has a closed form (``ClipPPOLoss`` uses it instead of a Monte-Carlo estimate).
"""

from __future__ import annotations

import torch
from torch import distributions as D

__all__ = ["ScaledBeta"]


class ScaledBeta(D.Independent):
    """``low + (high - low) * Beta(concentration1, concentration0)``, independent over the last dim.

    Args:
        concentration1 (torch.Tensor): ``alpha`` ``(*B, A)``, > 0.
        concentration0 (torch.Tensor): ``beta`` ``(*B, A)``, > 0.

    Keyword Args:
        low (torch.Tensor or float): lower bounds, broadcastable to ``(*B, A)``. Defaults to
            ``0.0``.
        high (torch.Tensor or float): upper bounds (> ``low``). Defaults to ``1.0``.
        eps (float): samples are kept ``eps`` (relative) inside the bounds before
            ``log_prob`` so that actions written at a bound stay finite. Defaults to ``1e-6``.
        can_act (torch.Tensor, optional): bool ``(*B,)``, ``True`` where the agent chooses its
            action; elsewhere (forced steps of an
            :class:`~mtmarl.transforms.ActionFrequencyMask`) ``log_prob`` and ``entropy`` are
            exactly 0, as :class:`~mtmarl.modules.MaskedTanhNormal`'s. Defaults to ``None``
            (every entry acts).
        forced (torch.Tensor, optional): ``(*B, A)``, the action executed where ``can_act`` is
            ``False`` (e.g. the held previous action); samples and the deterministic sample
            return it there. Defaults to ``None``.

    ``log_prob`` and ``entropy`` are summed over the action dim (shape ``(*B,)``);
    :attr:`deterministic_sample` is the mode ``(alpha - 1) / (alpha + beta - 2)`` when both
    concentrations exceed 1 (the mean otherwise), stretched to the bounds.

    Examples:
        >>> import torch
        >>> d = ScaledBeta(torch.full((5, 2), 3.0), torch.full((5, 2), 3.0), low=-1.0, high=1.0)
        >>> x = d.rsample()
        >>> x.shape, bool((x.abs() < 1).all()), d.log_prob(x).shape
        (torch.Size([5, 2]), True, torch.Size([5]))
        >>> d.deterministic_sample.abs().max().item()       # symmetric: the mode is the middle
        0.0
        >>> can_act = torch.tensor([True, False, True, True, False])
        >>> d = ScaledBeta(torch.full((5, 2), 3.0), torch.full((5, 2), 3.0), low=-1.0, high=1.0,
        ...                can_act=can_act, forced=torch.full((5, 2), 0.5))
        >>> x = d.sample()
        >>> bool((x[~can_act] == 0.5).all()), d.log_prob(x)[~can_act].tolist(), d.entropy()[1].item()
        (True, [0.0, 0.0], 0.0)
    """

    arg_constraints = {}
    has_rsample = True

    def __init__(
        self,
        concentration1: torch.Tensor,
        concentration0: torch.Tensor,
        *,
        low: torch.Tensor | float = 0.0,
        high: torch.Tensor | float = 1.0,
        eps: float = 1e-6,
        can_act: torch.Tensor | None = None,
        forced: torch.Tensor | None = None,
    ) -> None:
        low_t = torch.as_tensor(low, dtype=concentration1.dtype, device=concentration1.device)
        high_t = torch.as_tensor(high, dtype=concentration1.dtype, device=concentration1.device)
        if not bool((high_t > low_t).all()):
            raise ValueError(f"ScaledBeta expected high > low, got low={low}, high={high}")
        self.low, self.high, self.eps = low_t, high_t, float(eps)
        self._beta = D.Beta(concentration1, concentration0, validate_args=False)
        super().__init__(self._beta, 1, validate_args=False)
        if can_act is not None:
            if not isinstance(can_act, torch.Tensor) or can_act.dtype != torch.bool:
                raise TypeError(
                    f"ScaledBeta expected can_act to be a bool tensor of the batch shape "
                    f"{tuple(self.batch_shape)}, got {can_act!r}"
                )
            can_act = can_act.to(concentration1.device).expand(self.batch_shape)
        self.can_act = can_act
        self.forced = (
            None if forced is None else forced.to(concentration1).expand_as(concentration1)
        )

    def _mask(self, value: torch.Tensor) -> torch.Tensor:
        """Zero a log-prob or entropy ``(*S, *B)`` where the agent may not act."""
        if self.can_act is None:
            return value
        return torch.where(self.can_act, value, torch.zeros((), dtype=value.dtype))

    def _force(self, sample: torch.Tensor) -> torch.Tensor:
        if self.can_act is None or self.forced is None:
            return sample
        return torch.where(self.can_act.unsqueeze(-1), sample, self.forced)

    @property
    def _width(self) -> torch.Tensor:
        return self.high - self.low

    def sample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        return self._force(self.low + self._width * self._beta.rsample(torch.Size(sample_shape)))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        unit = ((value - self.low) / self._width).clamp(self.eps, 1.0 - self.eps)
        return self._mask((self._beta.log_prob(unit) - self._width.log()).sum(-1))

    def entropy(self) -> torch.Tensor:
        return self._mask((self._beta.entropy() + self._width.log()).sum(-1))

    @property
    def mean(self) -> torch.Tensor:
        return self.low + self._width * self._beta.mean

    @property
    def mode(self) -> torch.Tensor:
        a, b = self._beta.concentration1, self._beta.concentration0
        unimodal = (a > 1) & (b > 1)
        mode = torch.where(unimodal, (a - 1) / (a + b - 2).clamp_min(1e-12), self._beta.mean)
        return self.low + self._width * mode

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self._force(self.mode)
