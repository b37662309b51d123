"""TorchRL specs as Gymnasium spaces, and tensors as samples of those spaces (and back).

:func:`spec_to_space` converts a spec as it is (every dim of its shape becomes part of the
space); :func:`agent_spec` first drops an environment's batch dims and picks one agent out
of a per-agent spec, so that ``spec_to_space(agent_spec(spec, i, batch_dims=...))`` is the
space of agent ``i`` alone. :func:`tensor_to_sample` and :func:`sample_to_tensor` translate
values between the two worlds (``torch`` tensors in the spec's dtype <-> ``numpy`` arrays,
Python ints and dicts that the space ``contains``).

Conversion table (the spec's ``shape`` is ``S``):

=====================================  =================================================
spec                                   space (sample)
=====================================  =================================================
``Binary``, bool ``Categorical``       ``MultiBinary(S)`` (``int8`` array); a scalar
                                       (``S == ()``) bool ``Categorical`` is
                                       ``Discrete(2)`` (``int``)
``Categorical(n)``                     ``Discrete(n)`` if ``S == ()`` (``int``), else
                                       ``MultiDiscrete(full(S, n))`` (``int64`` array)
``MultiCategorical(nvec)``             ``MultiDiscrete(nvec)`` (``int64`` array)
``OneHot(n)``                          ``Discrete(n)`` if ``S == (n,)`` (the index, an
                                       ``int``), else ``MultiDiscrete(full(S[:-1], n))``
``Bounded``                            ``Box(low, high, S, dtype)``
``Unbounded``                          ``Box(-inf, inf, S)`` (integer dtypes: the dtype's
                                       range)
``Composite``                          ``Dict`` of its entries (nested ``Dict`` for nested
                                       composites; ``None`` entries are skipped)
=====================================  =================================================

Action masks carried by ``Categorical``/``OneHot`` specs are not part of the space (they
change at every step): PettingZoo passes them as an observation (see
:func:`~mtmarl.interop.to_pettingzoo`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from gymnasium import spaces
from torchrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    TensorSpec,
    Unbounded,
)

__all__ = ["agent_spec", "sample_to_tensor", "spec_to_space", "tensor_to_sample"]

_SUPPORTED = "Binary, Categorical, MultiCategorical, OneHot, Bounded, Unbounded or Composite"


def _np_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty((), dtype=dtype).numpy().dtype


def _unsupported(spec: object, who: str) -> TypeError:
    return TypeError(f"{who} expected a {_SUPPORTED} spec, got {type(spec).__name__}")


def _is_binary(spec: TensorSpec) -> bool:
    """``Binary`` specs and bool ``Categorical`` ones (torchrl's done flags)."""
    return isinstance(spec, Binary) or (
        isinstance(spec, Categorical) and spec.dtype == torch.bool and spec.shape != ()
    )


def agent_spec(spec: TensorSpec, agent: int, *, batch_dims: int = 0) -> TensorSpec:
    """The spec of one agent: drops ``batch_dims`` leading env dims, then indexes the agent dim.

    Per-agent specs have shape ``(*B, N, *event)`` with ``len(B) == batch_dims``. The env
    batch dims must be of size 1 (PettingZoo and Gymnasium environments are single
    environments); agent ``agent`` is picked from the ``N`` dim, so per-agent bounds (a
    ``Bounded`` spec whose ``low``/``high`` differ between agents) are kept.

    Args:
        spec (TensorSpec): a per-agent spec of shape ``(*B, N, *event)``, e.g.
            ``env.full_action_spec["agents", "action"]``.
        agent (int): the agent's index in ``[0, N)``.

    Keyword Args:
        batch_dims (int): number of leading env batch dims ``len(B)``. Defaults to ``0``.

    Returns:
        TensorSpec: the spec of agent ``agent``, of shape ``event``.

    Raises:
        ValueError: a batch dim of size other than 1, or an agent index out of range.

    Examples:
        >>> from torchrl.data import Bounded
        >>> spec = Bounded(low=-1.0, high=torch.tensor([[[1.0], [2.0]]]), shape=(1, 2, 1))
        >>> one = agent_spec(spec, 1, batch_dims=1)
        >>> one.shape, one.space.high.tolist()
        (torch.Size([1]), [2.0])
    """
    who = "agent_spec"
    if isinstance(batch_dims, bool) or not isinstance(batch_dims, int) or batch_dims < 0:
        raise ValueError(f"{who} expected batch_dims to be an int >= 0, got {batch_dims!r}")
    shape = tuple(spec.shape)
    if len(shape) <= batch_dims:
        raise ValueError(
            f"{who} expected a spec of shape (*B, N, ...) with {batch_dims} batch dim(s) and an "
            f"agent dim, got shape {shape}"
        )
    if any(d != 1 for d in shape[:batch_dims]):
        raise ValueError(
            f"{who} expected batch dims of size 1 (a single environment), got the batch shape "
            f"{shape[:batch_dims]}"
        )
    n_agents = shape[batch_dims]
    if isinstance(agent, bool) or not isinstance(agent, int) or not 0 <= agent < n_agents:
        raise ValueError(f"{who} expected an agent index in [0, {n_agents}), got {agent!r}")
    return spec[(0,) * batch_dims + (agent,)]


def spec_to_space(spec: TensorSpec) -> spaces.Space:
    """The Gymnasium space of ``spec`` (see the module docstring for the table).

    The whole shape of the spec goes into the space: drop batch and agent dims first with
    :func:`agent_spec`.

    Args:
        spec (TensorSpec): a ``Binary``, ``Categorical``, ``MultiCategorical``,
            ``OneHot``, ``Bounded``, ``Unbounded`` or ``Composite`` spec.

    Returns:
        gymnasium.spaces.Space: ``Discrete``, ``MultiDiscrete``, ``MultiBinary``, ``Box``
        or ``Dict``.

    Raises:
        TypeError: any other spec type.

    Examples:
        >>> from torchrl.data import Bounded, Categorical, Composite
        >>> spec_to_space(Categorical(3))
        Discrete(3)
        >>> space = spec_to_space(Composite(mode=Categorical(3), power=Bounded(-1.0, 1.0, (2,))))
        >>> space["power"].shape, int(space["mode"].n)
        ((2,), 3)
    """
    who = "spec_to_space"
    shape = tuple(spec.shape)
    if isinstance(spec, Composite):
        return spaces.Dict(
            {key: spec_to_space(value) for key, value in spec.items() if value is not None}
        )
    if _is_binary(spec):
        return spaces.MultiBinary(list(shape))
    if isinstance(spec, MultiCategorical):
        return spaces.MultiDiscrete(spec.nvec.detach().cpu().numpy().astype(np.int64))
    if isinstance(spec, MultiOneHot):
        raise _unsupported(spec, who)
    if isinstance(spec, Categorical):
        n = int(spec.space.n)
        if not shape:
            return spaces.Discrete(n)
        return spaces.MultiDiscrete(np.full(shape, n, dtype=np.int64))
    if isinstance(spec, OneHot):
        n = int(spec.space.n)
        if len(shape) == 1:
            return spaces.Discrete(n)
        return spaces.MultiDiscrete(np.full(shape[:-1], n, dtype=np.int64))
    if isinstance(spec, Bounded):
        dtype = _np_dtype(spec.dtype)
        low = spec.space.low.detach().cpu().numpy().astype(dtype)
        high = spec.space.high.detach().cpu().numpy().astype(dtype)
        return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    if isinstance(spec, Unbounded):
        dtype = _np_dtype(spec.dtype)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return spaces.Box(low=info.min, high=info.max, shape=shape, dtype=dtype)
        if dtype == np.bool_:
            return spaces.MultiBinary(list(shape))
        return spaces.Box(low=-np.inf, high=np.inf, shape=shape, dtype=dtype)
    raise _unsupported(spec, who)


def tensor_to_sample(spec: TensorSpec, value: torch.Tensor | Mapping) -> object:
    """A value of ``spec`` as a sample of :func:`spec_to_space` ``(spec)``.

    Args:
        spec (TensorSpec): the value's spec (same shape as the value).
        value (torch.Tensor | Mapping): a tensor of shape ``spec.shape``, or for a
            ``Composite`` a tensordict / mapping of its entries.

    Returns:
        object: an ``int`` (``Discrete``), a numpy array (``MultiDiscrete``, ``int8``
        ``MultiBinary``, ``Box`` in the spec's dtype) or a ``dict`` (``Dict``).

    Examples:
        >>> from torchrl.data import Binary, OneHot
        >>> tensor_to_sample(OneHot(4), torch.tensor([False, False, True, False]))
        2
        >>> tensor_to_sample(Binary(3), torch.tensor([True, False, True])).tolist()
        [1, 0, 1]
    """
    who = "tensor_to_sample"
    if isinstance(spec, Composite):
        return {
            key: tensor_to_sample(sub, value[key]) for key, sub in spec.items() if sub is not None
        }
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{who} expected a tensor for a {type(spec).__name__} spec, got {type(value).__name__}"
        )
    if tuple(value.shape) != tuple(spec.shape):
        raise ValueError(
            f"{who} expected a value of shape {tuple(spec.shape)}, got {tuple(value.shape)}"
        )
    array = value.detach().cpu().numpy()
    if _is_binary(spec):
        return array.astype(np.int8)
    if isinstance(spec, MultiCategorical):
        return array.astype(np.int64)
    if isinstance(spec, Categorical):
        return int(array) if not spec.shape else array.astype(np.int64)
    if isinstance(spec, MultiOneHot):
        raise _unsupported(spec, who)
    if isinstance(spec, OneHot):
        index = array.argmax(-1)
        return int(index) if len(spec.shape) == 1 else index.astype(np.int64)
    if isinstance(spec, Unbounded) and spec.dtype == torch.bool:
        return array.astype(np.int8)
    if isinstance(spec, (Bounded, Unbounded)):
        return array
    raise _unsupported(spec, who)


