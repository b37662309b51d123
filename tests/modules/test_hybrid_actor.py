import pytest
import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import CompositeDistribution, TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import Bounded, Categorical, Composite, OneHot, Unbounded
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, check_env_specs, set_exploration_type
from torchrl.modules import MaskedCategorical, TanhNormal
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.multiagent import MAPPOLoss
from torchrl.objectives.value import MultiAgentGAE

from mtmarl.modules.forecast_encoder import ForecastEncoder
from mtmarl.modules.hybrid_actor import make_hybrid_actor
from mtmarl.modules.transformer_critic import TransformerCritic
from mtmarl.nn.phase import PhaseLinear

N, D, M, A, W, FF = 3, 6, 3, 2, 4, 3
LOW, HIGH = torch.tensor([0.0, -2.0]), torch.tensor([1.0, 3.0])


def _spec(env_batch=(2,), n=N, low=LOW, high=HIGH):
    b = tuple(env_batch)
    return Composite(
        agents=Composite(
            action=Composite(
                mode=Categorical(M, shape=(*b, n)),
                power=Bounded(low.expand(*b, n, A), high.expand(*b, n, A), shape=(*b, n, A)),
                shape=(*b, n),
            ),
            shape=(*b, n),
        ),
        shape=b,
    )


def _actor(**kwargs):
    torch.manual_seed(0)
    kwargs.setdefault("feature_key", ("agents", "obs"))
    kwargs.setdefault("feature_dim", D)
    return make_hybrid_actor(kwargs.pop("spec", _spec()), **kwargs)


def _td(batch, n=N, mask=None):
    agents = {"obs": torch.randn(*batch, n, D)}
    if mask is not None:
        agents["action_mask"] = mask
    return TensorDict({"agents": TensorDict(agents, (*batch, n))}, batch)


MODE, POWER = ("agents", "action", "mode"), ("agents", "action", "power")
MODE_LP, POWER_LP = ("agents", "action", "mode_log_prob"), ("agents", "action", "power_log_prob")


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_actions_and_per_head_log_probs_have_agent_shapes(batch):
    actor = _actor()
    assert actor.dist_sample_keys == [MODE, POWER]
    assert actor.log_prob_keys == [MODE_LP, POWER_LP]
    with set_exploration_type(ExplorationType.RANDOM):
        td = actor(_td(batch))
    assert td[MODE].shape == (*batch, N) and td[MODE].dtype == torch.int64
    assert td[POWER].shape == (*batch, N, A) and td[POWER].dtype == torch.float32
    assert td[MODE_LP].shape == (*batch, N)
    assert td[POWER_LP].shape == (*batch, N)
    dist = actor.get_dist(td)
    assert isinstance(dist, CompositeDistribution)
    assert isinstance(dist.dists[MODE], torch.distributions.Categorical)
    assert isinstance(dist.dists[POWER], TanhNormal)
    torch.testing.assert_close(dist.dists[MODE].log_prob(td[MODE]), td[MODE_LP])
    torch.testing.assert_close(dist.dists[POWER].log_prob(td[POWER]), td[POWER_LP])
    # per-head entropies with agent dims
    from tensordict.nn import set_composite_lp_aggregate

    with set_composite_lp_aggregate(False):
        lp = dist.log_prob(td.select(MODE, POWER))
    torch.testing.assert_close(lp[MODE_LP], td[MODE_LP])


def test_continuous_actions_respect_the_spec_bounds():
    actor = _actor()
    with set_exploration_type(ExplorationType.RANDOM):
        power = actor(_td((4000,)))[POWER]
    assert bool((power >= LOW).all()) and bool((power <= HIGH).all())
    # the whole range is used (bounds come from the spec, not [-1, 1])
    assert power[..., 1].max() > 1.5 and power[..., 1].min() < -1.0
    assert power[..., 0].min() >= 0.0


def test_per_agent_bounds_and_bounds_varying_across_envs():
    low = torch.tensor([[-1.0, -1.0], [-2.0, -2.0], [0.0, 0.0]])  # (N, A)
    high = low + 1.0
    actor = _actor(spec=_spec(low=low, high=high))
    with set_exploration_type(ExplorationType.RANDOM):
        power = actor(_td((500,)))[POWER]
    assert bool((power >= low).all()) and bool((power <= high).all())
    env_low = torch.stack([LOW.expand(N, A), LOW.expand(N, A) - 1.0])  # (E=2, N, A)
    bad = _spec()
    bad["agents", "action", "power"] = Bounded(env_low, HIGH.expand(2, N, A), shape=(2, N, A))
    with pytest.raises(ValueError, match="same in every env"):
        make_hybrid_actor(bad, feature_dim=D)


