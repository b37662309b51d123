"""mtmarl.interop.spaces: torchrl specs -> Gymnasium spaces, values <-> samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torchrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    Unbounded,
)

from mtmarl.interop import agent_spec, sample_to_tensor, spec_to_space, tensor_to_sample

SPECS = {
    "categorical": (Categorical(4), spaces.Discrete),
    "categorical_vec": (Categorical(3, shape=(2,)), spaces.MultiDiscrete),
    "multicategorical": (MultiCategorical([2, 3, 4]), spaces.MultiDiscrete),
    "bool_scalar": (Categorical(2, shape=(), dtype=torch.bool), spaces.Discrete),
    "bool_vec": (Categorical(2, shape=(3,), dtype=torch.bool), spaces.MultiBinary),
    "binary": (Binary(5), spaces.MultiBinary),
    "onehot": (OneHot(4), spaces.Discrete),
    "onehot_vec": (OneHot(3, shape=(2, 3)), spaces.MultiDiscrete),
    "bounded": (Bounded(low=-1.0, high=torch.tensor([1.0, 2.0, 3.0]), shape=(3,)), spaces.Box),
    "bounded_int": (Bounded(low=0, high=9, shape=(2,), dtype=torch.int64), spaces.Box),
    "unbounded": (Unbounded(shape=(2, 3)), spaces.Box),
    "unbounded_int": (Unbounded(shape=(1,), dtype=torch.int64), spaces.Box),
    "composite": (
        Composite(
            mode=Categorical(3),
            power=Bounded(-1.0, 1.0, (2,)),
            nested=Composite(flag=Binary(2)),
        ),
        spaces.Dict,
    ),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_space_type_and_roundtrip(name):
    spec, space_type = SPECS[name]
    space = spec_to_space(spec)
    assert isinstance(space, space_type)
    torch.manual_seed(0)
    for _ in range(5):
        value = spec.rand()
        sample = tensor_to_sample(spec, value)
        assert space.contains(sample), (name, sample, space)
        back = sample_to_tensor(spec, sample)
        if isinstance(spec, Composite):
            for key in spec.keys(True, True):
                sub = back
                for part in key if isinstance(key, tuple) else (key,):
                    sub = sub[part]
                assert torch.equal(sub, value[key])
                assert sub.dtype == value[key].dtype
        else:
            assert back.dtype == spec.dtype and back.shape == spec.shape
            assert torch.equal(back, value)


@pytest.mark.parametrize("name", list(SPECS))
def test_space_samples_decode_into_the_spec(name):
    spec, _ = SPECS[name]
    space = spec_to_space(spec)
    space.seed(0)
    for _ in range(5):
        assert spec.is_in(_as_td(spec, sample_to_tensor(spec, space.sample())))


def _as_td(spec, value):
    if isinstance(spec, Composite):
        from tensordict import TensorDict

        return TensorDict(value, batch_size=spec.shape)
    return value


def test_box_bounds_and_dtype():
    spec = Bounded(low=torch.tensor([0.0, -2.0]), high=torch.tensor([1.0, 2.0]), shape=(2,))
    space = spec_to_space(spec)
    assert space.dtype == np.float32
    np.testing.assert_array_equal(space.low, [0.0, -2.0])
    np.testing.assert_array_equal(space.high, [1.0, 2.0])
    assert spec_to_space(Bounded(0.0, 1.0, (2,), dtype=torch.float64)).dtype == np.float64
    unb = spec_to_space(Unbounded(shape=(3,)))
    assert np.isinf(unb.low).all() and np.isinf(unb.high).all()
    ints = spec_to_space(Unbounded(shape=(1,), dtype=torch.int32))
    assert ints.dtype == np.int32 and ints.high[0] == np.iinfo(np.int32).max


def test_binary_samples_are_int8_for_pettingzoo_masks():
    spec = Binary(3)
    sample = tensor_to_sample(spec, torch.tensor([True, False, True]))
    assert sample.dtype == np.int8
    # PettingZoo samples masked actions with the int8 mask
    assert spaces.Discrete(3).sample(mask=sample) in (0, 2)


@pytest.mark.parametrize("batch", [(), (1,)])
def test_agent_spec_drops_batch_and_picks_the_agent(batch):
    high = torch.tensor([[1.0, 1.0], [5.0, 5.0]]).expand(*batch, 2, 2)
    spec = Bounded(low=torch.zeros_like(high), high=high.clone(), shape=(*batch, 2, 2))
    for i, top in enumerate((1.0, 5.0)):
        one = agent_spec(spec, i, batch_dims=len(batch))
        assert one.shape == (2,)
        assert spec_to_space(one).high.tolist() == [top, top]
    comp = Composite(
        agents=Composite(action=Categorical(3, shape=(*batch, 2)), shape=(*batch, 2)),
        shape=batch,
    )
    one = agent_spec(comp["agents"], 1, batch_dims=len(batch))
    assert spec_to_space(one) == spaces.Dict({"action": spaces.Discrete(3)})


def test_agent_spec_errors():
    spec = Categorical(3, shape=(2, 4))
    with pytest.raises(ValueError, match="batch dims of size 1"):
        agent_spec(spec, 0, batch_dims=1)
    with pytest.raises(ValueError, match=r"agent index in \[0, 4\)"):
        agent_spec(Categorical(3, shape=(1, 4)), 4, batch_dims=1)
    with pytest.raises(ValueError, match="agent dim"):
        agent_spec(Categorical(3, shape=(1,)), 0, batch_dims=1)
    with pytest.raises(ValueError, match="batch_dims"):
        agent_spec(spec, 0, batch_dims=-1)


def test_unsupported_spec_and_bad_samples():
    with pytest.raises(TypeError, match="got MultiOneHot"):
        spec_to_space(MultiOneHot([2, 3]))
    with pytest.raises(TypeError, match="got MultiOneHot"):
        sample_to_tensor(MultiOneHot([2, 3]), np.zeros(5))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        sample_to_tensor(Bounded(-1.0, 1.0, (3,)), np.zeros(2))
    with pytest.raises(ValueError, match=r"index array of shape \(\)"):
        sample_to_tensor(OneHot(3), np.zeros(3))
    with pytest.raises(KeyError, match="missing"):
        sample_to_tensor(Composite(a=Categorical(2), b=Categorical(2)), {"a": 0})
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        tensor_to_sample(Bounded(-1.0, 1.0, (3,)), torch.zeros(2))
