import pytest
import torch
from tensordict import TensorDict
from torch import nn
from torchrl.envs.utils import check_env_specs
from torchrl.modules import GRUModule
from torchrl.modules import set_recurrent_mode as torchrl_set_recurrent_mode

from mtmarl.modules import MultiAgentGRU, SharedAgentNet, set_recurrent_mode

N, F, H = 3, 4, 6
HIDDEN = ("agents", "h")
OUT = ("agents", "rnn_output")
NEXT_HIDDEN = ("next", *HIDDEN)


def _gru(**kw):
    torch.manual_seed(0)
    return MultiAgentGRU(F, H, n_agents=N, hidden_key=HIDDEN, **kw)


def _step_td(batch, *, hidden=None, is_init=None):
    td = TensorDict(
        {"agents": TensorDict({"observation": torch.randn(*batch, N, F)}, (*batch, N))}, batch
    )
    if hidden is not None:
        td[HIDDEN] = hidden
    if is_init is not None:
        td["is_init"] = is_init
    return td


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_step_mode_matches_a_grucell_per_agent(batch):
    gru = _gru()
    h = torch.randn(*batch, N, H)
    td = _step_td(batch, hidden=h, is_init=torch.zeros(*batch, 1, dtype=torch.bool))
    gru(td)
    x = td["agents", "observation"]
    expected = gru.cell(x.reshape(-1, F), h.reshape(-1, H)).reshape(*batch, N, H)
    torch.testing.assert_close(td[OUT], expected)
    assert torch.equal(td[NEXT_HIDDEN], td[OUT])


def test_is_init_zeros_the_hidden_state_per_env():
    gru = _gru()
    h = torch.randn(4, N, H)
    base = _step_td((4,))
    is_init = torch.tensor([[True], [False], [True], [False]])
    out = gru(base.clone().update({"is_init": is_init}).set(HIDDEN, h))[OUT]
    zero = gru(base.clone().set(HIDDEN, torch.zeros_like(h)))[OUT]
    keep = gru(base.clone().set(HIDDEN, h))[OUT]
    first = is_init[:, 0]
    torch.testing.assert_close(out[first], zero[first])
    torch.testing.assert_close(out[~first], keep[~first])
    assert not torch.allclose(out[1], zero[1])


def test_missing_hidden_is_zeros_and_missing_is_init_is_allowed_in_step_mode():
    gru = _gru()
    td = _step_td((2,))
    out = gru(td.clone())[OUT]
    ref = gru(td.clone().set(HIDDEN, torch.zeros(2, N, H)))[OUT]
    torch.testing.assert_close(out, ref)