def test_deterministic_mode_is_argmax_and_squashed_loc():
    actor = _actor()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        td = actor(_td((50,)))
    logits = td["agents", "params", "mode", "logits"]
    loc = td["agents", "params", "power", "loc"]
    assert torch.equal(td[MODE], logits.argmax(-1))
    torch.testing.assert_close(td[POWER], LOW + (HIGH - LOW) * (torch.tanh(loc) + 1) / 2)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        again = actor(td.exclude(("agents", "action"), ("agents", "params")))
    assert torch.equal(again[MODE], td[MODE]) and torch.equal(again[POWER], td[POWER])


def test_masked_discrete_head():
    actor = _actor(action_mask_key=("agents", "action_mask"))
    mask = torch.zeros(300, N, M, dtype=torch.bool)
    mask[:, 0, 1] = True  # agent 0: forced
    mask[:, 1, [0, 2]] = True  # agent 1: two choices
    mask[:, 2] = True  # agent 2: free
    with set_exploration_type(ExplorationType.RANDOM):
        td = actor(_td((300,), mask=mask))
    dist = actor.get_dist(td)
    assert isinstance(dist.dists[MODE], MaskedCategorical)
    assert bool(mask.gather(-1, td[MODE].unsqueeze(-1)).all())
    assert torch.equal(td[MODE][:, 0], torch.ones(300, dtype=torch.long))
    assert torch.equal(td[MODE_LP][:, 0], torch.zeros(300))
    assert set(td[MODE][:, 1].tolist()) == {0, 2}
    entropy = dist.dists[MODE].entropy()
    assert entropy.shape == (300, N)
    torch.testing.assert_close(entropy[:, 0], torch.zeros(300))
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        det = actor(_td((300,), mask=mask))
    masked = det["agents", "params", "mode", "logits"].masked_fill(~mask, float("-inf"))
    assert torch.equal(det[MODE], masked.argmax(-1))


def test_injected_phase_heads():
    torch.manual_seed(0)
    disc, cont = PhaseLinear(D, M), PhaseLinear(D, 2 * A)
    actor = make_hybrid_actor(
        _spec(),
        feature_key=("agents", "obs"),
        discrete_head=disc,
        continuous_head=cont,
        head_extra_keys=["phase"],
    )
    assert "phase" in actor.in_keys
    assert disc in list(actor.modules()) and cont in list(actor.modules())
    td = _td((5,))
    td["phase"] = torch.full((5, 1), 0.0)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        a0 = actor(td.clone())
        td["phase"] = torch.full((5, 1), 0.5)
        a1 = actor(td.clone())
    l0, l1 = a0["agents", "params", "mode", "logits"], a1["agents", "params", "mode", "logits"]
    torch.testing.assert_close(l0, td["agents", "obs"] @ disc.weight[0].T + disc.bias[0])
    assert not torch.allclose(l0, l1)
    # one injected head, the other default: the default one ignores the extra input
    mixed = make_hybrid_actor(
        _spec(),
        feature_dim=D,
        feature_key=("agents", "obs"),
        discrete_head=PhaseLinear(D, M),
        head_extra_keys=["phase"],
    )
    assert mixed(td)[POWER].shape == (5, N, A)


def test_wrong_head_output_raises_at_call():
    actor = make_hybrid_actor(
        _spec(),
        feature_key=("agents", "obs"),
        discrete_head=nn.Linear(D, M + 1),
        continuous_head=nn.Linear(D, 2 * A),
    )
    with pytest.raises(ValueError, match="discrete head"):
        actor(_td((2,)))
    actor = make_hybrid_actor(
        _spec(),
        feature_key=("agents", "obs"),
        discrete_head=nn.Linear(D, M),
        continuous_head=nn.Linear(D, A),
    )
    with pytest.raises(ValueError, match="continuous head"):
        actor(_td((2,)))


