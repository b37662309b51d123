import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from torch import nn
from torchrl.data import Bounded, Categorical, Composite
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import ClipPPOLoss

from mtmarl.envs.community import CommunityEnergyEnv
from mtmarl.envs.community.baselines import RuleBasedSelfConsumptionPolicy
from mtmarl.modules import ActionPrior, ForecastEncoder, make_hybrid_actor

N, D, M, A = 3, 6, 3, 2
LOW, HIGH = torch.tensor([0.0, -2.0]), torch.tensor([1.0, 3.0])
MODE, POWER = ("agents", "action", "mode"), ("agents", "action", "power")
LOGITS = ("agents", "params", "mode", "logits")
LOC = ("agents", "params", "power", "loc")


def _spec(env_batch=(2,)):
    b = tuple(env_batch)
    return Composite(
        agents=Composite(
            action=Composite(
                mode=Categorical(M, shape=(*b, N)),
                power=Bounded(LOW.expand(*b, N, A), HIGH.expand(*b, N, A), shape=(*b, N, A)),
                shape=(*b, N),
            ),
            shape=(*b, N),
        ),
        shape=b,
    )


class _Base(TensorDictModuleBase):
    """Reads ("agents", "obs"): mode = argmax of the first M features, power = a fixed
    point inside the bounds that depends on the first feature's sign."""

    def __init__(self):
        super().__init__()
        self.in_keys = [("agents", "obs")]
        self.out_keys = [MODE, POWER]
        self.calls = 0

    def forward(self, td):
        self.calls += 1
        obs = td.get(("agents", "obs"))
        td.set(MODE, obs[..., :M].argmax(-1))
        frac = torch.where(obs[..., :1] > 0, 0.8, 0.25).expand(*obs.shape[:-1], A)
        td.set(POWER, LOW + frac * (HIGH - LOW))
        return td


def _td(batch):
    return TensorDict(
        {"agents": TensorDict({"obs": torch.randn(*batch, N, D)}, (*batch, N))}, batch
    )


def _zero_heads(actor):
    for p in actor.parameters():
        p.data.zero_()


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_zero_network_deterministic_action_is_the_base_action(batch):
    base = _Base()
    prior = ActionPrior(base, action_spec=_spec(), max_abs=0.999)
    actor = make_hybrid_actor(
        _spec(), feature_dim=D, feature_key=("agents", "obs"), action_prior=prior
    )
    _zero_heads(actor)
    td = _td(batch)
    expected = base(td.clone())
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        out = actor(td.clone())
    assert out[MODE].shape == (*batch, N)
    assert torch.equal(out[MODE], expected[MODE])
    torch.testing.assert_close(out[POWER], expected[POWER], atol=1e-5, rtol=0)


def test_logits_and_loc_are_shifted_by_bonus_and_atanh():
    base = _Base()
    prior = ActionPrior(base, action_spec=_spec(), logit_bonus=2.5)
    td = _td((4,))
    logits, loc = torch.randn(4, N, M), torch.randn(4, N, A)
    td.set(LOGITS, logits.clone())
    td.set(LOC, loc.clone())
    td.set(("agents", "params", "power", "scale"), torch.ones(4, N, A))
    out = prior(td)
    b = base(_td((4,)).update(td.select(("agents", "obs"))))
    torch.testing.assert_close(
        out[LOGITS] - logits, 2.5 * torch.nn.functional.one_hot(b[MODE], M).float()
    )
    unit = 2 * (b[POWER] - LOW) / (HIGH - LOW) - 1
    torch.testing.assert_close(out[LOC] - loc, torch.atanh(unit))
    # the base policy never sees (or writes into) the actor's tensordict
    assert MODE not in out.keys(True)


def test_base_action_at_a_bound_is_clipped_before_atanh():
    def at_high(td):
        obs = td.get(("agents", "obs"))
        td.set(MODE, torch.zeros(obs.shape[:-1], dtype=torch.long))
        td.set(POWER, HIGH.expand(*obs.shape[:-1], A).clone())
        return td

    prior = ActionPrior(at_high, action_spec=_spec(), in_keys=[("agents", "obs")], max_abs=0.9)
    td = _td((2,))
    td.set(LOGITS, torch.zeros(2, N, M))
    td.set(LOC, torch.zeros(2, N, A))
    out = prior(td)
    assert torch.isfinite(out[LOC]).all()
    torch.testing.assert_close(torch.tanh(out[LOC]), torch.full((2, N, A), 0.9))


