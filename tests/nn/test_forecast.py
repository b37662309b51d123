import pytest
import torch
from torch import nn

from mtmarl.nn.forecast import ForecastFeatureNet, ForecastLSTM

F, H, W = 3, 8, 6


def _manual_last_hidden(lstm: nn.LSTM, window: torch.Tensor) -> torch.Tensor:
    """Step an LSTMCell with the LSTM's weights through one (W, F) window."""
    cell = nn.LSTMCell(lstm.input_size, lstm.hidden_size)
    cell.weight_ih.data.copy_(lstm.weight_ih_l0)
    cell.weight_hh.data.copy_(lstm.weight_hh_l0)
    cell.bias_ih.data.copy_(lstm.bias_ih_l0)
    cell.bias_hh.data.copy_(lstm.bias_hh_l0)
    h = torch.zeros(1, lstm.hidden_size)
    c = torch.zeros(1, lstm.hidden_size)
    for t in range(window.shape[0]):
        h, c = cell(window[t : t + 1], (h, c))
    return h[0]


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_lstm_is_the_last_hidden_state_of_each_window(batch):
    torch.manual_seed(0)
    enc = ForecastLSTM(F, H)
    x = torch.randn(*batch, 4, W, F)  # (*B, N, W, F)
    y = enc(x)
    assert y.shape == (*batch, 4, H)
    flat_x, flat_y = x.reshape(-1, W, F), y.reshape(-1, H)
    for i in range(flat_x.shape[0]):
        torch.testing.assert_close(flat_y[i], _manual_last_hidden(enc.lstm, flat_x[i]))


def test_lstm_reads_the_window_in_order_and_shares_weights_over_agents():
    torch.manual_seed(0)
    enc = ForecastLSTM(F, H)
    x = torch.randn(5, 3, W, F)
    y = enc(x)
    assert not torch.allclose(enc(x.flip(-2)), y)
    # one agent alone (agent-free layout) gives the same feature as inside the batch
    torch.testing.assert_close(enc(x[:, 1]), y[:, 1])


def test_lstm_stacked_layers_and_gradients():
    torch.manual_seed(0)
    enc = ForecastLSTM(F, H, num_layers=2)
    out = enc(torch.randn(4, W, F))
    assert out.shape == (4, H)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_chunks_give_the_values_and_gradients_of_one_batch(chunk_size, num_layers):
    torch.manual_seed(0)
    chunked = ForecastLSTM(F, H, num_layers=num_layers, chunk_size=chunk_size)
    whole = ForecastLSTM(F, H, num_layers=num_layers, chunk_size=None)
    whole.load_state_dict(chunked.state_dict())
    x = torch.randn(3, 50, W, F)  # 150 windows: chunks of chunk_size and a remainder
    outs = []
    for enc in (chunked, whole):
        y = enc(x)
        y.square().sum().backward()
        outs.append((y, [p.grad for p in enc.parameters()]))
    (y_c, g_c), (y_w, g_w) = outs
    torch.testing.assert_close(y_c, y_w)
    for a, b in zip(g_c, g_w):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"in_features": 3, "hidden_size": 4, "chunk_size": 0}, ValueError),
        ({"in_features": 3, "hidden_size": 4, "chunk_size": 2.5}, ValueError),
        ({"in_features": 0, "hidden_size": 4}, ValueError),
        ({"in_features": 3, "hidden_size": 4, "num_layers": 0}, ValueError),
        ({"in_features": 3, "hidden_size": 4, "dropout": 1.0}, ValueError),
        ({"in_features": 3, "hidden_size": True}, ValueError),
    ],
)
def test_lstm_bad_configuration_fails_at_construction(kwargs, err):
    with pytest.raises(err):
        ForecastLSTM(**kwargs)


def test_lstm_bad_input_says_what_it_expected():
    enc = ForecastLSTM(F, H)
    with pytest.raises(ValueError, match=r"\(\*B, W, 3\)"):
        enc(torch.randn(4, W, F + 1))
    with pytest.raises(ValueError, match="W >= 1"):
        enc(torch.randn(4, 0, F))


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_feature_net_is_linear_in_lstm_state_and_triplet(batch):
    torch.manual_seed(0)
    net = ForecastFeatureNet(F, 5, hidden_size=H)
    window, state = torch.randn(*batch, 4, W, F), torch.rand(*batch, 4, 3)
    out = net(window, state)
    assert out.shape == (*batch, 4, 5)
    h = net.encoder(window)
    expected = torch.cat([h, state], -1) @ net.linear.weight.T + net.linear.bias
    torch.testing.assert_close(out, expected)
    # the triplet matters, linearly
    delta = torch.zeros_like(state)
    delta[..., 1] = 1.0
    torch.testing.assert_close(
        net(window, state + delta) - out, net.linear.weight[:, H + 1].expand_as(out)
    )


def test_feature_net_activation_and_window_only():
    torch.manual_seed(0)
    net = ForecastFeatureNet(F, 5, hidden_size=H, activation=nn.Tanh)
    window, state = torch.randn(7, W, F) * 10, torch.rand(7, 3) * 10
    out = net(window, state)
    assert bool((out.abs() <= 1).all())
    torch.testing.assert_close(
        out, torch.tanh(net.linear(torch.cat([net.encoder(window), state], -1)))
    )
    only = ForecastFeatureNet(F, 5, hidden_size=H, state_features=0)
    assert only.linear.in_features == H
    assert only(window).shape == (7, 5)
    with pytest.raises(ValueError, match="expected no state"):
        only(window, state)


def test_feature_net_errors():
    net = ForecastFeatureNet(F, 5, hidden_size=H)
    window = torch.randn(2, 4, W, F)
    with pytest.raises(ValueError, match=r"\(2, 4, 3\)"):
        net(window, torch.rand(2, 3, 3))
    with pytest.raises(ValueError, match="got None"):
        net(window)
    with pytest.raises(ValueError):
        ForecastFeatureNet(F, 5, state_features=-1)
    with pytest.raises(TypeError):
        ForecastFeatureNet(F, 5, activation=torch.tanh)
    with pytest.raises(ValueError):
        ForecastFeatureNet(F, 0)
