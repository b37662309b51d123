import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import InitTracker
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules.utils import get_primers_from_module
from torchrl.objectives.multiagent import MAPPOLoss

from mtmarl.envs import make_building_env
from mtmarl.modules import make_critic, set_recurrent_mode
from mtmarl.modules.continuous import make_continuous_actor
from mtmarl.modules.masked_tanh_normal import MaskedTanhNormal

N, F, A = 3, 5, 2
BATCHES = [(), (2,), (3, 2)]
SMALL = {"num_cells": (16, 16)}
VARIANT_OPTIONS = {
    "basic": {},
    "onehot": {},
    "phasic": {},
    "phasic_p4": {"pfnn_period": 4},
    "recurrent": {"hidden_size": 8},
}


def _variant(name):
    return name.split("_")[0]


def _actor(name, **kw):
    torch.manual_seed(0)
    kw.setdefault("low", -2.0)
    kw.setdefault("high", 2.0)
    return make_continuous_actor(
        _variant(name),
        n_agents=N,
        observation_dim=F,
        action_dim=A,
        **SMALL,
        **VARIANT_OPTIONS[name],
        **kw,
    )


def _td(batch, *, seed=0):
    g = torch.Generator().manual_seed(seed)
    can_act = torch.rand(*batch, N, generator=g) > 0.5
    can_act.view(-1, N)[:, 0] = True
    can_act.view(-1, N)[:, 1] = False
    return TensorDict(
        {
            "agents": TensorDict(
                {"observation": torch.randn(*batch, N, F, generator=g), "can_act": can_act},
                (*batch, N),
            ),
            "phase": torch.rand(*batch, 1, generator=g),
            "step_count": torch.randint(0, 50, (*batch, 1), generator=g),
            "is_init": torch.ones(*batch, 1, dtype=torch.bool),
        },
        batch,
    )


@pytest.mark.parametrize("name", list(VARIANT_OPTIONS))
@pytest.mark.parametrize("batch", BATCHES)
def test_shapes_and_masked_log_prob(name, batch):
    actor = _actor(name)
    td = _td(batch)
    can_act = td["agents", "can_act"]
    with set_exploration_type(ExplorationType.RANDOM):
        out = actor(td.clone())
    assert out["agents", "action"].shape == (*batch, N, A)
    assert out["agents", "loc"].shape == out["agents", "scale"].shape == (*batch, N, A)
    assert (out["agents", "scale"] > 0).all()
    lp = out["agents", "action_log_prob"]
    assert lp.shape == (*batch, N)
    assert (lp[~can_act] == 0).all() and (lp[can_act] != 0).all()
    assert (out["agents", "action"].abs() <= 2).all()
    dist = actor.get_dist(out)
    assert isinstance(dist, MaskedTanhNormal)
    h = dist.entropy()
    assert h.shape == (*batch, N) and (h[~can_act] == 0).all() and (h[can_act] != 0).all()


@pytest.mark.parametrize("name", ["basic", "phasic", "recurrent"])
def test_deterministic_mode_is_bounded_tanh_of_loc(name):
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([3.0, 0.5])
    actor = _actor(name, low=low, high=high)
    td = actor(_td((4,)))  # default interaction: deterministic
    expected = low + (high - low) * (td["agents", "loc"].tanh() + 1) / 2
    torch.testing.assert_close(td["agents", "action"], expected)
    assert ((td["agents", "action"] >= low) & (td["agents", "action"] <= high)).all()
    again = actor(_td((4,)))
    torch.testing.assert_close(again["agents", "action"], td["agents", "action"])


def test_phasic_actor_follows_its_phase_source():
    td = _td((6,))
    env_phase = _actor("phasic")
    own_period = _actor("phasic_p4")
    assert "phase" in env_phase.in_keys and "step_count" not in env_phase.in_keys
    assert "step_count" in own_period.in_keys and "phase" not in own_period.in_keys
    a = env_phase(td.clone())["agents", "loc"]
    td2 = td.clone()
    td2["phase"] = (td["phase"] + 0.3) % 1.0
    assert not torch.allclose(env_phase(td2)["agents", "loc"], a)
    # step counts equal modulo the period give the same output
    b = own_period(td.clone())["agents", "loc"]
    td3 = td.clone()
    td3["step_count"] = td["step_count"] + 4 * 7
    torch.testing.assert_close(own_period(td3)["agents", "loc"], b)


