"""LSTM encoding of a forecast window (MATPPO's actor state encoder, seed 000, section 3.4).

Each agent observes a short window of upcoming values (e.g. 3 h = 12 steps of PV output,
load demand and price). An LSTM reads the window from the first to the last step and its
final hidden state summarises the upcoming trend; MATPPO concatenates that summary with the
agent's device-state triplet and maps the result linearly to the agent's local feature.

The window is part of each step's observation, so no recurrent state is carried across
environment steps: every window is encoded from zero initial states, and the encoders are
plain feed-forward modules for collectors and losses (no primers, no ``is_init``).

Shape glossary:

    ======  ==============================================================
    ``B``   any number of leading batch dims (``*B``), e.g. ``(E, T, N)``
    ``W``   forecast window length (steps)
    ``F``   forecast features per step (``in_features``)
    ``S``   device-state features (``state_features``, e.g. 3)
    ``H``   LSTM hidden size (``hidden_size``)
    ``D``   local feature size (``out_features``)
    ======  ==============================================================

All leading dims are flattened into one LSTM batch (``(prod(B), W, F)``), so agents are
encoded in parallel with shared weights and an agent-free single-agent layout
``(*B, W, F)`` works the same way. On CPU that batch is run in chunks of
``chunk_size`` windows (default 512): every window is encoded independently, so the
values are the same, and the forward and backward of an LSTM over a PPO minibatch
(thousands of windows) run 2-3x faster when each chunk's gate buffers stay in cache
(``benchmarks/README.md``, "Community pipeline"). This module imports only :mod:`torch`.
"""

from __future__ import annotations

import torch
from torch import nn

from mtmarl._checks import positive_int as _positive_int

__all__ = ["ForecastFeatureNet", "ForecastLSTM"]