def test_ppo_through_the_prior_has_ratio_one_and_learns_a_residual():
    """ClipPPOLoss re-runs the actor (and the base controller) on stored observations: the
    ratio is exactly 1 on-policy. A bandit whose best action differs from the base one is
    then learned: the deterministic action moves from the base action to the optimum."""
    torch.manual_seed(0)
    spec = _spec(())
    actor = make_hybrid_actor(
        spec,
        feature_dim=D,
        feature_key=("agents", "obs"),
        num_cells=(16,),
        scale_mapping="biased_softplus_0.5",
        action_prior=ActionPrior(_Base(), action_spec=spec),
    )
    critic = TensorDictModule(
        nn.Linear(D, 1), in_keys=[("agents", "obs")], out_keys=[("agents", "state_value")]
    )
    loss = ClipPPOLoss(
        actor,
        critic,
        entropy_coeff=0.0,
        normalize_advantage=True,
        normalize_advantage_exclude_dims=(-2,),
    )
    loss.set_keys(
        value=("agents", "state_value"),
        advantage=("agents", "advantage"),
        value_target=("agents", "value_target"),
    )
    target = LOW + 0.5 * (HIGH - LOW)  # the base plays 0.25 or 0.8 of the range

    def reward(td):
        power_err = ((td[POWER] - target) / (HIGH - LOW)).pow(2).sum(-1)
        return (td[MODE] == 1).float() - 4.0 * power_err  # (B, N)

    def batch():
        with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
            td = actor(_td((256,)))
        r = reward(td).unsqueeze(-1)
        td.set(("agents", "advantage"), r - r.mean())
        td.set(("agents", "value_target"), r)
        return td

    def greedy_reward():
        torch.manual_seed(1)
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            return reward(actor(_td((512,)))).mean().item()

    before = greedy_reward()
    out = loss(batch())
    torch.testing.assert_close(out["mean_ratio"], torch.tensor(1.0))
    optim = torch.optim.Adam(loss.parameters(), lr=1e-2)
    for _ in range(60):
        out = loss(batch())
        optim.zero_grad()
        (out["loss_objective"] + out["loss_critic"]).backward()
        optim.step()
    assert greedy_reward() > before + 0.5


def test_rule_based_prior_on_the_community_env_starts_at_the_controller():
    env = CommunityEnergyEnv(n_prosumers=4, num_envs=2, seed=0)
    spec = env.full_action_spec
    rule = RuleBasedSelfConsumptionPolicy(env)
    encoder = ForecastEncoder(3, 8, hidden_size=8)
    actor = make_hybrid_actor(
        spec,
        encoder=encoder,
        feature_dim=8,
        action_prior=ActionPrior(rule, action_spec=spec, max_abs=0.9999),
    )
    for p in actor.module[0][1].parameters():  # the heads
        p.data.zero_()
    td = env.reset()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        ours = actor(td.clone())
    theirs = rule(td.clone())
    assert torch.equal(ours[MODE], theirs[MODE])
    torch.testing.assert_close(ours[POWER], theirs[POWER], atol=2e-4, rtol=0)


def test_bad_configuration_fails_at_construction():
    with pytest.raises(TypeError, match="callable"):
        ActionPrior(42, action_spec=_spec(), in_keys=[("agents", "obs")])
    with pytest.raises(ValueError, match="in_keys"):
        ActionPrior(lambda td: td, action_spec=_spec())
    with pytest.raises(ValueError, match="logit_bonus >= 0"):
        ActionPrior(_Base(), action_spec=_spec(), logit_bonus=-1.0)
    with pytest.raises(ValueError, match=r"max_abs in \(0, 1\)"):
        ActionPrior(_Base(), action_spec=_spec(), max_abs=1.0)
    with pytest.raises(TypeError, match="Composite"):
        ActionPrior(_Base(), action_spec=_spec()["agents", "action", "power"])
    with pytest.raises(ValueError, match="tanh_normal"):
        make_hybrid_actor(
            _spec(),
            feature_dim=D,
            feature_key=("agents", "obs"),
            continuous_distribution="beta",
            action_prior=ActionPrior(_Base(), action_spec=_spec()),
        )
    with pytest.raises(ValueError, match="write the parameters"):
        make_hybrid_actor(
            _spec(),
            feature_dim=D,
            feature_key=("agents", "obs"),
            action_prior=ActionPrior(_Base(), action_spec=_spec(), params_key=("agents", "other")),
        )


def test_base_policy_with_wrong_shapes_is_reported():
    def wrong(td):
        obs = td.get(("agents", "obs"))
        td.set(MODE, torch.zeros(obs.shape[:-1], dtype=torch.long))
        td.set(POWER, torch.zeros(*obs.shape[:-1], A + 1))  # one action dim too many
        return td

    prior = ActionPrior(wrong, action_spec=_spec(), in_keys=[("agents", "obs")])
    td = _td((2,))
    td.set(LOGITS, torch.zeros(2, N, M))
    td.set(LOC, torch.zeros(2, N, A))
    with pytest.raises(
        ValueError, match=r"expected base actions of shapes \(2, 3\) and \(2, 3, 2\)"
    ):
        prior(td)