def test_bounds_from_the_building_spec():
    env = make_building_env(num_envs=2, seed=0)
    spec = env.full_action_spec
    obs_dim = env.observation_spec["agents", "observation"].shape[-1]
    for given in (spec, spec["agents", "action"]):
        actor = make_continuous_actor(
            "basic", n_agents=7, observation_dim=obs_dim, action_dim=1, action_spec=given
        )
        kwargs = actor.module[-1].distribution_kwargs
        assert kwargs["low"].shape == kwargs["high"].shape == (7, 1)
        torch.testing.assert_close(kwargs["low"], spec["agents", "action"].space.low[0])
        torch.testing.assert_close(kwargs["high"], spec["agents", "action"].space.high[0])


@pytest.mark.parametrize(
    ("name", "phase_mode"),
    [
        ("basic", None),
        ("onehot", "onehot"),
        ("phasic", "phase"),
        ("phasic_p4", None),
        ("recurrent", None),
    ],
)
def test_building_rollout(name, phase_mode):
    env = make_building_env(phase_mode=phase_mode, num_envs=2, seed=0)
    if name == "recurrent":
        env.append_transform(InitTracker())
    actor = _actor_for(env, name, env.observation_spec["agents", "observation"].shape[-1])
    if name == "recurrent":
        env.append_transform(get_primers_from_module(actor))
    spec = env.full_action_spec["agents", "action"]
    for exploration in (ExplorationType.RANDOM, ExplorationType.DETERMINISTIC):
        with torch.no_grad(), set_exploration_type(exploration):
            data = env.rollout(7, actor, break_when_any_done=False)
        assert data.shape == (2, 7)
        action = data["agents", "action"]
        assert action.shape == (2, 7, 7, 1)
        assert spec.is_in(action[:, 0]) and spec.is_in(action[:, -1])
        lp, can_act = data["agents", "action_log_prob"], data["agents", "can_act"]
        assert (~can_act).any() and (lp[~can_act] == 0).all() and (lp[can_act] != 0).all()


def _mappo_setup():
    env = make_building_env(num_envs=4, seed=0)
    obs_dim = env.observation_spec["agents", "observation"].shape[-1]
    state_dim = env.observation_spec["state"].shape[-1]
    torch.manual_seed(0)
    actor = make_continuous_actor(
        "basic",
        n_agents=7,
        observation_dim=obs_dim,
        action_dim=1,
        action_spec=env.full_action_spec,
        **SMALL,
    )
    critic = make_critic("basic", n_agents=7, state_dim=state_dim, **SMALL)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        data = env.rollout(8, actor, break_when_any_done=False)
    loss = MAPPOLoss(actor, critic, entropy_coeff=0.1)
    loss.set_keys(
        action=("agents", "action"),
        value=("agents", "state_value"),
        sample_log_prob=("agents", "action_log_prob"),
        advantage=("agents", "advantage"),
        value_target=("agents", "value_target"),
    )
    loss.make_value_estimator(gamma=0.99, lmbda=0.95)
    with torch.no_grad():
        loss.value_estimator(data)
    return actor, loss, data


def _actor_grads(actor, loss, data):
    actor.zero_grad(set_to_none=True)
    loss.critic_network.zero_grad(set_to_none=True)
    out = loss(data.clone())
    (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()
    grads = [p.grad.clone() for p in actor.parameters()]
    assert all(torch.isfinite(g).all() for g in grads)
    return grads


def _perturb(data, where):
    """New observations and (out-of-range) actions at the (env, t, agent) entries ``where``."""
    data = data.clone()
    obs = data["agents", "observation"]
    data["agents", "observation"] = torch.where(where.unsqueeze(-1), obs + 3.0, obs)
    act = data["agents", "action"]
    data["agents", "action"] = torch.where(where.unsqueeze(-1), torch.full_like(act, 7.0), act)
    return data


def test_mappo_ignores_forced_steps():
    actor, loss, data = _mappo_setup()
    can_act = data["agents", "can_act"]
    assert (~can_act).any()
    base = _actor_grads(actor, loss, data)
    assert any(g.abs().sum() > 0 for g in base)
    # changing what forced agents saw and "did" leaves the policy gradient unchanged ...
    forced = _actor_grads(actor, loss, _perturb(data, ~can_act))
    for g0, g1 in zip(base, forced, strict=True):
        torch.testing.assert_close(g1, g0, rtol=1e-6, atol=1e-7)
    # ... while the same change at free steps does change it
    free = can_act & (torch.rand(can_act.shape, generator=torch.Generator().manual_seed(0)) < 0.3)
    data_free = _perturb(data, free)
    data_free["agents", "action"] = data["agents", "action"]  # keep actions in range
    changed = _actor_grads(actor, loss, data_free)
    assert any(not torch.allclose(g0, g1) for g0, g1 in zip(base, changed, strict=True))


def test_mappo_recurrent_runs_in_recurrent_mode():
    env = make_building_env(num_envs=2, seed=0)
    env.append_transform(InitTracker())
    obs_dim = env.observation_spec["agents", "observation"].shape[-1]
    state_dim = env.observation_spec["state"].shape[-1]
    actor = _actor_for(env, "recurrent", obs_dim)
    env.append_transform(get_primers_from_module(actor))
    critic = make_critic("basic", n_agents=7, state_dim=state_dim, **SMALL)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        data = env.rollout(6, actor, break_when_any_done=False)
    data["agents", "advantage"] = torch.randn(2, 6, 7, 1)
    data["agents", "value_target"] = torch.randn(2, 6, 7, 1)
    loss = MAPPOLoss(actor, critic)
    loss.set_keys(
        action=("agents", "action"),
        value=("agents", "state_value"),
        sample_log_prob=("agents", "action_log_prob"),
        advantage=("agents", "advantage"),
        value_target=("agents", "value_target"),
    )
    with set_recurrent_mode(True):
        out = loss(data)
    (out["loss_objective"] + out["loss_entropy"]).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in actor.parameters())


