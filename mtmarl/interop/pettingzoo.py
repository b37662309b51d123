"""Any mtmarl (or torchrl multi-agent) environment as a PettingZoo ``ParallelEnv``.

:func:`to_pettingzoo` wraps a torchrl environment of one environment (``batch_size`` ``()``
or ``(1,)``) that follows torchrl's multi-agent key convention (per-agent entries under
``("agents", ...)``, a team reward and the done flags at the root, an optional global
``"state"``) as a :class:`MtmarlParallelEnv`: numpy in, numpy out, one Gymnasium space per
agent built from the specs by :mod:`mtmarl.interop.spaces`. It passes PettingZoo's own
``pettingzoo.test.parallel_api_test``.

Needs the optional dependency ``pettingzoo`` (``pip install "mtmarl[interop]"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from gymnasium import spaces
from tensordict import TensorDict, TensorDictBase, unravel_key
from tensordict.utils import NestedKey
from torchrl.data import Composite, TensorSpec
from torchrl.envs import EnvBase

from mtmarl.interop.spaces import agent_spec, sample_to_tensor, spec_to_space, tensor_to_sample

try:
    from pettingzoo import ParallelEnv
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "mtmarl.interop.pettingzoo needs PettingZoo: pip install 'mtmarl[interop]' "
        "(or pip install 'pettingzoo>=1.24')"
    ) from err

__all__ = ["MtmarlParallelEnv", "to_pettingzoo"]

_WHO = "to_pettingzoo"
_RENDER_MODES = ("ansi",)


def _name(key: NestedKey) -> str:
    key = unravel_key(key)
    return key if isinstance(key, str) else "/".join(key)


def _as_tuple(key: NestedKey) -> tuple[str, ...]:
    key = unravel_key(key)
    return (key,) if isinstance(key, str) else tuple(key)


class MtmarlParallelEnv(ParallelEnv):
    """A torchrl multi-agent environment seen through PettingZoo's Parallel API.

    Build it with :func:`to_pettingzoo` (which documents the conversion); the constructor
    takes the same arguments.

    * ``reset(seed=None, options=None)`` -> ``(observations, infos)``; a ``seed`` reseeds the
      torchrl env (``env.set_seed``) and the agents' action spaces (``seed + i``).
    * ``step(actions)`` -> ``(observations, rewards, terminations, truncations, infos)``,
      dicts keyed by agent name. ``actions`` must hold an action for every live agent
      (samples of :meth:`action_space`). When the episode ends (root ``"terminated"`` or
      ``"truncated"``), every agent is removed from :attr:`agents` and :meth:`reset` must be
      called before the next step.
    * :meth:`state` -> the root ``"state"`` as a numpy array (with :attr:`state_space`),
      if the env has one.

    Attributes:
        env (EnvBase): the wrapped torchrl environment.
        possible_agents (list[str]): the agent names.
        agents (list[str]): the live agents (empty between an episode's end and reset).
        state_space (gymnasium.spaces.Space | None): the space of :meth:`state`.
        render_mode (str | None): ``None`` or ``"ansi"``.

    Examples:
        >>> from mtmarl.envs import MoveBoxEnv
        >>> pz = MtmarlParallelEnv(MoveBoxEnv.easy())
        >>> obs, infos = pz.reset(seed=0)
        >>> pz.agents, obs["agent_0"].tolist()
        (['agent_0', 'agent_1'], [0.0, 0.0, 1.0, 1.0])
        >>> pz.action_space("agent_0")
        Discrete(3)
    """

    metadata = {"render_modes": list(_RENDER_MODES), "name": "mtmarl", "is_parallelizable": True}

    def __init__(
        self,
        env: EnvBase,
        *,
        agent_names: Sequence[str] | None = None,
        observation_keys: Sequence[NestedKey] | None = None,
        group: NestedKey = "agents",
        reward_key: NestedKey | None = None,
        render_mode: str | None = None,
    ) -> None:
        if not isinstance(env, EnvBase):
            raise TypeError(f"{_WHO} expected a torchrl EnvBase, got {type(env).__name__}")
        batch = tuple(env.batch_size)
        if batch not in ((), (1,)):
            raise ValueError(
                f"{_WHO} expected a single environment (batch_size () or (1,), e.g. "
                f"num_envs=1): a PettingZoo env is one environment, got batch_size {batch}"
            )
        if render_mode is not None and render_mode not in _RENDER_MODES:
            raise ValueError(
                f"{_WHO} expected render_mode in {(None, *_RENDER_MODES)}, got {render_mode!r}"
            )
        group = _as_tuple(group)
        self.env = env
        self.group = group
        self.render_mode = render_mode
        self._batch_dims = len(batch)
        self._index = (0,) * self._batch_dims

        # ------------------------------------------------------------------ action
        action_key = (*group, "action")
        full_action_spec = env.full_action_spec
        if action_key not in full_action_spec.keys(True):
            raise KeyError(
                f"{_WHO} expected the per-agent action {action_key!r} in the env's action "
                f"spec; available: {list(full_action_spec.keys(True, True))}"
            )
        self._action_key = action_key
        self._action_spec: TensorSpec = full_action_spec[action_key]
        group_shape = tuple(full_action_spec[group].shape)
        if len(group_shape) != self._batch_dims + 1:
            raise ValueError(
                f"{_WHO} expected the group {group!r} to have shape (*batch, n_agents) = "
                f"{(*batch, 'N')}, got {group_shape}"
            )
        n_agents = group_shape[-1]

        # ------------------------------------------------------------------ agents
        if agent_names is None:
            agent_names = [f"agent_{i}" for i in range(n_agents)]
        else:
            agent_names = list(agent_names)
            if len(agent_names) != n_agents or len(set(agent_names)) != n_agents:
                raise ValueError(
                    f"{_WHO} expected {n_agents} distinct agent names (the env has {n_agents} "
                    f"agents in {group!r}), got {agent_names}"
                )
            if not all(isinstance(name, str) for name in agent_names):
                raise TypeError(f"{_WHO} expected agent names to be str, got {agent_names}")
        self.possible_agents = agent_names
        self.agents = []

        # ------------------------------------------------------------- observation
        obs_spec = env.full_observation_spec
        group_obs = obs_spec[group]
        available = list(group_obs.keys(True, True))
        if observation_keys is None:
            observation_keys = ["observation"]
            # PettingZoo's mask convention (sample(mask=obs["action_mask"])) is for a single
            # discrete action; a composite action's mask is opt-in via observation_keys
            if "action_mask" in group_obs.keys() and not isinstance(self._action_spec, Composite):
                observation_keys.append("action_mask")
        else:
            observation_keys = [unravel_key(k) for k in observation_keys]
            if not observation_keys:
                raise ValueError(f"{_WHO} expected at least one observation key, got none")
        for key in observation_keys:
            if key not in group_obs.keys(True):
                raise KeyError(
                    f"{_WHO} expected the observation {key!r} in the env's {group!r} "
                    f"observations; available: {available}"
                )
        self.observation_keys = list(observation_keys)
        self._dict_obs = self.observation_keys != ["observation"]
        if self._dict_obs:
            self._obs_spec: TensorSpec = Composite(
                {_name(k): group_obs[k] for k in self.observation_keys}, shape=group_obs.shape
            )
        else:
            self._obs_spec = group_obs["observation"]
        self._can_act_key = (*group, "can_act") if "can_act" in group_obs.keys() else None

        # ----------------------------------------------------------- reward, done
        reward_keys = [_as_tuple(k) for k in env.reward_keys]
        if reward_key is None:
            if len(reward_keys) != 1:
                raise ValueError(
                    f"{_WHO} expected exactly one reward entry or a reward_key naming one, "
                    f"got {reward_keys}"
                )
            self._reward_key = reward_keys[0]
        else:
            self._reward_key = _as_tuple(reward_key)
            if self._reward_key not in reward_keys:
                raise KeyError(
                    f"{_WHO} expected reward_key to be one of the env's reward entries "
                    f"{reward_keys}, got {self._reward_key}"
                )
        self._reward_per_agent = self._reward_key[: len(group)] == group and len(
            self._reward_key
        ) > len(group)
        done_keys = {_as_tuple(k) for k in env.done_keys}
        for flag in ("terminated", "truncated"):
            if (flag,) not in done_keys:
                raise KeyError(
                    f"{_WHO} expected a root {flag!r} flag in the env's done spec, got "
                    f"{sorted(done_keys)}"
                )

        # ----------------------------------------------------------------- spaces
        self._action_specs = [
            agent_spec(self._action_spec, i, batch_dims=self._batch_dims) for i in range(n_agents)
        ]
        self._obs_specs = [
            agent_spec(self._obs_spec, i, batch_dims=self._batch_dims) for i in range(n_agents)
        ]
        self._action_spaces = {
            name: spec_to_space(spec)
            for name, spec in zip(self.possible_agents, self._action_specs, strict=True)
        }
        self._observation_spaces = {
            name: spec_to_space(spec)
            for name, spec in zip(self.possible_agents, self._obs_specs, strict=True)
        }
        self.observation_spaces = dict(self._observation_spaces)
        self.action_spaces = dict(self._action_spaces)
        if "state" in obs_spec.keys():
            self._state_spec: TensorSpec | None = obs_spec["state"]
            self.state_space = spec_to_space(self._state_spec[self._index])
        else:
            self._state_spec = None
            self.state_space = None
        base = getattr(env, "base_env", env)
        self.metadata = {**self.metadata, "name": f"mtmarl/{type(base).__name__}"}
        self._td: TensorDictBase | None = None
        self._last_rewards: dict[str, float] = {}

    # ---------------------------------------------------------------- spaces
    def observation_space(self, agent: str) -> spaces.Space:
        """The observation space of ``agent`` (the same object at every call).

        Args:
            agent (str): an agent name from :attr:`possible_agents`.

        Returns:
            gymnasium.spaces.Space: a ``Box`` for the plain ``"observation"``, else a
            ``Dict`` keyed by the observation keys (an action mask is a ``MultiBinary``).

        Examples:
            >>> from mtmarl.envs import make_movebox_env
            >>> pz = to_pettingzoo(make_movebox_env("easy"))
            >>> sorted(pz.observation_space("agent_1").keys())
            ['action_mask', 'observation']
        """
        return self._observation_spaces[self._check_agent(agent)]

    def action_space(self, agent: str) -> spaces.Space:
        """The action space of ``agent`` (the same object at every call).

        Args:
            agent (str): an agent name from :attr:`possible_agents`.

        Returns:
            gymnasium.spaces.Space: ``Discrete``, ``Box`` or ``Dict`` (composite actions).

        Examples:
            >>> from mtmarl.envs import MoveBoxEnv
            >>> int(to_pettingzoo(MoveBoxEnv.easy()).action_space("agent_1").n)
            3
        """
        return self._action_spaces[self._check_agent(agent)]

    def _check_agent(self, agent: str) -> str:
        if agent not in self._action_spaces:
            raise KeyError(
                f"{_WHO}: unknown agent {agent!r}, expected one of {self.possible_agents}"
            )
        return agent

    # ------------------------------------------------------------------ API
    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, object], dict[str, dict]]:
        """Starts an episode; all :attr:`possible_agents` become live.

        Args:
            seed (int | None): reseeds the torchrl env and the action spaces. Defaults to
                ``None`` (continue the env's random stream).
            options (dict | None): accepted for API compatibility, unused. Defaults to
                ``None``.

        Returns:
            tuple[dict, dict]: observations and infos per agent.

        Examples:
            >>> from mtmarl.envs import make_movebox_env
            >>> pz = to_pettingzoo(make_movebox_env("easy"))
            >>> obs, infos = pz.reset(seed=1)
            >>> obs["agent_1"]["action_mask"].tolist(), infos["agent_1"]
            ([1, 1, 1], {'can_act': True})
        """
        if seed is not None:
            self.env.set_seed(int(seed))
            for i, agent in enumerate(self.possible_agents):
                self._action_spaces[agent].seed(int(seed) + i)
        self._td = self.env.reset()
        self.agents = list(self.possible_agents)
        self._last_rewards = {}
        return self._observations(self._td), self._infos(self._td)

    def step(
        self, actions: dict[str, object]
    ) -> tuple[dict, dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict]]:
        """Steps all live agents at once.

        Args:
            actions (dict[str, object]): one sample of :meth:`action_space` per live agent.
                Actions that an :class:`~mtmarl.transforms.ActionFrequencyMask` forbids are
                accepted: the transform replaces them by the forced action.

        Returns:
            tuple: ``(observations, rewards, terminations, truncations, infos)``, dicts keyed
            by the agents live at this step. The team reward goes to every agent.

        Raises:
            RuntimeError: stepping before :meth:`reset` or after the episode ended.
            KeyError: a missing or unknown agent.

        Examples:
            >>> from mtmarl.envs import MoveBoxEnv
            >>> pz = to_pettingzoo(MoveBoxEnv.easy())
            >>> _ = pz.reset()
            >>> obs, rew, term, trunc, infos = pz.step({"agent_0": 0, "agent_1": 2})
            >>> obs["agent_0"].tolist(), rew, term["agent_0"]  # agent 0 moved up
            ([0.0, 1.0, 1.0, 1.0], {'agent_0': 0.0, 'agent_1': 0.0}, False)
        """
        if self._td is None or not self.agents:
            raise RuntimeError(
                f"{_WHO}: step() called with no live agents; call reset() to start an episode"
            )
        unknown = sorted(set(actions) - set(self.possible_agents))
        missing = [agent for agent in self.agents if agent not in actions]
        if unknown or missing:
            raise KeyError(
                f"{_WHO} expected one action per live agent {self.agents}, got "
                f"{sorted(actions)} (missing {missing}, unknown {unknown})"
            )
        td = self._td.copy()
        td.set(self._action_key, self._stack_actions(actions))
        next_td = self.env.step(td).get("next")
        self._td = next_td

        live = list(self.agents)
        obs = self._observations(next_td)
        reward = next_td.get(self._reward_key)[self._index].reshape(-1)
        if self._reward_per_agent:
            rewards = {a: float(r) for a, r in zip(self.possible_agents, reward.tolist())}
        else:
            rewards = dict.fromkeys(self.possible_agents, float(reward.sum()))
        terminated = bool(next_td.get("terminated").any())
        truncated = bool(next_td.get("truncated").any())
        infos = self._infos(next_td)
        if terminated or truncated:
            self.agents = []
        self._last_rewards = {a: rewards[a] for a in live}
        return (
            {a: obs[a] for a in live},
            dict(self._last_rewards),
            dict.fromkeys(live, terminated),
            dict.fromkeys(live, truncated),
            {a: infos[a] for a in live},
        )

    def state(self) -> np.ndarray:
        """The global root ``"state"`` of the current step as a numpy array.

        Returns:
            numpy.ndarray: shape ``state_space.shape``.

        Raises:
            NotImplementedError: the env has no root ``"state"``.
            RuntimeError: before :meth:`reset`.

        Examples:
            >>> from mtmarl.envs import MoveBoxEnv
            >>> pz = to_pettingzoo(MoveBoxEnv.easy())
            >>> _ = pz.reset()
            >>> pz.state().tolist(), pz.state_space.shape
            ([0.0, 0.0, 2.0, 1.0, 1.0, 1.0], (6,))
        """
        if self._state_spec is None:
            raise NotImplementedError(
                f"{_WHO}: the env has no root 'state' entry, so there is no global state"
            )
        if self._td is None:
            raise RuntimeError(f"{_WHO}: state() called before reset()")
        return tensor_to_sample(self._state_spec[self._index], self._td.get("state")[self._index])

    def render(self) -> str | None:
        """Renders the current step (``render_mode="ansi"``: a text summary, else nothing).

        Returns:
            str | None: with ``"ansi"``, the step count (if the env counts steps), each
            agent's observation and last reward; ``None`` without a render mode.

        Examples:
            >>> from mtmarl.envs import make_movebox_env
            >>> pz = to_pettingzoo(make_movebox_env("easy"), render_mode="ansi")
            >>> _ = pz.reset()
            >>> pz.render().splitlines()[0]
            'step 0'
        """
        if self.render_mode is None or self._td is None:
            return None
        lines = []
        if "step_count" in self._td.keys():
            lines.append(f"step {int(self._td.get('step_count')[self._index].reshape(-1)[0])}")
        obs = self._observations(self._td)
        for agent in self.possible_agents:
            reward = self._last_rewards.get(agent)
            suffix = "" if reward is None else f" reward={reward:g}"
            lines.append(f"{agent}: {obs[agent]}{suffix}")
        return "\n".join(lines)

    def close(self) -> None:
        """Closes the torchrl environment.

        Examples:
            >>> from mtmarl.envs import MoveBoxEnv
            >>> pz = to_pettingzoo(MoveBoxEnv.easy())
            >>> pz.close(); pz.env.is_closed
            True
        """
        self.env.close(raise_if_closed=False)

    # -------------------------------------------------------------- helpers
    def _observations(self, td: TensorDictBase) -> dict[str, object]:
        group_td = td.get(self.group)[self._index]
        if self._dict_obs:
            data = TensorDict(
                {_name(k): group_td.get(k) for k in self.observation_keys},
                batch_size=group_td.batch_size,
            )
        else:
            data = group_td.get("observation")
        return {
            agent: tensor_to_sample(spec, data[i])
            for i, (agent, spec) in enumerate(zip(self.possible_agents, self._obs_specs))
        }

    def _infos(self, td: TensorDictBase) -> dict[str, dict]:
        if self._can_act_key is None:
            return {agent: {} for agent in self.possible_agents}
        can_act = td.get(self._can_act_key)[self._index].tolist()
        return {agent: {"can_act": bool(c)} for agent, c in zip(self.possible_agents, can_act)}

    def _stack_actions(self, actions: dict[str, object]) -> torch.Tensor | TensorDictBase:
        device = self.env.device
        per_agent = [
            sample_to_tensor(spec, actions[agent], device=device)
            for agent, spec in zip(self.possible_agents, self._action_specs)
        ]
        if isinstance(self._action_spec, Composite):
            n = len(per_agent)
            stacked = TensorDict(
                {k: torch.stack([a[k] for a in per_agent]) for k in per_agent[0]},
                batch_size=(n,),
                device=device,
            )
        else:
            stacked = torch.stack(per_agent)
        for _ in range(self._batch_dims):
            stacked = stacked.unsqueeze(0)
        return stacked


def to_pettingzoo(
    env: EnvBase,
    *,
    agent_names: Sequence[str] | None = None,
    observation_keys: Sequence[NestedKey] | None = None,
    group: NestedKey = "agents",
    reward_key: NestedKey | None = None,
    render_mode: str | None = None,
) -> MtmarlParallelEnv:
    """Exports a torchrl multi-agent environment as a PettingZoo ``ParallelEnv``.

    The environment must be a single one (``batch_size`` ``()`` or ``(1,)``, e.g.
    ``num_envs=1``) and keep its agents in one group ``group`` of shape ``(*B, N)``.
    Conversions (spaces from :func:`~mtmarl.interop.spec_to_space`, values numpy):

    * **actions**: per agent from ``(group, "action")``: ``Discrete`` (``Categorical``),
      ``Box`` (``Bounded``) or ``Dict`` (composite, e.g. the hybrid
      ``{"mode": Discrete, "power": Box}`` of
      :class:`~mtmarl.envs.CommunityEnergyEnv`). With an
      :class:`~mtmarl.transforms.ActionFrequencyMask` in the stack, an action an agent may
      not take is replaced by the forced one (the transform's inverse).
    * **observations**: per agent, the entries ``observation_keys`` of ``group``. By default
      ``"observation"`` -- a ``Box`` -- or, if the group has an ``"action_mask"`` and the
      action is a single discrete one, PettingZoo's convention ``{"observation": Box,
      "action_mask": MultiBinary}`` (the mask as ``int8``, ready for
      ``action_space(agent).sample(mask=...)``). A composite action's mask (e.g. the
      community env's EV deadline mask) is left out by default: ``Dict.sample`` expects one
      mask per sub-space; pass ``observation_keys=["observation", "action_mask"]`` to get it.
      Any other
      choice of keys gives a ``Dict`` keyed by the keys (nested keys joined with ``/``).
    * **rewards**: the env's reward entry (``reward_key`` picks one when there are several,
      e.g. ``CommunityEnergyEnv(agent_rewards=True)``): a root team reward goes to every
      agent, a per-agent ``(group, "reward")`` is passed per agent.
    * **terminations / truncations**: the root ``"terminated"`` / ``"truncated"`` flags for
      every agent; at the end of an episode all agents leave :attr:`~MtmarlParallelEnv.agents`.
    * **infos**: ``{"can_act": bool}`` per agent if the group has a ``"can_act"`` entry
      (from :class:`~mtmarl.transforms.ActionFrequencyMask`), else ``{}``.
    * **state**: the root ``"state"`` via ``state()`` / ``state_space``, if present.
    * **seeding**: ``reset(seed=...)`` calls ``env.set_seed(seed)``.

    Args:
        env (EnvBase): the torchrl environment (e.g. ``make_movebox_env("easy")``).

    Keyword Args:
        agent_names (Sequence[str] | None): one distinct name per agent, in the order of
            the agent dim. Defaults to ``None`` (``"agent_0"``, ``"agent_1"``, ...).
        observation_keys (Sequence[NestedKey] | None): entries of ``group`` that make up
            an agent's observation. Defaults to ``None`` (see above).
        group (NestedKey): the agent group. Defaults to ``"agents"``.
        reward_key (NestedKey | None): the reward entry to pass on. Defaults to ``None``
            (the env's only one; an env with several raises).
        render_mode (str | None): ``None`` or ``"ansi"`` (text). Defaults to ``None``.

    Returns:
        MtmarlParallelEnv: the PettingZoo environment (``.env`` is ``env``).

    Raises:
        ValueError: ``num_envs > 1``, wrong agent names, an unknown render mode, several
            reward entries and no ``reward_key``.
        KeyError: a missing action, observation or done entry, an unknown ``reward_key``.

    Examples:
        >>> from mtmarl.envs import CommunityEnergyEnv
        >>> pz = to_pettingzoo(CommunityEnergyEnv(n_prosumers=3, seed=0))
        >>> pz.possible_agents
        ['agent_0', 'agent_1', 'agent_2']
        >>> obs, _ = pz.reset(seed=0)
        >>> pz.observation_space("agent_2").contains(obs["agent_2"])
        True
        >>> sorted(pz.action_space("agent_0").keys())  # hybrid action
        ['mode', 'power']
    """
    return MtmarlParallelEnv(
        env,
        agent_names=agent_names,
        observation_keys=observation_keys,
        group=group,
        reward_key=reward_key,
        render_mode=render_mode,
    )
