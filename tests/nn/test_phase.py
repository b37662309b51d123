"""Tests for mtmarl.nn.phase: the exact Catmull-Rom formula, shapes, gradients, errors."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from mtmarl.nn import PhaseLinear, PhaseMLP, catmull_rom_coefficients

BATCH_SHAPES = [(), (2,), (3, 2)]


def holden_reference(phase: float, control_points: torch.Tensor) -> torch.Tensor:
    """Holden et al.'s formula, written as in the paper (scalar phase, explicit indices)."""
    k = control_points.shape[0]
    s = k * (phase % 1.0)
    k1 = int(math.floor(s)) % k
    w = s - math.floor(s)
    k0, k2, k3 = (k1 - 1) % k, (k1 + 1) % k, (k1 + 2) % k
    c0 = -0.5 * w + w**2 - 0.5 * w**3
    c1 = 1 - 2.5 * w**2 + 1.5 * w**3
    c2 = 0.5 * w + 2 * w**2 - 1.5 * w**3
    c3 = -0.5 * w**2 + 0.5 * w**3
    return (
        c0 * control_points[k0]
        + c1 * control_points[k1]
        + c2 * control_points[k2]
        + c3 * control_points[k3]
    )


@pytest.mark.parametrize("k", [4, 5, 8, 15])
def test_coefficients_match_holden_formula(k):
    eye = torch.eye(k, dtype=torch.float64)
    phases = torch.cat(
        [torch.linspace(-1.3, 2.1, 97, dtype=torch.float64), torch.arange(k) / k]
    ).to(torch.float64)
    coeffs = catmull_rom_coefficients(phases, k)
    expected = torch.stack([holden_reference(float(u), eye) for u in phases])
    torch.testing.assert_close(coeffs, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [4, 6])
def test_exact_at_control_points_and_partition_of_unity(k):
    phases = torch.arange(k, dtype=torch.float64) / k
    torch.testing.assert_close(
        catmull_rom_coefficients(phases, k), torch.eye(k, dtype=torch.float64), rtol=0, atol=0
    )
    u = torch.rand(1000, dtype=torch.float64)
    torch.testing.assert_close(
        catmull_rom_coefficients(u, k).sum(-1), torch.ones(1000, dtype=torch.float64)
    )
    # at most four non-zero weights per row
    assert (catmull_rom_coefficients(u, k) != 0).sum(-1).max() <= 4


def test_layer_equals_control_point_at_knots():
    torch.manual_seed(0)
    layer = PhaseLinear(5, 3, n_control_points=6).double()
    x = torch.randn(10, 5, dtype=torch.float64)
    for j in range(6):
        y = layer(x, torch.full((10,), j / 6, dtype=torch.float64))
        torch.testing.assert_close(y, x @ layer.weight[j].T + layer.bias[j], rtol=0, atol=1e-13)


def test_periodic_and_wrapping():
    torch.manual_seed(0)
    layer = PhaseLinear(4, 4).double()
    x = torch.randn(50, 4, dtype=torch.float64)
    u = torch.rand(50, dtype=torch.float64)
    y = layer(x, u)
    for shift in (-2.0, 1.0, 3.0):
        torch.testing.assert_close(layer(x, u + shift), y, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [4, 7])
def test_c1_continuity_across_wrap_and_knots(k):
    """Value and first derivative (w.r.t. phase) agree on both sides of every knot."""
    eps = 1e-7
    for j in range(k + 1):  # j == k is the wrap 1.0 == 0.0
        knot = j / k
        left = torch.tensor([knot - eps], dtype=torch.float64, requires_grad=True)
        right = torch.tensor([knot + eps], dtype=torch.float64, requires_grad=True)
        cl = catmull_rom_coefficients(left, k)
        cr = catmull_rom_coefficients(right, k)
        torch.testing.assert_close(cl, cr, rtol=0, atol=1e-5)
        dl = torch.stack(
            [torch.autograd.grad(cl[0, i], left, retain_graph=True)[0] for i in range(k)]
        )
        dr = torch.stack(
            [torch.autograd.grad(cr[0, i], right, retain_graph=True)[0] for i in range(k)]
        )
        torch.testing.assert_close(dl, dr, rtol=0, atol=1e-4)


