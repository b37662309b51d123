"""Nothing silent, nothing lost: every env refuses bad actions, and a refused step changes nothing.

For :class:`MoveBoxEnv`, :class:`BuildingEnv` and :class:`CommunityEnergyEnv`: a missing
action entry raises ``KeyError``, a wrong shape ``ValueError``, a dtype other than the action
spec's ``TypeError`` and a bad value (out of a discrete range, NaN, inf) ``ValueError``, each
naming the key; the env's state (every tensor it owns and its random generator) after the
refused step equals its state before, and its next valid step equals that of a twin env that
never saw the bad action. A property test draws random shapes, dtypes and values.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from unittest.mock import patch

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from tensordict import TensorDict, TensorDictBase

from mtmarl.envs import MoveBoxEnv
from mtmarl.envs.building import BuildingEnv, make_building_env
from mtmarl.envs.community import CommunityEnergyEnv
from mtmarl.envs.movebox import make_movebox_env

E = 2  # envs per batch everywhere


@dataclass(frozen=True)
class Leaf:
    """One action entry of an env: key, shape, dtype and what its values may be."""

    key: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: torch.dtype
    n: int | None = None  # discrete: values in [0, n); None: continuous, finite


def make_env(kind: str, **kw) -> MoveBoxEnv | BuildingEnv | CommunityEnergyEnv:
    if kind == "movebox":
        return MoveBoxEnv(num_envs=E, random_start=True, seed=0, **kw)
    if kind == "building":
        return BuildingEnv(num_envs=E, seed=0, **kw)
    return CommunityEnergyEnv(n_prosumers=3, num_envs=E, seed=0, **kw)


def leaves(env) -> tuple[Leaf, ...]:
    if isinstance(env, MoveBoxEnv):
        return (Leaf(("agents", "action"), (E, 2), torch.int64, n=3),)
    if isinstance(env, BuildingEnv):
        return (Leaf(("agents", "action"), (E, 7, 1), torch.float32),)
    N = env.n_prosumers
    return (
        Leaf(("agents", "action", "mode"), (E, N), torch.int64, n=3),
        Leaf(("agents", "action", "power"), (E, N, 2), torch.float32),
    )


KINDS = ("movebox", "building", "community")


def snapshot(env) -> dict[str, object]:
    """Everything a step may change: every tensor the env lists, and its generator."""
    state = {name: getattr(env, name).clone() for name in env._TENSOR_ATTRS}
    state["generator"] = env._generator.get_state()
    return state


def assert_same_state(before: dict[str, object], after: dict[str, object]) -> None:
    assert before.keys() == after.keys()
    for name, value in before.items():
        other = after[name]
        assert other.dtype == value.dtype, f"{name}: {value.dtype} -> {other.dtype}"
        assert torch.equal(other, value), f"{name} changed"


def valid_action(env) -> TensorDict:
    """A fixed valid action of the env (the spec's shapes and dtypes, values in range)."""
    g = torch.Generator().manual_seed(1)
    out = TensorDict({}, [E])
    for leaf in leaves(env):
        if leaf.n is not None:
            value = torch.randint(0, leaf.n, leaf.shape, generator=g)
        else:
            value = torch.rand(leaf.shape, generator=g) * 2 - 1
        out.set(leaf.key, value.to(leaf.dtype))
    return out


def with_action(env, key, value) -> TensorDict:
    """The valid action with ``key`` set to ``value`` (``None``: removed), in a batch-less
    tensordict so that any shape can be set (the input of ``env._step``)."""
    out = TensorDict({}, [])
    for leaf in leaves(env):
        if leaf.key != key:
            out.set(leaf.key, valid_action(env).get(leaf.key))
        elif value is not None:
            out.set(key, value)
    return out


def assert_td_equal(a: TensorDictBase, b: TensorDictBase) -> None:
    keys = set(a.keys(True, True))
    assert keys == set(b.keys(True, True))
    for key in keys:
        assert torch.equal(a.get(key), b.get(key)), key


def bad_cases(kind: str):
    """(id, key, value, error) for every leaf of the env: missing, shape, dtype, value."""
    env = make_env(kind)
    cases = []
    for leaf in leaves(env):
        name = leaf.key[-1]
        good = valid_action(env).get(leaf.key)
        cases.append((f"{kind}-{name}-missing", leaf.key, None, KeyError))
        cases.append((f"{kind}-{name}-extra-dim", leaf.key, good.unsqueeze(-1), ValueError))
        cases.append((f"{kind}-{name}-flat", leaf.key, good.reshape(E, -1)[:, :1], ValueError))
        cases.append((f"{kind}-{name}-empty", leaf.key, good[:0], ValueError))
        others = (
            (torch.float32, torch.int32, torch.uint8, torch.bool)
            if leaf.n is not None
            else (torch.float64, torch.float16, torch.int64, torch.bool)
        )
        for dtype in others:
            dt = str(dtype).removeprefix("torch.")
            cases.append((f"{kind}-{name}-{dt}", leaf.key, good.to(dtype), TypeError))
        if leaf.n is not None:
            for v in (-1, leaf.n):
                bad = good.clone()
                bad[-1, -1] = v
                cases.append((f"{kind}-{name}-value{v}", leaf.key, bad, ValueError))
        else:
            for v in (math.nan, math.inf, -math.inf):
                bad = good.clone()
                bad.view(-1)[-1] = v
                cases.append((f"{kind}-{name}-{v}", leaf.key, bad, ValueError))
    return cases


ALL_CASES = [c for kind in KINDS for c in bad_cases(kind)]


# --------------------------------------------------------------------------- every bad input
@pytest.mark.parametrize(
    ("case", "key", "value", "error"), ALL_CASES, ids=[c[0] for c in ALL_CASES]
)
def test_bad_action_is_refused_and_changes_nothing(case, key, value, error):
    kind = case.split("-")[0]
    env, twin = make_env(kind), make_env(kind)
    td, td_twin = env.reset(), twin.reset()
    # a step first, so that the state is not the reset's
    env.step(td.update(valid_action(env)))
    twin.step(td_twin.update(valid_action(twin)))
    before = snapshot(env)
    with pytest.raises(error) as info:
        env._step(with_action(env, key, value))
    message = info.value.args[0]
    assert type(env).__name__ in message and repr(key) in message, message
    assert_same_state(before, snapshot(env))
    # the next valid step is the twin's, which never saw the bad action
    assert_td_equal(
        env.step(td.update(valid_action(env)))["next"],
        twin.step(td_twin.update(valid_action(twin)))["next"],
    )


@pytest.mark.parametrize("kind", KINDS)
def test_bad_action_is_refused_through_env_step(kind):
    """The same errors through torchrl's ``step`` (batched tensordict), not only ``_step``."""
    env = make_env(kind)
    td = env.reset()
    before = snapshot(env)
    for leaf in leaves(env):
        good = valid_action(env).get(leaf.key)
        with pytest.raises(TypeError, match=re.escape(f"{leaf.key!r} of dtype {leaf.dtype}")):
            env.step(td.clone().update(valid_action(env)).set(leaf.key, good.double()))
        if leaf.n is None:
            bad = good.clone()
            bad[0, 0] = math.nan
            with pytest.raises(ValueError, match=re.escape(f"{leaf.key!r} to hold finite")):
                env.step(td.clone().update(valid_action(env)).set(leaf.key, bad))
        with pytest.raises(KeyError, match=re.escape(f"the action at {leaf.key!r}")):
            env.step(td.clone().update(valid_action(env)).exclude(leaf.key))
    assert_same_state(before, snapshot(env))


def test_missing_key_lists_the_entries_there_are():
    env = make_env("building")
    td = env.reset()
    with pytest.raises(KeyError) as info:
        env.step(td)
    message = info.value.args[0]
    assert message.startswith(
        "BuildingEnv expected the action at ('agents', 'action'), the tensordict has no such "
        "entry (it has ["
    )
    assert "('agents', 'observation')" in message and "'state'" in message


def test_a_tensor_where_the_action_tensordict_belongs_is_a_missing_key():
    env = make_env("community")
    td = env.reset().set(("agents", "action"), torch.zeros(E, 3))
    with pytest.raises(KeyError, match=re.escape("the action at ('agents', 'action', 'mode')")):
        env.step(td)


def test_a_tensordict_where_the_action_tensor_belongs_raises_type_error():
    env = make_env("building")
    td = env.reset().set(("agents", "action", "x"), torch.zeros(E, 7, 1))
    with pytest.raises(TypeError, match=re.escape("a tensor at ('agents', 'action'), got")):
        env.step(td)


# --------------------------------------------------------------------------- accepted inputs
def test_building_clips_finite_actions_out_of_range():
    """Finite actions outside [-1, 1] act as the nearest bound (as in the community env)."""
    env, twin = make_env("building"), make_env("building")
    td, td_twin = env.reset(), twin.reset()
    action = torch.linspace(-5.0, 5.0, E * 7).reshape(E, 7, 1)
    out = env.step(td.set(("agents", "action"), action))["next"]
    ref = twin.step(td_twin.set(("agents", "action"), action.clamp(-1, 1)))["next"]
    assert_td_equal(out.exclude("agents"), ref.exclude("agents"))
    assert env._temp.dtype == torch.float32 and bool(torch.isfinite(env._temp).all())


def test_community_state_stays_float32():
    env = make_env("community")
    td = env.rand_step(env.reset())
    assert td["next", "state"].dtype == torch.float32
    for name in ("_bat_soc", "_ev_soc", "_temp", "_last_exchange", "_last_loading"):
        assert getattr(env, name).dtype == torch.float32, name


@pytest.mark.parametrize("kind", KINDS)
def test_without_validation_only_values_go_unchecked(kind):
    """``validate_actions=False``: no host sync in the step; key, shape and dtype still raise."""
    env = make_env(kind, validate_actions=False)
    td = env.reset().update(valid_action(env))
    checked = make_env(kind)
    for step, raises in ((env._step, False), (checked._step, True)):  # the check does sync
        with (
            patch.object(torch.Tensor, "tolist", side_effect=AssertionError("host sync")),
            patch.object(torch.Tensor, "item", side_effect=AssertionError("host sync")),
            patch.object(torch.Tensor, "__bool__", side_effect=AssertionError("host sync")),
        ):
            if raises:
                with pytest.raises(AssertionError, match="host sync"):
                    step(td)
            else:
                step(td)
    before = snapshot(env)
    leaf = leaves(env)[-1]
    good = valid_action(env).get(leaf.key)
    with pytest.raises(KeyError, match=re.escape(repr(leaf.key))):
        env._step(with_action(env, leaf.key, None))
    with pytest.raises(ValueError, match=re.escape(repr(leaf.key))):
        env._step(with_action(env, leaf.key, good.unsqueeze(-1)))
    with pytest.raises(TypeError, match=re.escape(repr(leaf.key))):
        env._step(with_action(env, leaf.key, good.to(torch.float64)))
    assert_same_state(before, snapshot(env))


def test_validate_actions_must_be_a_bool_and_reaches_the_building_stack():
    with pytest.raises(TypeError, match="BuildingEnv expected validate_actions to be a bool"):
        BuildingEnv(validate_actions=1)
    assert make_building_env(seed=0).base_env.validate_actions is True
    assert make_building_env(seed=0, validate_actions=False).base_env.validate_actions is False


# --------------------------------------------------------------------------- the usual stacks
def test_stacks_pass_bad_actions_on_to_the_env():
    """Through the action-frequency mask: a float action stays float (the mask's ``where``
    promotes the held or null action), a NaN of an agent that may act reaches the env, and
    the env refuses them. (An int32 Move Box action comes out of the null mask as int64.)"""
    env = make_building_env(num_envs=E, seed=0)
    td = env.reset()  # t = 0: every agent may act
    before = snapshot(env.base_env)
    with pytest.raises(TypeError, match=re.escape("('agents', 'action') of dtype torch.float32")):
        env.step(td.clone().set(("agents", "action"), torch.zeros(E, 7, 1, dtype=torch.float64)))
    action = torch.zeros(E, 7, 1)
    action[0, 3] = math.nan
    with pytest.raises(ValueError, match="1 NaN and 0 inf of 14 entries"):
        env.step(td.clone().set(("agents", "action"), action))
    assert_same_state(before, snapshot(env.base_env))

    box = make_movebox_env("easy", num_envs=E)
    td = box.reset()
    before = snapshot(box.base_env)
    with pytest.raises(TypeError, match=re.escape("('agents', 'action') of dtype torch.int64")):
        box.step(td.clone().set(("agents", "action"), torch.full((E, 2), 2.0)))
    with pytest.raises(ValueError, match=re.escape("('agents', 'action') to hold actions in")):
        box.step(td.clone().set(("agents", "action"), torch.full((E, 2), 3)))
    assert_same_state(before, snapshot(box.base_env))


# --------------------------------------------------------------------------- property
@functools.cache
def cached_env(kind: str):
    return make_env(kind)


_DTYPES = (
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.uint8,
    torch.bool,
)


@st.composite
def leaf_values(draw, leaf: Leaf):
    """A tensor for ``leaf``, mostly near-valid; ``None`` for a missing entry."""
    if draw(st.integers(0, 9)) == 0:
        return None
    shape = draw(
        st.one_of(
            st.just(leaf.shape),
            st.just(leaf.shape),
            st.just((*leaf.shape, 1)),
            st.just(leaf.shape[:-1]),
            st.lists(st.integers(0, 4), max_size=4).map(tuple),
        )
    )
    dtype = draw(st.one_of(st.just(leaf.dtype), st.just(leaf.dtype), st.sampled_from(_DTYPES)))
    size = math.prod(shape)
    if dtype.is_floating_point:
        # NaN, inf, huge and subnormal values too (float16 / bfloat16 may round them to inf)
        values = st.floats(width=32) | st.floats(-1.0, 1.0)
    elif dtype == torch.bool:
        values = st.booleans()
    else:
        values = st.integers(0 if dtype == torch.uint8 else -2, 4)
        if leaf.n is not None and dtype == leaf.dtype:
            values = values | st.integers(0, leaf.n - 1)
    return torch.tensor(draw(st.lists(values, min_size=size, max_size=size)), dtype=dtype).reshape(
        shape
    )


def fault(leaf: Leaf, value: torch.Tensor | None) -> type[Exception] | None:
    """The error the env owes for ``value`` at ``leaf``, ``None`` if it is valid."""
    if value is None:
        return KeyError
    if value.shape != leaf.shape:
        return ValueError
    if value.dtype != leaf.dtype:
        return TypeError
    if leaf.n is not None:
        return ValueError if bool(((value < 0) | (value >= leaf.n)).any()) else None
    return None if bool(torch.isfinite(value).all()) else ValueError


@st.composite
def env_and_actions(draw):
    kind = draw(st.sampled_from(KINDS))
    env = cached_env(kind)
    return kind, {leaf: draw(leaf_values(leaf)) for leaf in leaves(env)}


@settings(max_examples=300, deadline=None)
@given(env_and_actions())
def test_property_each_action_works_or_is_refused_cleanly(drawn):
    kind, values = drawn
    env = cached_env(kind)
    env.set_seed(0)
    env.reset()
    step_in = TensorDict({}, [])
    for leaf, value in values.items():
        if value is not None:
            step_in.set(leaf.key, value)
    before = snapshot(env)
    faults = {leaf.key: fault(leaf, value) for leaf, value in values.items()}
    owed = {key: err for key, err in faults.items() if err is not None}
    event(f"{kind}: " + (", ".join(sorted({e.__name__ for e in owed.values()})) or "valid"))
    try:
        out = env._step(step_in)
    except (KeyError, ValueError, TypeError) as err:
        assert owed, f"valid action refused: {err!r}"
        message = err.args[0]
        named = [key for key in owed if repr(key) in message]
        assert named, f"no faulty key {list(owed)} named in {message!r}"
        assert any(isinstance(err, owed[key]) for key in named), (err, owed)
        assert_same_state(before, snapshot(env))
    else:
        assert not owed, f"bad action accepted: {owed}"
        after = snapshot(env)
        for name, value in before.items():
            if name != "generator":
                assert after[name].dtype == value.dtype, name
                if value.dtype.is_floating_point:
                    assert bool(torch.isfinite(after[name]).all()), name
        assert bool(torch.isfinite(out["reward"]).all())
