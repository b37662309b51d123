"""Agents that act on different timescales (seed 004): agent ``n`` acts every ``omega_n`` steps.

Between its decision steps an agent's action is not its policy's to choose: it keeps
its previous action (``"hold"``, setpoint semantics: a thermostat keeps its last
setpoint) or does nothing (``"null"``). :class:`ActionFrequencyMask` enforces this
rule on any torchrl multi-agent environment and tells the policy about it, so that
forced steps carry no log-probability and no entropy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from tensordict import TensorDict, TensorDictBase, unravel_key
from tensordict.utils import NestedKey
from torchrl.data import (
    Binary,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    TensorSpec,
)
from torchrl.envs.transforms import Transform

from mtmarl.transforms._utils import (
    as_tuple,
    check_key,
    check_positive_int,
    join_key,
    missing_step_error,
    step_spec_from,
)

__all__ = ["ActionFrequencyMask"]

_MODES = ("hold", "null")
_WHO = "ActionFrequencyMask"


class _Leaf:
    """One tensor of the action entry (the entry itself, or a leaf of a composite action)."""

    __slots__ = (
        "rel",
        "kind",
        "n",
        "dtype",
        "event_shape",
        "mask_key",
        "null",
        "null_mask",
        "initial",
        "choices",
        "spec",
    )

    def __init__(self, rel: tuple[str, ...], spec: TensorSpec, event_shape: tuple[int, ...]):
        self.rel = rel  # key relative to the action entry (() for a plain tensor action)
        self.spec = _without_mask(spec)
        if isinstance(spec, (Binary, MultiCategorical, MultiOneHot)):
            self.kind = "other"
        elif isinstance(spec, Categorical):
            self.kind = "categorical"
        elif isinstance(spec, OneHot):
            self.kind = "onehot"
        else:
            self.kind = "other"
        self.n = int(spec.space.n) if self.kind != "other" else None
        self.dtype = spec.dtype
        self.event_shape = tuple(event_shape)
        self.mask_key: NestedKey | None = None
        self.null: torch.Tensor | None = None  # (N, *E), leaf dtype
        self.null_mask: torch.Tensor | None = None  # (N, n) bool, discrete leaves with a null
        self.initial: torch.Tensor | None = None  # (N, *E): prev action after a reset
        self.choices: torch.Tensor | None = None  # (n,) arange of a Categorical leaf


class _Resolved:
    """Everything the transform derives from the action spec (cached; rebuilt on empty_cache)."""

    __slots__ = ("n_agents", "composite", "leaves", "step_per_agent", "reset_keys")

    def __init__(self) -> None:
        self.n_agents = 0
        self.composite = False
        self.leaves: list[_Leaf] = []
        self.step_per_agent = False
        self.reset_keys: list[NestedKey] = []


class ActionFrequencyMask(Transform):
    r"""Lets agent ``n`` choose a new action only when ``t % omega_n == 0``.

    On the other steps (*forced steps*) the action the environment executes is
    replaced, before the environment sees it, by the agent's previously executed
    action (``mode="hold"``, setpoint semantics) or by ``null_action``
    (``mode="null"``). The transform works for discrete (``Categorical``,
    ``OneHot``), continuous (``Bounded``, ``Unbounded``, ...) and composite (hybrid,
    e.g. ``{"mode": Categorical, "move": Bounded}``) per-agent action specs.

    **Time.** ``t`` is the integer observation entry ``step_key``, by default the
    root ``"step_count"`` ``(*B, 1)`` of :class:`~torchrl.envs.StepCounter`, so
    **a StepCounter must come before this transform** (or name with
    ``step_key`` any integer clock the environment exposes, e.g. a time-of-day
    index; a per-agent clock of shape ``(*B, N, 1)`` works too). With
    ``StepCounter``, ``t = 0`` after a reset, so every agent may act at the first
    step of an episode. A missing clock, an unknown action key or a number of
    frequencies that does not match the number of agents raises when the transform
    is appended to an environment.

    **What the policy sees** (written to the observations at reset and at every
    step, all keys configurable; ``N`` agents, the agent dim is the last batch dim
    of the action's group, e.g. ``("agents",)`` of shape ``(*B, N)``):

    * ``can_act_key``, default ``("agents", "can_act")``: ``(*B, N)`` bool,
      ``t % omega_n == 0`` at *this* step.
    * ``mask_key``, default ``("agents", "action_mask")``, for a discrete
      (``Categorical`` or ``OneHot``) action: ``(*B, N, n)`` bool, all ``True``
      where the agent may act, else the one-hot of the action it is forced to (its
      previous action in ``"hold"``, ``null_action`` in ``"null"``). Feed it to
      :class:`~torchrl.modules.MaskedCategorical` (e.g.
      ``ProbabilisticActor(..., distribution_class=MaskedCategorical)`` with the
      mask as the distribution's ``mask`` input): a forced step then has
      log-probability 0 and entropy 0 and adds nothing to the policy gradient.
      The same mask is written into the environment's action spec (as
      :class:`~torchrl.envs.transforms.ActionMask` does), so ``env.rand_action()``
      (and ``env.rollout()`` without a policy) only draws executable actions.
      (Inside :class:`~torchrl.envs.ParallelEnv` workers the mask reaches the
      workers' specs, not the parallel env's; torchrl's ``RandomPolicy`` -- the
      collectors' default policy -- draws from a copy of the spec taken at
      construction. Both then draw unconstrained actions, and the inverse step
      still enforces the rule.) For a composite action with one
      discrete leaf the mask of that leaf goes to ``mask_key``; with several,
      pass ``mask_key`` as a mapping ``{leaf: key}`` (default
      ``(*group, f"{leaf}_action_mask")``).
    * ``prev_action_key``, default ``("agents", "prev_" + action_key[-1])``, e.g.
      ``("agents", "prev_action")``: the action executed at the previous step,
      same spec as the action (a composite for a hybrid action). After a reset it
      is ``null_action``, or -- without one -- zeros (index ``0`` for discrete
      actions; projected into a ``Bounded`` spec's box).

    **The executed action is recorded**: since torchrl's inverse transforms work on
    a copy, the rollout keeps the *policy's* action at ``action_key``; the action
    the environment *executed* at step ``t`` is ``("next", *prev_action_key)``
    (the previous action of the next observation). With these entries the
    environment stays Markov: the transform keeps no hidden state, so it works with
    :class:`~torchrl.envs.ParallelEnv`, replay buffers and partial resets.

    **Inverse.** :meth:`inv` (run by the environment before every step, and by a
    replay buffer's ``extend``) replaces the action of every agent whose
    ``can_act`` is ``False`` by its forced action. It reads ``can_act`` (or, if
    absent, recomputes it from ``step_key``) and, in ``"hold"``, the previous
    action from the input tensordict.

    **Keys.** Reads (step and inverse) ``action_key``, ``can_act_key`` (or
    ``step_key``) and, in ``"hold"``, ``prev_action_key``. Writes (reset and the
    ``("next", ...)`` of every step) ``can_act_key`` ``(*B, N)`` bool,
    ``prev_action_key`` (the action's spec) and, per discrete leaf, its mask
    ``(*B, N, n)`` bool.

    Args:
        action_frequencies (Sequence[int]): ``omega_n >= 1`` per agent, in the
            order of the agent dim.

    Keyword Args:
        mode (str): ``"hold"`` (repeat the previous executed action) or
            ``"null"`` (execute ``null_action``). Defaults to ``"hold"``.
        null_action (int | float | torch.Tensor | Mapping | None): the no-op
            action. For a discrete action an index (``int``, or ``(N,)`` per agent);
            for a continuous one a value broadcastable to the per-agent action shape
            ``(N, *E)``; for a composite action a mapping ``{leaf: value}``.
            Required for ``mode="null"`` (for every leaf); in ``"hold"`` it is the
            previous action after a reset. Defaults to ``None``.
        action_key (NestedKey): the per-agent action entry (a tensor, or a
            composite of tensors) inside its agent group. Defaults to
            ``("agents", "action")``.
        step_key (NestedKey): the integer clock. Defaults to ``"step_count"``.
        can_act_key (NestedKey | None): defaults to ``(*group, "can_act")``.
        mask_key (NestedKey | Mapping | None): see above. Defaults to
            ``(*group, "action_mask")``.
        prev_action_key (NestedKey | None): defaults to
            ``(*group, "prev_" + action_key[-1])``.
        action_spec (TensorSpec | None): the spec of the action entry for **one
            agent** (no batch or agent dims, e.g. ``Categorical(3)``), used only
            when the transform has no parent environment (e.g. when it is used
            alone in a replay buffer); with an environment its specs are used.
            Defaults to ``None``.

    Raises:
        ValueError: an ``omega_n < 1``, no frequencies, an unknown ``mode``,
            ``mode="null"`` without ``null_action``; at append time: a number of
            frequencies different from the number of agents, an invalid
            ``null_action``, or output keys that already exist.
        TypeError: a non-integer frequency, keys that are not keys, a
            ``null_action`` that is not a number, tensor or mapping; at append time
            a non-integer clock or a null action of the wrong kind (e.g. a float for
            a discrete action, a value for a composite action).
        KeyError: at append time, if ``action_key`` or ``step_key`` is missing.

    Attributes:
        action_frequencies (torch.Tensor): ``(N,)`` int64 buffer (in the
            ``state_dict``; follows ``.to(device)``).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Categorical, Composite, Unbounded
        >>> from torchrl.envs import EnvBase, StepCounter, TransformedEnv
        >>> class TwoAgents(EnvBase):  # a minimal env: 2 agents, 3 discrete actions
        ...     def __init__(self):
        ...         super().__init__(batch_size=())
        ...         self.observation_spec = Composite(agents=Composite(
        ...             observation=Unbounded((2, 1)), shape=(2,)))
        ...         self.action_spec = Composite(agents=Composite(
        ...             action=Categorical(3, shape=(2,)), shape=(2,)))
        ...         self.reward_spec = Unbounded((1,))
        ...     def _reset(self, td):
        ...         return self.full_observation_spec.zero().update(self.full_done_spec.zero())
        ...     def _step(self, td):
        ...         out = self.full_observation_spec.zero().update(self.full_done_spec.zero())
        ...         return out.set("reward", torch.zeros(1))
        ...     def _set_seed(self, seed):
        ...         pass
        >>> env = TransformedEnv(
        ...     TwoAgents(), StepCounter()
        ... ).append_transform(ActionFrequencyMask([1, 2], mode="null", null_action=2))
        >>> td = env.reset()
        >>> td["agents", "can_act"].tolist()  # t = 0: both may act
        [True, True]
        >>> td["agents", "action"] = torch.tensor([0, 1])
        >>> td = env.step(td)["next"]
        >>> td["agents", "prev_action"].tolist()  # executed at t = 0
        [0, 1]
        >>> td["agents", "can_act"].tolist()  # t = 1: agent 1 (omega = 2) may not
        [True, False]
        >>> td["agents", "action_mask"].tolist()
        [[True, True, True], [False, False, True]]
        >>> td["agents", "action"] = torch.tensor([1, 0])  # agent 1 tries anyway
        >>> env.step(td)["next", "agents", "prev_action"].tolist()  # it executed null
        [1, 2]
    """

    def __init__(
        self,
        action_frequencies: Sequence[int],
        *,
        mode: str = "hold",
        null_action: int | float | torch.Tensor | Mapping | None = None,
        action_key: NestedKey = ("agents", "action"),
        step_key: NestedKey = "step_count",
        can_act_key: NestedKey | None = None,
        mask_key: NestedKey | Mapping | None = None,
        prev_action_key: NestedKey | None = None,
        action_spec: TensorSpec | None = None,
    ) -> None:
        freqs = _check_frequencies(action_frequencies)
        if mode not in _MODES:
            raise ValueError(f"{_WHO} expected mode to be one of {_MODES}, got {mode!r}")
        if mode == "null" and null_action is None:
            raise ValueError(
                f"{_WHO} with mode='null' needs the null action: pass null_action= (e.g. "
                f"null_action=2 for a discrete 'do nothing' action at index 2)"
            )
        action_key = check_key(action_key, "action_key", _WHO)
        group = as_tuple(action_key)[:-1]
        if not group:
            raise ValueError(
                f"{_WHO} expected a per-agent action inside an agent group, e.g. "
                f"('agents', 'action') with a group of shape (*B, N), got the root key "
                f"{action_key!r}"
            )
        step_key = check_key(step_key, "step_key", _WHO)
        name = as_tuple(action_key)[-1]
        can_act_key = (
            join_key(group, "can_act")
            if can_act_key is None
            else check_key(can_act_key, "can_act_key", _WHO)
        )
        prev_action_key = (
            join_key(group, f"prev_{name}")
            if prev_action_key is None
            else check_key(prev_action_key, "prev_action_key", _WHO)
        )
        if isinstance(mask_key, Mapping):
            mask_key = {
                unravel_key(check_key(k, "mask_key (leaf)", _WHO)): check_key(v, "mask_key", _WHO)
                for k, v in mask_key.items()
            }
        elif mask_key is not None:
            mask_key = check_key(mask_key, "mask_key", _WHO)
        if action_spec is not None and not isinstance(action_spec, TensorSpec):
            raise TypeError(
                f"{_WHO} expected action_spec to be a TensorSpec, got {type(action_spec).__name__}"
            )
        super().__init__(in_keys=[], out_keys=[], in_keys_inv=[], out_keys_inv=[])
        self.mode = mode
        self.action_key = action_key
        self.step_key = step_key
        self.can_act_key = can_act_key
        self.prev_action_key = prev_action_key
        self.mask_key = mask_key
        self.group = group
        self.action_spec = action_spec
        self.null_action = _as_null(null_action)
        self.register_buffer("action_frequencies", torch.tensor(freqs, dtype=torch.int64))

    # ----------------------------------------------------------- resolution
    @property
    def n_agents(self) -> int:
        """Number of agents ``N`` (the length of ``action_frequencies``)."""
        return int(self.action_frequencies.shape[0])

    def _resolved(self) -> _Resolved:
        res = self.__dict__.get("_res")
        if res is None:
            res = self._resolve()
            self.__dict__["_res"] = res
        return res

    def _resolve(self) -> _Resolved:
        parent = self.parent
        res = _Resolved()
        n = self.n_agents
        res.n_agents = n
        device = self.action_frequencies.device
        if parent is not None:
            full_action_spec = parent.full_action_spec
            try:
                spec = full_action_spec[self.action_key]
            except KeyError:
                spec = None
            if spec is None:
                raise KeyError(
                    f"{_WHO} expected the action {self.action_key!r} in the parent env's "
                    f"action spec; available: {_leaf_names(full_action_spec)}"
                )
            group_spec = full_action_spec[self.group]
            group_shape = tuple(group_spec.shape)
            env_batch = tuple(parent.batch_size)
            if len(group_shape) <= len(env_batch):
                raise ValueError(
                    f"{_WHO} expected the action group {self.group!r} to have an agent dim "
                    f"after the env batch dims {env_batch}, got a group of shape {group_shape}"
                )
            if group_shape[-1] != n:
                raise ValueError(
                    f"{_WHO} got {n} action frequencies but the action spec at "
                    f"{self.action_key!r} has {group_shape[-1]} agents (group {self.group!r} "
                    f"of shape {group_shape}): pass one frequency per agent"
                )
            step_spec = step_spec_from(parent.full_observation_spec, self.step_key, _WHO)
            step_batch = tuple(step_spec.shape[:-1])
            if step_batch == group_shape:
                res.step_per_agent = True
            elif step_batch != env_batch:
                raise ValueError(
                    f"{_WHO} expected the clock {self.step_key!r} of shape (*B, 1) = "
                    f"{(*env_batch, 1)} or per agent {(*group_shape, 1)}, got "
                    f"{tuple(step_spec.shape)}"
                )
            res.reset_keys = list(parent.reset_keys)
            n_lead = len(group_shape)
            device = spec.device if spec.device is not None else device
        else:
            if self.action_spec is None:
                raise RuntimeError(
                    f"{_WHO} has no parent environment to read the action spec from: append "
                    f"it to an env, or pass action_spec= (the spec of one agent's action) to "
                    f"use it on its own"
                )
            spec = self.action_spec
            n_lead = 0
        res.composite = isinstance(spec, Composite)
        if res.composite:
            items = [(as_tuple(k), spec[k]) for k in spec.keys(True, True)]
        else:
            items = [((), spec)]
        for rel, leaf_spec in items:
            if tuple(leaf_spec.shape[:n_lead]) != tuple(spec.shape[:n_lead]):
                raise ValueError(
                    f"{_WHO} expected the action leaf {rel!r} to lead with the group's batch "
                    f"dims {tuple(spec.shape[:n_lead])}, got shape {tuple(leaf_spec.shape)}"
                )
            event_shape = tuple(leaf_spec.shape[n_lead:])
            if any(d < 0 for d in event_shape):
                raise ValueError(
                    f"{_WHO} does not support heterogeneous (ragged) per-agent action shapes, "
                    f"got {tuple(leaf_spec.shape)} for {self.action_key!r}; use one "
                    f"ActionFrequencyMask per agent group with a common action shape"
                )
            res.leaves.append(_Leaf(rel, leaf_spec, event_shape))
        self._resolve_masks(res)
        self._resolve_nulls(res, device)
        return res

    def _resolve_masks(self, res: _Resolved) -> None:
        discrete = [leaf for leaf in res.leaves if leaf.kind != "other"]
        if isinstance(self.mask_key, dict):
            known = {leaf.rel for leaf in discrete}
            for rel in self.mask_key:
                if as_tuple(rel) not in known:
                    raise KeyError(
                        f"{_WHO} got a mask_key for {rel!r}, which is not a discrete leaf of "
                        f"the action {self.action_key!r}; discrete leaves: "
                        f"{sorted(map(str, known))}"
                    )
            for leaf in discrete:
                key = self.mask_key.get(unravel_key(leaf.rel) if leaf.rel else None)
                leaf.mask_key = key if key is not None else self._default_mask_key(leaf, discrete)
        else:
            if self.mask_key is not None and len(discrete) > 1:
                raise ValueError(
                    f"{_WHO}: the action {self.action_key!r} has {len(discrete)} discrete "
                    f"leaves; pass mask_key as a mapping {{leaf: key}} instead of one key"
                )
            for leaf in discrete:
                leaf.mask_key = (
                    self.mask_key
                    if self.mask_key is not None
                    else self._default_mask_key(leaf, discrete)
                )

    def _default_mask_key(self, leaf: _Leaf, discrete: list[_Leaf]) -> NestedKey:
        if len(discrete) == 1:
            return join_key(self.group, "action_mask")
        return join_key(self.group, "_".join(leaf.rel) + "_action_mask")

    def _resolve_nulls(self, res: _Resolved, device: torch.device) -> None:
        raw = self.null_action
        if res.composite:
            if raw is not None and not isinstance(raw, dict):
                raise TypeError(
                    f"{_WHO}: the action {self.action_key!r} is composite; pass null_action "
                    f"as a mapping {{leaf: value}}, got {type(raw).__name__}"
                )
            raw = dict(raw or {})
            rels = {leaf.rel for leaf in res.leaves}
            for key in raw:
                if as_tuple(key) not in rels:
                    raise KeyError(
                        f"{_WHO} got a null_action for {key!r}, which is not a leaf of the "
                        f"action {self.action_key!r}; leaves: {sorted(map(str, rels))}"
                    )
            values = {leaf.rel: raw.get(unravel_key(leaf.rel)) for leaf in res.leaves}
        else:
            if isinstance(raw, dict):
                raise TypeError(
                    f"{_WHO}: the action {self.action_key!r} is a single tensor; pass "
                    f"null_action as a value, not a mapping"
                )
            values = {(): raw}
        for leaf in res.leaves:
            if leaf.kind == "categorical":
                leaf.choices = torch.arange(leaf.n, dtype=leaf.dtype, device=device)
            value = values[leaf.rel]
            if value is None:
                if self.mode == "null":
                    raise ValueError(
                        f"{_WHO} with mode='null' needs a null action for every leaf of "
                        f"{self.action_key!r}; missing {leaf.rel!r}"
                    )
                leaf.initial = self._default_initial(leaf, res.n_agents, device)
                continue
            leaf.null = _normalise_null(leaf, value.to(device), res.n_agents, self.action_key)
            leaf.initial = leaf.null
            if leaf.kind != "other":
                leaf.null_mask = (
                    F.one_hot(leaf.null.long(), leaf.n).bool()
                    if leaf.kind == "categorical"
                    else leaf.null.bool()
                )

    @staticmethod
    def _default_initial(leaf: _Leaf, n_agents: int, device: torch.device) -> torch.Tensor:
        shape = (n_agents, *leaf.event_shape)
        if leaf.kind == "onehot":
            idx = torch.zeros(n_agents, dtype=torch.long, device=device)
            return F.one_hot(idx, leaf.n).to(leaf.dtype).reshape(shape)
        zeros = torch.zeros(shape, dtype=leaf.dtype, device=device)
        if leaf.kind == "other":
            full = _expand_to_spec(zeros, leaf.spec)
            if not bool(leaf.spec.is_in(full)):
                zeros = leaf.spec.project(full.clone())[(0,) * (full.ndim - len(shape))]
        return zeros

    def empty_cache(self) -> None:
        self.__dict__["_res"] = None
        self.__dict__["_targets"] = None
        super().empty_cache()

    def reset_parent(self) -> None:
        self.__dict__["_res"] = None
        self.__dict__["_targets"] = None
        super().reset_parent()

    def set_container(self, container: Transform | torch.nn.Module) -> None:
        """Attaches the transform; checks the parent env's specs as soon as it is known."""
        super().set_container(container)
        self.__dict__["_res"] = None
        self.__dict__["_targets"] = None
        if self.parent is not None:
            # raises now (at append time) on a bad key, agent count, clock or null action
            self.transform_observation_spec(self.parent.full_observation_spec.clone())

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - torch's signature
        # .to(device) / .double(): the cached null actions must follow the buffers
        self.__dict__["_res"] = None
        self.__dict__["_targets"] = None
        return super()._apply(fn, recurse)

    # ------------------------------------------------------------- run time
    def can_act(self, step: torch.Tensor) -> torch.Tensor:
        """Whether each agent may act at time ``step``.

        Args:
            step (torch.Tensor): ``(*B, 1)`` integer clock (or ``(*B, N, 1)`` per
                agent).

        Returns:
            torch.Tensor: ``(*B, N)`` bool, ``step % omega_n == 0``.

        Examples:
            >>> import torch
            >>> t = ActionFrequencyMask([1, 2, 3])
            >>> t.can_act(torch.arange(4).unsqueeze(-1)).int().tolist()
            [[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 0, 1]]
        """
        res = self.__dict__.get("_res")
        if res is not None and res.step_per_agent:
            step = step.squeeze(-1)
        return torch.remainder(step, self.action_frequencies) == 0

    def _forced(self, leaf: _Leaf, prev: torch.Tensor | TensorDictBase | None) -> torch.Tensor:
        if self.mode == "null":
            return leaf.null
        if prev is None:
            raise KeyError(
                f"{_WHO} (mode='hold') expected the previous action {self.prev_action_key!r} "
                f"in the tensordict, but it is missing: reset the environment first"
            )
        return prev.get(leaf.rel) if leaf.rel else prev

    @staticmethod
    def _force(action: torch.Tensor, can_act: torch.Tensor, forced: torch.Tensor) -> torch.Tensor:
        extra = action.ndim - can_act.ndim
        cond = can_act.reshape(*can_act.shape, *([1] * extra)) if extra > 0 else can_act
        return torch.where(cond, action, forced)

    def _write_obs(
        self,
        out: TensorDictBase,
        res: _Resolved,
        can_act: torch.Tensor,
        prev: torch.Tensor | TensorDictBase | None,
        update_spec: bool,
        reset: torch.Tensor | None = None,
    ) -> None:
        """Write can_act and the masks (forced actions from ``prev`` or the null action)."""
        out.set(self.can_act_key, can_act)
        masks = []
        for leaf in res.leaves:
            if leaf.kind == "other":
                continue
            if self.mode == "null":
                forced_mask = leaf.null_mask
            else:
                forced = self._forced(leaf, prev)
                if leaf.kind == "categorical":
                    forced_mask = forced.unsqueeze(-1) == leaf.choices  # one-hot, one kernel
                else:
                    forced_mask = forced.bool()
            mask = forced_mask | can_act.unsqueeze(-1)
            out.set(leaf.mask_key, mask)
            masks.append(mask)
        if update_spec and masks:
            self._update_spec_masks(masks, reset)

    def _update_spec_masks(self, masks: list[torch.Tensor], reset: torch.Tensor | None) -> None:
        """Write the masks into the container's action spec (what ``rand_action`` draws from).

        On a partial reset (``reset`` of shape ``(*B,)``) only the reset envs' rows
        change: the others keep the mask of their current step, which the last step
        wrote (their reset-time values are placeholders, see :meth:`_reset`).
        """
        targets = self._mask_targets()
        if targets is None:
            return
        for (spec, mask_shape), mask in zip(targets, masks):
            if mask.shape != mask_shape:  # e.g. a non-batch-locked env called with another batch
                continue
            current = spec.mask
            if reset is not None and current is not None and current.shape == mask.shape:
                mask = torch.where(reset.reshape(*reset.shape, 1, 1), mask, current)
            spec.update_mask(mask)

    def _mask_targets(self) -> list[tuple[TensorSpec, torch.Size]] | None:
        """The container's discrete action specs and the shapes of their masks (cached)."""
        container = self.container
        if container is None:
            return None
        cached = self.__dict__.get("_targets")
        input_spec = container.__dict__.get("_input_spec")
        if cached is not None and input_spec is not None and cached[0] is input_spec:
            return cached[1]
        full_action_spec = container.full_action_spec
        res = self._resolved()
        targets = []
        for leaf in res.leaves:
            if leaf.kind == "other":
                continue
            spec = full_action_spec[join_key(as_tuple(self.action_key), *leaf.rel)]
            shape = spec.shape if leaf.kind == "onehot" else torch.Size((*spec.shape, leaf.n))
            targets.append((spec, shape))
        self.__dict__["_targets"] = (container.__dict__.get("_input_spec"), targets)
        return targets

    def _observe(self, tensordict: TensorDictBase, update_spec: bool) -> TensorDictBase:
        """can_act and masks of a tensordict from its own clock and previous action."""
        res = self._resolved()
        step = tensordict.get(self.step_key, None)
        if step is None:
            if self.missing_tolerance:
                return tensordict
            raise missing_step_error(self.step_key, _WHO)
        prev = tensordict.get(self.prev_action_key, None)
        self._write_obs(tensordict, res, self.can_act(step), prev, update_spec)
        return tensordict

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        res = self._resolved()
        # ``tensordict`` is the output of ``inv``: its action is the executed one
        executed = tensordict.get(self.action_key)
        next_tensordict.set(self.prev_action_key, executed)
        step = next_tensordict.get(self.step_key, None)
        if step is None:
            raise missing_step_error(self.step_key, _WHO)
        self._write_obs(next_tensordict, res, self.can_act(step), executed, update_spec=True)
        return next_tensordict

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        return self._observe(next_tensordict, update_spec=True)

    def _reset(
        self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        res = self._resolved()
        batch = tensordict_reset.batch_size
        # Which envs are reset. torchrl merges the other envs' observations back from the
        # input after this call (``_update_during_reset``), so values written here only
        # matter for the reset envs; the spec mask of the others must be kept (below).
        reset = None
        for key in res.reset_keys:
            flag = tensordict.get(key, None)
            if flag is not None:
                flag = flag.reshape(*batch, -1).any(-1)
                reset = flag if reset is None else reset | flag
        if res.composite:
            prev = TensorDict({}, batch_size=(*batch, res.n_agents), device=tensordict_reset.device)
            for leaf in res.leaves:
                prev.set(leaf.rel, leaf.initial.expand(*batch, *leaf.initial.shape).clone())
        else:
            initial = res.leaves[0].initial
            prev = initial.expand(*batch, *initial.shape).clone()
        tensordict_reset.set(self.prev_action_key, prev)
        step = tensordict_reset.get(self.step_key, None)
        if step is None:
            raise missing_step_error(self.step_key, _WHO)
        self._write_obs(
            tensordict_reset, res, self.can_act(step), prev, update_spec=True, reset=reset
        )
        return tensordict_reset

    def _inv_call(self, tensordict: TensorDictBase) -> TensorDictBase:
        res = self._resolved()
        action = tensordict.get(self.action_key, None)
        if action is None:
            if self.missing_tolerance:
                return tensordict
            raise KeyError(
                f"{_WHO} expected the action {self.action_key!r} in the tensordict, but it "
                f"is missing"
            )
        can_act = tensordict.get(self.can_act_key, None)
        if can_act is None:
            step = tensordict.get(self.step_key, None)
            if step is None:
                raise KeyError(
                    f"{_WHO} needs {self.can_act_key!r} (written at reset and at every step) "
                    f"or the clock {self.step_key!r} in the tensordict to decide who may act; "
                    f"reset the environment first"
                )
            can_act = self.can_act(step)
        prev = None if self.mode == "null" else tensordict.get(self.prev_action_key, None)
        if res.composite:
            for leaf in res.leaves:
                action.set(
                    leaf.rel, self._force(action.get(leaf.rel), can_act, self._forced(leaf, prev))
                )
        else:
            leaf = res.leaves[0]
            tensordict.set(self.action_key, self._force(action, can_act, self._forced(leaf, prev)))
        return tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Writes ``can_act`` and the masks outside an environment (e.g. replay samples).

        Computed from the tensordict's own ``step_key`` and (``"hold"``) previous
        action; a ``"next"`` sub-tensordict that holds ``step_key`` is processed
        too. Actions are not changed (that is :meth:`inv`'s job).

        Args:
            tensordict (TensorDictBase): data with ``step_key`` ``(*B, 1)``.

        Returns:
            TensorDictBase: the same tensordict, with ``can_act_key`` (and masks).

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> from torchrl.data import Categorical
            >>> t = ActionFrequencyMask(
            ...     [1, 2], mode="null", null_action=0, action_spec=Categorical(2)
            ... )
            >>> td = t(TensorDict({"step_count": torch.tensor([[3]])}, batch_size=[1]))
            >>> td["agents", "can_act"].tolist(), td["agents", "action_mask"].tolist()
            ([[True, False]], [[[True, True], [True, False]]])
        """
        self._observe(tensordict, update_spec=False)
        next_td = tensordict.get("next", None)
        if isinstance(next_td, TensorDictBase) and self.step_key in next_td.keys(True, True):
            self._observe(next_td, update_spec=False)
        return tensordict

    # ---------------------------------------------------------------- specs
    def _prev_spec(self, parent_action_spec: TensorSpec) -> TensorSpec:
        spec = parent_action_spec.clone()
        if isinstance(spec, Composite):
            for key in spec.keys(True, True):
                spec[key] = _without_mask(spec[key])
            return spec
        return _without_mask(spec)

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        parent = self.parent
        if parent is None:
            return observation_spec
        self.__dict__["_res"] = None
        res = self._resolved()
        full_action_spec = parent.full_action_spec
        group_spec = full_action_spec[self.group]
        group_shape = group_spec.shape
        device = observation_spec.device
        new_keys = [self.can_act_key, self.prev_action_key]
        new_keys += [leaf.mask_key for leaf in res.leaves if leaf.kind != "other"]
        if len(set(new_keys)) != len(new_keys):
            raise ValueError(f"{_WHO} would write two entries to the same key: {new_keys}")
        existing = set(observation_spec.keys(True, True))
        clash = [key for key in new_keys if key in existing]
        if clash:
            raise ValueError(
                f"{_WHO} would overwrite the existing observation entries {clash}; choose "
                f"other keys (can_act_key=, mask_key=, prev_action_key=)"
            )
        for key in new_keys:
            node = as_tuple(key)[:-1]
            if node and observation_spec.get(node, None) is None:
                observation_spec[node] = Composite(shape=group_shape, device=device)
        observation_spec[self.can_act_key] = Categorical(
            2, shape=group_shape, dtype=torch.bool, device=device
        )
        observation_spec[self.prev_action_key] = self._prev_spec(full_action_spec[self.action_key])
        for leaf in res.leaves:
            if leaf.kind != "other":
                observation_spec[leaf.mask_key] = Binary(
                    n=leaf.n, shape=(*group_shape, leaf.n), dtype=torch.bool, device=device
                )
        return observation_spec

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(action_frequencies={self.action_frequencies.tolist()}, "
            f"mode={self.mode!r}, action_key={self.action_key!r}, step_key={self.step_key!r})"
        )


# ------------------------------------------------------------------- helpers
def _check_frequencies(action_frequencies: object) -> list[int]:
    if isinstance(action_frequencies, (str, bytes)):
        raise TypeError(f"{_WHO} expected a sequence of ints, got a {type(action_frequencies)}")
    if isinstance(action_frequencies, torch.Tensor):
        action_frequencies = action_frequencies.tolist()
    try:
        values = list(action_frequencies)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{_WHO} expected action_frequencies to be a sequence of ints (one per agent), "
            f"got {type(action_frequencies).__name__}"
        ) from None
    if not values:
        raise ValueError(f"{_WHO} expected one action frequency per agent, got none")
    return [
        check_positive_int(v, f"action_frequencies[{i}] (omega_{i})", _WHO)
        for i, v in enumerate(values)
    ]


def _as_null(value: object) -> torch.Tensor | dict | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {
            unravel_key(check_key(k, "null_action (leaf)", _WHO)): _as_null(v)
            for k, v in value.items()
        }
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"{_WHO} expected null_action to be a number, a tensor or a mapping of them, got "
            f"{type(value).__name__} {value!r}"
        ) from None


def _without_mask(spec: TensorSpec) -> TensorSpec:
    spec = spec.clone()
    if getattr(spec, "mask", None) is not None:
        spec.update_mask(None)
    return spec


def _expand_to_spec(value: torch.Tensor, spec: TensorSpec) -> torch.Tensor:
    """``value`` ``(N, *E)`` expanded to the spec's leading (env batch) dims, if it has any."""
    lead = len(spec.shape) - value.ndim
    return value.expand(*spec.shape[:lead], *value.shape) if lead > 0 else value


def _leaf_names(spec: Composite) -> list[str]:
    return sorted(map(str, spec.keys(True, True)))


def _normalise_null(
    leaf: _Leaf, value: torch.Tensor, n_agents: int, action_key: NestedKey
) -> torch.Tensor:
    """The null action of one leaf as a ``(N, *E)`` tensor of the leaf's dtype (validated)."""
    where = f"{action_key!r}" + (f" leaf {leaf.rel!r}" if leaf.rel else "")
    if leaf.kind in ("categorical", "onehot"):
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(
                f"{_WHO} expected an integer index as the null action of the discrete action "
                f"{where}, got {value.tolist()} of dtype {value.dtype}"
            )
        if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, n_agents)):
            raise ValueError(
                f"{_WHO} expected the null action of {where} to be one index or {n_agents} "
                f"(one per agent), got shape {tuple(value.shape)}"
            )
        if bool(((value < 0) | (value >= leaf.n)).any()):
            raise ValueError(
                f"{_WHO} expected the null action of {where} in [0, {leaf.n - 1}], got "
                f"{value.tolist()}"
            )
        index = value.long().expand(n_agents).clone()
        if leaf.kind == "categorical":
            return index.to(leaf.dtype)
        return F.one_hot(index, leaf.n).to(leaf.dtype)
    shape = (n_agents, *leaf.event_shape)
    try:
        full = value.to(leaf.dtype).expand(shape).clone()
    except RuntimeError:
        raise ValueError(
            f"{_WHO} expected the null action of {where} to broadcast to the per-agent action "
            f"shape {shape}, got shape {tuple(value.shape)}"
        ) from None
    spec_shape = leaf.spec.shape
    if not bool(leaf.spec.is_in(_expand_to_spec(full, leaf.spec))):
        raise ValueError(
            f"{_WHO}: the null action {value.tolist()} is not a valid action for {where} "
            f"(spec {type(leaf.spec).__name__} of shape {tuple(spec_shape)})"
        )
    return full