def test_constant_control_points_give_plain_linear():
    lin = nn.Linear(6, 3).double()
    layer = PhaseLinear(6, 3).double()
    with torch.no_grad():
        layer.weight.copy_(lin.weight.expand(4, 3, 6))
        layer.bias.copy_(lin.bias.expand(4, 3))
    x = torch.randn(20, 6, dtype=torch.float64)
    torch.testing.assert_close(layer(x, torch.rand(20, dtype=torch.float64)), lin(x))


def test_fast_path_equals_per_sample_weights():
    torch.manual_seed(0)
    layer = PhaseLinear(7, 5, n_control_points=5).double()
    x = torch.randn(33, 7, dtype=torch.float64)
    u = torch.rand(33, dtype=torch.float64)
    w, b = layer.weights_at(u)
    assert w.shape == (33, 5, 7) and b.shape == (33, 5)
    naive = torch.bmm(w, x.unsqueeze(-1)).squeeze(-1) + b
    torch.testing.assert_close(layer(x, u), naive)


@pytest.mark.parametrize("batch", BATCH_SHAPES)
@pytest.mark.parametrize("trailing_one", [False, True])
def test_shapes(batch, trailing_one):
    layer = PhaseLinear(3, 2)
    x = torch.randn(*batch, 3)
    phase = torch.rand(*batch, 1) if trailing_one else torch.rand(batch)
    assert layer(x, phase).shape == (*batch, 2)


def test_one_phase_per_env_broadcasts_over_agents():
    torch.manual_seed(0)
    layer = PhaseLinear(3, 2)
    x = torch.randn(5, 4, 3)  # (E, n_agents, F)
    phase_env = torch.rand(5, 1)
    y = layer(x, phase_env)
    torch.testing.assert_close(y, layer(x, phase_env.expand(5, 4)))
    # a scalar phase broadcasts over everything
    torch.testing.assert_close(layer(x, torch.tensor(0.3)), layer(x, torch.full((5, 4), 0.3)))


def test_no_bias():
    layer = PhaseLinear(3, 2, bias=False)
    assert layer.bias is None
    assert torch.equal(layer(torch.zeros(4, 3), torch.rand(4)), torch.zeros(4, 2))
    assert "bias=False" in repr(layer)


def test_initialisation_like_linear_and_distinct_control_points():
    torch.manual_seed(0)
    layer = PhaseLinear(64, 32)
    bound = 1 / math.sqrt(64)
    assert layer.weight.abs().max() <= bound + 1e-6
    assert layer.bias.abs().max() <= bound + 1e-6
    assert not torch.allclose(layer.weight[0], layer.weight[1])
    # roughly uniform over [-bound, bound]: std close to bound / sqrt(3)
    assert abs(layer.weight.std().item() - bound / math.sqrt(3)) < 0.1 * bound