class ForecastLSTM(nn.Module):
    """Encode a forecast window ``(*B, W, F)`` into the LSTM's last hidden state ``(*B, H)``.

    The window is read in order (index 0 = the next step, ``W - 1`` = the furthest) from
    zero initial states; the output is the top layer's hidden state after the last step.

    Args:
        in_features (int): features ``F`` per forecast step.
        hidden_size (int): LSTM hidden size ``H``.

    Keyword Args:
        num_layers (int): stacked LSTM layers. Defaults to ``1``.
        dropout (float): dropout between stacked layers (``num_layers > 1`` only).
            Defaults to ``0.0``.
        chunk_size (int or None): on CPU, run the LSTM over at most this many windows at a
            time (the outputs are the same; large batches run 2-3x faster); ``None`` runs
            the whole batch at once. CUDA inputs always run at once. Defaults to ``512``.
        device (torch.device, optional): device of the parameters.
        dtype (torch.dtype, optional): dtype of the parameters.

    Attributes:
        lstm (nn.LSTM): the ``batch_first`` LSTM.
        chunk_size (int or None): see Args.

    Examples:
        >>> import torch
        >>> enc = ForecastLSTM(3, 16)
        >>> x = torch.randn(5, 4, 12, 3)          # (E, N, W, F)
        >>> enc(x).shape
        torch.Size([5, 4, 16])
        >>> enc(x[:, 0]).shape                    # agent-free (E, W, F)
        torch.Size([5, 16])
        >>> torch.allclose(enc(x)[:, 0], enc(x[:, 0]), atol=1e-6)  # agents are independent
        True
        >>> big = torch.randn(1500, 12, 3)                  # 3 chunks of <= 512 windows
        >>> whole = ForecastLSTM(3, 16, chunk_size=None)
        >>> _ = whole.load_state_dict(enc.state_dict())
        >>> torch.allclose(enc(big), whole(big), atol=1e-6)  # chunks change nothing
        True
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        num_layers: int = 1,
        dropout: float = 0.0,
        chunk_size: int | None = 512,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        who = "ForecastLSTM"
        self.in_features = _positive_int(in_features, "in_features", who)
        self.hidden_size = _positive_int(hidden_size, "hidden_size", who)
        self.num_layers = _positive_int(num_layers, "num_layers", who)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{who} expected dropout in [0, 1), got {dropout!r}")
        self.chunk_size = (
            None if chunk_size is None else _positive_int(chunk_size, "chunk_size (or None)", who)
        )
        self.lstm = nn.LSTM(
            in_features,
            hidden_size,
            num_layers=num_layers,
            dropout=float(dropout) if num_layers > 1 else 0.0,
            batch_first=True,
            device=device,
            dtype=dtype,
        )

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """Encode the window.

        Args:
            window (torch.Tensor): ``(*B, W, F)`` with ``W >= 1``.

        Returns:
            torch.Tensor: ``(*B, H)``, the last hidden state of the top layer.
        """
        if window.ndim < 2 or window.shape[-1] != self.in_features or window.shape[-2] < 1:
            raise ValueError(
                f"ForecastLSTM expected a window of shape (*B, W, {self.in_features}) with "
                f"W >= 1, got {tuple(window.shape)}"
            )
        batch_shape = window.shape[:-2]
        flat = window.reshape(-1, *window.shape[-2:])
        size = self.chunk_size
        if size is None or flat.device.type != "cpu" or flat.shape[0] <= size:
            last = self.lstm(flat)[1][0][-1]
        else:
            last = torch.cat([self.lstm(chunk)[1][0][-1] for chunk in flat.split(size)])
        return last.reshape(*batch_shape, self.hidden_size)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, hidden_size={self.hidden_size}, "
            f"chunk_size={self.chunk_size}"
        )


class ForecastFeatureNet(nn.Module):
    """MATPPO's local feature: ``Linear(cat(LSTM(window), device_state))``.

    ``feature = act(W [h_W ; s] + b)`` where ``h_W = ForecastLSTM(window)`` ``(*B, H)`` and
    ``s`` is the device state ``(*B, S)`` (MATPPO's triplet, ``S = 3``). The paper's mapping
    is linear (``activation=None``, the default); pass e.g. ``nn.Tanh`` to bound it.
    With ``state_features=0`` the net reads the window only (``forward(window)``).

    Args:
        in_features (int): forecast features ``F`` per step.
        out_features (int): local feature size ``D``.

    Keyword Args:
        state_features (int): device-state features ``S`` (``0``: none). Defaults to ``3``.
        hidden_size (int): LSTM hidden size ``H``. Defaults to ``64``.
        num_layers (int): stacked LSTM layers. Defaults to ``1``.
        activation (type[nn.Module] or None): applied after the linear map; ``None`` keeps
            it linear. Defaults to ``None``.
        device (torch.device, optional): device of the parameters.
        dtype (torch.dtype, optional): dtype of the parameters.

    Attributes:
        encoder (ForecastLSTM): the window encoder.
        linear (nn.Linear): ``(H + S) -> D``.

    Examples:
        >>> import torch
        >>> net = ForecastFeatureNet(3, 32, hidden_size=16)
        >>> window, triplet = torch.randn(5, 4, 12, 3), torch.rand(5, 4, 3)   # (E, N, ...)
        >>> net(window, triplet).shape
        torch.Size([5, 4, 32])
        >>> ForecastFeatureNet(3, 8, state_features=0)(window).shape         # window only
        torch.Size([5, 4, 8])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        state_features: int = 3,
        hidden_size: int = 64,
        num_layers: int = 1,
        activation: type[nn.Module] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        who = "ForecastFeatureNet"
        self.out_features = _positive_int(out_features, "out_features", who)
        if isinstance(state_features, bool) or not isinstance(state_features, int):
            raise ValueError(
                f"{who} expected state_features to be an int >= 0, got {state_features!r}"
            )
        if state_features < 0:
            raise ValueError(
                f"{who} expected state_features to be an int >= 0, got {state_features}"
            )
        if activation is not None and not (
            isinstance(activation, type) and issubclass(activation, nn.Module)
        ):
            raise TypeError(
                f"{who} expected activation to be None or an nn.Module class such as nn.Tanh, "
                f"got {activation!r}"
            )
        self.state_features = state_features
        factory = {"device": device, "dtype": dtype}
        self.encoder = ForecastLSTM(in_features, hidden_size, num_layers=num_layers, **factory)
        self.linear = nn.Linear(hidden_size + state_features, out_features, **factory)
        self.activation = activation() if activation is not None else nn.Identity()

    def forward(self, window: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Compute the local feature.

        Args:
            window (torch.Tensor): ``(*B, W, F)`` forecast window.
            state (torch.Tensor, optional): ``(*B, S)`` device state; required iff
                ``state_features > 0``.

        Returns:
            torch.Tensor: ``(*B, D)``.
        """
        h = self.encoder(window)
        if self.state_features == 0:
            if state is not None:
                raise ValueError(
                    "ForecastFeatureNet was built with state_features=0 and expected no state, "
                    f"got a tensor of shape {tuple(state.shape)}"
                )
            return self.activation(self.linear(h))
        if state is None:
            raise ValueError(
                f"ForecastFeatureNet expected a device state of shape (*B, {self.state_features}), "
                f"got None"
            )
        expected = (*h.shape[:-1], self.state_features)
        if tuple(state.shape) != expected:
            raise ValueError(
                f"ForecastFeatureNet expected a device state of shape {expected} (the window's "
                f"batch dims, then {self.state_features}), got {tuple(state.shape)}"
            )
        x = torch.cat([h, state.to(h.dtype)], dim=-1)
        return self.activation(self.linear(x))
