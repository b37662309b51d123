import pytest
import torch

from mtmarl.modules import ScaledBeta


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_log_prob_entropy_and_moments_match_a_stretched_beta(batch):
    torch.manual_seed(0)
    a, b = 1 + torch.rand(*batch, 4) * 3, 1 + torch.rand(*batch, 4) * 3
    low, high = torch.tensor([-1.0, 0.0, 2.0, -5.0]), torch.tensor([1.0, 0.5, 4.0, 5.0])
    d = ScaledBeta(a, b, low=low, high=high)
    assert d.batch_shape == batch and d.event_shape == (4,)
    x = d.sample((1000,))
    assert x.shape == (1000, *batch, 4) and bool(((x >= low) & (x <= high)).all())
    ref = torch.distributions.Beta(a, b)
    width = high - low
    torch.testing.assert_close(
        d.log_prob(x), (ref.log_prob((x - low) / width) - width.log()).sum(-1)
    )
    torch.testing.assert_close(d.entropy(), (ref.entropy() + width.log()).sum(-1))
    torch.testing.assert_close(d.mean, low + width * a / (a + b))
    torch.testing.assert_close(x.mean(0), d.mean, atol=0.15 * width.max().item(), rtol=0)
    torch.testing.assert_close(d.deterministic_sample, low + width * (a - 1) / (a + b - 2))


def test_rsample_has_gradients_and_bounds_stay_finite():
    a = torch.full((3, 2), 2.0, requires_grad=True)
    d = ScaledBeta(a, torch.full((3, 2), 2.0), low=-1.0, high=1.0)
    d.rsample().sum().backward()
    assert a.grad is not None and bool(torch.isfinite(a.grad).all())
    assert bool(torch.isfinite(d.log_prob(torch.tensor([[-1.0, 1.0]] * 3))).all())


def test_bad_bounds():
    with pytest.raises(ValueError, match="high > low"):
        ScaledBeta(torch.ones(2), torch.ones(2), low=1.0, high=1.0)
