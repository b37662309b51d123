"""Orthogonal initialisation of actors and critics, as the PPO implementations use it.

CleanRL's PPO (and the "37 implementation details" it follows) initialises every linear layer
with an orthogonal matrix and zero bias: gain ``sqrt(2)`` for hidden layers, ``0.01`` for the
policy's output layer (near-uniform initial actions) and ``1`` for the value's; recurrent
layers get orthogonal weights with gain 1 and zero biases. :func:`orthogonal_init` applies
that to any module tree: the last ``nn.Linear`` of every ``nn.Sequential`` (torchrl's ``MLP``
is one) is an output layer, every other ``nn.Linear`` a hidden one. Parameters that are not
those layers' (attention's packed projections, phase-functioned spline weights, learned
tokens) keep their own initialisation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["orthogonal_init"]

_RECURRENT = (nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell)


@torch.no_grad()
def orthogonal_init(
    module: nn.Module, *, output_gain: float, hidden_gain: float = math.sqrt(2.0)
) -> dict[str, int]:
    """Orthogonal weights and zero biases for ``module``'s linear and recurrent layers.

    Args:
        module (nn.Module): an actor or critic (modified in place).

    Keyword Args:
        output_gain (float): gain of the output layers (the last ``nn.Linear`` of each
            ``nn.Sequential``): CleanRL uses ``0.01`` for a policy and ``1.0`` for a value.
        hidden_gain (float): gain of the other linear layers. Defaults to ``sqrt(2)``.

    Returns:
        dict[str, int]: how many ``"hidden"``, ``"output"`` and ``"recurrent"`` layers it set.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
        >>> orthogonal_init(net, output_gain=0.01)
        {'hidden': 1, 'output': 1, 'recurrent': 0}
        >>> w = net[0].weight                                  # (8, 4): orthonormal columns
        >>> torch.allclose(w.T @ w, 2.0 * torch.eye(4), atol=1e-5), bool(net[2].bias.abs().sum() == 0)
        (True, True)
        >>> round(float(net[2].weight.detach().norm(dim=1).max()), 4)  # rows of norm 0.01
        0.01
    """
    for name, gain in (("output_gain", output_gain), ("hidden_gain", hidden_gain)):
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0:
            raise ValueError(f"orthogonal_init expected {name} > 0, got {gain!r}")
    outputs = set()
    for sub in module.modules():
        if isinstance(sub, nn.Sequential):
            linears = [m for m in sub if isinstance(m, nn.Linear)]
            if linears:
                outputs.add(id(linears[-1]))
    counts = {"hidden": 0, "output": 0, "recurrent": 0}
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            kind = "output" if id(sub) in outputs else "hidden"
            nn.init.orthogonal_(sub.weight, gain=output_gain if kind == "output" else hidden_gain)
            if sub.bias is not None:
                sub.bias.zero_()
            counts[kind] += 1
        elif isinstance(sub, _RECURRENT):
            for pname, param in sub.named_parameters(recurse=False):
                if pname.startswith("weight"):
                    nn.init.orthogonal_(param, gain=1.0)
                elif pname.startswith("bias"):
                    param.zero_()
            counts["recurrent"] += 1
    return counts
