"""A ``TanhNormal`` whose log-probability and entropy vanish where an agent may not act.

With :class:`~mtmarl.transforms.ActionFrequencyMask` a slow agent's action is replaced by a
forced one (held or null) between its decision steps, and the mask says so in
``("agents", "can_act")`` ``(*B, N)``. For discrete actions a ``MaskedCategorical`` with a
single allowed choice gives those steps log-prob 0 and entropy 0, so torchrl's PPO losses
ignore them without any change. :class:`MaskedTanhNormal` is the continuous counterpart:
a :class:`torchrl.modules.TanhNormal` (same sampling, same deterministic ``tanh(loc)``
sample) whose ``log_prob`` and ``entropy`` are exactly 0, with exactly zero gradient, where
``can_act`` is ``False``. In a PPO loss the ratio at a forced step is ``exp(0 - 0) = 1`` and
its entropy bonus 0, so forced steps contribute no policy gradient.

Entropy: ``TanhNormal`` has no closed form. Here it is computed as
``H(Y) = sum_event [H(Normal) + log((high - low) / 2) + E[log(1 - tanh(X)^2)]]`` with the
expectation over ``X ~ Normal(loc, scale)`` by Gauss-Hermite quadrature (deterministic and
differentiable). Because the class defines ``entropy``, torchrl's ``ClipPPOLoss`` uses it
rather than its Monte-Carlo fallback; the fallback (``sample_and_log_prob`` /
``rsample_and_log_prob``) is masked too, so forced steps get 0 on either path.
"""

from __future__ import annotations

import math
from functools import lru_cache
from numbers import Number

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812
from torchrl.modules import TanhNormal

__all__ = ["MaskedTanhNormal"]

_WHO = "MaskedTanhNormal"


