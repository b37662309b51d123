"""Plumbing shared by mtmarl's batched pure-torch environments (not public API)."""

from __future__ import annotations

import torch
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import EnvBase


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
