"""Phase encodings of ``t mod L`` for time-aware multi-timescale policies (seed 004).

With agents acting every ``omega_n`` steps, the joint process repeats every
``L = LCM(omega_1, ..., omega_N, Z)`` steps (:func:`~mtmarl.transforms.multi_timescale_period`).
A policy that sees only the current observation aliases the steps of that cycle;
:class:`PhaseEncoding` gives it the position ``t mod L`` in one of three forms:

* ``"phase"`` -- a separate scalar entry ``u = (t mod L) / L`` in ``[0, 1)``, the
  input :class:`~mtmarl.nn.PhaseLinear` / :class:`~mtmarl.nn.PhaseMLP` take;
* ``"onehot"`` -- ``onehot(t mod L)`` appended to observations (the paper's
  "O.H. phase-aware" baseline);
* ``"sincos"`` -- ``(sin 2 pi u, cos 2 pi u)`` appended to observations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import Bounded, Composite, TensorSpec, Unbounded
from torchrl.envs.transforms import Transform

from mtmarl.transforms._utils import (
    as_tuple,
    check_key,
    check_positive_int,
    expand_batch,
    missing_step_error,
    step_spec_from,
)

__all__ = ["PhaseEncoding"]

_MODES = ("phase", "onehot", "sincos")


class PhaseEncoding(Transform):
    """Writes the phase of ``t mod period`` into the observations.

    The time step ``t`` is read from the integer observation entry ``step_key``
    (``(*B, 1)``), by default the ``"step_count"`` that
    :class:`~torchrl.envs.StepCounter` writes, so **this transform needs a
    StepCounter before it** (or any integer clock the environment exposes under
    ``step_key``, e.g. a time-of-day index). It keeps no counter of its own:
    the encoding of a tensordict is a pure function of its own ``t``, so it holds
    after resets (``t = 0``), partial resets, in :class:`~torchrl.envs.ParallelEnv`
    workers and on replayed data. A missing or non-integer clock is reported when
    the transform is appended to an environment.

    Modes (``u = (t mod period) / period``):

    * ``"phase"`` (default): writes a separate entry ``out_keys[0]`` (default
      ``"phase"``) holding ``u`` with the shape of the clock, ``(*B, 1)`` for the
      root ``"step_count"``. :class:`~mtmarl.nn.PhaseLinear` accepts such a
      ``(E, 1)`` phase for per-agent inputs of shape ``(E, N, F)``. A nested
      ``out_key`` such as ``("agents", "phase")`` gets ``u`` broadcast over the
      agent dim: ``(*B, N, 1)``.
    * ``"onehot"``: appends ``onehot(t mod period)`` (``period`` features) to every
      observation in ``in_keys``.
    * ``"sincos"``: appends ``(sin 2 pi u, cos 2 pi u)`` (2 features) to every
      observation in ``in_keys`` (floating-point observations only).

    Appended encodings are broadcast over the leading dims an observation has
    beyond the clock's, e.g. a root clock ``(*B, 1)`` and per-agent observations
    ``(*B, N, F)`` give ``(*B, N, F + period)`` for ``"onehot"``. The observation
    specs are updated (``Unbounded`` and ``Bounded`` observations are supported;
    bounds of the appended features are ``[0, 1]`` or ``[-1, 1]``). Reset
    observations are transformed too.

    **Keys.** Reads ``step_key`` (``(*B, 1)`` int) and, for ``"onehot"``/``"sincos"``,
    ``in_keys`` (``(*B, ..., F)``). Writes, for ``"phase"``, ``out_keys[0]`` of shape
    ``(*B, 1)`` (``(*B, N, 1)`` when nested under a per-agent group), float in ``[0, 1)``;
    otherwise ``out_keys`` of shape ``(*B, ..., F + D)`` with ``D = period``
    (``"onehot"``) or ``2`` (``"sincos"``).

    Args:
        period (int): the period ``L >= 1``, usually
            :func:`~mtmarl.transforms.multi_timescale_period` of the agents' action
            frequencies.

    Keyword Args:
        mode (str): ``"phase"``, ``"onehot"`` or ``"sincos"``. Defaults to
            ``"phase"``.
        in_keys (Sequence[NestedKey] | None): observations to append the encoding
            to (``"onehot"``/``"sincos"`` only; must be ``None`` for ``"phase"``).
            Defaults to ``[("agents", "observation")]``.
        out_keys (Sequence[NestedKey] | None): where to write. For ``"phase"``, one
            key, default ``["phase"]``; otherwise one key per in-key, default
            ``in_keys`` (the encoding is appended in place; a different out-key
            keeps the original observation and writes the extended one there).
        step_key (NestedKey): the integer clock ``t``, of shape ``(*B, 1)``.
            Defaults to ``"step_count"``.
        dtype (torch.dtype | None): dtype of the ``"phase"`` entry. Appended
            encodings take the dtype of the observation they extend. Defaults to
            ``torch.get_default_dtype()``.

    Raises:
        ValueError: ``period < 1``, an unknown ``mode``, ``in_keys`` given with
            ``mode="phase"``, or ``in_keys``/``out_keys`` of different lengths.
        TypeError: a non-integer ``period``, keys that are not keys, a non-floating
            ``dtype``; at append time a non-integer clock, or ``"sincos"`` on an
            integer observation.
        KeyError: when appended to an environment that lacks ``step_key`` or an
            in-key in its observation spec.

    Attributes:
        encoding (torch.Tensor): buffer of shape ``(period, D)`` (``D = 1`` for
            ``"phase"``): row ``k`` is the encoding of ``t mod period = k``. Part of
            the ``state_dict``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> enc = PhaseEncoding(4)  # mode="phase": a separate "phase" entry
        >>> td = TensorDict({"step_count": torch.tensor([[0], [1], [6]])}, batch_size=[3])
        >>> enc(td)["phase"].squeeze(-1).tolist()
        [0.0, 0.25, 0.5]
        >>> onehot = PhaseEncoding(3, mode="onehot")
        >>> td = TensorDict(
        ...     {
        ...         "step_count": torch.tensor([[4]]),
        ...         "agents": TensorDict(
        ...             {"observation": torch.zeros(1, 2, 5)}, batch_size=[1, 2]
        ...         ),
        ...     },
        ...     batch_size=[1],
        ... )
        >>> obs = onehot(td)["agents", "observation"]
        >>> obs.shape  # 5 features + one-hot of 4 mod 3, broadcast over the 2 agents
        torch.Size([1, 2, 8])
        >>> obs[0, :, 5:].tolist()
        [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]

        In an environment, after a :class:`~torchrl.envs.StepCounter`:

        >>> from torchrl.envs import Compose, StepCounter, TransformedEnv
        >>> from torchrl.testing.mocking_classes import NestedCountingEnv
        >>> env = TransformedEnv(
        ...     NestedCountingEnv(nested_dim=2, has_root_done=True),
        ...     Compose(StepCounter(), PhaseEncoding(2, out_keys=[("data", "phase")])),
        ... )
        >>> env.rollout(3)["next", "data", "phase"][:, 0, 0].tolist()
        [0.5, 0.0, 0.5]
    """

    def __init__(
        self,
        period: int,
        *,
        mode: str = "phase",
        in_keys: Sequence[NestedKey] | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        step_key: NestedKey = "step_count",
        dtype: torch.dtype | None = None,
    ) -> None:
        who = "PhaseEncoding"
        period = check_positive_int(period, "period", who)
        if mode not in _MODES:
            raise ValueError(f"{who} expected mode to be one of {_MODES}, got {mode!r}")
        step_key = check_key(step_key, "step_key", who)
        if dtype is None:
            dtype = torch.get_default_dtype()
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"{who} expected a floating-point dtype, got {dtype!r}")
        in_keys = _key_list(in_keys, "in_keys", who)
        out_keys = _key_list(out_keys, "out_keys", who)
        if mode == "phase":
            if in_keys is not None:
                raise ValueError(
                    f"{who} with mode='phase' writes a separate entry and reads no "
                    f"observation: in_keys must be None, got {in_keys}; use mode='onehot' "
                    f"or 'sincos' to append the encoding to observations"
                )
            out_keys = out_keys if out_keys is not None else ["phase"]
            if len(out_keys) != 1:
                raise ValueError(
                    f"{who} with mode='phase' expected exactly one out_key, got {out_keys}"
                )
            in_keys = [step_key]
        else:
            in_keys = in_keys if in_keys is not None else [("agents", "observation")]
            out_keys = out_keys if out_keys is not None else list(in_keys)
            if len(in_keys) != len(out_keys):
                raise ValueError(
                    f"{who} expected as many out_keys as in_keys, got {len(in_keys)} in_keys "
                    f"{in_keys} and {len(out_keys)} out_keys {out_keys}"
                )
            if len(in_keys) == 0:
                raise ValueError(f"{who} with mode={mode!r} expected at least one in_key")
        super().__init__(in_keys=in_keys, out_keys=out_keys)
        self.period = period
        self.mode = mode
        self.step_key = step_key
        self.dtype = dtype
        self.register_buffer("encoding", _encoding_table(period, mode, dtype))

    # ------------------------------------------------------------------ helpers
    @property
    def encoding_dim(self) -> int:
        """Number of features the encoding adds (``1``, ``period`` or ``2``)."""
        return int(self.encoding.shape[-1])

    def encode(self, step: torch.Tensor) -> torch.Tensor:
        """Encoding of an integer clock.

        Args:
            step (torch.Tensor): ``(*S, 1)`` integer time steps.

        Returns:
            torch.Tensor: ``(*S, D)`` encodings of ``step mod period``.

        Examples:
            >>> import torch
            >>> PhaseEncoding(4, mode="sincos").encode(torch.tensor([[1]])).round().tolist()
            [[1.0, 0.0]]
        """
        index = torch.remainder(step[..., 0], self.period)
        # index_select, not advanced indexing: the latter is much slower on CPU
        code = self.encoding.index_select(0, index.reshape(-1))
        return code.reshape(*index.shape, code.shape[-1])

    def _apply_all(self, tensordict: TensorDictBase) -> TensorDictBase:
        step = tensordict.get(self.step_key, None)
        if step is None:
            if self.missing_tolerance:
                return tensordict
            raise missing_step_error(self.step_key, "PhaseEncoding")
        code = self.encode(step)
        if self.mode == "phase":
            out_key = self.out_keys[0]
            if isinstance(out_key, tuple) and len(out_key) > 1:
                node = tensordict.get(out_key[:-1])
                node.set(out_key[-1], expand_batch(code, node.batch_size))
            else:
                tensordict.set(out_key, code)
            return tensordict
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            obs = tensordict.get(in_key, None)
            if obs is None:
                if self.missing_tolerance:
                    continue
                raise KeyError(
                    f"PhaseEncoding expected the observation {in_key!r} in the tensordict, "
                    f"but it is missing"
                )
            extra = expand_batch(code, obs.shape[:-1])
            if extra.dtype != obs.dtype:
                extra = extra.to(obs.dtype)
            tensordict.set(out_key, torch.cat((obs, extra), dim=-1))
        return tensordict

    # ---------------------------------------------------------- Transform API
    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        return self._apply_all(next_tensordict)

    def _reset(
        self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        return self._apply_all(tensordict_reset)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Encodes a tensordict outside an environment (e.g. replay-buffer samples).

        The root is encoded from its own ``step_key``; a ``"next"`` sub-tensordict
        that holds ``step_key`` is encoded from its own clock too.

        Args:
            tensordict (TensorDictBase): data with ``step_key`` ``(*B, 1)``.

        Returns:
            TensorDictBase: the same tensordict, with the encoding written.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> td = TensorDict(
            ...     {"step_count": torch.tensor([[1]]), "next": {"step_count": torch.tensor([[2]])}},
            ...     batch_size=[1],
            ... )
            >>> td = PhaseEncoding(2)(td)
            >>> td["phase"].item(), td["next", "phase"].item()
            (0.5, 0.0)
        """
        self._apply_all(tensordict)
        next_td = tensordict.get("next", None)
        if isinstance(next_td, TensorDictBase) and self.step_key in next_td.keys(True, True):
            self._apply_all(next_td)
        return tensordict

    def set_container(self, container: Transform | torch.nn.Module) -> None:
        """Attaches the transform; checks the parent env's specs as soon as it is known."""
        super().set_container(container)
        parent = self.parent
        if parent is not None:
            # raises now (at append time) on a missing clock or observation
            self.transform_observation_spec(parent.full_observation_spec.clone())

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        who = "PhaseEncoding"
        step_spec = step_spec_from(observation_spec, self.step_key, who)
        clock_batch = step_spec.shape[:-1]
        device = step_spec.device
        if self.mode == "phase":
            out_key = self.out_keys[0]
            parent_key = as_tuple(out_key)[:-1]
            if parent_key:
                node = observation_spec.get(parent_key, None)
                if not isinstance(node, Composite):
                    raise KeyError(
                        f"{who} cannot write {out_key!r}: the observation spec has no "
                        f"group {parent_key!r}"
                    )
                batch = node.shape
            else:
                batch = observation_spec.shape
            _check_prefix(clock_batch, batch, self.step_key, out_key)
            observation_spec[out_key] = Bounded(
                low=0.0, high=1.0, shape=(*batch, 1), dtype=self.dtype, device=device
            )
            return observation_spec
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            try:
                spec = observation_spec[in_key]
            except KeyError:
                spec = None
            if spec is None or isinstance(spec, Composite):
                raise KeyError(
                    f"{who} expected the observation {in_key!r} in the parent env's "
                    f"observation spec; available: "
                    f"{sorted(map(str, observation_spec.keys(True, True)))}"
                )
            if len(spec.shape) == 0:
                raise ValueError(f"{who} cannot append features to the scalar entry {in_key!r}")
            _check_prefix(clock_batch, spec.shape[:-1], self.step_key, in_key)
            observation_spec[out_key] = self._extended_spec(spec, in_key)
        return observation_spec

    def _extended_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        who = "PhaseEncoding"
        if self.mode == "sincos" and not spec.dtype.is_floating_point:
            raise TypeError(
                f"{who} with mode='sincos' needs a floating-point observation, got {key!r} "
                f"of dtype {spec.dtype}; use mode='onehot' or a separate out_key"
            )
        d = self.encoding_dim
        shape = (*spec.shape[:-1], spec.shape[-1] + d)
        if isinstance(spec, Unbounded):
            return Unbounded(shape=shape, dtype=spec.dtype, device=spec.device)
        if isinstance(spec, Bounded):
            lo, hi = (0.0, 1.0) if self.mode == "onehot" else (-1.0, 1.0)
            low = spec.space.low.expand(spec.shape)
            high = spec.space.high.expand(spec.shape)
            extra = (*spec.shape[:-1], d)
            low = torch.cat((low, torch.full(extra, lo, dtype=low.dtype, device=low.device)), -1)
            high = torch.cat(
                (high, torch.full(extra, hi, dtype=high.dtype, device=high.device)), -1
            )
            return Bounded(low=low, high=high, shape=shape, dtype=spec.dtype, device=spec.device)
        raise TypeError(
            f"{who} can append features to Unbounded or Bounded observations, got "
            f"{type(spec).__name__} for {key!r}"
        )

    def __repr__(self) -> str:
        keys = self.out_keys if self.mode == "phase" else self.in_keys
        return (
            f"{type(self).__name__}(period={self.period}, mode={self.mode!r}, "
            f"keys={keys}, step_key={self.step_key!r})"
        )