@lru_cache(maxsize=8)
def _hermgauss(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Hermite nodes and weights for ``E_{Z ~ N(0, 1)} f(Z) ~ sum_i w_i f(z_i)`` (float64)."""
    t, w = np.polynomial.hermite.hermgauss(n)
    return torch.from_numpy(t * math.sqrt(2.0)), torch.from_numpy(w / math.sqrt(math.pi))


class MaskedTanhNormal(TanhNormal):
    """``TanhNormal`` with log-prob and entropy 0 where ``can_act`` is ``False``.

    Everything but the mask is :class:`torchrl.modules.TanhNormal`: ``loc``/``scale`` of the
    pre-tanh normal ``(*B, A)``, the ``low``/``high`` bounds, ``event_dims`` (by default the
    last dim is the event, so ``log_prob`` is summed over the ``A`` action dims and has the
    batch shape ``(*B,)``, e.g. ``(*E, N)`` for per-agent actions ``(*E, N, A)``), and
    ``sample``/``rsample``/``deterministic_sample`` (``low + (high - low) (tanh(loc) + 1) / 2``)
    are unchanged. ``can_act`` masks the batch: ``log_prob(x)``, ``entropy()`` and the
    log-probs of ``sample_and_log_prob``/``rsample_and_log_prob`` are 0 where it is
    ``False``, and gradients through those entries are exactly 0 (the value is replaced
    before the log-density is evaluated, so an out-of-range forced action cannot produce
    ``inf``/``nan``).

    Use it as the ``distribution_class`` of a :class:`torchrl.modules.ProbabilisticActor`
    with ``in_keys={"loc": ..., "scale": ..., "can_act": ("agents", "can_act")}`` and
    ``distribution_kwargs={"low": low, "high": high}``; torchrl's ``ClipPPOLoss`` /
    ``MAPPOLoss`` then ignore forced steps unchanged.

    Args:
        loc (torch.Tensor): pre-tanh location, ``(*B, A)``.
        scale (torch.Tensor | float): pre-tanh standard deviation, broadcastable to ``loc``.

    Keyword Args:
        can_act (torch.Tensor, optional): bool, broadcastable to the batch shape
            ``loc.shape[:-event_dims]`` (e.g. ``(*E, N)``); ``True`` where the agent chooses
            its action. Defaults to ``None`` (every entry may act: plain ``TanhNormal``).
        forced (torch.Tensor, optional): the action executed where ``can_act`` is ``False``
            (e.g. the held previous action that
            :class:`~mtmarl.transforms.ActionFrequencyMask` writes at ``("agents",
            "prev_action")``), broadcastable to ``loc``: ``sample``, ``rsample`` and
            ``deterministic_sample`` return it there, so that the action a rollout stores is
            the one the env executed. Defaults to ``None`` (forced entries keep their sample,
            which the env replaces).
        low (torch.Tensor | float): lower bound, broadcastable to ``loc``. Defaults to -1.
        high (torch.Tensor | float): upper bound (``> low``). Defaults to 1.
        upscale (torch.Tensor | float): ``TanhNormal``'s location scaling (with
            ``tanh_loc``). Defaults to 5.
        event_dims (int, optional): trailing dims summed in ``log_prob``. Defaults to
            ``None`` (``min(1, loc.ndim)``, as ``TanhNormal``).
        tanh_loc (bool): ``TanhNormal``'s location squashing. Defaults to ``False``.
        safe_tanh (bool): ``TanhNormal``'s overflow-safe tanh. Defaults to ``True``.
        n_quadrature (int): Gauss-Hermite nodes of the entropy (>= 2). Defaults to 32.

    Examples:
        >>> import torch
        >>> loc, scale = torch.zeros(2, 3, 1), torch.ones(2, 3, 1)     # (E, N, A)
        >>> can_act = torch.tensor([[True, False, True], [False, True, True]])
        >>> dist = MaskedTanhNormal(loc, scale, can_act=can_act, low=-2.0, high=2.0)
        >>> x = dist.sample()
        >>> x.shape, dist.log_prob(x).shape
        (torch.Size([2, 3, 1]), torch.Size([2, 3]))
        >>> bool((dist.log_prob(x)[~can_act] == 0).all()), bool((dist.entropy()[~can_act] == 0).all())
        (True, True)
        >>> bool((dist.log_prob(x)[can_act] != 0).all())
        True
        >>> dist.deterministic_sample.abs().max().item()                # 2 * tanh(0)
        0.0

        With the executed action of forced steps (stored action = executed action):

        >>> held = torch.full((2, 3, 1), 1.5)
        >>> dist = MaskedTanhNormal(loc, scale, can_act=can_act, forced=held, low=-2.0, high=2.0)
        >>> bool((dist.sample()[~can_act] == 1.5).all()), bool((dist.sample()[can_act] != 1.5).all())
        (True, True)
    """

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor | float,
        *,
        can_act: torch.Tensor | None = None,
        forced: torch.Tensor | None = None,
        low: torch.Tensor | Number = -1.0,
        high: torch.Tensor | Number = 1.0,
        upscale: torch.Tensor | Number = 5.0,
        event_dims: int | None = None,
        tanh_loc: bool = False,
        safe_tanh: bool = True,
        n_quadrature: int = 32,
    ) -> None:
        if isinstance(n_quadrature, bool) or not isinstance(n_quadrature, int) or n_quadrature < 2:
            raise ValueError(
                f"{_WHO} expected n_quadrature to be an int >= 2, got {n_quadrature!r}"
            )
        super().__init__(
            loc,
            scale,
            upscale=upscale,
            low=low,
            high=high,
            event_dims=event_dims,
            tanh_loc=tanh_loc,
            safe_tanh=safe_tanh,
        )
        self.n_quadrature = n_quadrature
        batch_shape = self.batch_shape
        if can_act is None:
            can_act = torch.ones((), dtype=torch.bool, device=self.device)
        if not isinstance(can_act, torch.Tensor) or can_act.dtype != torch.bool:
            raise TypeError(
                f"{_WHO} expected can_act to be a bool tensor broadcastable to the batch shape "
                f"{tuple(batch_shape)}, got "
                f"{can_act.dtype if isinstance(can_act, torch.Tensor) else type(can_act).__name__}"
            )
        try:
            shape = torch.broadcast_shapes(can_act.shape, batch_shape)
        except RuntimeError:
            shape = None
        if shape != batch_shape:
            raise ValueError(
                f"{_WHO} expected can_act broadcastable to the batch shape {tuple(batch_shape)} "
                f"(loc {tuple(self.loc.shape)} minus {len(self.event_shape)} event dim(s)), "
                f"got {tuple(can_act.shape)}"
            )
        self.can_act = can_act.to(self.device).expand(batch_shape)
        if forced is not None:
            if not isinstance(forced, torch.Tensor):
                raise TypeError(
                    f"{_WHO} expected forced to be a tensor broadcastable to loc "
                    f"{tuple(self.loc.shape)}, got {type(forced).__name__}"
                )
            try:
                forced = forced.to(device=self.loc.device, dtype=self.loc.dtype).expand_as(self.loc)
            except RuntimeError:
                raise ValueError(
                    f"{_WHO} expected forced broadcastable to loc {tuple(self.loc.shape)}, "
                    f"got {tuple(forced.shape)}"
                ) from None
        self.forced = forced

    def _force(self, sample: torch.Tensor) -> torch.Tensor:
        """``sample`` ``(*S, *B, *event)`` with the forced action where the agent may not act."""
        if self.forced is None:
            return sample
        cond = self.can_act.reshape(*self.can_act.shape, *([1] * len(self.event_shape)))
        return torch.where(cond, sample, self.forced)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        """``TanhNormal.sample``, with the forced action where ``can_act`` is ``False``."""
        return self._force(super().sample(sample_shape))

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        """``TanhNormal.rsample``, with the forced action where ``can_act`` is ``False``."""
        return self._force(super().rsample(sample_shape))

    @property
    def deterministic_sample(self) -> torch.Tensor:
        """``low + (high - low) (tanh(loc) + 1) / 2``, the forced action where forced."""
        return self._force(super().deterministic_sample)

    # ------------------------------------------------------------------ masking helpers
    def _mask_value(self, value: torch.Tensor) -> torch.Tensor:
        """Replace ``value`` ``(*S, *B, *event)`` by the midpoint of the range where forced."""
        cond = self.can_act.reshape(*self.can_act.shape, *([1] * len(self.event_shape)))
        mid = ((self.high + self.low) / 2).to(device=value.device, dtype=value.dtype)
        return torch.where(cond, value, mid)

    def _mask_log_prob(self, log_prob: torch.Tensor) -> torch.Tensor:
        """Zero ``log_prob`` ``(*S, *B)`` where the agent may not act."""
        return torch.where(
            self.can_act, log_prob, torch.zeros((), dtype=log_prob.dtype, device=log_prob.device)
        )

    # ------------------------------------------------------------------ masked quantities
    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``TanhNormal.log_prob(value)`` where ``can_act``, else exactly 0.

        Args:
            value (torch.Tensor): actions ``(*S, *B, *event)``.

        Returns:
            torch.Tensor: ``(*S, *B)``.
        """
        return self._mask_log_prob(super().log_prob(self._mask_value(value)))

    def sample_and_log_prob(
        self, sample_shape: torch.Size | tuple[int, ...] = ()
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``TanhNormal.sample_and_log_prob`` with the log-prob ``(*S, *B)`` masked."""
        sample, log_prob = super().sample_and_log_prob(sample_shape)
        return self._force(sample), self._mask_log_prob(log_prob)

    def rsample_and_log_prob(
        self, sample_shape: torch.Size | tuple[int, ...] = ()
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``TanhNormal.rsample_and_log_prob`` with the log-prob ``(*S, *B)`` masked."""
        sample, log_prob = super().rsample_and_log_prob(sample_shape)
        return self._force(sample), self._mask_log_prob(log_prob)

    def entropy(self) -> torch.Tensor:
        """Entropy of the bounded tanh-normal where ``can_act``, else exactly 0.

        ``sum_event [0.5 log(2 pi e scale^2) + log((high - low) / 2) + E log(1 - tanh(X)^2)]``
        with the expectation by ``n_quadrature``-point Gauss-Hermite quadrature.

        Returns:
            torch.Tensor: ``(*B,)``, differentiable in ``loc`` and ``scale``.
        """
        base = self.root_dist
        loc, scale = torch.broadcast_tensors(base.loc, base.scale)
        nodes, weights = _hermgauss(self.n_quadrature)
        nodes = nodes.to(device=loc.device, dtype=loc.dtype)
        weights = weights.to(device=loc.device, dtype=loc.dtype)
        x = loc.unsqueeze(0) + scale.unsqueeze(0) * nodes.reshape(-1, *([1] * loc.ndim))
        # log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x)), stable for any x
        log_jac = 2.0 * (math.log(2.0) - x - F.softplus(-2.0 * x))
        expected_log_jac = torch.tensordot(weights, log_jac, dims=1)
        half_range = ((self.high - self.low) / 2).to(device=loc.device, dtype=loc.dtype)
        per_dim = (
            0.5 * math.log(2 * math.pi * math.e) + scale.log() + expected_log_jac + half_range.log()
        )
        n_event = len(self.event_shape)
        entropy = per_dim.sum(tuple(range(-n_event, 0))) if n_event else per_dim
        return self._mask_log_prob(entropy)
