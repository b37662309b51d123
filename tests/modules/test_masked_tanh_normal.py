import math

import pytest
import torch
from torchrl.modules import TanhNormal
from torchrl.modules.distributions.utils import has_analytic_entropy, sample_and_log_prob

from mtmarl.modules.masked_tanh_normal import MaskedTanhNormal

N, A = 4, 2
BATCHES = [(), (2,), (3, 2)]
LOW = torch.tensor([-2.0, 0.0])
HIGH = torch.tensor([1.0, 3.0])


def _params(batch, *, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(*batch, N, A, generator=g)
    scale = 0.2 + torch.rand(*batch, N, A, generator=g)
    can_act = torch.rand(*batch, N, generator=g) > 0.5
    can_act.view(-1, N)[:, 0] = True  # both cases present
    can_act.view(-1, N)[:, 1] = False
    if requires_grad:
        loc.requires_grad_(True)
        scale.requires_grad_(True)
    return loc, scale, can_act


@pytest.mark.parametrize("batch", BATCHES)
def test_log_prob_is_tanh_normal_where_acting_and_zero_elsewhere(batch):
    loc, scale, can_act = _params(batch)
    dist = MaskedTanhNormal(loc, scale, can_act=can_act, low=LOW, high=HIGH)
    ref = TanhNormal(loc, scale, low=LOW, high=HIGH)
    assert dist.batch_shape == (*batch, N) and dist.event_shape == (A,)
    x = ref.sample()
    assert x.shape == (*batch, N, A)
    lp, ref_lp = dist.log_prob(x), ref.log_prob(x)
    assert lp.shape == ref_lp.shape == (*batch, N)
    torch.testing.assert_close(lp[can_act], ref_lp[can_act])
    assert (lp[~can_act] == 0).all()
    assert (ref_lp[~can_act] != 0).all()  # the zeros come from the mask
    # extra sample dims broadcast on the left
    xs = dist.sample((5,))
    assert xs.shape == (5, *batch, N, A)
    assert (dist.log_prob(xs)[:, ~can_act] == 0).all()


@pytest.mark.parametrize("batch", BATCHES)
def test_masked_entries_have_exactly_zero_gradient_even_out_of_range(batch):
    loc, scale, can_act = _params(batch, requires_grad=True)
    dist = MaskedTanhNormal(loc, scale, can_act=can_act, low=LOW, high=HIGH)
    x = dist.sample()
    # forced actions can be anything the env executed: at the bound or outside the range
    x = torch.where(can_act.unsqueeze(-1), x, HIGH + 5.0)
    (dist.log_prob(x).sum() + dist.entropy().sum()).backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(scale.grad).all()
    assert (loc.grad[~can_act] == 0).all() and (scale.grad[~can_act] == 0).all()
    assert (loc.grad[can_act] != 0).any() and (scale.grad[can_act] != 0).any()


@pytest.mark.parametrize("batch", BATCHES)
def test_entropy_zero_where_forced_and_matches_monte_carlo_elsewhere(batch):
    torch.manual_seed(0)
    loc, scale, can_act = _params(batch)
    dist = MaskedTanhNormal(loc, scale, can_act=can_act, low=LOW, high=HIGH)
    h = dist.entropy()
    assert h.shape == (*batch, N)
    assert (h[~can_act] == 0).all()
    ref = TanhNormal(loc, scale, low=LOW, high=HIGH)
    mc = -ref.log_prob(ref.sample((20000,))).mean(0)
    torch.testing.assert_close(h[can_act], mc[can_act], atol=0.05, rtol=0.0)


def test_entropy_of_a_narrow_distribution_is_that_of_the_linearised_normal():
    # scale -> 0: Y ~ Normal(tanh-affine(loc), a (1 - tanh(loc)^2) scale)
    loc, scale = torch.tensor([[0.3, -1.2]]), torch.full((1, 2), 1e-3)
    dist = MaskedTanhNormal(loc, scale, low=LOW, high=HIGH)
    slope = (HIGH - LOW) / 2 * (1 - loc.tanh() ** 2)
    expected = (0.5 * math.log(2 * math.pi * math.e) + (slope * scale).log()).sum(-1)
    torch.testing.assert_close(dist.entropy(), expected, atol=1e-4, rtol=0.0)


def test_ppo_paths_are_masked():
    loc, scale, can_act = _params((3,))
    dist = MaskedTanhNormal(loc, scale, can_act=can_act)
    # ClipPPOLoss takes dist.entropy() (analytic path) ...
    assert has_analytic_entropy(dist)
    assert torch.isfinite(dist.entropy()).all()
    # ... and its Monte-Carlo fallback goes through (r)sample_and_log_prob: masked too
    for reparameterize in (True, False):
        x, lp = sample_and_log_prob(dist, (7,), reparameterize=reparameterize)
        assert x.shape == (7, 3, N, A)
        assert lp.shape == (7, 3, N)
        assert (lp[:, ~can_act] == 0).all() and (lp[:, can_act] != 0).all()


def test_sampling_and_deterministic_sample_as_tanh_normal():
    loc, scale, can_act = _params((5,))
    dist = MaskedTanhNormal(loc, scale, can_act=can_act, low=LOW, high=HIGH)
    ref = TanhNormal(loc, scale, low=LOW, high=HIGH)
    torch.testing.assert_close(dist.deterministic_sample, ref.deterministic_sample)
    torch.testing.assert_close(dist.deterministic_sample, LOW + (HIGH - LOW) * (loc.tanh() + 1) / 2)
    torch.manual_seed(1)
    a = dist.rsample((3,))
    torch.manual_seed(1)
    b = ref.rsample((3,))
    torch.testing.assert_close(a, b)
    assert ((a >= LOW) & (a <= HIGH)).all()


def test_no_mask_is_plain_tanh_normal():
    loc, scale, _ = _params((2,))
    dist, ref = MaskedTanhNormal(loc, scale), TanhNormal(loc, scale)
    x = ref.sample()
    torch.testing.assert_close(dist.log_prob(x), ref.log_prob(x))
    assert (dist.entropy() != 0).all()


def test_event_dims_zero_masks_per_element():
    loc, scale = torch.zeros(2, N, 1), torch.ones(2, N, 1)
    can_act = torch.tensor([True, False, True, False]).reshape(1, N, 1)
    dist = MaskedTanhNormal(loc, scale, can_act=can_act, event_dims=0)
    lp = dist.log_prob(dist.sample())
    assert lp.shape == (2, N, 1)
    assert (lp[:, 1] == 0).all() and (lp[:, 0] != 0).all()


def test_bad_configuration_raises():
    loc, scale = torch.zeros(2, N, A), torch.ones(2, N, A)
    with pytest.raises(TypeError, match="bool tensor"):
        MaskedTanhNormal(loc, scale, can_act=torch.ones(2, N))
    with pytest.raises(ValueError, match=r"batch shape \(2, 4\).*got \(2, 4, 2\)"):
        MaskedTanhNormal(loc, scale, can_act=torch.ones(2, N, A, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"got \(3,\)"):
        MaskedTanhNormal(loc, scale, can_act=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="n_quadrature"):
        MaskedTanhNormal(loc, scale, n_quadrature=1)
    with pytest.raises(RuntimeError, match="strictly greater"):
        MaskedTanhNormal(loc, scale, low=1.0, high=1.0)
