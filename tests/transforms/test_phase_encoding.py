"""Tests of mtmarl.transforms.phase_encoding.PhaseEncoding.

Follows the checks torchrl's own transform tests run: single env, batch shapes, Compose,
ParallelEnv (inside the workers and around them), no env, replay buffer, inverse, plus
partial resets, state_dict and every construction / append error.
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.envs import Compose, ParallelEnv, RewardSum, StepCounter, TransformedEnv
from torchrl.envs.utils import check_env_specs
from torchrl.testing.mocking_classes import (
    HeterogeneousCountingEnv,
    MultiAgentCountingEnv,
    NestedCountingEnv,
)
from transform_test_envs import BATCH_SHAPES, ToyMultiAgentEnv

from mtmarl.nn import PhaseLinear
from mtmarl.transforms import PhaseEncoding

MODES = ("phase", "onehot", "sincos")
OBS = ("agents", "observation")


def expected_code(step: torch.Tensor, period: int, mode: str) -> torch.Tensor:
    """The encoding of ``step`` ``(*S, 1)`` from first principles: ``(*S, D)``."""
    k = torch.remainder(step, period)
    if mode == "phase":
        return k.float() / period
    if mode == "onehot":
        return torch.nn.functional.one_hot(k.squeeze(-1), period).float()
    u = 2 * math.pi * k.double() / period
    return torch.cat((torch.sin(u), torch.cos(u)), -1).float()


def make_env(batch_size=(), *, period=3, mode="phase", **kwargs) -> TransformedEnv:
    if mode != "phase":
        kwargs.setdefault("in_keys", [OBS, "state"])
    return TransformedEnv(
        ToyMultiAgentEnv(batch_size=batch_size),
        Compose(StepCounter(), PhaseEncoding(period, mode=mode, **kwargs)),
    )


def check_encoded(td, period: int, mode: str, n_features: int) -> None:
    """Every encoded entry of ``td`` (root and "next") matches its own step_count."""
    for sub in (td, td["next"]):
        code = expected_code(sub["step_count"], period, mode)
        if mode == "phase":
            torch.testing.assert_close(sub["phase"], code)
            continue
        obs = sub[OBS]
        assert obs.shape[-1] == n_features + code.shape[-1]
        torch.testing.assert_close(
            obs[..., n_features:], code.unsqueeze(-2).expand_as(obs[..., n_features:])
        )
        # the original features are kept: the toy env's last feature is its clock
        torch.testing.assert_close(
            obs[..., n_features - 1], sub["step_count"].float().expand_as(obs[..., 0])
        )
        torch.testing.assert_close(sub["state"][..., 3:], code)


# --------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"period": 0}, ValueError, "period to be >= 1, got 0"),
        ({"period": -2}, ValueError, "period to be >= 1, got -2"),
        ({"period": 2.5}, TypeError, "period to be an int >= 1, got float"),
        ({"period": True}, TypeError, "period to be an int >= 1, got bool"),
        ({"period": 4, "mode": "binary"}, ValueError, "mode to be one of"),
        ({"period": 4, "in_keys": [OBS]}, ValueError, "in_keys must be None"),
        ({"period": 4, "out_keys": ["a", "b"]}, ValueError, "exactly one out_key"),
        (
            {"period": 4, "mode": "onehot", "in_keys": [OBS, "state"], "out_keys": ["x"]},
            ValueError,
            "as many out_keys as in_keys",
        ),
        ({"period": 4, "mode": "onehot", "in_keys": []}, ValueError, "at least one in_key"),
        ({"period": 4, "step_key": 3}, TypeError, "step_key to be a key"),
        ({"period": 4, "mode": "sincos", "in_keys": [1]}, TypeError, r"in_keys\[0\] to be a key"),
        ({"period": 4, "dtype": torch.int64}, TypeError, "floating-point dtype"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, error, match):
    period = kwargs.pop("period")
    with pytest.raises(error, match=match):
        PhaseEncoding(period, **kwargs)


def test_missing_step_counter_fails_at_append():
    with pytest.raises(KeyError, match=r"add `StepCounter\(\)` before it"):
        TransformedEnv(ToyMultiAgentEnv(), PhaseEncoding(4))
    env = TransformedEnv(ToyMultiAgentEnv(), RewardSum())
    with pytest.raises(KeyError, match="observation entry .*step_count"):
        env.append_transform(PhaseEncoding(4, mode="onehot"))


def test_non_integer_clock_fails_at_append():
    with pytest.raises(TypeError, match="to be an integer entry"):
        TransformedEnv(ToyMultiAgentEnv(), PhaseEncoding(4, step_key="state"))


def test_missing_observation_fails_at_append():
    with pytest.raises(KeyError, match="expected the observation .*pixels.* in the parent env"):
        TransformedEnv(
            ToyMultiAgentEnv(),
            Compose(StepCounter(), PhaseEncoding(4, mode="onehot", in_keys=["pixels"])),
        )


def test_sincos_needs_floating_observations():
    with pytest.raises(TypeError, match="floating-point observation"):
        TransformedEnv(
            NestedCountingEnv(nested_dim=2, has_root_done=True),
            Compose(StepCounter(), PhaseEncoding(4, mode="sincos", in_keys=[("data", "states")])),
        )


def test_clock_must_lead_the_entry():
    # a per-agent clock cannot be broadcast to the root "state"
    with pytest.raises(ValueError, match="the clock's batch dims must lead"):
        TransformedEnv(
            HeterogeneousCountingEnv(),
            Compose(
                StepCounter(),
                PhaseEncoding(2, mode="onehot", in_keys=["state"], step_key=("lazy", "step_count")),
            ),
        )


# ------------------------------------------------------------------------ encodings
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("period", [1, 3, 8])
def test_encode_matches_definition(mode, period):
    t = torch.arange(-period, 3 * period).unsqueeze(-1)
    enc = PhaseEncoding(period, mode=mode)
    code = enc.encode(t)
    assert code.shape == (t.shape[0], enc.encoding_dim)
    torch.testing.assert_close(code, expected_code(t, period, mode))
    # periodic in t with period L
    torch.testing.assert_close(enc.encode(t + period), code)


def test_phase_is_in_unit_interval_and_dtype():
    enc = PhaseEncoding(7, dtype=torch.float64)
    u = enc.encode(torch.arange(50).unsqueeze(-1))
    assert u.dtype == torch.float64
    assert bool((u >= 0).all()) and bool((u < 1).all())


# ----------------------------------------------------------------------- single env
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_size", BATCH_SHAPES)
def test_single_env_check_env_specs(mode, batch_size):
    env = make_env(batch_size, mode=mode)
    check_env_specs(env)


@pytest.mark.parametrize("mode", MODES)
def test_rollout_values_follow_step_count(mode):
    period = 3
    env = make_env((3,), period=period, mode=mode)
    n_features = env.base_env.n_features
    td = env.reset()
    check_encoded(td.set("next", td.clone()), period, mode, n_features)
    # horizons 3, 4, 5: the envs are reset at different steps
    rollout = env.rollout(10, break_when_any_done=False)
    assert bool((rollout["step_count"] == 0).any())
    check_encoded(rollout, period, mode, n_features)


def test_nested_phase_out_key_is_broadcast_over_agents():
    env = make_env((2,), period=4, out_keys=[("agents", "phase")])
    check_env_specs(env)
    rollout = env.rollout(5, break_when_any_done=False)
    phase = rollout["next", "agents", "phase"]
    assert phase.shape == (2, 5, 2, 1)
    code = expected_code(rollout["next", "step_count"], 4, "phase")
    torch.testing.assert_close(phase, code.unsqueeze(-2).expand_as(phase))


def test_separate_out_key_keeps_the_observation():
    env = make_env(
        (2,), period=5, mode="onehot", in_keys=[OBS], out_keys=[("agents", "observation_t")]
    )
    check_env_specs(env)
    td = env.rollout(4)
    n = env.base_env.n_features
    assert td[OBS].shape[-1] == n
    torch.testing.assert_close(td["agents", "observation_t"][..., :n], td[OBS])
    spec = env.observation_spec["agents", "observation_t"]
    assert spec.shape[-1] == n + 5


def test_bounded_observation_spec_bounds():
    movebox = pytest.importorskip("mtmarl.envs")
    env = TransformedEnv(
        movebox.MoveBoxEnv.hard(num_envs=2),
        Compose(StepCounter(), PhaseEncoding(6, mode="sincos")),
    )
    spec = env.observation_spec[OBS]
    assert spec.shape == (2, 2, 4 + 2)
    assert bool((spec.space.low[..., 4:] == -1).all()) and bool(
        (spec.space.high[..., 4:] == 1).all()
    )
    check_env_specs(env)


@pytest.mark.parametrize("mode", MODES)
def test_movebox_stack(mode):
    movebox = pytest.importorskip("mtmarl.envs")
    env = TransformedEnv(
        movebox.MoveBoxEnv.hard(num_envs=3),
        Compose(
            StepCounter(), PhaseEncoding(6, mode=mode, in_keys=None if mode == "phase" else [OBS])
        ),
    )
    check_env_specs(env)


def test_partial_reset():
    period = 4
    env = make_env((3,), period=period)
    td = env.reset()
    for _ in range(2):
        td = env.rand_step(td)["next"]  # t = 2 everywhere (horizons are >= 3)
    torch.testing.assert_close(td["phase"], torch.full((3, 1), 2 / period))
    td["_reset"] = torch.tensor([[False], [True], [False]])
    td = env.reset(td)
    torch.testing.assert_close(td["phase"].squeeze(-1), torch.tensor([2 / period, 0.0, 2 / period]))
    td = env.rand_step(td)["next"]
    torch.testing.assert_close(
        td["phase"].squeeze(-1), torch.tensor([3 / period, 1 / period, 3 / period])
    )


def test_phase_feeds_phase_linear():
    """The root (E, 1) phase is what per-agent PFNN layers consume with (E, N, F) inputs."""
    env = make_env((4,), period=3)
    td = env.rollout(3)
    layer = PhaseLinear(env.base_env.n_features, 5)
    out = layer(td[OBS], td["phase"])
    assert out.shape == (4, 3, 2, 5)


# -------------------------------------------------------------------------- compose
def test_compose_with_other_transforms():
    env = TransformedEnv(
        ToyMultiAgentEnv(batch_size=(2,)),
        Compose(
            StepCounter(),
            RewardSum(),
            PhaseEncoding(6),
            PhaseEncoding(6, mode="onehot", in_keys=["state"]),
            PhaseEncoding(3, mode="sincos"),
        ),
    )
    check_env_specs(env)
    td = env.rollout(4, break_when_any_done=False)
    check_encoded(td.select("step_count", "phase", "next"), 6, "phase", 0)
    torch.testing.assert_close(td["state"][..., 3:], expected_code(td["step_count"], 6, "onehot"))
    n = env.base_env.n_features
    code = expected_code(td["step_count"], 3, "sincos")
    torch.testing.assert_close(td[OBS][..., n:], code.unsqueeze(-2).expand(2, 4, 2, 2))


# --------------------------------------------------------------------- parallel env
def test_parallel_env():
    make = partial(make_env, (2,), period=3, mode="onehot")
    inside = ParallelEnv(2, make, mp_start_method="fork")
    around = TransformedEnv(
        ParallelEnv(2, partial(ToyMultiAgentEnv, batch_size=(2,)), mp_start_method="fork"),
        Compose(StepCounter(), PhaseEncoding(3, mode="onehot", in_keys=[OBS, "state"])),
    )
    try:
        for env in (inside, around):
            check_env_specs(env)
            rollout = env.rollout(7, break_when_any_done=False)
            assert rollout.shape == (2, 2, 7)
            check_encoded(rollout, 3, "onehot", ToyMultiAgentEnv(batch_size=()).n_features)
    finally:
        inside.close(raise_if_closed=False)
        around.close(raise_if_closed=False)


# ------------------------------------------------------------------------ no env
@pytest.mark.parametrize("mode", MODES)
def test_no_env(mode):
    enc = PhaseEncoding(5, mode=mode, in_keys=None if mode == "phase" else [OBS])
    step = torch.tensor([[0], [3], [7]])
    td = TensorDict(
        {
            "step_count": step,
            "agents": TensorDict({"observation": torch.randn(3, 2, 4)}, [3, 2]),
            "next": {
                "step_count": step + 1,
                "agents": TensorDict({"observation": torch.randn(3, 2, 4)}, [3, 2]),
            },
        },
        [3],
    )
    obs = td[OBS].clone()
    out = enc(td)
    assert out is td
    for sub, t in ((td, step), (td["next"], step + 1)):
        code = expected_code(t, 5, mode)
        if mode == "phase":
            torch.testing.assert_close(sub["phase"], code)
        else:
            torch.testing.assert_close(sub[OBS][..., 4:], code.unsqueeze(1).expand(3, 2, -1))
    if mode != "phase":
        torch.testing.assert_close(td[OBS][..., :4], obs)


def test_no_env_missing_clock():
    with pytest.raises(KeyError, match="StepCounter"):
        PhaseEncoding(3)(TensorDict({"x": torch.zeros(2)}, [2]))


# ------------------------------------------------------------------ replay buffer
@pytest.mark.parametrize("mode", ["phase", "sincos"])
def test_replay_buffer(mode):
    """Collected without the transform, encoded when sampled (like torchrl's rb tests)."""
    env = TransformedEnv(ToyMultiAgentEnv(batch_size=(2,)), StepCounter())
    data = env.rollout(6, break_when_any_done=False).reshape(-1)
    rb = ReplayBuffer(storage=LazyTensorStorage(20), batch_size=5)
    rb.append_transform(PhaseEncoding(4, mode=mode, in_keys=None if mode == "phase" else [OBS]))
    rb.extend(data)
    sample = rb.sample()
    assert sample.shape == (5,)
    n = env.base_env.n_features
    for sub in (sample, sample["next"]):
        code = expected_code(sub["step_count"], 4, mode)
        if mode == "phase":
            torch.testing.assert_close(sub["phase"], code)
        else:
            assert sub[OBS].shape[-1] == n + 2
            torch.testing.assert_close(sub[OBS][..., n:], code.unsqueeze(1).expand(5, 2, 2))
    # the storage itself is left as collected
    assert rb.storage[:][OBS].shape[-1] == n


# ------------------------------------------------------------------------ inverse
def test_inverse_is_the_identity():
    enc = PhaseEncoding(3, mode="onehot")
    td = TensorDict(
        {"step_count": torch.tensor([[1]]), "agents": {"action": torch.tensor([[2, 0]])}}, [1]
    )
    out = enc.inv(td)
    assert set(out.keys(True, True)) == set(td.keys(True, True))
    assert torch.equal(out["agents", "action"], td["agents", "action"])


# -------------------------------------------------------------------- state_dict
@pytest.mark.parametrize("mode", MODES)
def test_state_dict_roundtrip(mode):
    enc = PhaseEncoding(6, mode=mode)
    state = enc.state_dict()
    assert set(state) == {"encoding"}
    other = PhaseEncoding(6, mode=mode)
    other.encoding.zero_()
    other.load_state_dict(state)
    torch.testing.assert_close(other.encoding, enc.encoding)
    with pytest.raises(RuntimeError, match="size mismatch"):
        PhaseEncoding(5, mode=mode).load_state_dict(state)
    env = make_env((2,), period=6, mode=mode)
    env_state = env.state_dict()
    assert any(key.endswith("encoding") for key in env_state)
    env.load_state_dict(env_state)


# ---------------------------------------------------------------- torchrl mock envs
def test_torchrl_nested_counting_env():
    env = TransformedEnv(
        NestedCountingEnv(nested_dim=3, has_root_done=True, batch_size=(2,)),
        Compose(
            StepCounter(),
            PhaseEncoding(4, mode="onehot", in_keys=[("data", "states")]),
            PhaseEncoding(4, out_keys=[("data", "phase")]),
        ),
    )
    check_env_specs(env)
    td = env.rollout(3)
    assert td["data", "states"].dtype == torch.int32
    code = expected_code(td["step_count"], 4, "onehot").to(torch.int32)
    assert torch.equal(td["data", "states"][..., 1:], code.unsqueeze(-2).expand(2, 3, 3, 4))


def test_torchrl_multi_agent_counting_env():
    env = TransformedEnv(
        MultiAgentCountingEnv(n_agents=2, env_done_key="done"),
        Compose(
            StepCounter(),
            PhaseEncoding(4, mode="sincos", in_keys=[("agents", "agent_0", "observation")]),
            PhaseEncoding(4, out_keys=[("agents", "agent_1", "phase")]),
        ),
    )
    check_env_specs(env)
    td = env.rollout(3)
    assert td["agents", "agent_0", "observation"].shape == (3, 3, 6)
    torch.testing.assert_close(
        td["agents", "agent_1", "phase"], expected_code(td["step_count"], 4, "phase")
    )


def test_torchrl_heterogeneous_env_with_per_agent_clock():
    env = TransformedEnv(
        HeterogeneousCountingEnv(),
        Compose(
            StepCounter(),
            PhaseEncoding(3, out_keys=[("lazy", "phase")], step_key=("lazy", "step_count")),
        ),
    )
    check_env_specs(env)
    td = env.rollout(4)
    torch.testing.assert_close(
        td["lazy", "phase"], expected_code(td["lazy", "step_count"], 3, "phase")
    )
