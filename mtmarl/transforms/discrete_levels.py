"""Continuous per-agent actions as ``K`` levels each: a discrete action space for COMA.

COMA's critic outputs one value per action of an agent, so it needs discrete actions; the
building's are continuous. :class:`DiscreteActionLevels` puts ``K`` evenly spaced levels on every
action dim of a ``Bounded`` per-agent action ``(*B, N, A)`` (both bounds included) and offers the
policy a ``Categorical(K ** A)`` action ``(*B, N)`` instead; the inverse maps an index back to
its levels before the env sees it. Placed *before* an
:class:`~mtmarl.transforms.ActionFrequencyMask` in the stack, the mask sees a discrete action,
holds the index and writes its action mask, so a held action is a forced choice of the
discrete policy (log-prob 0, stored = executed).
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import Bounded, Categorical, Composite
from torchrl.envs.transforms import Transform

from mtmarl.transforms._utils import check_key

__all__ = ["DiscreteActionLevels"]

_WHO = "DiscreteActionLevels"


class DiscreteActionLevels(Transform):
    """Offer ``K ** A`` discrete choices per agent for a ``Bounded`` ``(*B, N, A)`` action.

    Index ``i`` of agent ``n`` means, for action dim ``d`` (dim 0 the most significant digit of
    ``i`` in base ``K``), the level ``low[n, d] + (high[n, d] - low[n, d]) * k_d / (K - 1)``
    with ``k_d`` that digit: ``K = 2`` gives the two bounds, ``K = 3`` adds the midpoint.

    **Keys.** Reads (inverse) the index at ``action_key`` ``(*B, N)`` int64 and writes the
    levels there ``(*B, N, A)`` (the env's dtype). The env's action spec at ``action_key``
    becomes ``Categorical(K ** A)`` of shape ``(*B, N)``; the bounds must not vary across envs.

    Args:
        levels (int): ``K >= 2`` levels per action dim.

    Keyword Args:
        action_key (NestedKey): the per-agent action. Defaults to ``("agents", "action")``.

    Raises:
        ValueError: ``levels < 2``; at append time an action that is not a float ``Bounded``
            of shape ``(*B, N, A)``, or bounds that vary across envs; at a step an index out of
            ``[0, K ** A)``.
        TypeError: a non-integer ``levels``; at a step an index that is not an integer.

    Examples:
        >>> import torch
        >>> from torchrl.envs import TransformedEnv
        >>> from mtmarl.envs import BuildingEnv
        >>> env = TransformedEnv(BuildingEnv(num_envs=2, seed=0), DiscreteActionLevels(5))
        >>> spec = env.full_action_spec["agents", "action"]
        >>> type(spec).__name__, tuple(spec.shape), spec.n
        ('Categorical', (2, 7), 5)
        >>> transform = env.transform
        >>> transform.levels_of(torch.tensor([[0, 2, 4, 1, 3, 0, 4]]))[0, :3, 0].tolist()
        [-1.0, 0.0, 1.0]
        >>> td = env.rand_step(env.reset())
        >>> td["agents", "action"].dtype
        torch.int64
    """

    def __init__(self, levels: int, *, action_key: NestedKey = ("agents", "action")) -> None:
        if isinstance(levels, bool) or not isinstance(levels, int):
            raise TypeError(f"{_WHO} expected levels to be an int >= 2, got {levels!r}")
        if levels < 2:
            raise ValueError(f"{_WHO} expected levels >= 2, got {levels}")
        action_key = check_key(action_key, "action_key", _WHO)
        super().__init__(
            in_keys=[], out_keys=[], in_keys_inv=[action_key], out_keys_inv=[action_key]
        )
        self.levels = levels
        self.action_key = action_key
        self._table: torch.Tensor | None = None  # (N, K ** A, A)

    def set_container(self, container: Transform | torch.nn.Module) -> None:
        """Attaches the transform; checks the parent env's action spec as soon as it is known."""
        super().set_container(container)
        if self.parent is not None:  # raises now (at append time) on an action it cannot take
            self.transform_input_spec(self.parent.input_spec.clone())

    def transform_input_spec(self, input_spec: Composite) -> Composite:
        key = (
            "full_action_spec",
            *((self.action_key,) if isinstance(self.action_key, str) else self.action_key),
        )
        if key not in input_spec.keys(True, True):
            raise KeyError(f"{_WHO}: the env has no action at {self.action_key!r}")
        spec = input_spec[key]
        if not (
            isinstance(spec, Bounded) and spec.dtype.is_floating_point and len(spec.shape) >= 2
        ):
            raise ValueError(
                f"{_WHO} expected a float Bounded per-agent action (*B, N, A) at "
                f"{self.action_key!r}, got {type(spec).__name__} of shape {tuple(spec.shape)}"
            )
        low, high = spec.space.low, spec.space.high
        flat_low = low.reshape(-1, *low.shape[-2:])
        flat_high = high.reshape(-1, *high.shape[-2:])
        if not (bool((flat_low == flat_low[0]).all()) and bool((flat_high == flat_high[0]).all())):
            raise ValueError(f"{_WHO} expected bounds that do not vary across envs")
        low, high = flat_low[0], flat_high[0]  # (N, A)
        action_dim = low.shape[-1]
        n = self.levels**action_dim
        # digits of every index in base K, dim 0 the most significant: (n, A)
        index = torch.arange(n, device=low.device)
        powers = self.levels ** torch.arange(action_dim - 1, -1, -1, device=low.device)
        digits = (index.unsqueeze(-1) // powers) % self.levels
        fraction = digits.to(low.dtype) / (self.levels - 1)
        self._table = low.unsqueeze(-2) + (high - low).unsqueeze(-2) * fraction  # (N, n, A)
        self._dtype = spec.dtype
        input_spec[key] = Categorical(n, shape=spec.shape[:-1], device=spec.device)
        return input_spec

    def levels_of(self, index: torch.Tensor) -> torch.Tensor:
        """The levels ``(*B, N, A)`` of the indices ``(*B, N)``.

        Raises:
            TypeError: a non-integer index.
            ValueError: an index out of ``[0, K ** A)``.
        """
        if self._table is None:
            raise RuntimeError(f"{_WHO} has no action spec yet: append it to an env first")
        if index.dtype.is_floating_point or index.dtype == torch.bool:
            raise TypeError(
                f"{_WHO} expected integer action indices at {self.action_key!r}, got {index.dtype}"
            )
        n = self._table.shape[-2]
        if bool(((index < 0) | (index >= n)).any()):
            raise ValueError(
                f"{_WHO} expected action indices in [0, {n}) at {self.action_key!r}, got "
                f"{sorted(set(index[(index < 0) | (index >= n)].tolist()))}"
            )
        table = self._table.to(index.device)
        expanded = table.expand(*index.shape[:-1], *table.shape)  # (*B, N, n, A)
        gather = index.long()[..., None, None].expand(*index.shape, 1, table.shape[-1])
        return expanded.gather(-2, gather).squeeze(-2).to(self._dtype)

    def _inv_apply_transform(self, state: torch.Tensor) -> torch.Tensor:
        return self.levels_of(state)

    def _inv_call(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self._table is None:  # the specs are built lazily
            _ = self.parent.full_action_spec
        return super()._inv_call(tensordict)