def test_bad_configuration_fails_at_construction():
    two_discrete = Composite(
        a=Categorical(3, shape=(2,)),
        b=Categorical(2, shape=(2,)),
        c=Bounded(-1, 1, (2, 1)),
        shape=(),
    )
    with pytest.raises(ValueError, match="exactly one Categorical"):
        make_hybrid_actor(two_discrete, feature_dim=D)
    onehot = Composite(a=OneHot(3, shape=(2, 3)), c=Bounded(-1, 1, (2, 1)), shape=())
    with pytest.raises(ValueError, match="other leaves"):
        make_hybrid_actor(onehot, feature_dim=D)
    no_action_dim = Composite(a=Categorical(3, shape=(2,)), c=Bounded(-1, 1, (2,)), shape=())
    with pytest.raises(ValueError, match="one action dim"):
        make_hybrid_actor(no_action_dim, feature_dim=D)
    with pytest.raises(TypeError, match="Composite"):
        make_hybrid_actor(Categorical(3), feature_dim=D)
    with pytest.raises(ValueError, match="feature_dim"):
        make_hybrid_actor(_spec())
    enc = TensorDictModule(nn.Linear(3, D), in_keys=["x"], out_keys=["y"])
    with pytest.raises(ValueError, match="feature_key"):
        make_hybrid_actor(_spec(), feature_dim=D, encoder=enc)
    with pytest.raises(TypeError, match="discrete_head"):
        make_hybrid_actor(_spec(), feature_dim=D, discrete_head=lambda x: x)


def test_single_agent_root_spec():
    spec = Composite(
        mode=Categorical(M, shape=(4,)), power=Bounded(-1.0, 1.0, shape=(4, A)), shape=(4,)
    )
    torch.manual_seed(0)
    actor = make_hybrid_actor(spec, feature_dim=D, feature_key="obs")
    assert actor.log_prob_keys == ["mode_log_prob", "power_log_prob"]
    td = actor(TensorDict({"obs": torch.randn(7, D)}, [7]))
    assert td["mode"].shape == (7,) and td["power"].shape == (7, A)
    assert td["mode_log_prob"].shape == (7,) and td["params", "power", "loc"].shape == (7, A)


# ---------------------------------------------------------------------------- MATPPO stack
class HybridToyEnv(EnvBase):
    """Forecast windows + device triplets, hybrid actions, team reward (keys as the community env)."""

    def __init__(self, *, batch_size=(2,), n_agents=N):
        super().__init__(batch_size=torch.Size(batch_size))
        b, n = self.batch_size, n_agents
        self.n_agents = n
        self.observation_spec = Composite(
            agents=Composite(
                forecast=Unbounded((*b, n, W, FF)),
                device_state=Bounded(0.0, 1.0, shape=(*b, n, 3)),
                shape=(*b, n),
            ),
            state=Unbounded((*b, 5)),
            shape=b,
        )
        self.action_spec = _spec(b, n)
        self.reward_spec = Unbounded((*b, 1))
        flag = Categorical(2, shape=(*b, 1), dtype=torch.bool)
        self.done_spec = Composite(
            done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=b
        )
        self._t = torch.zeros(b, dtype=torch.long)

    def _set_seed(self, seed):
        torch.manual_seed(0 if seed is None else seed)

    def _obs(self):
        b, n = self.batch_size, self.n_agents
        agents = TensorDict(
            {"forecast": torch.randn(*b, n, W, FF), "device_state": torch.rand(*b, n, 3)},
            (*b, n),
        )
        return TensorDict({"agents": agents, "state": torch.randn(*b, 5)}, b)

    def _reset(self, tensordict):
        self._t = torch.zeros(self.batch_size, dtype=torch.long)
        out = self._obs()
        out.update(self.full_done_spec.zero())
        return out

    def _step(self, tensordict: TensorDictBase):
        self._t = self._t + 1
        mode = tensordict["agents", "action", "mode"]
        power = tensordict["agents", "action", "power"]
        reward = -(power.pow(2).sum((-1, -2))) + (mode == 1).float().sum(-1)
        out = self._obs()
        done = (self._t >= 4).unsqueeze(-1)
        out.update(
            {
                "reward": reward.unsqueeze(-1),
                "done": done,
                "terminated": done.clone(),
                "truncated": torch.zeros_like(done),
            }
        )
        return out


