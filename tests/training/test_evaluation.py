from __future__ import annotations

import math

import pytest
import torch

from mtmarl.training import explained_variance, mean_confidence_interval, wilson_interval


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)
    with pytest.raises(ValueError, match="n > 0"):
        wilson_interval(0, 0)


def test_mean_confidence_interval():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0])
    mean, half = mean_confidence_interval(values)
    assert mean == 2.5
    assert half == pytest.approx(1.96 * values.std().item() / 2)
    mean, half = mean_confidence_interval(torch.tensor([5.0]))
    assert mean == 5.0 and math.isnan(half)
    with pytest.raises(ValueError, match="at least one value"):
        mean_confidence_interval(torch.tensor([]))


def test_explained_variance():
    target = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    assert explained_variance(target, target) == 1.0
    assert explained_variance(torch.full_like(target, target.mean()), target) == 0.0
    assert explained_variance(-target, target) < 0
    noisy = target + 0.1 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    assert 0.99 < explained_variance(noisy, target) < 1.0
    assert math.isnan(explained_variance(target, torch.ones(2, 2)))
    with pytest.raises(ValueError, match=r"one shape, got \(2, 2\) and \(4,\)"):
        explained_variance(target, target.reshape(-1))
