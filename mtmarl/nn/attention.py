"""Self-attention over the agents plus a global token (MATPPO's critic core, seed 000, 3.4).

MATPPO's centralised critic reads the sequence ``[g, x_1, ..., x_N]``: a global aggregation
feature ``g`` of the community followed by every agent's feature, and runs a Transformer
encoder (multi-head self-attention along the sequence) so that each agent's context vector
mixes in the agents that matter to it. :class:`AgentAttentionEncoder` is that core:

* agent features ``(*B, N, Fa)`` are projected by one shared linear map, the global vector
  ``(*B, G)`` by another (or, with ``global_features=None``, a learned token is used);
* no positional encoding is added across agents, so the encoder is permutation-equivariant
  in the agents and one set of weights serves any ``N``;
* padded agents (``mask`` ``False``) are excluded from every attention (keys) and their
  output tokens are zeroed; the global token is never masked, so every query has at least
  one key and no NaN can appear;
* all leading dims are flattened into one attention batch ``(prod(B), N + 1, d)``: no loop
  over agents, envs or time.

Shape glossary:

    ======  ==============================================================
    ``B``   leading batch dims (``*B``), e.g. ``(E, T)``
    ``N``   agents (sequence length ``N + 1`` with the global token first)
    ``Fa``  per-agent input features (``agent_features``)
    ``G``   global input features (``global_features``)
    ``d``   model width (``d_model``)
    ``L``   encoder layers (``num_layers``); ``h`` heads (``num_heads``)
    ======  ==============================================================

This module imports only :mod:`torch`.
"""

from __future__ import annotations

import torch
from torch import nn

from mtmarl._checks import positive_int as _positive_int

__all__ = ["AgentAttentionEncoder"]


