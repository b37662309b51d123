"""Plumbing shared by mtmarl's batched pure-torch environments (not public API)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import EnvBase


def action_entry(tensordict: TensorDictBase, key: tuple[str, ...], *, who: str) -> torch.Tensor:
    """The action tensor at ``key`` of ``tensordict``, with an error naming ``key`` if absent.

    The check a step runs before it reads an action: one ``get`` when the entry is there;
    the listing of the entries the tensordict does have is built on the error path only.

    Args:
        tensordict (TensorDictBase): the tensordict given to ``_step``.
        key (tuple[str, ...]): the nested action key, e.g. ``("agents", "action")``.

    Keyword Args:
        who (str): the component named in the messages, e.g. ``"BuildingEnv"``.

    Returns:
        torch.Tensor: the entry.

    Raises:
        KeyError: the tensordict has no entry at ``key`` (also when an entry on the way to it
            is a tensor, not a sub-tensordict); the message lists the entries it has.
        TypeError: the entry at ``key`` is not a tensor (e.g. a sub-tensordict).

    Examples:
        >>> from tensordict import TensorDict
        >>> td = TensorDict({("agents", "action"): torch.zeros(2, 3)}, [2])
        >>> action_entry(td, ("agents", "action"), who="Env").shape
        torch.Size([2, 3])
        >>> action_entry(td, ("agents", "act"), who="Env")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        KeyError: "Env expected the action at ('agents', 'act'), the tensordict has no such ..."
    """
    try:
        value = tensordict.get(key, None)
    except (AttributeError, TypeError, ValueError):  # a tensor where a sub-tensordict was due
        value = None
    if isinstance(value, torch.Tensor):
        return value
    if value is None:
        have = list(tensordict.keys(include_nested=True, leaves_only=True))
        raise KeyError(
            f"{who} expected the action at {key!r}, the tensordict has no such entry (it has "
            f"{have})"
        )
    inner = list(value.keys(include_nested=True)) if isinstance(value, TensorDictBase) else ""
    raise TypeError(
        f"{who} expected a tensor at {key!r}, got {type(value).__name__} {inner}".rstrip()
    )


def check_action_layout(
    action: torch.Tensor,
    key: tuple[str, ...],
    *,
    shape: Sequence[int],
    dtype: torch.dtype,
    who: str,
    dims: str,
    meaning: str,
) -> None:
    """Raises unless ``action`` has exactly ``shape`` and ``dtype`` (no host synchronisation).

    Args:
        action (torch.Tensor): the action read from ``key``.
        key (tuple[str, ...]): its key, named in the messages.

    Keyword Args:
        shape (Sequence[int]): the expected shape.
        dtype (torch.dtype): the expected dtype, the action spec's (nothing is cast: a cast
            would silently change the state's dtype or round the values).
        who (str): the component named in the messages.
        dims (str): what the dimensions are, e.g. ``"num_envs, n_agents"``.
        meaning (str): what the values are, e.g. ``"integer actions: UP=0, DOWN=1, NULL=2"``.

    Raises:
        ValueError: the shape differs.
        TypeError: the dtype differs.

    Examples:
        >>> check_action_layout(
        ...     torch.zeros(2, 3, dtype=torch.float64), ("action",), shape=(2, 3),
        ...     dtype=torch.float32, who="Env", dims="num_envs, n_agents", meaning="powers")
        Traceback (most recent call last):
        ...
        TypeError: Env expected ('action',) of dtype torch.float32 (powers), got dtype torch.float64
    """
    if action.shape != tuple(shape):
        raise ValueError(
            f"{who} expected {key!r} of shape {tuple(shape)} ({dims}), got {tuple(action.shape)}"
        )
    if action.dtype != dtype:
        raise TypeError(
            f"{who} expected {key!r} of dtype {dtype} ({meaning}), got dtype {action.dtype}"
        )


def non_finite_summary(values: torch.Tensor) -> str:
    """``"<n> NaN and <m> inf of <size> entries"``, for the error path of a finiteness check.

    Examples:
        >>> non_finite_summary(torch.tensor([1.0, float("nan"), float("-inf")]))
        '1 NaN and 1 inf of 3 entries'
    """
    n_nan = int(torch.isnan(values).sum())
    n_inf = int(torch.isinf(values).sum())
    return f"{n_nan} NaN and {n_inf} inf of {values.numel()} entries"


class BatchedTorchEnv(EnvBase):
    """Base of the ``num_envs``-batched envs: team reward/flag specs, seeding, ``to()``.

    Subclasses own a ``torch.Generator`` in ``self._generator`` (seeded through
    :meth:`set_seed`, remembered in ``self._last_seed``) and list in ``_TENSOR_ATTRS`` the
    names of the state/table tensors that must follow the env across devices; ``to()`` moves
    them, then calls :meth:`_moved_to` for anything else (modules, ...).
    """

    _TENSOR_ATTRS: tuple[str, ...] = ()

    def __init__(
        self, *, num_envs: int, device: torch.device | str | None, seed: int | None, who: str
    ) -> None:
        """Check ``seed`` and set up ``batch_size=(num_envs,)`` on ``device`` (CPU if None)."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(
                f"{who} expected seed to be an int or None, got {type(seed).__name__} {seed!r}"
            )
        super().__init__(
            device=torch.device("cpu") if device is None else device,
            batch_size=torch.Size((num_envs,)),
        )
        self.num_envs = num_envs

    def _set_team_reward_and_done_specs(self, num_envs: int, device: torch.device) -> None:
        """Root team reward ``(E, 1)`` float32 and done/terminated/truncated ``(E, 1)`` bool."""
        flag = Categorical(n=2, shape=(num_envs, 1), dtype=torch.bool, device=device)
        self.reward_spec = Composite(
            reward=Unbounded(shape=(num_envs, 1), dtype=torch.float32, device=device),
            shape=(num_envs,),
            device=device,
        )
        self.done_spec = Composite(
            done=flag,
            terminated=flag.clone(),
            truncated=flag.clone(),
            shape=(num_envs,),
            device=device,
        )

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        self._last_seed = int(seed)
        self._generator.manual_seed(self._last_seed)

    def _moved_to(self, device: torch.device) -> None:
        """Hook for subclasses: move what ``_TENSOR_ATTRS`` does not cover."""

    def to(self, device: torch.device | str) -> BatchedTorchEnv:
        """Moves the specs, the state tensors and the random generator to ``device``.

        The generator is rebuilt on the new device and re-seeded with the last seed given to
        :meth:`set_seed` (generator states do not transfer across devices).

        Args:
            device (torch.device | str): the target device.

        Returns:
            the env itself.
        """
        target = torch.device(device)
        if target.type == "cuda" and target.index is None:
            target = torch.device("cuda", torch.cuda.current_device())
        if target == self.device:
            return self
        moved = {name: getattr(self, name).to(target) for name in self._TENSOR_ATTRS}
        super().to(target)
        for name, value in moved.items():
            setattr(self, name, value)
        self._moved_to(target)
        self._generator = torch.Generator(device=target)
        self._generator.manual_seed(self._last_seed)
        return self
