import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictModuleBase

from mtmarl.modules import RunningNorm, add_input_norms, update_input_norms


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_statistics_cover_every_leading_dim(batch):
    torch.manual_seed(0)
    norm = RunningNorm("x", (4, 3))
    x = torch.randn(*batch, 5, 4, 3) * 3 + 1  # (*B, N, W, F)
    norm.update(x)
    flat = x.reshape(-1, 4, 3).double()
    assert int(norm.count) == flat.shape[0]
    torch.testing.assert_close(norm.mean, flat.mean(0))
    torch.testing.assert_close(norm.std(), (flat.var(0, unbiased=False) + 1e-8).sqrt())
    y = norm(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    torch.testing.assert_close(y.reshape(-1, 4, 3).mean(0), torch.zeros(4, 3), atol=1e-5, rtol=0)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 20), min_size=1, max_size=5), seed=st.integers(0, 1000))
def test_updates_in_parts_equal_one_update(sizes, seed):
    g = torch.Generator().manual_seed(seed)
    parts = [torch.randn(n, 3, generator=g) * 10 for n in sizes]
    a, b = RunningNorm("x", (3,)), RunningNorm("x", (3,))
    for p in parts:
        a.update(p)
    b.update(torch.cat(parts))
    torch.testing.assert_close(a.mean, b.mean)
    torch.testing.assert_close(a.m2, b.m2)


def test_identity_before_data_clip_and_bad_input():
    norm = RunningNorm("x", (2,), clip=1.0)
    x = torch.tensor([[0.0, 1.0], [100.0, -5.0]])
    assert torch.equal(norm(x), x)
    norm.update(torch.randn(64, 2))
    assert norm(x * 100).abs().max() <= 1.0
    with pytest.raises(ValueError, match="non-finite"):
        norm.update(torch.tensor([[float("nan"), 0.0]]))
    assert int(norm.count) == 64  # nothing of the refused batch reached the statistics
    with pytest.raises(ValueError, match=r"expected \(\*B, 2\)"):
        norm(torch.randn(3, 4))
    with pytest.raises(ValueError, match="clip"):
        RunningNorm("x", (2,), clip=0.0)


def test_add_input_norms_wraps_observation_inputs_and_leaves_the_batch_raw():
    wrapped = TensorDictModule(torch.nn.Linear(3, 1), in_keys=["obs"], out_keys=["y"])
    assert add_input_norms(wrapped, {"obs": torch.Size([3])}) == ["obs"]
    td = TensorDict({"obs": torch.randn(32, 3) * 5 + 3}, [32])
    assert update_input_norms(wrapped, td) == 1
    raw = td["obs"].clone()
    out = wrapped(td)
    assert torch.equal(td["obs"], raw)
    inner = wrapped.module.module
    expected = inner((raw - raw.mean(0)) / (raw.var(0, unbiased=False) + 1e-8).sqrt())
    torch.testing.assert_close(out["y"], expected)
    # idempotent: a second call adds nothing
    assert add_input_norms(wrapped, {"obs": torch.Size([3])}) == ["obs"]
    assert sum(1 for m in wrapped.modules() if isinstance(m, RunningNorm)) == 1


def test_a_module_that_reads_observations_without_input_norms_is_refused():
    class Custom(TensorDictModuleBase):
        def __init__(self):
            super().__init__()
            self.in_keys, self.out_keys = ["obs"], ["y"]

        def forward(self, td):
            return td

    with pytest.raises(ValueError, match="Custom reads the observations"):
        add_input_norms(Custom(), {"obs": torch.Size([3])})
