import pytest
import torch
from tensordict import TensorDict
from torch import nn

from mtmarl.modules.forecast_encoder import ForecastEncoder
from mtmarl.nn.forecast import ForecastFeatureNet

N, W, F = 4, 12, 3


def _td(batch):
    agents = TensorDict(
        {"forecast": torch.randn(*batch, N, W, F), "device_state": torch.rand(*batch, N, 3)},
        (*batch, N),
    )
    return TensorDict({"agents": agents}, batch)


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_keys_shapes_and_value(batch):
    torch.manual_seed(0)
    enc = ForecastEncoder(F, 16, hidden_size=8)
    assert isinstance(enc.module, ForecastFeatureNet)
    assert enc.in_keys == [("agents", "forecast"), ("agents", "device_state")]
    assert enc.out_keys == [("agents", "feature")]
    td = enc(_td(batch))
    feature = td["agents", "feature"]
    assert feature.shape == (*batch, N, 16)
    torch.testing.assert_close(
        feature, enc.module(td["agents", "forecast"], td["agents", "device_state"])
    )


def test_parameter_sharing_over_agents():
    torch.manual_seed(0)
    enc = ForecastEncoder(F, 16, hidden_size=8)
    td = _td((5,))
    td["agents", "forecast"][:, 2] = td["agents", "forecast"][:, 0]
    td["agents", "device_state"][:, 2] = td["agents", "device_state"][:, 0]
    feature = enc(td)["agents", "feature"]
    torch.testing.assert_close(feature[:, 2], feature[:, 0])
    assert not torch.allclose(feature[:, 1], feature[:, 0])


def test_custom_keys_single_agent_and_window_only():
    torch.manual_seed(0)
    enc = ForecastEncoder(
        F,
        6,
        hidden_size=8,
        forecast_key="forecast",
        state_key="triplet",
        out_key="feature",
        activation=nn.Tanh,
    )
    td = TensorDict({"forecast": torch.randn(7, W, F), "triplet": torch.rand(7, 3)}, [7])
    feature = enc(td)["feature"]
    assert feature.shape == (7, 6) and bool((feature.abs() <= 1).all())
    only = ForecastEncoder(F, 6, state_features=0)
    assert only.in_keys == [("agents", "forecast")]
    assert only(_td((2,)))["agents", "feature"].shape == (2, N, 6)


def test_bad_inputs_raise():
    enc = ForecastEncoder(F, 6)
    td = _td((2,))
    td["agents", "device_state"] = torch.rand(2, N, 2)
    with pytest.raises(ValueError, match="device state of shape"):
        enc(td)
    with pytest.raises(ValueError):
        ForecastEncoder(F, 0)
