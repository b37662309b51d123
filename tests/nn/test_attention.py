import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtmarl.nn.attention import AgentAttentionEncoder

FA, G, D = 5, 7, 16


def _encoder(**kwargs):
    torch.manual_seed(0)
    kwargs.setdefault("global_features", G)
    return AgentAttentionEncoder(FA, d_model=D, num_heads=4, **kwargs)


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_shapes(batch):
    enc = _encoder()
    agents, glob = enc(torch.randn(*batch, 6, FA), torch.randn(*batch, G))
    assert agents.shape == (*batch, 6, D)
    assert glob.shape == (*batch, D)
    a2, g2, w = enc.forward_with_attention(torch.randn(*batch, 6, FA), torch.randn(*batch, G))
    assert w.shape == (*batch, 2, 4, 7, 7)


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_matches_torch_transformer_encoder_layer(norm_first):
    torch.manual_seed(0)
    enc = AgentAttentionEncoder(
        FA, d_model=D, num_heads=4, num_layers=1, dim_feedforward=24, norm_first=norm_first
    )
    block = enc.layers[0]
    ref = nn.TransformerEncoderLayer(
        D, 4, 24, dropout=0.0, activation=F.gelu, batch_first=True, norm_first=norm_first
    )
    ref.self_attn.load_state_dict(block.self_attn.state_dict())
    ref.linear1.load_state_dict(block.feedforward[0].state_dict())
    ref.linear2.load_state_dict(block.feedforward[3].state_dict())
    ref.norm1.load_state_dict(block.norm1.state_dict())
    ref.norm2.load_state_dict(block.norm2.state_dict())
    x = torch.randn(3, 6, D)
    pad = torch.zeros(3, 6, dtype=torch.bool)
    pad[1, 4:] = True
    out, _ = block(x, pad, need_weights=False)
    torch.testing.assert_close(out[0], ref(x, src_key_padding_mask=pad)[0])
    torch.testing.assert_close(out[1, :4], ref(x, src_key_padding_mask=pad)[1, :4])


def test_permutation_equivariance_and_global_invariance():
    enc = _encoder()
    x, g = torch.randn(4, 9, FA), torch.randn(4, G)
    agents, glob = enc(x, g)
    perm = torch.randperm(9)
    pa, pg = enc(x[:, perm], g)
    torch.testing.assert_close(pa, agents[:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pg, glob, atol=1e-5, rtol=1e-5)


def test_same_weights_for_any_number_of_agents():
    enc = _encoder()
    g = torch.randn(3, G)
    for n in (1, 4, 64):
        agents, glob = enc(torch.randn(3, n, FA), g)
        assert agents.shape == (3, n, D) and torch.isfinite(agents).all()
    # the agents interact: changing one agent changes the others' tokens
    x = torch.randn(3, 4, FA)
    y = x.clone()
    y[:, 0] += 1.0
    assert not torch.allclose(enc(x, g)[0][:, 1], enc(y, g)[0][:, 1])


def test_padded_agents_are_invisible():
    enc = _encoder()
    n_real, n_pad = 3, 5
    x, g = torch.randn(2, n_real + n_pad, FA), torch.randn(2, G)
    mask = torch.zeros(2, n_real + n_pad, dtype=torch.bool)
    mask[:, :n_real] = True
    agents, glob = enc(x, g, mask)
    ref_agents, ref_glob = enc(x[:, :n_real], g)  # the community without padding
    torch.testing.assert_close(agents[:, :n_real], ref_agents, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(glob, ref_glob, atol=1e-5, rtol=1e-5)
    assert torch.equal(agents[:, n_real:], torch.zeros(2, n_pad, D))
    x2 = x.clone()
    x2[:, n_real:] = 1e3 * torch.randn(2, n_pad, FA)  # garbage in the padding
    torch.testing.assert_close(enc(x2, g, mask)[0], agents)


def test_attention_weights():
    enc = _encoder(num_layers=3)
    x, g = torch.randn(2, 4, FA), torch.randn(2, G)
    mask = torch.tensor([[True, False, True, True], [True, True, True, True]])
    agents, glob, w = enc.forward_with_attention(x, g, mask)
    a_fast, g_fast = enc(x, g, mask)
    torch.testing.assert_close(agents, a_fast, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(glob, g_fast, atol=1e-5, rtol=1e-5)
    assert w.shape == (2, 3, 4, 5, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 4, 5))
    assert torch.equal(w[0, ..., 2], torch.zeros(3, 4, 5))  # padded agent 1 = token 2
    assert bool((w[1] > 0).all())


def test_learned_global_token():
    torch.manual_seed(0)
    enc = AgentAttentionEncoder(FA, d_model=D, num_heads=2)
    assert enc.global_proj is None and enc.global_token.shape == (D,)
    agents, glob = enc(torch.randn(3, 4, FA))
    (agents.sum() + glob.sum()).backward()
    assert enc.global_token.grad is not None and enc.global_token.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="expected no global input"):
        enc(torch.randn(3, 4, FA), torch.randn(3, G))


def test_input_errors():
    enc = _encoder()
    with pytest.raises(ValueError, match=r"\(\*B, N, 5\)"):
        enc(torch.randn(3, 4, FA + 1), torch.randn(3, G))
    with pytest.raises(ValueError, match=r"global input of shape \(3, 7\)"):
        enc(torch.randn(3, 4, FA))
    with pytest.raises(ValueError, match="bool agent mask"):
        enc(torch.randn(3, 4, FA), torch.randn(3, G), torch.ones(3, 4))
    with pytest.raises(ValueError, match="bool agent mask"):
        enc(torch.randn(3, 4, FA), torch.randn(3, G), torch.ones(3, 5, dtype=torch.bool))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"d_model": 10, "num_heads": 4},
        {"num_layers": 0},
        {"dropout": -0.1},
        {"global_features": 0},
        {"dim_feedforward": 0},
        {"activation": F.gelu},
    ],
)
def test_bad_configuration_fails_at_construction(kwargs):
    with pytest.raises((ValueError, TypeError)):
        AgentAttentionEncoder(FA, **kwargs)


@pytest.mark.parametrize("padded", [False, True])
def test_fast_attention_path_matches_multihead_attention_values_and_gradients(padded):
    # forward() skips nn.MultiheadAttention's sequence-first packed path; the weights path
    # (forward_with_attention) still runs it: both give the same values and gradients
    torch.manual_seed(0)
    enc = AgentAttentionEncoder(
        5, global_features=7, d_model=16, num_heads=4, num_layers=2, dtype=torch.float64
    )
    x, g = torch.randn(6, 9, 5, dtype=torch.float64), torch.randn(6, 7, dtype=torch.float64)
    mask = (torch.rand(6, 9) > 0.3) if padded else None
    results = []
    for fn in (enc.forward, lambda *a: enc.forward_with_attention(*a)[:2]):
        enc.zero_grad()
        agents, glob = fn(x, g, mask)
        (agents.square().sum() + glob.sum()).backward()
        results.append((agents, glob, [p.grad.clone() for p in enc.parameters()]))
    (a1, g1, grads1), (a2, g2, grads2) = results
    torch.testing.assert_close(a1, a2)
    torch.testing.assert_close(g1, g2)
    for p1, p2 in zip(grads1, grads2):
        torch.testing.assert_close(p1, p2)