def sample_to_tensor(
    spec: TensorSpec, sample: object, *, device: torch.device | str | None = None
) -> torch.Tensor | dict:
    """A sample of :func:`spec_to_space` ``(spec)`` as a tensor of ``spec`` (the inverse of
    :func:`tensor_to_sample`).

    The sample's shape is checked against the spec (scalars for ``Discrete``); values are
    not range-checked here (the environment does that).

    Args:
        spec (TensorSpec): the target spec.
        sample (object): an ``int``/array (``Discrete``, ``MultiDiscrete``,
            ``MultiBinary``, ``Box``) or a mapping (``Dict``).

    Keyword Args:
        device (torch.device | str | None): device of the tensor. Defaults to ``None``
            (the spec's device).

    Returns:
        torch.Tensor | dict: a tensor of shape ``spec.shape`` and dtype ``spec.dtype``, or
        for a ``Composite`` a dict of such tensors.

    Raises:
        ValueError: a sample of the wrong shape.
        KeyError: a missing entry of a ``Dict`` sample.

    Examples:
        >>> from torchrl.data import OneHot
        >>> sample_to_tensor(OneHot(3), 1).tolist()
        [False, True, False]
    """
    who = "sample_to_tensor"
    device = spec.device if device is None else device
    if isinstance(spec, Composite):
        if not isinstance(sample, Mapping):
            raise TypeError(
                f"{who} expected a mapping for a Composite spec with entries "
                f"{list(spec.keys())}, got {type(sample).__name__}"
            )
        missing = [key for key, sub in spec.items() if sub is not None and key not in sample]
        if missing:
            raise KeyError(f"{who} expected entries {list(spec.keys())}, missing {missing}")
        return {
            key: sample_to_tensor(sub, sample[key], device=device)
            for key, sub in spec.items()
            if sub is not None
        }
    if not isinstance(spec, (Categorical, OneHot, Bounded, Unbounded)) or isinstance(
        spec, MultiOneHot
    ):
        raise _unsupported(spec, who)
    array = np.asarray(sample)
    if isinstance(spec, OneHot):
        expected = tuple(spec.shape[:-1])
        if array.shape != expected:
            raise ValueError(
                f"{who} expected an index array of shape {expected} for a OneHot spec of shape "
                f"{tuple(spec.shape)}, got {array.shape}"
            )
        index = torch.as_tensor(array.astype(np.int64), device=device)
        return torch.nn.functional.one_hot(index, int(spec.space.n)).to(spec.dtype)
    if array.shape != tuple(spec.shape):
        raise ValueError(f"{who} expected a sample of shape {tuple(spec.shape)}, got {array.shape}")
    if spec.dtype == torch.bool:
        array = array.astype(np.bool_)
    return torch.as_tensor(array, device=device).to(spec.dtype)
