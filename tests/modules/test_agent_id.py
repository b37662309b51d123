import pytest
import torch
from torch import nn

from mtmarl.modules import SharedAgentNet
from mtmarl.nn import PhaseMLP

BATCHES = [(), (2,), (3, 2)]
N, F = 4, 3


@pytest.mark.parametrize("batch", BATCHES)
def test_per_agent_input_shapes_and_id_columns(batch):
    torch.manual_seed(0)
    net = SharedAgentNet(nn.Identity(), n_agents=N)
    x = torch.randn(*batch, N, F)
    y = net(x)
    assert y.shape == (*batch, N, F + N)
    assert torch.equal(y[..., :F], x)
    assert torch.equal(y[..., F:], torch.eye(N).expand(*batch, N, N))


@pytest.mark.parametrize("batch", BATCHES)
def test_shared_input_is_broadcast_to_agents(batch):
    net = SharedAgentNet(nn.Identity(), n_agents=N, shared_input=True)
    s = torch.randn(*batch, 6)
    y = net(s)
    assert y.shape == (*batch, N, 6 + N)
    for i in range(N):
        assert torch.equal(y[..., i, :6], s)


def test_parameters_are_shared_and_id_tells_agents_apart():
    torch.manual_seed(0)
    core = nn.Linear(F + N, 2)
    net = SharedAgentNet(core, n_agents=N)
    assert sum(p.numel() for p in net.parameters()) == (F + N) * 2 + 2  # one core for all agents
    x = torch.randn(5, 1, F).expand(5, N, F)  # every agent sees the same input
    y = net(x)
    assert not torch.allclose(y[:, 0], y[:, 1])
    # each agent's output is the shared core applied to its own input + its id
    for i in range(N):
        expected = core(torch.cat([x[:, i], torch.eye(N)[i].expand(5, N)], -1))
        torch.testing.assert_close(y[:, i], expected)


def test_without_agent_id_identical_inputs_give_identical_outputs():
    torch.manual_seed(0)
    net = SharedAgentNet(nn.Linear(F, 2), n_agents=N, agent_id=False)
    assert net.id_features == 0
    y = net(torch.randn(5, 1, F).expand(5, N, F))
    assert torch.equal(y[:, 0], y[:, 3])


def test_extra_inputs_pass_through_and_root_phase_broadcasts_over_agents():
    torch.manual_seed(0)
    core = PhaseMLP(F + N, 2, num_cells=(8,))
    net = SharedAgentNet(core, n_agents=N)
    x = torch.randn(6, N, F)
    phase = torch.rand(6, 1)  # a root (*B, 1) entry
    y = net(x, phase)
    x_aug = torch.cat([x, torch.eye(N).expand(6, N, N)], -1)
    torch.testing.assert_close(y, core(x_aug, phase.expand(6, N)))


def test_id_buffer_follows_dtype_and_is_not_in_state_dict():
    net = SharedAgentNet(nn.Linear(F + N, 2), n_agents=N).double()
    assert net(torch.randn(2, N, F, dtype=torch.float64)).dtype == torch.float64
    assert set(net.state_dict()) == {"core.weight", "core.bias"}


def test_bad_inputs_raise_clear_errors():
    net = SharedAgentNet(nn.Identity(), n_agents=N)
    with pytest.raises(ValueError, match=r"expected x of shape \(\*B, 4, F\).*got \(2, 3, 3\)"):
        net(torch.randn(2, 3, F))
    with pytest.raises(ValueError, match="n_agents to be a positive int, got 0"):
        SharedAgentNet(nn.Identity(), n_agents=0)
    with pytest.raises(TypeError, match="core to be an nn.Module"):
        SharedAgentNet(lambda x: x, n_agents=2)
