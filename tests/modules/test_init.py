import math

import pytest
import torch
from torch import nn

from mtmarl.modules import orthogonal_init


def test_gains_by_layer_role():
    torch.manual_seed(0)
    net = nn.ModuleDict(
        {
            "lstm": nn.LSTM(3, 8),
            "feature": nn.Linear(8, 16),
            "head": nn.Sequential(nn.Linear(16, 16), nn.ELU(), nn.Linear(16, 4)),
        }
    )
    counts = orthogonal_init(net, output_gain=0.01)
    assert counts == {"hidden": 2, "output": 1, "recurrent": 1}
    hidden = net["head"][0].weight.detach()
    torch.testing.assert_close(hidden @ hidden.T, 2.0 * torch.eye(16), atol=1e-5, rtol=0)
    out = net["head"][2].weight.detach()  # (4, 16): orthonormal rows scaled by the gain
    torch.testing.assert_close(out @ out.T, 1e-4 * torch.eye(4), atol=1e-7, rtol=0)
    assert all(float(m.bias.abs().sum()) == 0 for m in net.modules() if isinstance(m, nn.Linear))
    assert float(net["lstm"].bias_ih_l0.abs().sum()) == 0
    w = net["feature"].weight.detach()  # (16, 8): orthonormal columns, gain sqrt(2)
    torch.testing.assert_close(w.T @ w, 2.0 * torch.eye(8), atol=1e-5, rtol=0)
    assert math.isclose(counts["output"], 1)


@pytest.mark.parametrize("gain", [0, -1.0, True])
def test_bad_gain_refused(gain):
    with pytest.raises(ValueError, match="output_gain"):
        orthogonal_init(nn.Linear(2, 2), output_gain=gain)