def _matppo(env):
    """MATPPO: ForecastEncoder -> hybrid actor; the critic attends over its own LSTM features.

    The critic must not read the actor's ``("agents", "feature")``: GAE runs the critic on
    ``"next"`` too, where only env outputs exist. It composes its own encoder instead.
    """
    torch.manual_seed(0)
    encoder = ForecastEncoder(FF, D, hidden_size=8)
    actor = make_hybrid_actor(env.full_action_spec, encoder=encoder, feature_dim=D)
    critic = TensorDictSequential(
        ForecastEncoder(FF, D, hidden_size=8, out_key=("agents", "critic_feature")),
        TransformerCritic(
            D,
            global_features=5,
            d_model=8,
            num_heads=2,
            num_layers=1,
            agent_key=("agents", "critic_feature"),
        ),
    )
    return encoder, actor, critic


def test_env_rollout_with_the_forecast_encoder_actor():
    env = HybridToyEnv(batch_size=(2,))
    check_env_specs(env)
    _, actor, _ = _matppo(env)
    with set_exploration_type(ExplorationType.RANDOM):
        rollout = env.rollout(4, actor, auto_reset=True)
    assert rollout.shape == (2, 4)
    assert rollout[MODE].shape == (2, 4, N) and rollout[POWER].shape == (2, 4, N, A)
    assert rollout[MODE_LP].shape == (2, 4, N) and rollout[POWER_LP].shape == (2, 4, N)
    assert rollout["agents", "feature"].shape == (2, 4, N, D)
    for t in range(4):
        assert env.full_action_spec.is_in(rollout[:, t].select(*env.action_keys))


@pytest.mark.parametrize("loss_cls", [ClipPPOLoss, MAPPOLoss])
def test_ppo_losses_run_forward_and_backward_on_collected_like_data(loss_cls):
    env = HybridToyEnv(batch_size=(4,))
    encoder, actor, critic = _matppo(env)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        data = env.rollout(4, actor)  # (E, T), episodes end at T = 4
    assert data.shape == (4, 4) and data["next", "done"][:, -1].all()
    keys = {
        "value": ("agents", "state_value"),
        "advantage": ("agents", "advantage"),
        "value_target": ("agents", "value_target"),
    }
    # torchrl vmaps the value net over (root, next) unless shifted or deactivate_vmap: an
    # LSTM (the critic's ForecastEncoder) has no vmap rule
    gae = MultiAgentGAE(gamma=0.9, lmbda=0.95, value_network=critic, shifted=True)
    gae.set_keys(**keys)
    with torch.no_grad():
        gae(data)
    assert data["agents", "advantage"].shape == (4, 4, N, 1)
    extra = (
        {"normalize_advantage": True, "normalize_advantage_exclude_dims": (-2,)}
        if loss_cls is ClipPPOLoss
        else {}
    )
    loss = loss_cls(
        actor,
        critic,
        entropy_coeff={
            ("agents", "action", "mode_entropy"): 0.01,
            ("agents", "action", "power_entropy"): 0.001,
        },
        **extra,
    )
    loss.set_keys(**keys)
    assert loss.tensor_keys.sample_log_prob == [MODE_LP, POWER_LP]
    out = loss(data)
    # the data comes from the current policy: the summed per-agent ratio is exactly 1
    torch.testing.assert_close(out["mean_ratio"], torch.tensor(1.0))
    torch.testing.assert_close(out["kl_approx"], torch.tensor(0.0), atol=1e-6, rtol=0)
    ent = out["composite_entropy"]
    assert ent["agents", "action", "mode_entropy"].shape == (4, 4, N, 1)
    assert ent["agents", "action", "power_entropy"].shape == (4, 4, N, 1)
    total = out["loss_objective"] + out["loss_entropy"] + out["loss_critic"]
    assert torch.isfinite(total)
    total.backward()
    for name, p in [*encoder.named_parameters(), *critic.named_parameters()]:
        if "global_head" in name:  # trained by TransformerCritic.global_value_loss only
            assert p.grad is None, name
        else:
            assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
    assert encoder.module.encoder.lstm.weight_ih_l0.grad.abs().sum() > 0
    assert critic[1].encoder.layers[0].self_attn.in_proj_weight.grad.abs().sum() > 0