def _trajectory(batch, T):
    """(*E, T) data: episode starts at t=0 and mid-way, a nonzero stored hidden at t=0."""
    td = _step_td((*batch, T))
    is_init = torch.zeros(*batch, T, 1, dtype=torch.bool)
    is_init[..., T // 2, :] = True
    td["is_init"] = is_init
    td[HIDDEN] = torch.randn(*batch, T, N, H)  # only t=0 is used in recurrent mode
    return td


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_recurrent_mode_equals_step_by_step(batch):
    """THE recurrence contract: a scan over T from the stored first hidden state, resetting at
    is_init, is exactly what step mode computed while the data was collected."""
    gru = _gru()
    T = 7
    data = _trajectory(batch, T)
    h = data[HIDDEN][..., 0, :, :]
    step_outs = []
    for t in range(T):
        td = data[..., t].clone().set(HIDDEN, h)
        gru(td)
        step_outs.append(td[OUT])
        h = td[NEXT_HIDDEN]
    with set_recurrent_mode(True):
        seq = gru(data.clone())
    torch.testing.assert_close(seq[OUT], torch.stack(step_outs, len(batch)))
    torch.testing.assert_close(seq[NEXT_HIDDEN], seq[OUT])


def test_single_trajectory_without_leading_batch():
    gru = _gru()
    data = _trajectory((), 5)
    with set_recurrent_mode(True):
        out = gru(data.clone())[OUT]
    assert out.shape == (5, N, H)


def test_gradients_flow_through_time_in_recurrent_mode_only():
    gru = _gru()
    data = _trajectory((2,), 3)
    data["is_init"][:] = False
    x = data["agents", "observation"].requires_grad_(True)
    with set_recurrent_mode(True):
        out = gru(data)[OUT]
    (grad,) = torch.autograd.grad(out[:, -1].sum(), x)
    assert grad[:, 0].abs().sum() > 0  # the last output depends on the first input


def test_mode_switches_follow_torchrl_and_defaults():
    gru = _gru()
    assert gru.recurrent_mode is False
    with set_recurrent_mode(True):
        assert gru.recurrent_mode is True
        with set_recurrent_mode(False):
            assert gru.recurrent_mode is False
    with torchrl_set_recurrent_mode(True):  # the same switch as torchrl's
        assert gru.recurrent_mode is True
        assert GRUModule(input_size=2, hidden_size=2, in_key="x", out_key="y").recurrent_mode
    assert _gru(default_recurrent_mode=True).recurrent_mode is True


def test_encoder_appends_agent_id_and_broadcasts_a_state():
    torch.manual_seed(0)
    enc = SharedAgentNet(nn.Linear(5 + N, F), n_agents=N, shared_input=True)
    gru = MultiAgentGRU(F, H, n_agents=N, in_key="state", encoder=enc)
    td = gru(TensorDict({"state": torch.randn(2, 5)}, [2]))
    assert td["agents", "rnn_output"].shape == (2, N, H)
    assert not torch.allclose(td["agents", "rnn_output"][:, 0], td["agents", "rnn_output"][:, 1])


def test_errors_are_clear():
    gru = _gru()
    with pytest.raises(ValueError, match=r"entry \('agents', 'observation'\) of shape \(2, 3, 4\)"):
        gru(TensorDict({"agents": TensorDict({"observation": torch.randn(2, N, 5)}, [2, N])}, [2]))
    with pytest.raises(ValueError, match=r"hidden state \('agents', 'h'\) of shape \(2, 3, 6\)"):
        gru(_step_td((2,), hidden=torch.zeros(2, N, H + 1)))
    with pytest.raises(KeyError, match="InitTracker"), set_recurrent_mode(True):
        gru(_step_td((2, 5)))
    with pytest.raises(ValueError, match="time dim"), set_recurrent_mode(True):
        gru(_step_td(()))
    with pytest.raises(KeyError, match="input entry"):
        gru(TensorDict({}, [2]))
    with pytest.raises(ValueError, match="hidden_size to be a positive int"):
        MultiAgentGRU(F, 0, n_agents=N)
    with pytest.raises(ValueError, match="distinct"):
        MultiAgentGRU(F, H, n_agents=N, out_key=("agents", "rnn_hidden"))


def test_primer_declares_agent_hidden_state_in_env_specs(toy_env_factory):
    gru = MultiAgentGRU(F, H, n_agents=N, hidden_key=("agents", "rnn_hidden_actor"))
    primer = gru.make_tensordict_primer()
    assert primer.primers["agents", "rnn_hidden_actor"].shape == (N, H)
    root = MultiAgentGRU(F, H, n_agents=N, hidden_key="h").make_tensordict_primer()
    assert root.primers["h"].shape == (N, H)
    for batch in [(), (2,), (3, 2)]:
        env = toy_env_factory(batch_size=batch, recurrent=True)
        env.append_transform(MultiAgentGRU(F, H, n_agents=N).make_tensordict_primer())
        assert env.observation_spec["agents", "rnn_hidden"].shape == (*batch, N, H)
        assert "observation" in env.observation_spec["agents"].keys()
        check_env_specs(env)
        assert torch.equal(env.reset()["agents", "rnn_hidden"], torch.zeros(*batch, N, H))


def test_rollout_carries_the_hidden_state_and_resets_it_at_episode_starts(toy_env_factory):
    torch.manual_seed(0)
    gru = MultiAgentGRU(F, H, n_agents=N, hidden_key=("agents", "rnn_hidden_actor"))
    env = toy_env_factory(batch_size=(3,), recurrent=True)
    env.append_transform(gru.make_tensordict_primer())

    def policy(td):
        gru(td)
        td["agents", "action"] = torch.zeros(*td.batch_size, N, dtype=torch.long)
        return td

    with torch.no_grad():
        data = env.rollout(9, policy, break_when_any_done=False)
    h, h_next = data["agents", "rnn_hidden_actor"], data["next", "agents", "rnn_hidden_actor"]
    not_first = ~data["is_init"][:, 1:, 0]
    assert data["is_init"][:, 1:].any()  # episode boundaries inside the rollout
    torch.testing.assert_close(h[:, 1:][not_first], h_next[:, :-1][not_first])
    assert torch.equal(h[data["is_init"][..., 0]], torch.zeros_like(h[data["is_init"][..., 0]]))
    # and the whole rollout is reproduced in recurrent mode
    with torch.no_grad(), set_recurrent_mode(True):
        seq = gru(data.exclude(("agents", "rnn_output"), ("next", "agents", "rnn_hidden_actor")))
    torch.testing.assert_close(seq["agents", "rnn_output"], data["agents", "rnn_output"])
