"""MATPPO's centralised Transformer critic (seed 000, section 3.4).

:class:`TransformerCritic` feeds ``[global token, agent_1, ..., agent_N]`` to an
:class:`mtmarl.nn.AgentAttentionEncoder` (multi-head self-attention over the agents, no
positional encoding across agents, padding mask for variable ``N``) and writes two values:

* **per-agent values** ``(*B, N, 1)``: a shared head on every agent's context vector;
* **a pooled global value** ``(*B, 1)``: a head on ``[global token ; masked mean of the
  agent tokens]`` (the paper's "global pooling layer" fitting the global state value).

Which value does what:

* **GAE uses the per-agent values**, like every other mtmarl critic:
  :class:`torchrl.objectives.value.MultiAgentGAE` (or the trainer's own GAE) broadcasts the
  team reward ``("next", "reward")`` ``(*B, 1)`` and the root done flags over
  ``("agents", "state_value")``; ``MAPPOLoss`` / ``ClipPPOLoss`` then train them by MSE on
  their ``("agents", "value_target")`` -- nothing to add. With a team reward every agent's
  target is the same team return, so each per-agent value is a (context-dependent) estimate
  of the community's global state value; with per-agent rewards (GAE on
  ``("agents", "reward")``, e.g. ``CommunityEnergyEnv(agent_rewards=True)``) each one
  estimates its own agent's return, attending to the others to do so.
* **the global value** is the paper's ``V(s)``: train it by MSE on the team return with
  :meth:`TransformerCritic.global_value_loss` added to the PPO losses. Its target comes from
  a plain (single-agent) GAE run with the global value::

      gae = GAE(gamma=0.99, lmbda=0.95, value_network=critic, shifted=True)
      gae.set_keys(value="state_value_global", advantage="advantage_global",
                   value_target="state_value_global_target")
      gae(data)                                            # under torch.no_grad()
      loss = sum(ppo_losses) + c * critic.global_value_loss(minibatch)

  Both heads share the encoder, so both losses train the attention weights. (``shifted=True``
  runs the critic once over ``T + 1`` steps instead of vmapping it over ``(root, next)``:
  faster, identical advantages, and required when the critic contains an LSTM such as a
  :class:`~mtmarl.modules.ForecastEncoder`, which has no vmap rule.)

To attend over learned per-agent features (the paper's LSTM features), compose the critic's
own encoder in front: ``TensorDictSequential(ForecastEncoder(..., out_key=("agents",
"critic_feature")), TransformerCritic(D, agent_key=("agents", "critic_feature"), ...))``.
Do not read the actor's ``("agents", "feature")``: value estimators also run the critic on
``"next"``, where only env outputs exist.

Padded agents (``mask`` ``False``) are ignored by every attention and by the pooled mean,
and their per-agent values are 0 (they are not agents: mask them out of any loss too).

Keys (defaults, all configurable):

* read: ``("agents", "observation")`` ``(*B, N, Fa)`` float per-agent critic input (e.g. the
  flat local observation, or a dedicated ``("agents", "critic_observation")``); root
  ``"state"`` ``(*B, G)`` float global aggregate projected into the global token (only with
  ``global_features``; it must not grow with ``N`` if one critic is to serve every ``N``);
  optional ``("agents", "mask")`` ``(*B, N)`` bool (``True`` = real agent);
* written: ``("agents", "state_value")`` ``(*B, N, 1)`` and root ``"state_value_global"``
  ``(*B, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey, unravel_key
from torch import nn
from torchrl.modules import MLP

from mtmarl.nn.attention import AgentAttentionEncoder

__all__ = ["TransformerCritic"]


class TransformerCritic(TensorDictModuleBase):
    """Attention over agents + global token -> per-agent values and a pooled global value.

    Args:
        agent_features (int): per-agent input features ``Fa``.

    Keyword Args:
        global_features (int or None): global input features ``G`` read from
            ``global_key``; ``None`` uses a learned global token. Defaults to ``None``.
        d_model (int): token width. Defaults to ``64``.
        num_heads (int): attention heads. Defaults to ``4``.
        num_layers (int): encoder layers. Defaults to ``2``.
        dim_feedforward (int or None): feed-forward width (``None``: ``2 * d_model``).
        dropout (float): encoder dropout. Defaults to ``0.0``.
        activation (type[nn.Module]): activation of the encoder's feed-forward blocks and
            of the value heads. Defaults to ``nn.GELU``.
        norm_first (bool): pre-norm encoder layers. Defaults to ``True``.
        head_cells (Sequence[int]): hidden sizes of the two value heads. Defaults to
            ``(64,)``.
        agent_key (NestedKey): ``(*B, N, Fa)`` input. Defaults to ``("agents", "observation")``.
        global_key (NestedKey): ``(*B, G)`` input (used iff ``global_features``). Defaults to
            ``"state"``.
        mask_key (NestedKey, optional): ``(*B, N)`` bool agent mask (``True`` = real).
            Defaults to ``None`` (all agents real).
        value_key (NestedKey): per-agent value ``(*B, N, 1)``. Defaults to
            ``("agents", "state_value")``.
        global_value_key (NestedKey): pooled global value ``(*B, 1)``. Defaults to
            ``"state_value_global"``.
        store_attention (bool): keep the last forward's last-layer attention weights in
            :attr:`last_attention` (computes them explicitly: slower). Can be toggled later.
            Defaults to ``False``.

    Attributes:
        encoder (AgentAttentionEncoder): the attention core.
        last_attention (torch.Tensor or None): ``(*B, h, N + 1, N + 1)`` detached weights
            of the last layer from the last forward with ``store_attention=True`` (token 0 is
            the global token).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> critic = TransformerCritic(6, global_features=5, d_model=16, num_heads=2)
        >>> critic.in_keys, critic.out_keys
        ([('agents', 'observation'), 'state'], [('agents', 'state_value'), 'state_value_global'])
        >>> def data(n):
        ...     return TensorDict({"agents": TensorDict({"observation": torch.randn(8, n, 6)},
        ...         [8, n]), "state": torch.randn(8, 5)}, [8])
        >>> td = critic(data(4))
        >>> td["agents", "state_value"].shape, td["state_value_global"].shape
        (torch.Size([8, 4, 1]), torch.Size([8, 1]))
        >>> critic(data(64))["agents", "state_value"].shape     # same weights, N = 64
        torch.Size([8, 64, 1])
        >>> critic.attention_weights(data(3)).shape             # (B, L, heads, N+1, N+1)
        torch.Size([8, 2, 2, 4, 4])
    """

    def __init__(
        self,
        agent_features: int,
        *,
        global_features: int | None = None,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        dim_feedforward: int | None = None,
        dropout: float = 0.0,
        activation: type[nn.Module] = nn.GELU,
        norm_first: bool = True,
        head_cells: Sequence[int] = (64,),
        agent_key: NestedKey = ("agents", "observation"),
        global_key: NestedKey = "state",
        mask_key: NestedKey | None = None,
        value_key: NestedKey = ("agents", "state_value"),
        global_value_key: NestedKey = "state_value_global",
        store_attention: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = AgentAttentionEncoder(
            agent_features,
            global_features=global_features,
            d_model=d_model,
            num_heads=num_heads,
            num_layers=num_layers,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            activation=activation,
            norm_first=norm_first,
        )
        if isinstance(head_cells, int) or not isinstance(head_cells, Sequence):
            raise TypeError(
                f"TransformerCritic expected head_cells to be a sequence of ints, e.g. (64,), "
                f"got {head_cells!r}"
            )
        cells = list(head_cells)
        self.agent_head = MLP(
            in_features=d_model, out_features=1, num_cells=cells, activation_class=activation
        )
        self.global_head = MLP(
            in_features=2 * d_model, out_features=1, num_cells=cells, activation_class=activation
        )
        self.agent_key = unravel_key(agent_key)
        self.global_key = unravel_key(global_key) if global_features is not None else None
        self.mask_key = unravel_key(mask_key) if mask_key is not None else None
        self.value_key = unravel_key(value_key)
        self.global_value_key = unravel_key(global_value_key)
        self.in_keys = [
            k for k in (self.agent_key, self.global_key, self.mask_key) if k is not None
        ]
        self.out_keys = [self.value_key, self.global_value_key]
        self.store_attention = bool(store_attention)
        self.last_attention: torch.Tensor | None = None
        #: :class:`~mtmarl.modules.RunningNorm` modules applied to the inputs of their
        #: ``key`` as they are read (:func:`~mtmarl.modules.add_input_norms`); empty: none
        self.input_norms = nn.ModuleList()

    def _inputs(
        self, tensordict: TensorDictBase
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        agents = tensordict.get(self.agent_key)
        glob = None if self.global_key is None else tensordict.get(self.global_key)
        mask = None if self.mask_key is None else tensordict.get(self.mask_key)
        for norm in self.input_norms:
            if norm.key == self.agent_key:
                agents = norm(agents)
            elif norm.key == self.global_key and glob is not None:
                glob = norm(glob)
        return agents, glob, mask

    def _values(
        self, agent_tokens: torch.Tensor, glob: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.agent_head(agent_tokens)
        if mask is None:
            pooled = agent_tokens.mean(-2)
        else:
            m = mask.unsqueeze(-1).to(agent_tokens.dtype)
            values = values * m
            # agent tokens are already zero at padded agents; count the real ones
            pooled = agent_tokens.sum(-2) / m.sum(-2).clamp_min(1.0)
        global_value = self.global_head(torch.cat([glob, pooled], dim=-1))
        return values, global_value

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write the per-agent and global values into ``tensordict`` (returned)."""
        agents, glob_in, mask = self._inputs(tensordict)
        if self.store_attention:
            agent_tokens, glob, weights = self.encoder.forward_with_attention(agents, glob_in, mask)
            self.last_attention = weights[..., -1, :, :, :].detach()
        else:
            agent_tokens, glob = self.encoder(agents, glob_in, mask)
        values, global_value = self._values(agent_tokens, glob, mask)
        tensordict.set(self.value_key, values)
        tensordict.set(self.global_value_key, global_value)
        return tensordict

    @torch.no_grad()
    def attention_weights(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Every layer's attention weights for the inputs in ``tensordict`` (nothing written).

        Args:
            tensordict (TensorDictBase): holds the critic's in_keys.

        Returns:
            torch.Tensor: ``(*B, L, h, N + 1, N + 1)``; ``[..., l, k, i, j]`` is how much
            token ``i`` attends to token ``j`` (0 = global token, ``1 + a`` = agent ``a``) in
            head ``k`` of layer ``l``; columns of padded agents are 0.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> critic = TransformerCritic(3, d_model=8, num_heads=2, num_layers=1,
            ...                            mask_key=("agents", "mask"))
            >>> td = TensorDict({"agents": TensorDict({"observation": torch.randn(2, 3, 3),
            ...     "mask": torch.tensor([[True, True, True], [True, False, True]])},
            ...     [2, 3])}, [2])
            >>> w = critic.attention_weights(td)
            >>> w.shape, bool((w[1, ..., 2] == 0).all())          # padded agent 1 of env 1
            (torch.Size([2, 1, 2, 4, 4]), True)
        """
        agents, glob_in, mask = self._inputs(tensordict)
        return self.encoder.forward_with_attention(agents, glob_in, mask)[2]

    def global_value_loss(
        self,
        tensordict: TensorDictBase,
        *,
        target_key: NestedKey = "state_value_global_target",
    ) -> torch.Tensor:
        """MSE of the pooled global value against a stored team-return target.

        Runs the critic (with gradients) on the critic's in_keys of ``tensordict``; the
        input is not modified.

        Args:
            tensordict (TensorDictBase): holds the in_keys and ``target_key`` ``(*B, 1)``.

        Keyword Args:
            target_key (NestedKey): the target, e.g. written by a plain ``GAE`` with
                ``value_target="state_value_global_target"`` (see the module docs).
                Defaults to ``"state_value_global_target"``.

        Returns:
            torch.Tensor: scalar mean squared error.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> critic = TransformerCritic(3, d_model=8, num_heads=2)
            >>> td = TensorDict({"agents": TensorDict({"observation": torch.randn(6, 4, 3)},
            ...     [6, 4]), "state_value_global_target": torch.randn(6, 1)}, [6])
            >>> loss = critic.global_value_loss(td)
            >>> loss.shape, loss.requires_grad
            (torch.Size([]), True)
        """
        target = tensordict.get(unravel_key(target_key))
        out = self(tensordict.select(*self.in_keys))
        value = out.get(self.global_value_key)
        if target.shape != value.shape:
            raise ValueError(
                f"TransformerCritic.global_value_loss expected a target of shape "
                f"{tuple(value.shape)} at {target_key!r}, got {tuple(target.shape)}"
            )
        return (value - target.detach().to(value.dtype)).pow(2).mean()
