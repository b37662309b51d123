"""The COMA centralised critic (Foerster et al., 2018).

COMA's critic answers, for every agent ``n`` at once, "what would the team
return be if agent ``n`` took action ``a`` instead, all other agents keeping
their actions?": ``Q(s, u_-n, a)`` for all ``a``. One forward pass yields the
whole row ``(*B, N, n_actions)``, from which :class:`~mtmarl.objectives.COMALoss`
reads the value of the taken joint action and the counterfactual baseline
``sum_a pi_n(a) Q(s, (u_-n, a))``.

Per agent ``n`` the network sees the concatenation (in this order)

    ======================  =========================  ==============================
    global state            ``(*B, N, S)``             root ``"state"`` ``(*B, S)``
                                                       broadcast to every agent
    other agents' actions   ``(*B, N, (N-1) * A)``     one-hot, agents ``m != n`` in
                                                       increasing order (own omitted)
    agent id                ``(*B, N, N)``             one-hot of ``n``
    own observation         ``(*B, N, F)``             optional (``observation_key``)
    ======================  =========================  ==============================

with ``A = n_actions``; :meth:`COMACritic.input_size` gives the total.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey
from torch import nn
from torchrl.modules import MLP

from mtmarl.nn import PhaseMLP

__all__ = ["COMACritic"]


def _check_positive_int(value: object, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"COMACritic expected {name} to be an int >= {minimum}, got {value!r}")


class _COMACriticCore(nn.Module):
    """Builds the per-agent COMA critic input from tensors and applies ``network``.

    ``forward(state, action[, observation][, phase])`` with ``state`` ``(*B, S)``,
    ``action`` integer ``(*B, N)``, ``observation`` ``(*B, N, F)`` and ``phase``
    whatever ``network`` accepts (e.g. ``(*B, 1)``); returns ``(*B, N, A)``.
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        n_agents: int,
        n_actions: int,
        state_dim: int | None,
        observation_dim: int | None,
        use_observation: bool,
        use_phase: bool,
    ) -> None:
        super().__init__()
        self.network = network
        self.n_agents = n_agents
        self.n_actions = n_actions
        self.state_dim = state_dim
        self.observation_dim = observation_dim
        self.use_observation = use_observation
        self.use_phase = use_phase

    def build_inputs(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        observation: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Concatenate ``[state, others' one-hot actions, agent id(, observation)]``.

        Returns:
            torch.Tensor: ``(*B, N, input_size)`` in ``state``'s dtype.
        """
        n, a = self.n_agents, self.n_actions
        if state.ndim == 0 or (self.state_dim is not None and state.shape[-1] != self.state_dim):
            expected = "S" if self.state_dim is None else self.state_dim
            raise ValueError(
                f"COMACritic expected state of shape (*B, {expected}), got {tuple(state.shape)}"
            )
        batch = state.shape[:-1]
        if action.shape != (*batch, n):
            raise ValueError(
                f"COMACritic expected action of shape {(*batch, n)} (one index per agent, "
                f"batch taken from state {tuple(state.shape)}), got {tuple(action.shape)}"
            )
        if action.is_floating_point() or action.dtype == torch.bool or action.is_complex():
            raise TypeError(
                f"COMACritic expected integer action indices (*B, N), got dtype {action.dtype}"
            )
        dtype = state.dtype if state.is_floating_point() else torch.get_default_dtype()
        one_hot = F.one_hot(action.long(), a).to(dtype)  # (*B, N, A)
        eye = torch.eye(n, dtype=torch.bool, device=state.device)
        others_index = torch.arange(n, device=state.device).expand(n, n)[~eye].view(n, n - 1)
        others = one_hot[..., others_index, :].flatten(-2, -1)  # (*B, N, (N-1) * A)
        parts = [
            state.to(dtype).unsqueeze(-2).expand(*batch, n, state.shape[-1]),
            others,
            eye.to(dtype).expand(*batch, n, n),
        ]
        if observation is not None:
            expected_obs = (*batch, n, self.observation_dim or observation.shape[-1])
            if observation.shape != expected_obs:
                raise ValueError(
                    f"COMACritic expected observation of shape {expected_obs}, "
                    f"got {tuple(observation.shape)}"
                )
            parts.append(observation.to(dtype))
        return torch.cat(parts, dim=-1)

    def forward(self, state: torch.Tensor, action: torch.Tensor, *extra: torch.Tensor):
        expected = int(self.use_observation) + int(self.use_phase)
        if len(extra) != expected:
            raise TypeError(
                f"COMACritic expected {2 + expected} input tensors (state, action"
                f"{', observation' if self.use_observation else ''}"
                f"{', phase' if self.use_phase else ''}), got {2 + len(extra)}"
            )
        observation = extra[0] if self.use_observation else None
        x = self.build_inputs(state, action, observation)
        if self.use_phase:
            out = self.network(x, extra[-1])
        else:
            out = self.network(x)
        if out.shape != (*x.shape[:-1], self.n_actions):
            raise ValueError(
                f"COMACritic expected its network to return shape "
                f"{(*x.shape[:-1], self.n_actions)} (one value per action of each agent), "
                f"got {tuple(out.shape)}"
            )
        return out


class COMACritic(TensorDictModule):
    """COMA's centralised counterfactual critic ``Q(s, u_-n, .)`` as a TensorDictModule.

    For every agent ``n`` the network reads the global state, the one-hot
    actions of the *other* agents (agent ``n``'s own action is omitted), a
    one-hot agent id and optionally agent ``n``'s own observation (see the module
    docstring for the exact layout), and returns one value per action of agent
    ``n``: ``Q(s, (u_-n, a))`` for ``a = 0..n_actions-1``. Weights are shared
    across agents (the agent id tells them apart).

    Reads (defaults): ``"state"`` ``(*B, S)`` float, ``("agents", "action")``
    ``(*B, N)`` integer, optionally ``observation_key`` ``(*B, N, F)`` and
    ``phase_key`` (e.g. root ``"phase"`` ``(*B, 1)``). Writes
    ``("agents", "action_value")`` ``(*B, N, n_actions)``.

    Args:
        n_agents (int): ``N >= 1``.
        n_actions (int): number of discrete actions per agent ``A >= 2``.

    Keyword Args:
        state_dim (int, optional): size ``S`` of the global state. Required to
            build the default network; when given, the state's last dim is
            checked at every call. Defaults to ``None``.
        observation_dim (int, optional): size ``F`` of the own observation,
            required with ``observation_key`` and the default network.
            Defaults to ``None``.
        network (nn.Module, optional): the core mapping ``(*B, N, in)`` to
            ``(*B, N, n_actions)`` with ``in = COMACritic.input_size(...)``;
            with ``phase_key`` it is called as ``network(x, phase)`` (e.g. a
            :class:`~mtmarl.nn.PhaseMLP`). If it has an ``in_features``
            attribute it is checked against the expected input size. Defaults
            to an MLP: :class:`torchrl.modules.MLP` without ``phase_key``,
            :class:`~mtmarl.nn.PhaseMLP` with it.
        num_cells (Sequence[int]): hidden sizes of the default network.
            Defaults to ``(64, 64)``.
        activation (type[nn.Module]): activation of the default network.
            Defaults to :class:`torch.nn.ELU` (as :class:`~mtmarl.nn.PhaseMLP`,
            so the plain and phasic variants differ only in the phase).
        state_key (NestedKey): global state. Defaults to ``"state"``.
        action_key (NestedKey): integer actions of all agents. Defaults to
            ``("agents", "action")``.
        observation_key (NestedKey, optional): own observation ``(*B, N, F)``
            appended to each agent's input. Defaults to ``None`` (not used).
        phase_key (NestedKey, optional): phase passed as second argument to
            the network, e.g. ``"phase"``. Defaults to ``None`` (not used).
        out_key (NestedKey): where the action values go. Defaults to
            ``("agents", "action_value")``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> critic = COMACritic(2, 3, state_dim=5, num_cells=(16,))
        >>> COMACritic.input_size(5, 2, 3)  # 5 (state) + 1 * 3 (other's action) + 2 (id)
        10
        >>> td = TensorDict(
        ...     {"state": torch.randn(4, 5),
        ...      "agents": TensorDict({"action": torch.randint(3, (4, 2))}, [4, 2])},
        ...     batch_size=[4],
        ... )
        >>> critic(td)["agents", "action_value"].shape
        torch.Size([4, 2, 3])
        >>> # agent 0's values do not depend on agent 0's own action
        >>> td2 = td.clone(); td2["agents", "action"][:, 0] = (td["agents", "action"][:, 0] + 1) % 3
        >>> q, q2 = critic(td)["agents", "action_value"], critic(td2)["agents", "action_value"]
        >>> torch.allclose(q[:, 0], q2[:, 0]), torch.allclose(q[:, 1], q2[:, 1])
        (True, False)
    """

    def __init__(
        self,
        n_agents: int,
        n_actions: int,
        *,
        state_dim: int | None = None,
        observation_dim: int | None = None,
        network: nn.Module | None = None,
        num_cells: Sequence[int] = (64, 64),
        activation: type[nn.Module] = nn.ELU,
        state_key: NestedKey = "state",
        action_key: NestedKey = ("agents", "action"),
        observation_key: NestedKey | None = None,
        phase_key: NestedKey | None = None,
        out_key: NestedKey = ("agents", "action_value"),
    ) -> None:
        _check_positive_int(n_agents, "n_agents")
        _check_positive_int(n_actions, "n_actions", minimum=2)
        if state_dim is not None:
            _check_positive_int(state_dim, "state_dim")
        if observation_dim is not None:
            _check_positive_int(observation_dim, "observation_dim")
            if observation_key is None:
                raise ValueError(
                    "COMACritic got observation_dim but no observation_key; pass "
                    "observation_key (e.g. ('agents', 'observation')) to use the observation"
                )
        if isinstance(num_cells, int):
            raise TypeError(
                f"COMACritic expected num_cells to be a sequence of ints, got the int "
                f"{num_cells}; write num_cells=({num_cells},)"
            )
        use_observation = observation_key is not None
        use_phase = phase_key is not None
        in_size = None
        if state_dim is not None and (observation_dim is not None or not use_observation):
            in_size = self.input_size(
                state_dim, n_agents, n_actions, observation_dim=observation_dim or 0
            )
        if network is None:
            if in_size is None:
                missing = "state_dim" if state_dim is None else "observation_dim"
                raise ValueError(
                    f"COMACritic needs {missing} to build its default network; pass it or "
                    f"pass network= (input size: COMACritic.input_size(...))"
                )
            if use_phase:
                network = PhaseMLP(
                    in_size, n_actions, num_cells=tuple(num_cells), activation=activation
                )
            else:
                network = MLP(
                    in_features=in_size,
                    out_features=n_actions,
                    num_cells=list(num_cells),
                    activation_class=activation,
                )
        elif not isinstance(network, nn.Module):
            raise TypeError(
                f"COMACritic expected network to be an nn.Module, got {type(network).__name__}"
            )
        net_in = getattr(network, "in_features", None)
        if in_size is not None and isinstance(net_in, int) and net_in != in_size:
            raise ValueError(
                f"COMACritic expected a network with in_features={in_size} "
                f"(state {state_dim} + others' actions {(n_agents - 1) * n_actions} + "
                f"agent id {n_agents} + observation {observation_dim or 0}), got {net_in}"
            )
        core = _COMACriticCore(
            network,
            n_agents=n_agents,
            n_actions=n_actions,
            state_dim=state_dim,
            observation_dim=observation_dim,
            use_observation=use_observation,
            use_phase=use_phase,
        )
        in_keys: list[NestedKey] = [state_key, action_key]
        if use_observation:
            in_keys.append(observation_key)
        if use_phase:
            in_keys.append(phase_key)
        super().__init__(core, in_keys=in_keys, out_keys=[out_key])
        self.n_agents = n_agents
        self.n_actions = n_actions
        self.state_key = state_key
        self.action_key = action_key
        self.observation_key = observation_key
        self.phase_key = phase_key
        self.out_key = out_key

    @property
    def network(self) -> nn.Module:
        """The core network ``(*B, N, in) -> (*B, N, n_actions)``."""
        return self.module.network

    @classmethod
    def input_size(
        cls, state_dim: int, n_agents: int, n_actions: int, *, observation_dim: int = 0
    ) -> int:
        """Size of each agent's critic input: ``S + (N - 1) * A + N (+ F)``.

        Args:
            state_dim (int): global state size ``S``.
            n_agents (int): number of agents ``N``.
            n_actions (int): actions per agent ``A``.

        Keyword Args:
            observation_dim (int): own observation size ``F`` when
                ``observation_key`` is used. Defaults to ``0``.

        Returns:
            int: the ``in_features`` a custom ``network`` must accept.

        Examples:
            >>> COMACritic.input_size(10, 3, 4)  # 10 + 2 * 4 + 3
            21
            >>> COMACritic.input_size(10, 3, 4, observation_dim=6)
            27
        """
        return state_dim + (n_agents - 1) * n_actions + n_agents + observation_dim

    def build_inputs(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        observation: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The per-agent network input, for inspection and custom networks.

        Args:
            state (torch.Tensor): ``(*B, S)``.
            action (torch.Tensor): integer ``(*B, N)``.
            observation (torch.Tensor, optional): ``(*B, N, F)``, only with
                ``observation_key``.

        Returns:
            torch.Tensor: ``(*B, N, input_size)``.

        Examples:
            >>> import torch
            >>> critic = COMACritic(3, 2, state_dim=1)
            >>> x = critic.build_inputs(torch.zeros(1), torch.tensor([0, 1, 1]))
            >>> x.shape  # 1 + 2 * 2 + 3
            torch.Size([3, 8])
            >>> x[0].tolist()  # state, agent 1 took 1, agent 2 took 1, id 0
            [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
        """
        if (observation is not None) != (self.observation_key is not None):
            raise ValueError(
                f"COMACritic.build_inputs expected an observation iff observation_key is set "
                f"(observation_key={self.observation_key!r})"
            )
        return self.module.build_inputs(state, action, observation)
