"""A tiny batched multi-agent env for the module tests (keys as the trainer's envs).

Episodes end after a per-env length (``3 + env index mod 3``), so a rollout of a few steps
holds episode boundaries at different times in different envs. Writes
``("agents", "observation")`` (*B, N, F), ``"state"`` (*B, S), ``"phase"`` (*B, 1) and,
optionally, ``("agents", "action_mask")`` (*B, N, n) with action 0 always allowed and one
more random action.
"""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Binary, Bounded, Categorical, Composite, Unbounded
from torchrl.envs import Compose, EnvBase, InitTracker, StepCounter, TransformedEnv

N_AGENTS, OBS_DIM, STATE_DIM, N_ACTIONS, PERIOD = 3, 4, 5, 4, 3


class ToyMultiAgentEnv(EnvBase):
    """Random-walk state, per-agent noisy views of it, team reward for action 0."""

    def __init__(self, *, batch_size=(), with_mask: bool = True, seed: int = 0) -> None:
        super().__init__(batch_size=torch.Size(batch_size))
        self.with_mask = with_mask
        b, n = self.batch_size, N_AGENTS
        agents = {"observation": Unbounded((*b, n, OBS_DIM))}
        if with_mask:
            agents["action_mask"] = Binary(n=N_ACTIONS, shape=(*b, n, N_ACTIONS), dtype=torch.bool)
        self.observation_spec = Composite(
            agents=Composite(agents, shape=(*b, n)),
            state=Unbounded((*b, STATE_DIM)),
            phase=Bounded(0.0, 1.0, shape=(*b, 1)),
            shape=b,
        )
        self.action_spec = Composite(
            agents=Composite(action=Categorical(N_ACTIONS, shape=(*b, n)), shape=(*b, n)),
            shape=b,
        )
        self.reward_spec = Unbounded((*b, 1))
        flag = Categorical(2, shape=(*b, 1), dtype=torch.bool)
        self.done_spec = Composite(
            done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=b
        )
        idx = torch.arange(max(b.numel(), 1)).reshape(b)
        self._length = 3 + idx % 3
        self._t = torch.zeros(b, dtype=torch.long)
        self._x = torch.zeros(*b, STATE_DIM)
        self._rng = torch.Generator().manual_seed(seed)

    def _set_seed(self, seed: int | None) -> None:
        self._rng = torch.Generator().manual_seed(0 if seed is None else seed)

    def _randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self._rng)

    def _observe(self) -> TensorDict:
        b = self.batch_size
        obs = self._x[..., None, :OBS_DIM] + 0.1 * self._randn(*b, N_AGENTS, OBS_DIM)
        agents = TensorDict({"observation": obs}, (*b, N_AGENTS))
        if self.with_mask:
            mask = torch.zeros(*b, N_AGENTS, N_ACTIONS, dtype=torch.bool)
            mask[..., 0] = True
            other = torch.randint(1, N_ACTIONS, (*b, N_AGENTS, 1), generator=self._rng)
            mask.scatter_(-1, other, True)
            agents["action_mask"] = mask
        phase = (self._t % PERIOD).float().unsqueeze(-1) / PERIOD
        return TensorDict(
            {"agents": agents, "state": self._x.clone(), "phase": phase}, batch_size=b
        )

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        b = self.batch_size
        reset = None if tensordict is None else tensordict.get("_reset", None)
        reset = torch.ones(b, dtype=torch.bool) if reset is None else reset.reshape(b)
        self._t = torch.where(reset, 0, self._t)
        self._x = torch.where(reset.unsqueeze(-1), self._randn(*b, STATE_DIM), self._x)
        out = self._observe()
        out.update(self.full_done_spec.zero())
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict["agents", "action"]
        self._x = 0.9 * self._x + 0.3 * self._randn(*self.batch_size, STATE_DIM)
        self._t = self._t + 1
        out = self._observe()
        reward = (action == 0).float().sum(-1, keepdim=True)
        terminated = (self._t >= self._length).unsqueeze(-1)
        out.update(
            {
                "reward": reward,
                "terminated": terminated,
                "done": terminated.clone(),
                "truncated": torch.zeros_like(terminated),
            }
        )
        return out


def make_toy_env(*, batch_size=(), with_mask: bool = True, recurrent: bool = False, seed=0):
    """The toy env with StepCounter (and InitTracker when ``recurrent``)."""
    env = TransformedEnv(
        ToyMultiAgentEnv(batch_size=batch_size, with_mask=with_mask, seed=seed), StepCounter()
    )
    if recurrent:
        env = TransformedEnv(env.base_env, Compose(StepCounter(), InitTracker()))
    return env


@pytest.fixture
def toy_env_factory():
    return make_toy_env