def _key_list(keys: object, name: str, who: str) -> list[NestedKey] | None:
    if keys is None:
        return None
    if isinstance(keys, (str, tuple)):
        keys = [keys]
    try:
        keys = list(keys)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{who} expected {name} to be a list of keys, got {type(keys).__name__}"
        ) from None
    return [check_key(k, f"{name}[{i}]", who) for i, k in enumerate(keys)]


def _check_prefix(
    clock_batch: torch.Size, batch: torch.Size, step_key: NestedKey, key: NestedKey
) -> None:
    if tuple(batch[: len(clock_batch)]) != tuple(clock_batch):
        raise ValueError(
            f"PhaseEncoding cannot broadcast the clock {step_key!r} (batch shape "
            f"{tuple(clock_batch)}) to {key!r} (batch shape {tuple(batch)}): the clock's batch "
            f"dims must lead the entry's"
        )


def _encoding_table(period: int, mode: str, dtype: torch.dtype) -> torch.Tensor:
    """``(period, D)``: row ``k`` encodes ``t mod period = k``."""
    k = torch.arange(period, dtype=torch.float64)
    if mode == "phase":
        table = (k / period).unsqueeze(-1)
    elif mode == "onehot":
        table = torch.eye(period, dtype=torch.float64)
    else:
        angle = 2.0 * math.pi * k / period
        table = torch.stack((torch.sin(angle), torch.cos(angle)), dim=-1)
    return table.to(dtype)