def test_gradcheck_x_phase_and_parameters():
    torch.manual_seed(0)
    layer = PhaseLinear(3, 2, n_control_points=5).double()
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    # away from knots (multiples of 1/5)
    phase = torch.tensor([0.05, 0.33, 0.51, 0.97], dtype=torch.float64, requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_(True)
    b = layer.bias.detach().clone().requires_grad_(True)

    def fn(x, phase, w, b):
        return torch.func.functional_call(layer, {"weight": w, "bias": b}, (x, phase))

    assert torch.autograd.gradcheck(fn, (x, phase, w, b))


def test_nan_phase_gives_nan_rows_only():
    layer = PhaseLinear(3, 2)
    x = torch.randn(4, 3)
    phase = torch.tensor([0.1, float("nan"), 0.7, float("inf")])
    y = layer(x, phase)
    assert torch.isnan(y[1]).all() and torch.isnan(y[3]).all()
    assert torch.isfinite(y[[0, 2]]).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_control_points": 3}, "n_control_points >= 4"),
        ({"n_control_points": 4.0}, "n_control_points to be an int"),
    ],
)
def test_bad_construction(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        PhaseLinear(3, 2, **kwargs)


def test_bad_features():
    with pytest.raises(ValueError, match="in_features to be a positive int"):
        PhaseLinear(0, 2)
    with pytest.raises(TypeError, match="sequence of ints"):
        PhaseMLP(3, 2, num_cells=64)


def test_bad_inputs_fail_before_compute():
    layer = PhaseLinear(3, 2)
    with pytest.raises(ValueError, match=r"expected x of shape \(\*B, 3\), got \(4, 5\)"):
        layer(torch.randn(4, 5), torch.rand(4))
    with pytest.raises(ValueError, match=r"broadcasts to \(4, 2\).*got \(3,\)"):
        layer(torch.randn(4, 2, 3), torch.rand(3))
    with pytest.raises(ValueError, match="broadcasts to"):
        layer(torch.randn(4, 3), torch.rand(4, 2))
    with pytest.raises(ValueError, match="broadcasts to"):
        layer(torch.randn(4, 3), torch.rand(2, 4, 1))
    with pytest.raises(TypeError, match="floating-point phase"):
        layer(torch.randn(4, 3), torch.arange(4))
    with pytest.raises(TypeError, match="floating-point phase"):
        catmull_rom_coefficients(torch.arange(4), 4)


@pytest.mark.parametrize("batch", BATCH_SHAPES)
def test_phase_mlp(batch):
    torch.manual_seed(0)
    mlp = PhaseMLP(4, 3, num_cells=(8, 8), activation=nn.Tanh, n_control_points=5)
    assert sum(isinstance(m, PhaseLinear) for m in mlp.layers) == 3
    assert all(m.n_control_points == 5 for m in mlp.layers if isinstance(m, PhaseLinear))
    x = torch.randn(*batch, 4)
    y = mlp(x, torch.rand(batch))
    assert y.shape == (*batch, 3)
    y0 = mlp(x, torch.zeros(batch))
    y1 = mlp(x, torch.full(batch, 0.5))
    assert not torch.allclose(y0, y1)


@pytest.mark.parametrize("batch", BATCH_SHAPES)
def test_in_tensordict_module_multi_agent(batch):
    n_agents = 3
    module = TensorDictModule(
        PhaseMLP(5, 2, num_cells=(8,)),
        in_keys=[("agents", "observation"), "phase"],
        out_keys=[("agents", "out")],
    )
    td = TensorDict(
        {
            "agents": TensorDict(
                {"observation": torch.randn(*batch, n_agents, 5)}, batch_size=(*batch, n_agents)
            ),
            "phase": torch.rand(*batch, 1),  # one phase per env, the PhaseEncoding layout
        },
        batch_size=batch,
    )
    module(td)
    assert td["agents", "out"].shape == (*batch, n_agents, 2)


def test_dtype_and_device_follow_module():
    layer = PhaseLinear(3, 2, dtype=torch.float64)
    assert layer.weight.dtype == torch.float64
    y = layer(torch.randn(4, 3, dtype=torch.float64), torch.rand(4))  # float32 phase is cast
    assert y.dtype == torch.float64
    assert layer.to("meta").weight.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda():
    layer = PhaseLinear(3, 2).cuda()
    y = layer(torch.randn(4, 3, device="cuda"), torch.rand(4, device="cuda"))
    assert y.device.type == "cuda"


def _check_compiled(backend):
    torch.manual_seed(0)
    mlp = PhaseMLP(6, 4, num_cells=(16,))
    x = torch.randn(8, 3, 6, requires_grad=True)
    phase = torch.rand(8, 1)
    compiled = torch.compile(mlp, backend=backend, fullgraph=True)
    y_c, y_e = compiled(x, phase), mlp(x, phase)
    torch.testing.assert_close(y_c, y_e)
    (g_c,) = torch.autograd.grad(y_c.sum(), x)
    (g_e,) = torch.autograd.grad(y_e.sum(), x)
    torch.testing.assert_close(g_c, g_e)


def test_torch_compile_full_graph_aot_eager():
    """Traces into one graph (no breaks, no host sync) including autograd."""
    _check_compiled("aot_eager")


@pytest.mark.slow
def test_torch_compile_inductor():
    _check_compiled("inductor")
