"""Tests for mtmarl.modules.coma_critic: input layout, counterfactual structure, phase, errors."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch import nn
from torchrl.modules import MLP

from mtmarl.modules.coma_critic import COMACritic
from mtmarl.nn import PhaseMLP

BATCH_SHAPES = [(), (2,), (3, 2)]


def make_td(batch, n_agents, n_actions, state_dim, *, obs_dim=None, phase=False):
    agents = {"action": torch.randint(n_actions, (*batch, n_agents))}
    if obs_dim is not None:
        agents["observation"] = torch.randn(*batch, n_agents, obs_dim)
    data = {
        "state": torch.randn(*batch, state_dim),
        "agents": TensorDict(agents, [*batch, n_agents]),
    }
    if phase:
        data["phase"] = torch.rand(*batch, 1)
    return TensorDict(data, batch_size=batch)


@pytest.mark.parametrize("batch", BATCH_SHAPES)
@pytest.mark.parametrize("n_agents", [1, 3])
def test_output_shape_and_keys(batch, n_agents):
    critic = COMACritic(n_agents, 4, state_dim=5, num_cells=(8,))
    assert critic.in_keys == ["state", ("agents", "action")]
    assert critic.out_keys == [("agents", "action_value")]
    td = critic(make_td(batch, n_agents, 4, 5))
    assert td["agents", "action_value"].shape == (*batch, n_agents, 4)


def test_input_size():
    assert COMACritic.input_size(7, 4, 3) == 7 + 3 * 3 + 4
    assert COMACritic.input_size(7, 4, 3, observation_dim=2) == 7 + 3 * 3 + 4 + 2
    critic = COMACritic(4, 3, state_dim=7, observation_dim=2, observation_key=("agents", "obs"))
    assert critic.network.in_features == COMACritic.input_size(7, 4, 3, observation_dim=2)


def test_build_inputs_layout_by_hand():
    n, a = 3, 2
    critic = COMACritic(n, a, state_dim=2)
    state = torch.tensor([0.5, -1.0])
    action = torch.tensor([1, 0, 1])
    x = critic.build_inputs(state, action)
    assert x.shape == (n, COMACritic.input_size(2, n, a))
    onehot = {0: [1.0, 0.0], 1: [0.0, 1.0]}
    for agent in range(n):
        expected = [0.5, -1.0]
        for other in range(n):
            if other != agent:
                expected += onehot[int(action[other])]
        expected += [1.0 if i == agent else 0.0 for i in range(n)]
        assert x[agent].tolist() == expected


@pytest.mark.parametrize("batch", BATCH_SHAPES)
def test_own_action_does_not_change_own_row(batch):
    torch.manual_seed(0)
    n, a = 3, 4
    critic = COMACritic(n, a, state_dim=5, num_cells=(16,))
    td = make_td(batch, n, a, 5)
    q = critic(td.clone())["agents", "action_value"]
    td2 = td.clone()
    td2["agents", "action"][..., 1] = (td["agents", "action"][..., 1] + 1) % a
    q2 = critic(td2)["agents", "action_value"]
    assert torch.allclose(q[..., 1, :], q2[..., 1, :])
    # every other agent sees agent 1's action change
    assert not torch.allclose(q[..., 0, :], q2[..., 0, :])
    assert not torch.allclose(q[..., 2, :], q2[..., 2, :])


def test_agents_are_told_apart_by_id():
    torch.manual_seed(0)
    critic = COMACritic(2, 2, state_dim=3, num_cells=(8,))
    td = make_td((5,), 2, 2, 3)
    td["agents", "action"] = torch.zeros(5, 2, dtype=torch.long)  # symmetric joint action
    q = critic(td)["agents", "action_value"]
    assert not torch.allclose(q[:, 0], q[:, 1])


@pytest.mark.parametrize("batch", BATCH_SHAPES)
def test_observation_is_appended(batch):
    torch.manual_seed(0)
    critic = COMACritic(
        2, 3, state_dim=4, observation_dim=6, observation_key=("agents", "observation")
    )
    assert critic.in_keys == ["state", ("agents", "action"), ("agents", "observation")]
    td = make_td(batch, 2, 3, 4, obs_dim=6)
    x = critic.build_inputs(td["state"], td["agents", "action"], td["agents", "observation"])
    assert torch.equal(x[..., -6:], td["agents", "observation"])
    q = critic(td.clone())["agents", "action_value"]
    td["agents", "observation"] += 1.0
    assert not torch.allclose(q, critic(td)["agents", "action_value"])


@pytest.mark.parametrize("batch", BATCH_SHAPES)
def test_phase_uses_phase_mlp_and_passes_root_phase(batch):
    torch.manual_seed(0)
    critic = COMACritic(2, 3, state_dim=4, phase_key="phase", num_cells=(8,))
    assert isinstance(critic.network, PhaseMLP)
    assert critic.in_keys[-1] == "phase"
    td = make_td(batch, 2, 3, 4, phase=True)
    q = critic(td.clone())["agents", "action_value"]
    assert q.shape == (*batch, 2, 3)
    td["phase"] = (td["phase"] + 0.3) % 1.0
    assert not torch.allclose(q, critic(td)["agents", "action_value"])


def test_injected_phase_network_gets_x_and_phase():
    seen = {}

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(COMACritic.input_size(4, 2, 3), 3)

        def forward(self, x, phase):
            seen["x"], seen["phase"] = x.shape, phase.shape
            return self.lin(x) * phase.unsqueeze(-1)

    critic = COMACritic(2, 3, network=Recorder(), phase_key="phase")
    out = critic(make_td((5,), 2, 3, 4, phase=True))
    assert seen == {"x": (5, 2, 9), "phase": (5, 1)}
    assert out["agents", "action_value"].shape == (5, 2, 3)


def test_injected_network_without_state_dim():
    net = MLP(in_features=COMACritic.input_size(4, 2, 3), out_features=3, num_cells=[8])
    critic = COMACritic(2, 3, network=net)
    assert critic.network is net
    assert critic(make_td((2,), 2, 3, 4))["agents", "action_value"].shape == (2, 2, 3)


def test_custom_keys():
    critic = COMACritic(
        2, 3, state_dim=4, state_key="global", action_key=("agents", "act"), out_key="q"
    )
    td = TensorDict({"global": torch.randn(5, 4), "agents": {"act": torch.randint(3, (5, 2))}}, [5])
    assert critic(td)["q"].shape == (5, 2, 3)


def test_gradients_reach_the_network():
    critic = COMACritic(2, 3, state_dim=4, num_cells=(8,))
    critic(make_td((6,), 2, 3, 4))["agents", "action_value"].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())


def test_construction_errors():
    with pytest.raises(ValueError, match="state_dim"):
        COMACritic(2, 3)
    with pytest.raises(ValueError, match="observation_dim"):
        COMACritic(2, 3, state_dim=4, observation_key=("agents", "observation"))
    with pytest.raises(ValueError, match="observation_key"):
        COMACritic(2, 3, state_dim=4, observation_dim=5)
    with pytest.raises(ValueError, match="n_actions"):
        COMACritic(2, 1, state_dim=4)
    with pytest.raises(ValueError, match="n_agents"):
        COMACritic(0, 3, state_dim=4)
    with pytest.raises(ValueError, match="in_features=9"):
        COMACritic(2, 3, state_dim=4, network=nn.Linear(10, 3))
    with pytest.raises(TypeError, match="num_cells"):
        COMACritic(2, 3, state_dim=4, num_cells=32)
    with pytest.raises(TypeError, match="nn.Module"):
        COMACritic(2, 3, network=lambda x: x)


def test_call_errors():
    critic = COMACritic(2, 3, state_dim=4, num_cells=(8,))
    td = make_td((5,), 2, 3, 4)
    bad_state = td.clone()
    bad_state["state"] = torch.randn(5, 3)
    with pytest.raises(ValueError, match=r"state of shape \(\*B, 4\)"):
        critic(bad_state)
    with pytest.raises(TypeError, match="integer action"):
        critic.build_inputs(td["state"], td["agents", "action"].float())
    with pytest.raises(ValueError, match="action of shape"):
        critic.build_inputs(td["state"], torch.zeros(5, 3, dtype=torch.long))
    wrong_out = COMACritic(2, 3, network=nn.Linear(9, 4))
    with pytest.raises(ValueError, match="one value per action"):
        wrong_out(td)
