"""Phase-functioned layers (PFNN, Holden, Komura & Saito, 2017).

A phase-functioned layer owns ``K`` control points for each of its parameter
tensors and, for an input of phase ``u`` (a fraction of the cycle), uses the
parameters given by a cyclic Catmull-Rom spline through those control points.
Seed 004 of this project uses such layers in the actor and the critic so that a
policy can depend smoothly on the position ``t mod L`` inside the
multi-timescale period ``L``.

Shape glossary:

    ======  ==============================================================
    ``B``   any number of leading batch dims (``*B``), e.g. ``(E, n_agents)``
    ``K``   number of control points (``n_control_points``, >= 4)
    ``I``   input features (``in_features``)
    ``O``   output features (``out_features``)
    ======  ==============================================================

Phase convention: ``phase`` is the fraction of the cycle, ``u`` in ``[0, 1)``;
values outside wrap (``u mod 1``), so ``t / L`` can be passed as is. (The
original PFNN runtime takes ``[0, 2 pi)``: divide by ``2 pi`` first.)

This module imports only :mod:`torch` so that ``from mtmarl.nn import
PhaseLinear`` stays light for other projects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PhaseLinear", "PhaseMLP", "catmull_rom_coefficients"]


def _check_n_control_points(n_control_points: int, who: str) -> None:
    if isinstance(n_control_points, bool) or not isinstance(n_control_points, int):
        raise TypeError(
            f"{who} expected n_control_points to be an int >= 4, "
            f"got {type(n_control_points).__name__} {n_control_points!r}"
        )
    if n_control_points < 4:
        raise ValueError(
            f"{who} expected n_control_points >= 4 (a cyclic Catmull-Rom spline "
            f"needs 4 distinct neighbours), got {n_control_points}"
        )


def _catmull_rom_kernel(d: torch.Tensor) -> torch.Tensor:
    """Catmull-Rom cardinal kernel (Keys' cubic convolution with ``a = -1/2``).

    For a sample at distance ``d`` from a control point, the weight of that
    control point is ``1 - 5/2 d^2 + 3/2 |d|^3`` for ``|d| <= 1``,
    ``2 - 4|d| + 5/2 d^2 - 1/2 |d|^3`` for ``1 < |d| < 2`` and ``0`` beyond.
    Evaluated at ``d = w, 1 + w, 1 - w, 2 - w`` this is exactly Holden et al.'s
    ``c1, c0, c2, c3`` (see ``catmull_rom_coefficients``).
    """
    a = d.abs()
    a2 = a * a
    a3 = a2 * a
    inner = 1.0 - 2.5 * a2 + 1.5 * a3
    outer = 2.0 - 4.0 * a + 2.5 * a2 - 0.5 * a3
    zero = torch.zeros((), dtype=d.dtype, device=d.device)
    return torch.where(a <= 1.0, inner, torch.where(a < 2.0, outer, zero))


def catmull_rom_coefficients(phase: torch.Tensor, n_control_points: int) -> torch.Tensor:
    """Weights of the ``K`` control points of a cyclic Catmull-Rom spline.

    With ``s = K * (u mod 1)``, ``k1 = floor(s)``, ``w = s - k1`` and
    ``k0, k2, k3 = k1 - 1, k1 + 1, k1 + 2`` (all mod ``K``), the spline value is
    ``c0(w) P[k0] + c1(w) P[k1] + c2(w) P[k2] + c3(w) P[k3]`` with Holden et al.'s

    * ``c0(w) = -1/2 w + w^2 - 1/2 w^3``
    * ``c1(w) = 1 - 5/2 w^2 + 3/2 w^3``
    * ``c2(w) = 1/2 w + 2 w^2 - 3/2 w^3``
    * ``c3(w) = -1/2 w^2 + 1/2 w^3``

    This function returns those four weights scattered into a dense ``(*B, K)``
    tensor (zeros elsewhere), so that ``coeffs @ P`` evaluates the spline. It is
    computed without indexing (a cyclic distance and a cubic kernel), so it is
    branch-free, needs no host synchronisation, compiles with
    :func:`torch.compile`, is differentiable in ``phase`` and maps a NaN phase to
    a row of NaNs rather than to an index error.

    Args:
        phase (torch.Tensor): floating tensor of any shape ``(*B,)``: the
            fraction of the cycle. Values outside ``[0, 1)`` wrap.
        n_control_points (int): ``K >= 4``.

    Returns:
        torch.Tensor: ``(*B, K)`` coefficients, summing to 1 along the last dim.

    Examples:
        >>> import torch
        >>> c = catmull_rom_coefficients(torch.tensor([0.0, 0.25, 0.6, 1.25]), 4)
        >>> c.shape
        torch.Size([4, 4])
        >>> torch.allclose(c.sum(-1), torch.ones(4))
        True
        >>> c[1].tolist()  # exactly on control point 1; 1.25 wraps to the same
        [0.0, 1.0, 0.0, 0.0]
        >>> torch.equal(c[1], c[3])
        True
    """
    _check_n_control_points(n_control_points, "catmull_rom_coefficients")
    if not isinstance(phase, torch.Tensor):
        raise TypeError(
            f"catmull_rom_coefficients expected phase to be a torch.Tensor, "
            f"got {type(phase).__name__}"
        )
    if not phase.is_floating_point():
        raise TypeError(
            f"catmull_rom_coefficients expected a floating-point phase (fraction of "
            f"the cycle), got dtype {phase.dtype}"
        )
    k = n_control_points
    u = phase - torch.floor(phase)  # wrap into [0, 1); NaN/inf -> NaN
    s = (u * k).unsqueeze(-1)
    points = torch.arange(k, dtype=phase.dtype, device=phase.device)
    d = s - points  # signed distance to every control point ...
    d = d - k * torch.floor(d / k + 0.5)  # ... made cyclic: in [-K/2, K/2)
    coeffs = _catmull_rom_kernel(d)
    # torch.where maps NaN distances to 0: put the NaN back so that a bad phase
    # never produces a valid-looking output (0 * NaN = NaN, 0 * finite = 0).
    return coeffs + 0.0 * s


def _split_phase(phase: torch.Tensor, batch_shape: torch.Size, who: str) -> torch.Tensor:
    """Validate ``phase`` against ``batch_shape`` and drop an optional trailing 1."""
    if not isinstance(phase, torch.Tensor):
        raise TypeError(f"{who} expected phase to be a torch.Tensor, got {type(phase).__name__}")
    if not phase.is_floating_point():
        raise TypeError(
            f"{who} expected a floating-point phase (fraction of the cycle), got dtype "
            f"{phase.dtype}; convert a step count with `t.float() / period`"
        )
    if phase.ndim == len(batch_shape) + 1 and phase.ndim > 0 and phase.shape[-1] == 1:
        phase = phase.squeeze(-1)
    if phase.ndim > len(batch_shape):
        raise ValueError(
            f"{who} expected phase of a shape that broadcasts to {tuple(batch_shape)} "
            f"(optionally with a trailing dim of size 1), got {tuple(phase.shape)}"
        )
    try:
        broadcast = torch.broadcast_shapes(phase.shape, batch_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != batch_shape:
        raise ValueError(
            f"{who} expected phase of a shape that broadcasts to {tuple(batch_shape)} "
            f"(optionally with a trailing dim of size 1), got {tuple(phase.shape)}"
        )
    return phase


class PhaseLinear(nn.Module):
    """A linear layer whose weight and bias follow a cyclic Catmull-Rom spline in phase.

    ``y = W(u) x + b(u)`` where ``W(u) = sum_j c_j(u) weight[j]`` and
    ``b(u) = sum_j c_j(u) bias[j]`` with ``c = catmull_rom_coefficients(u, K)``.

    It is computed the fast way: one ``F.linear`` of ``x`` against all ``K``
    control points stacked (``(K * O, I)``), then a mix of the ``K`` results with
    the ``(*B, K)`` spline coefficients -- about ``K`` times the cost of one
    ``nn.Linear(I, O)`` and never a per-sample ``(O, I)`` weight matrix.

    Expects ``x`` of shape ``(*B, in_features)`` and ``phase`` of a shape that
    broadcasts to ``(*B,)`` -- e.g. ``(*B,)``, or ``(E, 1)`` for one phase per
    env when ``*B = (E, n_agents)`` -- or the same with a trailing dim of size 1
    (``(*B, 1)``). Returns ``(*B, out_features)``. Works unchanged inside a
    ``TensorDictModule(layer, in_keys=["observation", "phase"], ...)``.

    Args:
        in_features (int): size ``I`` of each input sample.
        out_features (int): size ``O`` of each output sample.

    Keyword Args:
        n_control_points (int): number ``K >= 4`` of spline control points.
            Defaults to ``4`` (the PFNN paper's value).
        bias (bool): learn a phase-dependent bias. Defaults to ``True``.
        device (torch.device, optional): device of the parameters.
        dtype (torch.dtype, optional): dtype of the parameters.

    Attributes:
        weight (nn.Parameter): ``(K, out_features, in_features)``, control point
            ``j`` is the weight used at phase ``j / K``.
        bias (nn.Parameter or None): ``(K, out_features)``.

    Initialisation: every control point is initialised independently, exactly
    like an ``nn.Linear`` (Kaiming-uniform weight, uniform bias), so the layer
    starts phase-dependent -- as the PFNN reference code does -- and the
    gradient of each control point is informative from the first step.

    Examples:
        >>> import torch
        >>> layer = PhaseLinear(3, 2)
        >>> layer.weight.shape, layer.bias.shape
        (torch.Size([4, 2, 3]), torch.Size([4, 2]))
        >>> x = torch.randn(5, 7, 3)                 # (E, n_agents, I)
        >>> y = layer(x, torch.rand(5, 1))           # one phase per env
        >>> y.shape
        torch.Size([5, 7, 2])
        >>> # at phase j / K the layer is exactly control point j
        >>> y1 = layer(x, torch.full((5, 7), 0.25))
        >>> torch.allclose(y1, x @ layer.weight[1].T + layer.bias[1])
        True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        n_control_points: int = 4,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_n_control_points(n_control_points, "PhaseLinear")
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PhaseLinear expected {name} to be a positive int, got {value!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.n_control_points = n_control_points
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(n_control_points, out_features, in_features, **factory)
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(n_control_points, out_features, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise every control point like a fresh ``nn.Linear``."""
        for j in range(self.n_control_points):
            nn.init.kaiming_uniform_(self.weight[j], a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def coefficients(self, phase: torch.Tensor) -> torch.Tensor:
        """Spline coefficients ``(*P, K)`` for a phase of shape ``(*P,)``."""
        return catmull_rom_coefficients(phase, self.n_control_points)

    def weights_at(self, phase: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The effective parameters at ``phase``, for inspection and plotting.

        Args:
            phase (torch.Tensor): ``(*P,)`` fractions of the cycle.

        Returns:
            ``(W, b)`` with ``W`` of shape ``(*P, out_features, in_features)`` and
            ``b`` of shape ``(*P, out_features)`` (``None`` without bias). This is
            the slow per-sample path: ``forward`` never builds it.
        """
        c = self.coefficients(phase)
        w = torch.tensordot(c, self.weight, dims=([-1], [0]))
        b = None if self.bias is None else c @ self.bias
        return w, b

    def forward(self, x: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """Apply the layer.

        Args:
            x (torch.Tensor): ``(*B, in_features)``.
            phase (torch.Tensor): floating, broadcastable to ``(*B,)`` or ``(*B, 1)``.

        Returns:
            torch.Tensor: ``(*B, out_features)``.
        """
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"PhaseLinear expected x of shape (*B, {self.in_features}), got {tuple(x.shape)}"
            )
        batch_shape = x.shape[:-1]
        phase = _split_phase(phase, batch_shape, "PhaseLinear")
        k, o = self.n_control_points, self.out_features
        weight = self.weight.reshape(k * o, self.in_features)
        bias = None if self.bias is None else self.bias.reshape(k * o)
        y_all = F.linear(x, weight, bias).unflatten(-1, (k, o))  # (*B, K, O)
        c = self.coefficients(phase.to(x.dtype))  # (*P, K), broadcasts to (*B, K)
        return (c.unsqueeze(-1) * y_all).sum(-2)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"n_control_points={self.n_control_points}, bias={self.bias is not None}"
        )


class PhaseMLP(nn.Module):
    """A stack of :class:`PhaseLinear` layers: the PFNN actor/critic body.

    ``PhaseLinear -> activation -> ... -> PhaseLinear``; every layer reads the
    same phase. Expects ``x`` of shape ``(*B, in_features)`` and a phase that
    broadcasts to ``(*B,)`` (or ``(*B, 1)``, see :class:`PhaseLinear`); returns
    ``(*B, out_features)``. Parameter sharing over agents is free: pass
    ``(*B, n_agents, in_features)``.

    Args:
        in_features (int): input size.
        out_features (int): output size.

    Keyword Args:
        num_cells (Sequence[int]): hidden layer sizes. Defaults to ``(64, 64)``.
        activation (type[nn.Module]): activation class, instantiated once per
            hidden layer. Defaults to :class:`torch.nn.ELU` (as in PFNN).
        n_control_points (int): spline control points of every layer. Defaults to 4.
        device (torch.device, optional): device of the parameters.
        dtype (torch.dtype, optional): dtype of the parameters.

    Examples:
        >>> import torch
        >>> mlp = PhaseMLP(4, 3, num_cells=(16,))
        >>> [type(m).__name__ for m in mlp.layers]
        ['PhaseLinear', 'ELU', 'PhaseLinear']
        >>> mlp(torch.randn(8, 2, 4), torch.rand(8, 2)).shape
        torch.Size([8, 2, 3])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        num_cells: Sequence[int] = (64, 64),
        activation: type[nn.Module] = nn.ELU,
        n_control_points: int = 4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_cells, int):
            raise TypeError(
                f"PhaseMLP expected num_cells to be a sequence of ints, got the int {num_cells}; "
                f"write num_cells=({num_cells},)"
            )
        sizes = [in_features, *num_cells, out_features]
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(
                PhaseLinear(
                    n_in, n_out, n_control_points=n_control_points, device=device, dtype=dtype
                )
            )
            if i < len(sizes) - 2:
                layers.append(activation())
        self.layers = nn.ModuleList(layers)
        self.in_features = in_features
        self.out_features = out_features
        self.n_control_points = n_control_points

    def forward(self, x: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """Apply the stack; shapes as in :class:`PhaseLinear`."""
        for layer in self.layers:
            x = layer(x, phase) if isinstance(layer, PhaseLinear) else layer(x)
        return x