def test_log_weight_is_the_sum_of_the_heads_per_agent():
    env = HybridToyEnv(batch_size=(3,))
    _, actor, critic = _matppo(env)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        data = env.rollout(2, actor, auto_reset=True)
    # pretend the behaviour policy had other log-probs, different per head and agent
    d_mode, d_power = torch.randn(3, 2, N), torch.randn(3, 2, N)
    data[MODE_LP] = data[MODE_LP] - d_mode
    data[POWER_LP] = data[POWER_LP] - d_power
    loss = ClipPPOLoss(actor, critic, clip_epsilon=1e6)
    loss.set_keys(value=("agents", "state_value"))
    data["advantage"] = torch.ones(3, 2, N, 1)
    log_weight, *_ = loss._log_weight(data, adv_shape=torch.Size([3, 2, N]))
    torch.testing.assert_close(log_weight, (d_mode + d_power).unsqueeze(-1))


# ---------------------------------------------------------------------------- Beta head
@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_beta_head_samples_inside_the_bounds_with_exact_log_probs(batch):
    actor = _actor(continuous_distribution="beta")
    with set_exploration_type(ExplorationType.RANDOM):
        td = actor(_td(batch))
    power = td[POWER]
    assert power.shape == (*batch, N, A) and td[POWER_LP].shape == (*batch, N)
    assert bool((power > LOW).all() and (power < HIGH).all())
    params = td["agents", "params", "power"]
    alpha, beta = params["concentration1"], params["concentration0"]
    assert bool((alpha > 1).all() and (beta > 1).all())
    unit = (power - LOW) / (HIGH - LOW)
    expected = (torch.distributions.Beta(alpha, beta).log_prob(unit) - (HIGH - LOW).log()).sum(-1)
    torch.testing.assert_close(td[POWER_LP], expected)


def test_beta_head_deterministic_action_is_the_mode():
    actor = _actor(continuous_distribution="beta")
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        td = actor(_td((5,)))
    params = td["agents", "params", "power"]
    a, b = params["concentration1"], params["concentration0"]
    torch.testing.assert_close(td[POWER], LOW + (HIGH - LOW) * (a - 1) / (a + b - 2))


VALUE_KEYS = {
    "value": ("agents", "state_value"),
    "advantage": ("agents", "advantage"),
    "value_target": ("agents", "value_target"),
}


@pytest.mark.parametrize("loss_cls", [ClipPPOLoss, MAPPOLoss])
def test_beta_head_trains_under_ppo(loss_cls):
    """ClipPPOLoss consumes the Beta head unchanged: ratio 1 on-policy, closed-form entropy,
    gradients into the head; a few steps raise the return of the toy env."""
    env = HybridToyEnv(batch_size=(16,))
    torch.manual_seed(0)
    actor = make_hybrid_actor(
        env.full_action_spec,
        encoder=ForecastEncoder(FF, D, hidden_size=8),
        feature_dim=D,
        continuous_distribution="beta",
    )
    critic = TensorDictModule(  # a per-agent value on the device state
        nn.Linear(3, 1), in_keys=[("agents", "device_state")], out_keys=[VALUE_KEYS["value"]]
    )
    gae = MultiAgentGAE(gamma=0.9, lmbda=0.95, value_network=critic, shifted=True)
    gae.set_keys(**VALUE_KEYS)
    loss = loss_cls(actor, critic, entropy_coeff=0.0)
    loss.set_keys(**VALUE_KEYS)
    optim = torch.optim.Adam(loss.parameters(), lr=3e-2)

    def sample():
        with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
            data = env.rollout(4, actor)
            gae(data)
        return data

    data = sample()
    first = data["next", "reward"].mean().item()
    out = loss(data)
    torch.testing.assert_close(out["mean_ratio"], torch.tensor(1.0))
    assert torch.isfinite(out["entropy"]).all()
    for _ in range(30):
        data = sample()
        out = loss(data)
        total = out["loss_objective"] + out["loss_critic"]
        optim.zero_grad()
        total.backward()
        optim.step()
    assert data["next", "reward"].mean().item() > first


def test_bad_continuous_distribution():
    with pytest.raises(ValueError, match="continuous_distribution"):
        _actor(continuous_distribution="gaussian")
