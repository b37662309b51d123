"""Parameter sharing over agents with a one-hot agent id as an auxiliary input.

Seed 004 (like COMA and most parameter-shared MARL work) shares one network between all
agents and appends "a one-hot agent ID as an auxiliary input to distinguish between agents".
:class:`SharedAgentNet` is that idea as a plain :class:`torch.nn.Module`: it appends the
id to a ``(*B, N, F)`` input (or to a global ``(*B, F)`` input first broadcast to the ``N``
agents) and applies one shared core to every agent.

Shape glossary: ``*B`` any leading batch dims, ``N`` agents (``n_agents``), ``F`` input
features.
"""

from __future__ import annotations

import torch
from torch import nn

from mtmarl._checks import positive_int as _check_positive_int

__all__ = ["SharedAgentNet"]


class SharedAgentNet(nn.Module):
    """Apply one core network to every agent, with a one-hot agent id appended to its input.

    ``forward(x, *extra)`` returns ``core(cat([x, one_hot(agent)], -1), *extra)``. The core
    sees ``(*B, N, F + N)`` and must map it to ``(*B, N, out)``; any network acting on the
    last dim does (``nn.Linear``, :class:`torchrl.modules.MLP`, :class:`mtmarl.nn.PhaseMLP`
    with ``extra = (phase,)``). Because a single core serves all agents the parameters are
    shared; the id lets the shared network still behave differently per agent.

    Extra positional inputs (e.g. a phase) are passed to the core unchanged. Per-env
    tensors read from the root of a multi-agent tensordict have shape ``(*B, 1)`` and so
    broadcast over the agent dim as they are.

    Args:
        core (nn.Module): maps ``(*B, N, F + N)`` (``F`` without the id when
            ``agent_id=False``) and the extra inputs to ``(*B, N, out)``.

    Keyword Args:
        n_agents (int): number of agents ``N`` (the size of the one-hot id).
        agent_id (bool): append the one-hot agent id. ``False`` gives plain parameter
            sharing with identical agents (an ablation). Defaults to ``True``.
        shared_input (bool): the input is one global ``(*B, F)`` tensor seen by every agent
            (e.g. the state of a centralised critic); it is broadcast to ``(*B, N, F)``
            before the id is appended. Defaults to ``False`` (per-agent ``(*B, N, F)``).

    Attributes:
        id_features (int): features the id adds to the core's input (``N`` or ``0``).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = SharedAgentNet(nn.Linear(3 + 4, 2), n_agents=4)
        >>> x = torch.ones(5, 4, 3)                       # (B, N, F), identical agents
        >>> y = net(x)
        >>> y.shape
        torch.Size([5, 4, 2])
        >>> bool((y[:, 0] != y[:, 1]).any())              # the id tells them apart
        True
        >>> critic = SharedAgentNet(nn.Linear(6 + 4, 1), n_agents=4, shared_input=True)
        >>> critic(torch.randn(5, 6)).shape               # global state -> one value per agent
        torch.Size([5, 4, 1])
    """

    def __init__(
        self,
        core: nn.Module,
        *,
        n_agents: int,
        agent_id: bool = True,
        shared_input: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(core, nn.Module):
            raise TypeError(f"SharedAgentNet expected core to be an nn.Module, got {type(core)}")
        self.n_agents = _check_positive_int(n_agents, "n_agents", "SharedAgentNet")
        self.core = core
        self.agent_id = bool(agent_id)
        self.shared_input = bool(shared_input)
        self.id_features = self.n_agents if self.agent_id else 0
        self.register_buffer("_eye", torch.eye(self.n_agents), persistent=False)

    def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        """Append the id and apply the core.

        Args:
            x (torch.Tensor): ``(*B, N, F)``, or ``(*B, F)`` with ``shared_input=True``.
            *extra (torch.Tensor): further inputs of the core, passed unchanged.

        Returns:
            torch.Tensor: the core's output, ``(*B, N, out)``.
        """
        n = self.n_agents
        if self.shared_input:
            if x.ndim < 1:
                raise ValueError(
                    "SharedAgentNet(shared_input=True) expected x of shape (*B, F), got a scalar"
                )
            x = x.unsqueeze(-2).expand(*x.shape[:-1], n, x.shape[-1])
        elif x.ndim < 2 or x.shape[-2] != n:
            raise ValueError(
                f"SharedAgentNet expected x of shape (*B, {n}, F) (n_agents={n}), "
                f"got {tuple(x.shape)}"
            )
        if self.agent_id:
            eye = self._eye.to(x.dtype).expand(*x.shape[:-2], n, n)
            x = torch.cat([x, eye], dim=-1)
        return self.core(x, *extra)

    def extra_repr(self) -> str:
        return (
            f"n_agents={self.n_agents}, agent_id={self.agent_id}, shared_input={self.shared_input}"
        )