class _AttentionBlock(nn.Module):
    """One Transformer encoder layer (self-attention + feed-forward) that can return weights.

    Same computation as :class:`torch.nn.TransformerEncoderLayer` (``batch_first=True``),
    written out so that the attention weights can be requested per call.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int,
        dropout: float,
        activation: type[nn.Module],
        norm_first: bool,
        factory: dict,
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(
            d_model, num_heads, dropout=dropout, batch_first=True, **factory
        )
        self.feedforward = nn.Sequential(
            nn.Linear(d_model, dim_feedforward, **factory),
            activation(),
            nn.Dropout(dropout),
            nn.Linear(dim_feedforward, d_model, **factory),
        )
        self.norm1 = nn.LayerNorm(d_model, **factory)
        self.norm2 = nn.LayerNorm(d_model, **factory)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def _attend(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not need_weights:
            return self.dropout1(self._fast_attend(x, key_padding_mask)), None
        out, weights = self.self_attn(
            x,
            x,
            x,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            average_attn_weights=False,
        )
        return self.dropout1(out), weights

    def _fast_attend(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        """``self_attn(x, x, x)`` without weights, on the same parameters:
        ``scaled_dot_product_attention`` in the batch-first layout. ``nn.MultiheadAttention`` transposes to sequence-first and
        selects q, k, v from a packed tensor, whose backward fills and copies a
        ``(3, S, B, d)`` buffer per layer: at N = 100 that was a third of the critic's
        update time on CPU."""
        attn = self.self_attn
        batch, seq, d = x.shape
        heads = attn.num_heads
        # three projections on slices of the packed weight: the backward then sums three
        # (B, S, d) input gradients instead of gathering a strided (B * S, 3 d) one
        q, k, v = (
            nn.functional.linear(x, w, b).view(batch, seq, heads, d // heads).transpose(1, 2)
            for w, b in zip(attn.in_proj_weight.chunk(3), attn.in_proj_bias.chunk(3))
        )
        mask = None
        if key_padding_mask is not None:  # True = padding -> sdpa's True = attend
            mask = ~key_padding_mask[:, None, None, :]
        out = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=attn.dropout if self.training else 0.0
        )
        return attn.out_proj(out.transpose(1, 2).reshape(batch, seq, d))

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.norm_first:
            a, weights = self._attend(self.norm1(x), key_padding_mask, need_weights)
            x = x + a
            x = x + self.dropout2(self.feedforward(self.norm2(x)))
        else:
            a, weights = self._attend(x, key_padding_mask, need_weights)
            x = self.norm1(x + a)
            x = self.norm2(x + self.dropout2(self.feedforward(x)))
        return x, weights


class AgentAttentionEncoder(nn.Module):
    """Transformer encoder over ``[global token, agent_1, ..., agent_N]``.

    Args:
        agent_features (int): per-agent input features ``Fa``.

    Keyword Args:
        global_features (int or None): global input features ``G`` projected into the global
            token; ``None`` uses a learned token (no global input). Defaults to ``None``.
        d_model (int): token width ``d``. Defaults to ``64``.
        num_heads (int): attention heads ``h`` (must divide ``d_model``). Defaults to ``4``.
        num_layers (int): encoder layers ``L``. Defaults to ``2``.
        dim_feedforward (int or None): hidden size of each feed-forward block; ``None``
            gives ``2 * d_model``. Defaults to ``None``.
        dropout (float): dropout in attention and feed-forward blocks. Defaults to ``0.0``.
        activation (type[nn.Module]): feed-forward activation. Defaults to ``nn.GELU``.
        norm_first (bool): pre-norm layers (plus a final LayerNorm), more stable to train
            than the post-norm original. Defaults to ``True``.
        device (torch.device, optional): device of the parameters.
        dtype (torch.dtype, optional): dtype of the parameters.

    Examples:
        >>> import torch
        >>> enc = AgentAttentionEncoder(5, global_features=7, d_model=16, num_heads=2)
        >>> x, g = torch.randn(8, 4, 5), torch.randn(8, 7)          # (B, N, Fa), (B, G)
        >>> agents, glob = enc(x, g)
        >>> agents.shape, glob.shape
        (torch.Size([8, 4, 16]), torch.Size([8, 16]))
        >>> perm = torch.tensor([2, 0, 3, 1])                         # permutation-equivariant
        >>> torch.allclose(enc(x[:, perm], g)[0], agents[:, perm], atol=1e-5)
        True
        >>> enc(torch.randn(8, 64, 5), g)[0].shape                   # same weights, N = 64
        torch.Size([8, 64, 16])
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
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        who = "AgentAttentionEncoder"
        self.agent_features = _positive_int(agent_features, "agent_features", who)
        if global_features is not None:
            _positive_int(global_features, "global_features (or None)", who)
        self.global_features = global_features
        self.d_model = _positive_int(d_model, "d_model", who)
        self.num_heads = _positive_int(num_heads, "num_heads", who)
        self.num_layers = _positive_int(num_layers, "num_layers", who)
        if d_model % num_heads != 0:
            raise ValueError(
                f"{who} expected num_heads to divide d_model, got d_model={d_model}, "
                f"num_heads={num_heads}"
            )
        ff = 2 * d_model if dim_feedforward is None else dim_feedforward
        _positive_int(ff, "dim_feedforward", who)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{who} expected dropout in [0, 1), got {dropout!r}")
        if not (isinstance(activation, type) and issubclass(activation, nn.Module)):
            raise TypeError(
                f"{who} expected activation to be an nn.Module class such as nn.GELU, "
                f"got {activation!r}"
            )
        factory = {"device": device, "dtype": dtype}
        self.agent_proj = nn.Linear(agent_features, d_model, **factory)
        if global_features is None:
            self.global_proj = None
            self.global_token = nn.Parameter(torch.randn(d_model, **factory) * 0.02)
        else:
            self.global_proj = nn.Linear(global_features, d_model, **factory)
            self.register_parameter("global_token", None)
        self.layers = nn.ModuleList(
            _AttentionBlock(
                d_model, num_heads, ff, float(dropout), activation, bool(norm_first), factory
            )
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model, **factory) if norm_first else nn.Identity()

    # ------------------------------------------------------------------ inputs
    def _tokens(
        self,
        agents: torch.Tensor,
        global_input: torch.Tensor | None,
        mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Size]:
        """``(prod(B), N + 1, d)`` tokens, the key padding mask and ``B``."""
        who = "AgentAttentionEncoder"
        if agents.ndim < 2 or agents.shape[-1] != self.agent_features:
            raise ValueError(
                f"{who} expected agent features of shape (*B, N, {self.agent_features}), "
                f"got {tuple(agents.shape)}"
            )
        batch_shape, n = agents.shape[:-2], agents.shape[-2]
        x = self.agent_proj(agents)
        if self.global_proj is None:
            if global_input is not None:
                raise ValueError(
                    f"{who} was built with global_features=None (a learned global token) and "
                    f"expected no global input, got a tensor of shape {tuple(global_input.shape)}"
                )
            g = self.global_token.to(x.dtype).expand(*batch_shape, self.d_model)
        else:
            expected = (*batch_shape, self.global_features)
            if global_input is None or tuple(global_input.shape) != expected:
                got = None if global_input is None else tuple(global_input.shape)
                raise ValueError(f"{who} expected a global input of shape {expected}, got {got}")
            g = self.global_proj(global_input.to(x.dtype))
        tokens = torch.cat([g.unsqueeze(-2), x], dim=-2).reshape(-1, n + 1, self.d_model)
        padding = None
        if mask is not None:
            if mask.dtype != torch.bool or tuple(mask.shape) != (*batch_shape, n):
                raise ValueError(
                    f"{who} expected a bool agent mask of shape {(*batch_shape, n)} "
                    f"(True = real agent), got {mask.dtype} {tuple(mask.shape)}"
                )
            real = torch.cat([torch.ones_like(mask[..., :1]), mask], dim=-1)
            padding = ~real.reshape(-1, n + 1)
        return tokens, padding, batch_shape

    def _encode(
        self,
        agents: torch.Tensor,
        global_input: torch.Tensor | None,
        mask: torch.Tensor | None,
        need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        tokens, padding, batch_shape = self._tokens(agents, global_input, mask)
        weights = []
        for layer in self.layers:
            tokens, w = layer(tokens, padding, need_weights)
            if need_weights:
                weights.append(w)
        tokens = self.final_norm(tokens).reshape(*batch_shape, -1, self.d_model)
        glob, agent_tokens = tokens[..., 0, :], tokens[..., 1:, :]
        if mask is not None:
            agent_tokens = agent_tokens * mask.unsqueeze(-1).to(agent_tokens.dtype)
        stacked = None
        if need_weights:
            n1 = tokens.shape[-2]
            stacked = torch.stack(weights, dim=1).reshape(
                *batch_shape, self.num_layers, self.num_heads, n1, n1
            )
        return agent_tokens, glob, stacked

    # ------------------------------------------------------------------ public
    def forward(
        self,
        agents: torch.Tensor,
        global_input: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode the agents and the global token.

        Args:
            agents (torch.Tensor): ``(*B, N, Fa)`` per-agent features.
            global_input (torch.Tensor, optional): ``(*B, G)``; required iff the encoder
                was built with ``global_features``.
            mask (torch.Tensor, optional): ``(*B, N)`` bool, ``True`` = real agent,
                ``False`` = padding. ``None``: all agents are real.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: agent tokens ``(*B, N, d)`` (zeros at padded
            agents) and the global token ``(*B, d)``.
        """
        agent_tokens, glob, _ = self._encode(agents, global_input, mask, need_weights=False)
        return agent_tokens, glob

    def forward_with_attention(
        self,
        agents: torch.Tensor,
        global_input: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward` plus every layer's attention weights (slower: explicit softmax).

        Args:
            agents (torch.Tensor): ``(*B, N, Fa)``.
            global_input (torch.Tensor, optional): ``(*B, G)``.
            mask (torch.Tensor, optional): ``(*B, N)`` bool, ``True`` = real agent.

        Returns:
            tuple: agent tokens ``(*B, N, d)``, global token ``(*B, d)`` and attention
            weights ``(*B, L, h, N + 1, N + 1)``: ``[..., l, k, i, j]`` is how much token
            ``i`` attends to token ``j`` in head ``k`` of layer ``l`` (index 0 = the global
            token); rows sum to 1 and columns of padded agents are 0.

        Examples:
            >>> import torch
            >>> enc = AgentAttentionEncoder(5, d_model=8, num_heads=2, num_layers=3)
            >>> mask = torch.tensor([[True, True, False]])
            >>> _, _, w = enc.forward_with_attention(torch.randn(1, 3, 5), mask=mask)
            >>> w.shape
            torch.Size([1, 3, 2, 4, 4])
            >>> bool((w[..., 3] == 0).all()), torch.allclose(w.sum(-1), torch.ones(1, 3, 2, 4))
            (True, True)
        """
        return self._encode(agents, global_input, mask, need_weights=True)

    def extra_repr(self) -> str:
        return (
            f"agent_features={self.agent_features}, global_features={self.global_features}, "
            f"d_model={self.d_model}, num_heads={self.num_heads}, num_layers={self.num_layers}"
        )
