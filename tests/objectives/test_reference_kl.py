"""Tests for mtmarl.objectives.reference_kl: closed-form KLs and the reference-KL anchor."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import distributions as D  # noqa: N812
from torchrl.data import Bounded, Categorical, Composite
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MaskedCategorical, ProbabilisticActor, TanhNormal
from torchrl.objectives.multiagent import MAPPOLoss

from mtmarl.modules import MaskedTanhNormal, make_hybrid_actor
from mtmarl.objectives import ReferenceKLLoss, distribution_kl

BATCHES = [(), (2,), (3, 2)]
N, A, M, F = 3, 2, 3, 5


@pytest.mark.parametrize("batch", BATCHES)
def test_tanh_normal_kl_is_the_pre_tanh_normal_kl_and_matches_monte_carlo(batch):
    torch.manual_seed(0)
    loc_p, loc_q = torch.randn(*batch, A), torch.randn(*batch, A)
    scale_p, scale_q = torch.rand(*batch, A) + 0.5, torch.rand(*batch, A) + 0.5
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 2.0])
    p = TanhNormal(loc_p, scale_p, low=low, high=high)
    q = TanhNormal(loc_q, scale_q, low=low, high=high)
    kl = distribution_kl(p, q)
    assert kl.shape == batch
    # closed form of a diagonal normal, summed over the action dims
    exact = (
        torch.log(scale_q / scale_p) + (scale_p**2 + (loc_p - loc_q) ** 2) / (2 * scale_q**2) - 0.5
    ).sum(-1)
    torch.testing.assert_close(kl, exact)
    # and the KL of the squashed distributions themselves, by sampling
    x = p.sample((20000,))
    mc = (p.log_prob(x) - q.log_prob(x)).mean(0)
    torch.testing.assert_close(mc, kl, atol=0.08, rtol=0.05)
    torch.testing.assert_close(distribution_kl(p, p), torch.zeros(batch))


@pytest.mark.parametrize("batch", BATCHES)
def test_categorical_kl_and_masked_choices(batch):
    torch.manual_seed(1)
    lp, lq = torch.randn(*batch, M), torch.randn(*batch, M)
    kl = distribution_kl(D.Categorical(logits=lp), D.Categorical(logits=lq))
    p = lp.softmax(-1)
    torch.testing.assert_close(kl, (p * (lp.log_softmax(-1) - lq.log_softmax(-1))).sum(-1))
    # one allowed choice: both put all mass on it, KL 0; two allowed: finite
    mask = torch.zeros(*batch, M, dtype=torch.bool)
    mask[..., 0] = True
    one = distribution_kl(
        MaskedCategorical(logits=lp, mask=mask), MaskedCategorical(logits=lq, mask=mask)
    )
    torch.testing.assert_close(one, torch.zeros(batch))
    mask[..., 1] = True
    lp.requires_grad_(True)
    two = distribution_kl(
        MaskedCategorical(logits=lp, mask=mask), MaskedCategorical(logits=lq, mask=mask)
    )
    assert bool(torch.isfinite(two).all()) and bool((two >= 0).all())
    two.sum().backward()  # masked choices: finite (zero) gradients, not 0 * nan
    assert bool(torch.isfinite(lp.grad).all()) and bool((lp.grad[..., 2] == 0).all())


def test_masked_tanh_normal_kl_is_zero_where_the_agent_may_not_act():
    can_act = torch.tensor([[True, False, True], [False, False, True]])
    p = MaskedTanhNormal(torch.zeros(2, 3, A), torch.ones(2, 3, A), can_act=can_act)
    q = MaskedTanhNormal(torch.ones(2, 3, A), torch.ones(2, 3, A), can_act=can_act)
    kl = distribution_kl(p, q)
    torch.testing.assert_close(kl, can_act.float() * A * 0.5)


def _spec(n=N):
    return Composite(
        agents=Composite(
            action=Composite(
                mode=Categorical(M, shape=(n,)),
                power=Bounded(-1.0, 1.0, shape=(n, A)),
                shape=(n,),
            ),
            shape=(n,),
        ),
    )


def _hybrid(seed=0):
    torch.manual_seed(seed)
    return make_hybrid_actor(_spec(), feature_key=("agents", "obs"), feature_dim=F)


def _batch(batch):
    obs = torch.randn(*batch, N, F)
    return TensorDict({"agents": TensorDict({"obs": obs}, (*batch, N))}, batch)


@pytest.mark.parametrize("batch", BATCHES)
def test_composite_kl_is_the_sum_of_its_leaves_per_agent(batch):
    a, b = _hybrid(0), _hybrid(1)
    td = _batch(batch)
    p, q = a.get_dist(td.copy()), b.get_dist(td.copy())
    kl = distribution_kl(p, q)
    assert kl.shape == (*batch, N)
    parts = [distribution_kl(p.dists[k], q.dists[k]) for k in p.dists]
    torch.testing.assert_close(kl, parts[0] + parts[1])
    assert bool((kl > 0).all())
    torch.testing.assert_close(distribution_kl(p, p), torch.zeros(*batch, N))


def test_distribution_kl_rejects_mismatches_and_unknown_pairs():
    normal = TanhNormal(torch.zeros(2), torch.ones(2))
    with pytest.raises(
        TypeError, match="two distributions of one type, got TanhNormal and Categorical"
    ):
        distribution_kl(normal, D.Categorical(logits=torch.zeros(2)))
    other = TanhNormal(torch.zeros(2), torch.ones(2), low=-2.0, high=2.0)
    with pytest.raises(ValueError, match="same bounds"):
        distribution_kl(normal, other)
    with pytest.raises(TypeError, match="no closed form for StudentT"):
        distribution_kl(D.StudentT(2.0), D.StudentT(3.0))


def _tanh_actor():
    torch.manual_seed(0)
    net = TensorDictModule(
        torch.nn.Sequential(torch.nn.Linear(F, 2 * A), NormalParamExtractor()),
        in_keys=["obs"],
        out_keys=["loc", "scale"],
    )
    return ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=TanhNormal)


@pytest.mark.parametrize("batch", BATCHES)
def test_loss_is_zero_at_the_reference_and_trains_only_the_actor(batch):
    actor = _tanh_actor()
    anchor = ReferenceKLLoss(actor, coeff=2.0)
    assert anchor.in_keys == ["obs"] and "out_keys=['loss_reference_kl'" in repr(anchor)
    td = TensorDict({"obs": torch.randn(*batch, F)}, batch)
    out = anchor(td)
    assert float(out["reference_kl"]) == 0.0
    assert set(td.keys()) == {"obs"}  # the batch is read, not written
    # the reference is a frozen copy: moving the actor moves the KL, not the reference
    frozen = [p.clone() for p in anchor.reference_network.parameters()]
    assert not any(p.requires_grad for p in anchor.reference_network.parameters())
    with torch.no_grad():
        actor.module[0].module[0].bias.add_(0.5)
    out = anchor(td)
    assert float(out["loss_reference_kl"].detach()) == pytest.approx(
        2.0 * float(out["reference_kl"])
    )
    out["loss_reference_kl"].backward()
    assert all(p.grad is not None for p in actor.parameters())
    assert all(p.grad is None for p in anchor.reference_network.parameters())
    for p, f in zip(anchor.reference_network.parameters(), frozen, strict=True):
        assert torch.equal(p, f)
    assert any(k.startswith("reference_network.") for k in anchor.state_dict())


def test_gradient_steps_on_the_penalty_pull_the_actor_back_to_the_reference():
    actor = _hybrid(0)
    anchor = ReferenceKLLoss(actor, reference_network=_hybrid(1))
    optim = torch.optim.Adam(actor.parameters(), lr=1e-2)
    td = _batch((64,))
    first = float(anchor(td)["reference_kl"])
    for _ in range(100):
        optim.zero_grad()
        anchor(td)["loss_reference_kl"].backward()
        optim.step()
    assert float(anchor(td)["reference_kl"]) < 0.1 * first


def test_added_to_a_ppo_loss_on_collected_like_data():
    actor = _hybrid(0)
    critic = TensorDictModule(
        torch.nn.Linear(F, 1), in_keys=[("agents", "obs")], out_keys=[("agents", "state_value")]
    )
    ppo = MAPPOLoss(actor, critic)
    ppo.set_keys(
        value=("agents", "state_value"),
        advantage=("agents", "advantage"),
        value_target=("agents", "value_target"),
    )
    anchor = ReferenceKLLoss(actor, coeff=0.1)
    td = _batch((8,))
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        td = actor(td)
    td["agents", "advantage"] = torch.randn(8, N, 1)
    td["agents", "value_target"] = torch.randn(8, N, 1)
    losses = ppo(td.exclude(("agents", "params"))).update(anchor(td.exclude(("agents", "params"))))
    assert {"loss_objective", "loss_critic", "loss_reference_kl", "reference_kl"} <= set(
        losses.keys()
    )
    assert float(losses["reference_kl"]) == 0.0  # the actor is its own initial copy
    total = sum(v for k, v in losses.items() if k.startswith("loss_"))
    total.backward()
    assert all(p.grad is not None for p in actor.parameters())


def test_bad_construction():
    actor = _tanh_actor()
    for coeff in (0.0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="coeff > 0"):
            ReferenceKLLoss(actor, coeff=coeff)
    with pytest.raises(TypeError, match="actor_network to be a probabilistic actor"):
        ReferenceKLLoss(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="reference_network to be a probabilistic actor"):
        ReferenceKLLoss(actor, reference_network=torch.nn.Linear(2, 2))
