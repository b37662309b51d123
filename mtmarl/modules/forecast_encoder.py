"""MATPPO's actor state encoder as a TensorDict module (seed 000, section 3.4).

:class:`ForecastEncoder` reads each agent's forecast window and device-state triplet and
writes its local feature: an LSTM over the window (no recurrent state across env steps: the
window is part of the observation), the last hidden state concatenated with the triplet,
then a linear map (:class:`mtmarl.nn.ForecastFeatureNet`). Parameters are shared by all
agents. Use it as the ``encoder`` of :func:`~mtmarl.modules.make_hybrid_actor`.

Keys (defaults, all configurable):

* read: ``("agents", "forecast")`` ``(*B, N, W, F)`` float and ``("agents", "device_state")``
  ``(*B, N, S)`` float;
* written: ``("agents", "feature")`` ``(*B, N, D)`` float.

Inside a critic, run torchrl's value estimators with ``shifted=True`` (or
``deactivate_vmap=True``): by default they ``vmap`` the value network, and ``nn.LSTM`` has no
vmap rule.

Single-agent (agent-free) layouts work unchanged: pass root keys, e.g.
``forecast_key="forecast"`` with ``(*B, W, F)`` entries.
"""

from __future__ import annotations

from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey, unravel_key
from torch import nn

from mtmarl.nn.forecast import ForecastFeatureNet

__all__ = ["ForecastEncoder"]


class ForecastEncoder(TensorDictModule):
    """Forecast window + device state -> local feature, shared over agents.

    ``feature = act(Linear(cat(LSTM(forecast)[-1], device_state)))``; the LSTM reads the
    ``W`` steps of every agent's window in parallel from zero initial states.

    Args:
        forecast_features (int): features ``F`` per forecast step (e.g. 3: PV, load, price).
        feature_dim (int): local feature size ``D``.

    Keyword Args:
        state_features (int): device-state features ``S`` (MATPPO's triplet: 3); ``0``
            reads no state (``state_key`` is then ignored). Defaults to ``3``.
        hidden_size (int): LSTM hidden size. Defaults to ``64``.
        num_layers (int): stacked LSTM layers. Defaults to ``1``.
        activation (type[nn.Module] or None): applied after the linear map; ``None`` keeps
            the paper's linear mapping. Defaults to ``None``.
        forecast_key (NestedKey): ``(*B, N, W, F)`` input. Defaults to
            ``("agents", "forecast")``.
        state_key (NestedKey): ``(*B, N, S)`` input. Defaults to
            ``("agents", "device_state")``.
        out_key (NestedKey): ``(*B, N, D)`` output. Defaults to ``("agents", "feature")``.

    Attributes:
        module (ForecastFeatureNet): the pure-torch network.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> enc = ForecastEncoder(3, 32, hidden_size=16)
        >>> enc.in_keys, enc.out_keys
        ([('agents', 'forecast'), ('agents', 'device_state')], [('agents', 'feature')])
        >>> td = TensorDict({"agents": TensorDict({"forecast": torch.randn(5, 4, 12, 3),
        ...     "device_state": torch.rand(5, 4, 3)}, [5, 4])}, [5])
        >>> enc(td)["agents", "feature"].shape
        torch.Size([5, 4, 32])
    """

    def __init__(
        self,
        forecast_features: int,
        feature_dim: int,
        *,
        state_features: int = 3,
        hidden_size: int = 64,
        num_layers: int = 1,
        activation: type[nn.Module] | None = None,
        forecast_key: NestedKey = ("agents", "forecast"),
        state_key: NestedKey = ("agents", "device_state"),
        out_key: NestedKey = ("agents", "feature"),
    ) -> None:
        net = ForecastFeatureNet(
            forecast_features,
            feature_dim,
            state_features=state_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            activation=activation,
        )
        in_keys = [unravel_key(forecast_key)]
        if state_features > 0:
            in_keys.append(unravel_key(state_key))
        super().__init__(net, in_keys=in_keys, out_keys=[unravel_key(out_key)])
        self.feature_dim = feature_dim
