import pytest
import torch
from torch import nn

from mtmarl.modules import PhaseFromStepCount
from mtmarl.nn import PhaseMLP


class _Echo(nn.Module):
    def forward(self, x, phase):
        return phase


@pytest.mark.parametrize("period", [1, 4, 15])
def test_phase_is_step_count_mod_period_over_period(period):
    t = torch.arange(0, 3 * period + 2).unsqueeze(-1)
    net = PhaseFromStepCount(_Echo(), period=period)
    phase = net(torch.zeros(t.shape[0], 3), t)
    assert phase.shape == t.shape and phase.dtype == torch.float32
    expected = torch.tensor([[(i % period) / period] for i in range(t.shape[0])])
    torch.testing.assert_close(phase, expected)
    assert bool((phase >= 0).all() and (phase < 1).all())


def test_large_step_counts_are_exact():
    net = PhaseFromStepCount(_Echo(), period=4)
    t = torch.tensor([[2**40 + 3]])
    assert net.phase(t).item() == 0.75


def test_period_different_from_env_period_is_not_the_env_phase():
    # P = 4 with L = 15: the PFNN phase cannot be recovered from (t mod L) / L
    t = torch.arange(30).unsqueeze(-1)
    p4 = PhaseFromStepCount(_Echo(), period=4).phase(t)
    p15 = (t % 15).float() / 15
    assert torch.equal(p4[4], p4[0]) and not torch.equal(p15[4], p15[0])
    assert torch.equal(PhaseFromStepCount(_Echo(), period=15).phase(t), p15)


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_wraps_a_phase_mlp(batch):
    torch.manual_seed(0)
    mlp = PhaseMLP(3, 2, num_cells=(8,))
    net = PhaseFromStepCount(mlp, period=5)
    x = torch.randn(*batch, 3)
    t = torch.randint(0, 100, (*batch, 1))
    torch.testing.assert_close(net(x, t), mlp(x, (t % 5).float() / 5))
    assert net.double()(x.double(), t).dtype == torch.float64  # phase follows x's dtype


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="period to be an int >= 1, got 0"):
        PhaseFromStepCount(_Echo(), period=0)
    with pytest.raises(ValueError, match="period"):
        PhaseFromStepCount(_Echo(), period=2.0)
    with pytest.raises(TypeError, match="integer step_count"):
        PhaseFromStepCount(_Echo(), period=3)(torch.zeros(2, 1), torch.zeros(2, 1))
