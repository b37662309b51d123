"""Helpers of the transform tests: a small batched multi-agent pure-torch env.

Imported by the test modules of this folder (``from transform_test_envs import ...``).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, OneHot, Unbounded
from torchrl.envs import EnvBase

ACTION_KINDS = ("discrete", "onehot", "continuous", "hybrid", "hybrid2")
BATCH_SHAPES = ((), (2,), (3, 2))


class ToyMultiAgentEnv(EnvBase):
    """``N`` agents under ``("agents", ...)``, team reward and done flags at the root.

    Action kinds: ``"discrete"`` (``Categorical(n)``, ``(*B, N)``), ``"onehot"``
    (``OneHot(n)``, ``(*B, N, n)``), ``"continuous"`` (``Bounded(-1, 1)``,
    ``(*B, N, A)``), ``"hybrid"`` (composite ``mode``: Categorical, ``move``:
    Bounded) and ``"hybrid2"`` (``mode``: Categorical, ``aux``: OneHot(2),
    ``move``: Bounded).

    The observation of every agent is ``(received action features, own clock)``, so a
    test can read back the action the env actually received. Environment ``i`` (in
    flattened batch order) terminates after ``3 + i % 3`` steps, so batched rollouts
    see partial resets.

    Keys: ``("agents", "action")`` (see ``action``), ``("agents", "observation")``
    ``(*B, N, F)`` float, ``"state"`` ``(*B, 3)`` float, ``"reward"``, ``"done"``,
    ``"terminated"``, ``"truncated"`` ``(*B, 1)``.
    """

    batch_locked = True

    def __init__(
        self,
        *,
        batch_size: tuple[int, ...] = (),
        n_agents: int = 2,
        action: str = "discrete",
        n_actions: int = 3,
        action_dim: int = 2,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(batch_size=torch.Size(batch_size), device=device)
        if action not in ACTION_KINDS:
            raise ValueError(f"unknown action kind {action!r}")
        self.kind = action
        self.n_agents = n_agents
        self.n_actions = n_actions
        self.action_dim = action_dim
        B, N = tuple(self.batch_size), n_agents
        if action == "discrete":
            act = Categorical(n_actions, shape=(*B, N), dtype=torch.int64)
            feat = 1
        elif action == "onehot":
            act = OneHot(n_actions, shape=(*B, N, n_actions), dtype=torch.int64)
            feat = n_actions
        elif action == "continuous":
            act = Bounded(-1.0, 1.0, shape=(*B, N, action_dim))
            feat = action_dim
        elif action == "hybrid":
            act = Composite(
                mode=Categorical(n_actions, shape=(*B, N), dtype=torch.int64),
                move=Bounded(-1.0, 1.0, shape=(*B, N, action_dim)),
                shape=(*B, N),
            )
            feat = 1 + action_dim
        else:  # two discrete leaves (one Categorical, one OneHot) and a continuous one
            act = Composite(
                mode=Categorical(n_actions, shape=(*B, N), dtype=torch.int64),
                aux=OneHot(2, shape=(*B, N, 2), dtype=torch.int64),
                move=Bounded(-1.0, 1.0, shape=(*B, N, action_dim)),
                shape=(*B, N),
            )
            feat = 1 + 2 + action_dim
        self.n_features = feat + 1
        self.action_spec = Composite(agents=Composite(action=act, shape=(*B, N)), shape=B)
        self.observation_spec = Composite(
            agents=Composite(observation=Unbounded((*B, N, self.n_features)), shape=(*B, N)),
            state=Unbounded((*B, 3)),
            shape=B,
        )
        self.reward_spec = Composite(reward=Unbounded((*B, 1)), shape=B)
        self.done_spec = Composite(
            done=Categorical(2, shape=(*B, 1), dtype=torch.bool),
            terminated=Categorical(2, shape=(*B, 1), dtype=torch.bool),
            truncated=Categorical(2, shape=(*B, 1), dtype=torch.bool),
            shape=B,
        )
        numel = int(torch.Size(B).numel())
        horizon = (3 + torch.arange(numel) % 3).reshape(*B, 1)
        self.register_buffer("horizon", horizon)
        self.register_buffer("count", torch.zeros(*B, 1, dtype=torch.int64))

    def features(self, action: torch.Tensor | TensorDictBase | None) -> torch.Tensor:
        """``(*B, N, F - 1)`` float features of an action (zeros for ``None``)."""
        B, N = tuple(self.batch_size), self.n_agents
        if action is None:
            return torch.zeros(*B, N, self.n_features - 1)
        if self.kind == "discrete":
            return action.unsqueeze(-1).float()
        if self.kind in ("onehot", "continuous"):
            return action.float()
        parts = [action["mode"].unsqueeze(-1).float()]
        if self.kind == "hybrid2":
            parts.append(action["aux"].float())
        return torch.cat((*parts, action["move"]), -1)

    def _observe(self, action: torch.Tensor | TensorDictBase | None) -> TensorDict:
        B, N = tuple(self.batch_size), self.n_agents
        clock = self.count.unsqueeze(-2).expand(*B, N, 1).float()
        obs = torch.cat((self.features(action), clock), -1)
        state = torch.cat((self.count.float(), self.horizon.float(), torch.ones(*B, 1)), -1)
        return TensorDict(
            {"agents": TensorDict({"observation": obs}, batch_size=(*B, N)), "state": state},
            batch_size=B,
        )

    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDictBase:
        reset = None if tensordict is None else tensordict.get("_reset", None)
        if reset is None:
            self.count.zero_()
        else:
            self.count.copy_(torch.where(reset, 0, self.count))
        out = self._observe(None)
        false = torch.zeros(*self.batch_size, 1, dtype=torch.bool)
        out.update({"done": false, "terminated": false.clone(), "truncated": false.clone()})
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get(("agents", "action"))
        self.count.add_(1)
        out = self._observe(action)
        terminated = self.count >= self.horizon
        out.update(
            {
                "reward": self.features(action).sum((-1, -2)).unsqueeze(-1),
                "done": terminated,
                "terminated": terminated.clone(),
                "truncated": torch.zeros_like(terminated),
            }
        )
        return out

    def _set_seed(self, seed: int | None) -> None:
        torch.manual_seed(0 if seed is None else seed)
