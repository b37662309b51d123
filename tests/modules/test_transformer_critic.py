import pytest
import torch
from tensordict import TensorDict
from torchrl.objectives.value import GAE, MultiAgentGAE

from mtmarl.modules.transformer_critic import TransformerCritic

FA, G = 5, 4
VALUE, GLOBAL = ("agents", "state_value"), "state_value_global"


def _critic(**kwargs):
    torch.manual_seed(0)
    kwargs.setdefault("global_features", G)
    return TransformerCritic(FA, d_model=16, num_heads=4, num_layers=2, **kwargs)


def _td(batch, n, mask=None):
    agents = {"observation": torch.randn(*batch, n, FA)}
    if mask is not None:
        agents["mask"] = mask
    return TensorDict(
        {"agents": TensorDict(agents, (*batch, n)), "state": torch.randn(*batch, G)}, batch
    )


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_keys_and_shapes(batch):
    critic = _critic()
    assert critic.in_keys == [("agents", "observation"), "state"]
    assert critic.out_keys == [VALUE, GLOBAL]
    td = critic(_td(batch, 6))
    assert td[VALUE].shape == (*batch, 6, 1)
    assert td[GLOBAL].shape == (*batch, 1)


def test_permutation_equivariant_values_and_invariant_global_value():
    critic = _critic()
    td = critic(_td((8,), 7))
    perm = torch.randperm(7)
    permuted = td.clone()
    permuted["agents"] = td["agents"][:, perm]
    permuted = critic(permuted)
    torch.testing.assert_close(permuted[VALUE], td[VALUE][:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(permuted[GLOBAL], td[GLOBAL], atol=1e-5, rtol=1e-5)


def test_same_weights_serve_4_and_64_agents():
    critic = _critic()
    small, large = critic(_td((3,), 4)), critic(_td((3,), 64))
    assert small[VALUE].shape == (3, 4, 1) and large[VALUE].shape == (3, 64, 1)
    assert torch.isfinite(large[VALUE]).all() and torch.isfinite(large[GLOBAL]).all()
    # the values depend on the other agents (attention), not on the agent alone
    td = _td((3,), 4)
    v = critic(td.clone())[VALUE]
    td["agents", "observation"][:, 3] += 1.0
    assert not torch.allclose(critic(td)[VALUE][:, 0], v[:, 0])


def test_padded_agents_are_masked_out():
    critic = _critic(mask_key=("agents", "mask"))
    n_real, n = 3, 8
    mask = torch.zeros(5, n, dtype=torch.bool)
    mask[:, :n_real] = True
    td = critic(_td((5,), n, mask))
    # the same community without padding, through the same weights
    ref = _td((5,), n_real, torch.ones(5, n_real, dtype=torch.bool))
    ref["agents", "observation"] = td["agents", "observation"][:, :n_real]
    ref["state"] = td["state"]
    ref = critic(ref)
    torch.testing.assert_close(td[VALUE][:, :n_real], ref[VALUE], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(td[GLOBAL], ref[GLOBAL], atol=1e-5, rtol=1e-5)
    assert torch.equal(td[VALUE][:, n_real:], torch.zeros(5, n - n_real, 1))
    # variable N inside one batch: env 0 has 2 agents, env 1 all 8
    mixed = torch.ones(2, n, dtype=torch.bool)
    mixed[0, 2:] = False
    out = critic(_td((2,), n, mixed))
    assert torch.equal(out[VALUE][0, 2:], torch.zeros(6, 1)) and bool((out[VALUE][1] != 0).all())


def test_attention_weights_and_last_attention():
    critic = _critic(mask_key=("agents", "mask"))
    mask = torch.ones(2, 3, 5, dtype=torch.bool)
    mask[1, :, 4] = False
    td = _td((2, 3), 5, mask)
    weights = critic.attention_weights(td)
    assert weights.shape == (2, 3, 2, 4, 6, 6)
    assert VALUE not in td.keys(True)  # nothing written
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 2, 4, 6))
    assert torch.equal(weights[1, ..., 5], torch.zeros(3, 2, 4, 6))
    assert critic.last_attention is None
    fast = critic(td.clone())
    critic.store_attention = True
    slow = critic(td.clone())
    torch.testing.assert_close(slow[VALUE], fast[VALUE], atol=1e-5, rtol=1e-5)
    assert critic.last_attention.shape == (2, 3, 4, 6, 6)
    assert not critic.last_attention.requires_grad
    torch.testing.assert_close(critic.last_attention, weights[:, :, -1])


def test_learned_global_token_without_state():
    torch.manual_seed(0)
    critic = TransformerCritic(FA, d_model=8, num_heads=2)
    assert critic.in_keys == [("agents", "observation")]
    td = critic(_td((4,), 3).exclude("state"))
    assert td[GLOBAL].shape == (4, 1)


def test_gae_on_per_agent_values_and_global_value_recipe():
    """The documented training recipe: MultiAgentGAE on per-agent values, GAE + MSE on global."""
    critic = _critic()
    E, T, n = 3, 6, 4

    def obs():
        return TensorDict(
            {
                "agents": TensorDict({"observation": torch.randn(E, T, n, FA)}, (E, T, n)),
                "state": torch.randn(E, T, G),
            },
            (E, T),
        )

    data = obs()
    done = torch.zeros(E, T, 1, dtype=torch.bool)
    done[:, -1] = True
    nxt = obs()
    nxt.update({"reward": torch.randn(E, T, 1), "done": done, "terminated": done.clone()})
    data["next"] = nxt
    per_agent = MultiAgentGAE(gamma=0.9, lmbda=0.95, value_network=critic, shifted=True)
    per_agent.set_keys(
        value=VALUE, advantage=("agents", "advantage"), value_target=("agents", "value_target")
    )
    glob = GAE(gamma=0.9, lmbda=0.95, value_network=critic, shifted=True)
    glob.set_keys(
        value=GLOBAL, advantage="advantage_global", value_target="state_value_global_target"
    )
    with torch.no_grad():
        per_agent(data)
        glob(data)
    assert data["agents", "value_target"].shape == (E, T, n, 1)
    assert data["state_value_global_target"].shape == (E, T, 1)
    # terminal step: the target is the reward
    torch.testing.assert_close(data["state_value_global_target"][:, -1], nxt["reward"][:, -1])
    before = data.clone()
    loss = critic.global_value_loss(data.reshape(-1))
    assert (data == before).all()
    expected = (critic(data.clone())[GLOBAL] - data["state_value_global_target"]).pow(2).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert critic.global_head[0].weight.grad.abs().sum() > 0
    assert critic.encoder.layers[0].self_attn.in_proj_weight.grad.abs().sum() > 0
    assert critic.agent_head[0].weight.grad is None
    with pytest.raises(ValueError, match="target of shape"):
        bad = data.clone()
        bad["state_value_global_target"] = torch.zeros(E, T, 2)
        critic.global_value_loss(bad)


def test_bad_configuration_fails_at_construction():
    with pytest.raises(ValueError):
        TransformerCritic(FA, d_model=10, num_heads=4)
    with pytest.raises(TypeError):
        TransformerCritic(FA, head_cells=64)
    with pytest.raises(ValueError):
        TransformerCritic(0)