def _actor_for(env, name, obs_dim):
    torch.manual_seed(0)
    return make_continuous_actor(
        _variant(name),
        n_agents=7,
        observation_dim=obs_dim,
        action_dim=1,
        action_spec=env.full_action_spec,
        **SMALL,
        **VARIANT_OPTIONS[name],
    )


def test_no_can_act_key_is_an_unmasked_actor():
    actor = _actor("basic", can_act_key=None)
    assert ("agents", "can_act") not in actor.in_keys
    td = _td((4,))
    del td["agents", "can_act"]
    with set_exploration_type(ExplorationType.RANDOM):
        lp = actor(td)["agents", "action_log_prob"]
    assert (lp != 0).all()


def test_bad_configuration_raises():
    ok = {"n_agents": N, "observation_dim": F, "action_dim": A}
    with pytest.raises(ValueError, match="variant to be one of"):
        make_continuous_actor("lstm", **ok)
    with pytest.raises(ValueError, match="n_agents to be a positive int, got 0"):
        make_continuous_actor("basic", **{**ok, "n_agents": 0})
    with pytest.raises(ValueError, match="action_dim to be a positive int"):
        make_continuous_actor("basic", **{**ok, "action_dim": 1.5})
    with pytest.raises(TypeError, match="num_cells"):
        make_continuous_actor("basic", **ok, num_cells=64)
    with pytest.raises(ValueError, match="pfnn_period applies to the 'phasic' variant only"):
        make_continuous_actor("basic", **ok, pfnn_period=4)
    with pytest.raises(ValueError, match="hidden_size applies to the 'recurrent'"):
        make_continuous_actor("phasic", **ok, hidden_size=8)
    with pytest.raises(ValueError, match="n_control_points >= 4"):
        make_continuous_actor("phasic", **ok, n_control_points=2)
    with pytest.raises(ValueError, match="high > low"):
        make_continuous_actor("basic", **ok, low=1.0, high=torch.tensor([2.0, 1.0]))
    with pytest.raises(ValueError, match=r"broadcastable to \(n_agents, action_dim\)"):
        make_continuous_actor("basic", **ok, low=torch.zeros(4))
    spec = Bounded(-1.0, 1.0, shape=(2, N, A + 1))
    with pytest.raises(ValueError, match=r"shape \(\*E, 3, 2\).*got \(2, 3, 3\)"):
        make_continuous_actor("basic", **ok, action_spec=spec)
    with pytest.raises(ValueError, match="either action_spec or low/high"):
        make_continuous_actor("basic", **ok, action_spec=spec, low=-1.0)
    varying = Bounded(torch.tensor([-1.0, -2.0]).reshape(2, 1, 1).expand(2, N, A), 1.0)
    with pytest.raises(ValueError, match="same in every env"):
        make_continuous_actor("basic", **ok, action_spec=varying)
    with pytest.raises(ValueError, match="to hold the action at"):
        make_continuous_actor(
            "basic", **ok, action_spec=Composite(agents=Composite(shape=()), shape=())
        )
    with pytest.raises(TypeError, match="Bounded action spec"):
        make_continuous_actor("basic", **ok, action_spec=Unbounded((2, N, A)))
