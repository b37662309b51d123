import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictSequential
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs.utils import ExplorationType, check_env_specs, set_exploration_type
from torchrl.modules.utils import get_primers_from_module
from torchrl.objectives.multiagent import MAPPOLoss

from mtmarl.modules import (
    VARIANTS,
    MultiAgentGRU,
    make_actor,
    make_critic,
    make_phasic_actor,
    make_phasic_critic,
    set_recurrent_mode,
)

N, F, S, A = 3, 4, 5, 4  # the toy env's sizes (tests/modules/conftest.py)
BATCHES = [(), (2,), (3, 2)]
SMALL = {"num_cells": (16, 16)}


def _options(variant):
    return {"hidden_size": 8} if variant == "recurrent" else {}


def _actor(variant, **kw):
    torch.manual_seed(0)
    return make_actor(
        variant, n_agents=N, observation_dim=F, n_actions=A, **SMALL, **_options(variant), **kw
    )


def _critic(variant, **kw):
    torch.manual_seed(0)
    kw.setdefault("state_dim", S)
    return make_critic(variant, n_agents=N, **SMALL, **_options(variant), **kw)


def _td(batch, *, same_obs=False, mask=True):
    obs = torch.randn(*batch, 1 if same_obs else N, F).expand(*batch, N, F).clone()
    agents = {"observation": obs}
    if mask:
        m = torch.rand(*batch, N, A) > 0.5
        m[..., 0] = True
        agents["action_mask"] = m
    return TensorDict(
        {
            "agents": TensorDict(agents, (*batch, N)),
            "state": torch.randn(*batch, S),
            "phase": torch.rand(*batch, 1),
            "step_count": torch.randint(0, 50, (*batch, 1)),
            "is_init": torch.zeros(*batch, 1, dtype=torch.bool),
        },
        batch,
    )


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_actor_and_critic_shapes(variant, batch):
    td = _td(batch)
    _actor(variant)(td)
    assert td["agents", "logits"].shape == (*batch, N, A)
    assert td["agents", "action"].shape == (*batch, N)
    assert td["agents", "action"].dtype == torch.int64
    assert td["agents", "action_log_prob"].shape == (*batch, N)
    _critic(variant)(td)
    assert td["agents", "state_value"].shape == (*batch, N, 1)
    assert torch.isfinite(td["agents", "state_value"]).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_decentralised_critic_reads_observations(variant):
    critic = _critic(variant, state_dim=None, observation_dim=F, centralised=False)
    assert ("agents", "observation") in critic.in_keys and "state" not in critic.in_keys
    td = critic(_td((2,)).exclude("state"))
    assert td["agents", "state_value"].shape == (2, N, 1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameters_shared_over_agents_and_agent_id_tells_them_apart(variant):
    td = _td((4,), same_obs=True, mask=False)
    logits = _actor(variant, action_mask_key=None)(td.clone())["agents", "logits"]
    assert not torch.allclose(logits[:, 0], logits[:, 1])
    values = _critic(variant)(td.clone())["agents", "state_value"]
    assert not torch.allclose(values[:, 0], values[:, 1])
    # without the id the shared network cannot tell identical agents apart
    same = _actor(variant, action_mask_key=None, agent_id=False)(td.clone())["agents", "logits"]
    torch.testing.assert_close(same[:, 0], same[:, 1])

    # parameter count grows with N only through the id's input columns
    def count(n):
        torch.manual_seed(0)
        actor = make_actor(
            variant, n_agents=n, observation_dim=F, n_actions=A, **SMALL, **_options(variant)
        )
        return sum(p.numel() for p in actor.parameters())

    k = 4 if variant == "phasic" else 1
    assert count(5) - count(2) == 3 * SMALL["num_cells"][0] * k


@pytest.mark.parametrize("variant", VARIANTS)
def test_masked_actions_never_sampled_and_deterministic_is_argmax(variant):
    actor = _actor(variant)
    td = _td((64,))
    mask = td["agents", "action_mask"]
    mask[:, 0] = False
    mask[:, 0, 1] = True  # agent 0: forced choice
    with set_exploration_type(ExplorationType.RANDOM):
        out = actor(td.clone())
    action = out["agents", "action"]
    assert bool(mask.gather(-1, action.unsqueeze(-1)).all())
    assert torch.equal(out["agents", "action_log_prob"][:, 0], torch.zeros(64))
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        out = actor(td.clone())
    masked = out["agents", "logits"].masked_fill(~mask, float("-inf"))
    assert torch.equal(out["agents", "action"], masked.argmax(-1))


def test_phasic_output_depends_on_the_phase():
    actor, critic = _actor("phasic", action_mask_key=None), _critic("phasic")
    td = _td((5,), mask=False)
    other = td.clone().set("phase", (td["phase"] + 0.3) % 1)
    assert not torch.allclose(
        actor(td.clone())["agents", "logits"], actor(other.clone())["agents", "logits"]
    )
    assert not torch.allclose(
        critic(td.clone())["agents", "state_value"], critic(other.clone())["agents", "state_value"]
    )
    # the phase is read from the data: whole cycles apart give the same output
    same = td.clone().set("phase", td["phase"] + 1.0)
    torch.testing.assert_close(
        actor(td.clone())["agents", "logits"], actor(same)["agents", "logits"]
    )


@pytest.mark.parametrize("builder", [make_phasic_actor, make_phasic_critic])
def test_pfnn_period_reads_step_count(builder):
    period, env_period = 4, 15
    kw = {"n_agents": N, **SMALL}
    kw.update(
        {"observation_dim": F, "n_actions": A, "action_mask_key": None}
        if builder is make_phasic_actor
        else {"state_dim": S}
    )
    out_key = ("agents", "logits") if builder is make_phasic_actor else ("agents", "state_value")
    torch.manual_seed(0)
    by_phase = builder(**kw)
    torch.manual_seed(0)
    by_p = builder(pfnn_period=period, **kw)
    torch.manual_seed(0)
    by_l = builder(pfnn_period=env_period, **kw)
    assert "step_count" in by_p.in_keys and "phase" not in by_p.in_keys
    assert "phase" in by_phase.in_keys and "step_count" not in by_phase.in_keys
    td = _td((1,), mask=False).expand(30).clone()
    t = torch.arange(30).unsqueeze(-1)
    td["step_count"] = t
    td["phase"] = (t % env_period).float() / env_period  # what PhaseEncoding writes
    y_p = by_p(td.clone())[out_key]
    torch.testing.assert_close(y_p[4:], y_p[:-4])  # period P = 4 in the step count
    assert not torch.allclose(y_p[1], y_p[0])
    # P = L reproduces the env-phase network exactly (same weights)
    torch.testing.assert_close(by_l(td.clone())[out_key], by_phase(td.clone())[out_key])
    assert not torch.allclose(y_p[5], by_l(td.clone())[out_key][5])


def _recurrent_env(toy_env_factory, actor, critic, batch=(3,)):
    env = toy_env_factory(batch_size=batch, recurrent=True)
    for module in (actor, critic):
        env.append_transform(get_primers_from_module(module))
    return env


def test_recurrent_env_specs_and_collector(toy_env_factory):
    actor, critic = _actor("recurrent"), _critic("recurrent")
    env = _recurrent_env(toy_env_factory, actor, critic)
    assert env.observation_spec["agents", "observation"].shape == (3, N, F)
    assert env.observation_spec["state"].shape == (3, S)
    assert env.full_action_spec["agents", "action"].n == A
    assert env.observation_spec["agents", "rnn_hidden_actor"].shape == (3, N, 8)
    assert env.observation_spec["agents", "rnn_hidden_critic"].shape == (3, N, 8)
    check_env_specs(env)
    collector = Collector(
        env, actor, frames_per_batch=18, total_frames=18, auto_register_policy_transforms=False
    )
    data = next(iter(collector))
    collector.shutdown()
    assert data["agents", "rnn_hidden_actor"].shape == (3, 6, N, 8)
    assert data["next", "agents", "rnn_hidden_actor"].shape == (3, 6, N, 8)
    assert data["is_init"][:, 1:].any()


def test_recurrent_step_mode_rollout_equals_recurrent_mode(toy_env_factory):
    """The key test: what the policy computed step by step while collecting (carrying the
    hidden state, resetting it at episode boundaries) is recomputed exactly from the stored
    data in recurrent mode -- also from a window that starts mid-episode."""
    actor, critic = _actor("recurrent"), _critic("recurrent")
    env = _recurrent_env(toy_env_factory, actor, critic)
    policy = TensorDictSequential(actor, critic)
    torch.manual_seed(1)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        data = env.rollout(10, policy, break_when_any_done=False)
    assert data["is_init"][:, 1:].any() and not data["is_init"][:, 1:].all()
    outputs = [
        ("agents", "logits"),
        ("agents", "state_value"),
        ("agents", "rnn_output_actor"),
        ("agents", "rnn_output_critic"),
        ("next", "agents", "rnn_hidden_actor"),
        ("next", "agents", "rnn_hidden_critic"),
        ("agents", "action_log_prob"),
    ]
    hidden_keys = [("agents", "rnn_hidden_actor"), ("agents", "rnn_hidden_critic")]
    for window in (data, data[:, 4:]):
        fresh = window.exclude(*outputs).clone()
        for key in hidden_keys:  # only the first stored state may be used: spoil the rest
            fresh[key][:, 1:] = torch.randn_like(fresh[key][:, 1:])
        assert fresh[hidden_keys[0]][:, 0].abs().sum() > 0 or window is data
        with set_recurrent_mode(True):
            logits_td = actor.get_dist_params(fresh.clone())
            dist = actor.get_dist(fresh.clone())
            values = critic(fresh.clone())
        torch.testing.assert_close(logits_td["agents", "logits"], window["agents", "logits"])
        torch.testing.assert_close(
            dist.log_prob(window["agents", "action"]), window["agents", "action_log_prob"]
        )
        torch.testing.assert_close(values["agents", "state_value"], window["agents", "state_value"])
        torch.testing.assert_close(
            values["next", "agents", "rnn_hidden_critic"],
            window["next", "agents", "rnn_hidden_critic"],
        )
        # step mode on the spoiled data does not reproduce it (the test above is not vacuous)
        assert not torch.allclose(
            critic(fresh.clone())["agents", "state_value"], window["agents", "state_value"]
        )
        # bootstrap values: step mode on "next" with the states recurrent mode wrote there
        with torch.no_grad():
            nxt = critic(values["next"].clone())["agents", "state_value"]
        cont = ~window["next", "done"][:, :-1, 0]
        assert cont.any()
        torch.testing.assert_close(nxt[:, :-1][cont], window["agents", "state_value"][:, 1:][cont])


@pytest.mark.parametrize("variant", VARIANTS)
def test_mappo_loss_runs_and_trains_every_variant(variant, toy_env_factory):
    actor, critic = _actor(variant), _critic(variant)
    env = toy_env_factory(batch_size=(2,), recurrent=variant == "recurrent")
    if variant == "recurrent":
        env = _recurrent_env(toy_env_factory, actor, critic, batch=(2,))
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        data = env.rollout(6, actor, break_when_any_done=False)
    data["agents", "advantage"] = torch.randn(2, 6, N, 1)
    data["agents", "value_target"] = torch.randn(2, 6, N, 1)
    loss = MAPPOLoss(actor, critic)
    loss.set_keys(
        action=("agents", "action"),
        value=("agents", "state_value"),
        advantage=("agents", "advantage"),
        value_target=("agents", "value_target"),
        sample_log_prob=("agents", "action_log_prob"),
    )
    out = loss(data)
    total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
    total.backward()
    for module in (actor, critic):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if variant == "recurrent":
        gru = next(m for m in actor.modules() if isinstance(m, MultiAgentGRU))
        assert gru.cell.weight_hh.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("factory", "sizes"),
    [
        (make_actor, {"observation_dim": F, "n_actions": A}),
        (make_critic, {"state_dim": S}),
    ],
)
def test_bad_variant_name_lists_the_choices(factory, sizes):
    with pytest.raises(ValueError, match=r"\['basic', 'recurrent', 'onehot', 'phasic'\].*'pfnn'"):
        factory("pfnn", n_agents=N, **sizes)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_agents": 0}, ValueError, "n_agents to be a positive int, got 0"),
        ({"observation_dim": -1}, ValueError, "observation_dim to be a positive int"),
        ({"n_actions": 2.5}, ValueError, "n_actions to be a positive int"),
        ({"num_cells": 64}, TypeError, "num_cells to be a sequence"),
        ({"num_cells": (64, 0)}, ValueError, "every entry of num_cells"),
        ({"activation": nn.ELU()}, TypeError, "activation to be an nn.Module class"),
    ],
)
def test_bad_sizes_raise_at_construction(variant, kwargs, error, match):
    args = {"n_agents": N, "observation_dim": F, "n_actions": A, **kwargs}
    with pytest.raises(error, match=match):
        make_actor(variant, **args)


def test_bad_critic_and_variant_options_raise():
    with pytest.raises(ValueError, match="centralised=True reads the global state"):
        make_critic("basic", n_agents=N)
    with pytest.raises(ValueError, match="centralised=False reads the agents' observations"):
        make_critic("basic", n_agents=N, state_dim=S, centralised=False)
    with pytest.raises(ValueError, match="pfnn_period applies to the 'phasic' variant only"):
        make_actor("basic", n_agents=N, observation_dim=F, n_actions=A, pfnn_period=4)
    with pytest.raises(ValueError, match="hidden_size applies to the 'recurrent' variant only"):
        make_critic("phasic", n_agents=N, state_dim=S, hidden_size=8)
    with pytest.raises(ValueError, match="pfnn_period to be a positive int"):
        make_critic("phasic", n_agents=N, state_dim=S, pfnn_period=0)
    with pytest.raises(ValueError, match="n_control_points >= 4"):
        make_actor("phasic", n_agents=N, observation_dim=F, n_actions=A, n_control_points=3)
    with pytest.raises(ValueError, match="hidden_size to be a positive int"):
        make_critic("recurrent", n_agents=N, state_dim=S, hidden_size=0)
