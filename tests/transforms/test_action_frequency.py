"""Tests of mtmarl.transforms.action_frequency.ActionFrequencyMask.

Follows the checks torchrl's own transform tests run: single env, batch shapes, Compose,
ParallelEnv (inside the workers and around them), no env, replay buffer, inverse, plus
partial resets, masks for MaskedCategorical, state_dict and every construction / append error.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import Bounded, Categorical, Composite, LazyTensorStorage, ReplayBuffer
from torchrl.envs import ActionMask, Compose, ParallelEnv, RewardSum, StepCounter, TransformedEnv
from torchrl.envs.utils import check_env_specs
from torchrl.modules import MaskedCategorical, MaskedOneHotCategorical, ProbabilisticActor
from torchrl.testing.mocking_classes import (
    HeterogeneousCountingEnv,
    MultiAgentCountingEnv,
    NestedCountingEnv,
)
from transform_test_envs import ACTION_KINDS, BATCH_SHAPES, ToyMultiAgentEnv

from mtmarl.transforms import ActionFrequencyMask

FREQS = (1, 3)
ACTION = ("agents", "action")
PREV = ("agents", "prev_action")
CAN_ACT = ("agents", "can_act")
NULLS = {
    "discrete": 2,
    "onehot": 1,
    "continuous": 0.25,
    "hybrid": {"mode": 2, "move": 0.0},
    "hybrid2": {"mode": 2, "aux": 1, "move": [0.5, -0.5]},
}
LEAVES = {
    "discrete": [()],
    "onehot": [()],
    "continuous": [()],
    "hybrid": [("mode",), ("move",)],
    "hybrid2": [("mode",), ("aux",), ("move",)],
}
# (leaf, number of choices, kind) of the discrete leaves, and where their mask goes
DISCRETE = {
    "discrete": [((), 3, "categorical", ("agents", "action_mask"))],
    "onehot": [((), 3, "onehot", ("agents", "action_mask"))],
    "continuous": [],
    "hybrid": [(("mode",), 3, "categorical", ("agents", "action_mask"))],
    "hybrid2": [
        (("mode",), 3, "categorical", ("agents", "mode_action_mask")),
        (("aux",), 2, "onehot", ("agents", "aux_action_mask")),
    ],
}


def make_env(kind="discrete", batch_size=(), *, mode="hold", freqs=FREQS, extra=(), **kwargs):
    if mode == "null":
        kwargs.setdefault("null_action", NULLS[kind])
    return TransformedEnv(
        ToyMultiAgentEnv(batch_size=batch_size, action=kind),
        Compose(StepCounter(), ActionFrequencyMask(list(freqs), mode=mode, **kwargs), *extra),
    )


def stubborn_policy(env: TransformedEnv):
    """A policy that ignores the masks: it draws from the base env's unmasked action spec."""
    spec = env.base_env.full_action_spec

    def policy(td):
        return td.update(spec.rand())

    return policy


def leaf(td, key, rel):
    return td.get((*key, *rel))


def null_of(kind: str, rel: tuple, n_agents: int = 2) -> torch.Tensor:
    """The null action of a leaf as the transform should use it: ``(N, *E)``."""
    value = NULLS[kind]
    if isinstance(value, dict):
        value = value[rel[0]]
    discrete = {d[0]: d for d in DISCRETE[kind]}
    if rel in discrete:
        _, n, how, _ = discrete[rel]
        index = torch.full((n_agents,), int(value))
        return torch.nn.functional.one_hot(index, n) if how == "onehot" else index
    return torch.as_tensor(value, dtype=torch.float32).expand(n_agents, 2)


def expand_cond(can_act: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return can_act.reshape(*can_act.shape, *([1] * (like.ndim - can_act.ndim)))


def check_semantics(rollout, kind: str, mode: str, freqs=FREQS) -> None:
    """can_act, executed actions, masks and the env's received action in a rollout."""
    omega = torch.tensor(freqs)
    for sub in (rollout, rollout["next"]):
        assert torch.equal(sub[CAN_ACT], torch.remainder(sub["step_count"], omega) == 0)
    can_act = rollout[CAN_ACT]
    for rel in LEAVES[kind]:
        policy = leaf(rollout, ACTION, rel)
        executed = leaf(rollout, ("next", *PREV), rel)
        forced = leaf(rollout, PREV, rel) if mode == "hold" else null_of(kind, rel)
        assert torch.equal(executed, torch.where(expand_cond(can_act, policy), policy, forced))
    for rel, n, how, mask_key in DISCRETE[kind]:
        forced = leaf(rollout, PREV, rel) if mode == "hold" else null_of(kind, rel)
        forced_mask = torch.nn.functional.one_hot(forced, n) if how == "categorical" else forced
        expected = forced_mask.bool() | can_act.unsqueeze(-1)
        assert torch.equal(rollout[mask_key], expected.expand_as(rollout[mask_key]))
    # the base env received the executed action
    features = ToyMultiAgentEnv(action=kind).features(rollout[("next", *PREV)])
    torch.testing.assert_close(rollout["next", "agents", "observation"][..., :-1], features)


# --------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("freqs", "kwargs", "error", "match"),
    [
        ([0, 1], {}, ValueError, r"action_frequencies\[0\] \(omega_0\) to be >= 1, got 0"),
        ([1, -2], {}, ValueError, r"\(omega_1\) to be >= 1, got -2"),
        ([1.5], {}, TypeError, "to be an int >= 1, got float"),
        ([True, 2], {}, TypeError, "got bool"),
        ([], {}, ValueError, "one action frequency per agent, got none"),
        ("12", {}, TypeError, "sequence of ints"),
        (3, {}, TypeError, "sequence of ints"),
        ([1, 2], {"mode": "skip"}, ValueError, "mode to be one of"),
        ([1, 2], {"mode": "null"}, ValueError, "mode='null' needs the null action"),
        ([1, 2], {"action_key": "action"}, ValueError, "inside an agent group"),
        ([1, 2], {"action_key": 5}, TypeError, "action_key to be a key"),
        ([1, 2], {"step_key": None}, TypeError, "step_key to be a key"),
        ([1, 2], {"can_act_key": 1}, TypeError, "can_act_key to be a key"),
        ([1, 2], {"mask_key": 3}, TypeError, "mask_key to be a key"),
        ([1, 2], {"prev_action_key": 2.0}, TypeError, "prev_action_key to be a key"),
        ([1, 2], {"null_action": "noop"}, TypeError, "null_action to be a number"),
        ([1, 2], {"action_spec": "Categorical(3)"}, TypeError, "action_spec to be a TensorSpec"),
    ],
)
def test_bad_arguments_fail_at_construction(freqs, kwargs, error, match):
    with pytest.raises(error, match=match):
        ActionFrequencyMask(freqs, **kwargs)


@pytest.mark.parametrize(
    ("kind", "kwargs", "error", "match"),
    [
        ("discrete", {"freqs": (1, 2, 3)}, ValueError, "got 3 action frequencies .* has 2 agents"),
        ("discrete", {"freqs": (4,)}, ValueError, "got 1 action frequencies .* has 2 agents"),
        ("discrete", {"action_key": ("agents", "move")}, KeyError, "expected the action"),
        ("discrete", {"mode": "null", "null_action": 3}, ValueError, r"in \[0, 2\], got 3"),
        ("discrete", {"mode": "null", "null_action": -1}, ValueError, r"in \[0, 2\]"),
        ("discrete", {"mode": "null", "null_action": 1.0}, TypeError, "integer index"),
        ("discrete", {"mode": "null", "null_action": [0, 1, 2]}, ValueError, "one index or 2"),
        ("discrete", {"null_action": {"mode": 1}}, TypeError, "not a mapping"),
        ("onehot", {"mode": "null", "null_action": 5}, ValueError, r"in \[0, 2\]"),
        ("continuous", {"mode": "null", "null_action": torch.zeros(3)}, ValueError, "broadcast"),
        ("continuous", {"mode": "null", "null_action": 2.0}, ValueError, "not a valid action"),
        ("hybrid", {"mode": "null", "null_action": 2}, TypeError, "pass null_action as a mapping"),
        ("hybrid", {"null_action": {"jump": 1}}, KeyError, "not a leaf of the action"),
        ("hybrid", {"mode": "null", "null_action": {"mode": 2}}, ValueError, "missing"),
        ("hybrid2", {"mask_key": ("agents", "m")}, ValueError, "pass mask_key as a mapping"),
        ("hybrid2", {"mask_key": {"move": ("agents", "m")}}, KeyError, "not a discrete leaf"),
        ("discrete", {"can_act_key": ("agents", "observation")}, ValueError, "would overwrite"),
        ("discrete", {"can_act_key": ("agents", "action_mask")}, ValueError, "same key"),
        ("discrete", {"step_key": "state"}, TypeError, "to be an integer entry"),
    ],
)
def test_bad_configuration_fails_at_append(kind, kwargs, error, match):
    freqs = kwargs.pop("freqs", FREQS)
    with pytest.raises(error, match=match):
        make_env(kind, (2,), freqs=freqs, **kwargs)


def test_missing_step_counter_fails_at_append():
    with pytest.raises(KeyError, match=r"add `StepCounter\(\)` before it"):
        TransformedEnv(ToyMultiAgentEnv(), ActionFrequencyMask([1, 2]))
    env = TransformedEnv(ToyMultiAgentEnv(), RewardSum())
    with pytest.raises(KeyError, match="observation entry .*step_count"):
        env.append_transform(ActionFrequencyMask([1, 2]))


def test_group_without_agent_dim_fails_at_append():
    with pytest.raises(ValueError, match="to have an agent dim"):
        TransformedEnv(
            MultiAgentCountingEnv(n_agents=2, env_done_key="done"),
            Compose(
                StepCounter(), ActionFrequencyMask([2], action_key=("agents", "agent_0", "action"))
            ),
        )


def test_heterogeneous_actions_fail_at_append():
    with pytest.raises(ValueError, match="heterogeneous"):
        TransformedEnv(
            HeterogeneousCountingEnv(),
            Compose(
                StepCounter(),
                ActionFrequencyMask(
                    [1, 2, 3], action_key=("lazy", "action"), step_key=("lazy", "step_count")
                ),
            ),
        )


# ----------------------------------------------------------------------- single env
@pytest.mark.parametrize("kind", ACTION_KINDS)
@pytest.mark.parametrize("mode", ["hold", "null"])
@pytest.mark.parametrize("batch_size", BATCH_SHAPES)
def test_single_env_check_env_specs(kind, mode, batch_size):
    env = make_env(kind, batch_size, mode=mode)
    check_env_specs(env)
    keys = set(env.observation_spec.keys(True, True))
    assert {CAN_ACT, *((*PREV, *rel) if rel else PREV for rel in LEAVES[kind])} <= keys
    assert {d[3] for d in DISCRETE[kind]} <= keys


@pytest.mark.parametrize("kind", ACTION_KINDS)
@pytest.mark.parametrize("mode", ["hold", "null"])
def test_forced_steps_execute_the_forced_action(kind, mode):
    torch.manual_seed(0)
    env = make_env(kind, (3,), mode=mode)
    rollout = env.rollout(12, stubborn_policy(env), break_when_any_done=False)
    assert bool((rollout["step_count"] == 0)[:, 1:].any())  # partial resets happened
    check_semantics(rollout, kind, mode)
    # the policy tried to act on forced steps, and was overruled
    rel = LEAVES[kind][0]
    policy, executed = leaf(rollout, ACTION, rel), leaf(rollout, ("next", *PREV), rel)
    differs = policy != executed
    if differs.ndim > rollout[CAN_ACT].ndim:
        differs = differs.flatten(rollout[CAN_ACT].ndim).any(-1)
    assert bool(differs.any())
    assert not bool((differs & rollout[CAN_ACT]).any())


@pytest.mark.parametrize("kind", ACTION_KINDS)
@pytest.mark.parametrize("mode", ["hold", "null"])
def test_reset_observation(kind, mode):
    env = make_env(kind, (2,), mode=mode)
    td = env.reset()
    assert bool(td[CAN_ACT].all())
    for rel in LEAVES[kind]:
        prev = leaf(td, PREV, rel)
        if mode == "null":
            expected = null_of(kind, rel)
        elif rel in {d[0] for d in DISCRETE[kind] if d[2] == "onehot"}:
            expected = torch.nn.functional.one_hot(torch.zeros(2, dtype=torch.long), prev.shape[-1])
        else:
            expected = torch.zeros_like(prev[0])
        assert torch.equal(prev, expected.expand_as(prev).to(prev.dtype))
    for _, _, _, mask_key in DISCRETE[kind]:
        assert bool(td[mask_key].all())


def test_initial_continuous_action_is_projected_into_the_box():
    base = ToyMultiAgentEnv(action="continuous")
    base.action_spec = Composite(
        agents=Composite(action=Bounded(0.5, 1.0, shape=(2, 2)), shape=(2,)), shape=()
    )
    env = TransformedEnv(base, Compose(StepCounter(), ActionFrequencyMask([1, 2])))
    td = env.reset()
    assert torch.equal(td[PREV], torch.full((2, 2), 0.5))


@pytest.mark.parametrize("kind", ["discrete", "onehot", "hybrid2"])
def test_rand_action_respects_the_mask(kind):
    """env.rand_action (the collector path) draws only executable actions."""
    torch.manual_seed(0)
    env = make_env(kind, (4,), mode="hold", freqs=(2, 3))
    td = env.reset()
    for _ in range(12):
        td = env.rand_action(td)
        step, td = env.step_and_maybe_reset(td)
        for rel, _, _, mask_key in DISCRETE[kind]:
            assert torch.equal(leaf(step, ACTION, rel), leaf(step, ("next", *PREV), rel))
            spec_mask = env.full_action_spec[(*ACTION, *rel)].mask
            assert torch.equal(spec_mask, td[mask_key])


def test_partial_reset():
    env = make_env("discrete", (3,), mode="hold")
    td = env.reset()
    td[ACTION] = torch.tensor([[1, 1]] * 3)
    td = env.step(td)["next"]  # t = 1: agent 1 (omega = 3) holds 1
    assert torch.equal(td[CAN_ACT], torch.tensor([[True, False]] * 3))
    before = td.clone()
    td["_reset"] = torch.tensor([[False], [True], [False]])
    td = env.reset(td)
    kept = torch.tensor([0, 2])
    for key in (CAN_ACT, PREV, ("agents", "action_mask"), "step_count"):
        assert torch.equal(td[key][kept], before[key][kept])
    assert bool(td[CAN_ACT][1].all()) and bool(td["agents", "action_mask"][1].all())
    assert torch.equal(td[PREV][1], torch.zeros(2, dtype=torch.long))
    spec_mask = env.full_action_spec[ACTION].mask
    assert torch.equal(spec_mask, td["agents", "action_mask"])
    td[ACTION] = torch.tensor([[0, 0]] * 3)
    td = env.step(td)["next"]
    assert torch.equal(td[PREV], torch.tensor([[0, 1], [0, 0], [0, 1]]))


@pytest.mark.parametrize("kind", ["discrete", "onehot"])
def test_masked_distribution_gives_zero_log_prob_and_entropy_on_forced_steps(kind):
    torch.manual_seed(0)
    env = make_env(kind, (3,), mode="hold")
    rollout = env.rollout(9, stubborn_policy(env), break_when_any_done=False)
    can_act, mask = rollout[CAN_ACT], rollout["agents", "action_mask"]
    logits = torch.randn(*mask.shape, requires_grad=True)
    dist_cls = MaskedCategorical if kind == "discrete" else MaskedOneHotCategorical
    dist = dist_cls(logits=logits, mask=mask)
    executed = rollout[("next", *PREV)]
    log_prob, entropy = dist.log_prob(executed), dist.entropy()
    assert bool((~can_act).any()) and bool(can_act.any())
    assert bool((log_prob[~can_act] == 0).all()) and bool((entropy[~can_act] == 0).all())
    assert bool((log_prob[can_act] < 0).all()) and bool((entropy[can_act] > 0).all())
    (log_prob.sum() + entropy.sum()).backward()
    assert bool((logits.grad[~can_act] == 0).all())
    assert bool((logits.grad[can_act] != 0).any())


def test_masked_actor_in_a_rollout():
    """End to end: a ProbabilisticActor with MaskedCategorical fed the transform's mask."""
    torch.manual_seed(0)
    env = make_env("discrete", (3,), mode="null")
    net = TensorDictModule(
        nn.Linear(env.base_env.n_features, 3),
        in_keys=[("agents", "observation")],
        out_keys=[("agents", "logits")],
    )
    actor = ProbabilisticActor(
        net,
        in_keys={"logits": ("agents", "logits"), "mask": ("agents", "action_mask")},
        out_keys=[ACTION],
        distribution_class=MaskedCategorical,
        return_log_prob=True,
        log_prob_key=("agents", "action_log_prob"),
    )
    rollout = env.rollout(9, actor, break_when_any_done=False)
    check_semantics(rollout, "discrete", "null")
    can_act = rollout[CAN_ACT]
    assert torch.equal(rollout[ACTION], rollout[("next", *PREV)])  # the actor obeys the mask
    log_prob = rollout["agents", "action_log_prob"]
    assert bool((log_prob[~can_act] == 0).all()) and bool((log_prob[can_act] < 0).all())


# -------------------------------------------------------------------------- compose
def test_compose_with_torchrl_action_mask_and_other_transforms():
    env = make_env(
        "discrete",
        (2,),
        mode="null",
        extra=(ActionMask(action_key=ACTION, mask_key=("agents", "action_mask")), RewardSum()),
    )
    check_env_specs(env)
    rollout = env.rollout(12, break_when_any_done=False)
    check_semantics(rollout, "discrete", "null")
    # without partial resets (horizons are >= 3) random actions obey the mask; after a partial
    # reset torchrl's ActionMask writes the reset-time mask of *all* envs into the spec, so it
    # is only redundant with ActionFrequencyMask, which keeps the other envs' rows
    rollout = env.rollout(3)
    assert torch.equal(rollout[ACTION], rollout[("next", *PREV)])


def test_custom_keys_and_mask_mapping():
    env = make_env(
        "hybrid2",
        (2,),
        mode="null",
        can_act_key=("agents", "free"),
        prev_action_key=("agents", "executed"),
        mask_key={"mode": ("agents", "mode_mask")},
    )
    check_env_specs(env)
    td = env.rollout(4)
    assert {("agents", "free"), ("agents", "executed", "aux"), ("agents", "mode_mask")} <= set(
        td.keys(True, True)
    )
    assert ("agents", "aux_action_mask") in td.keys(True, True)  # default for the unnamed leaf


# --------------------------------------------------------------------- parallel env
def test_parallel_env():
    torch.manual_seed(0)
    inside = ParallelEnv(2, partial(make_env, "hybrid", (2,), mode="hold"), mp_start_method="fork")
    around = TransformedEnv(
        ParallelEnv(2, partial(ToyMultiAgentEnv, batch_size=(2,)), mp_start_method="fork"),
        Compose(StepCounter(), ActionFrequencyMask(list(FREQS), mode="null", null_action=2)),
    )
    try:
        check_env_specs(inside)
        policy = stubborn_policy(
            TransformedEnv(ToyMultiAgentEnv(batch_size=(2, 2), action="hybrid"))
        )
        rollout = inside.rollout(8, policy, break_when_any_done=False)
        assert rollout.shape == (2, 2, 8)
        check_semantics(rollout, "hybrid", "hold")
        check_env_specs(around)
        rollout = around.rollout(8, break_when_any_done=False)  # random actions obey the mask
        check_semantics(rollout, "discrete", "null")
        assert torch.equal(rollout[ACTION], rollout[("next", *PREV)])
    finally:
        inside.close(raise_if_closed=False)
        around.close(raise_if_closed=False)


# ------------------------------------------------------------------------ no env
def test_no_env_forward():
    t = ActionFrequencyMask([1, 2, 4], action_spec=Categorical(3))
    step = torch.tensor([[0], [2], [5]])
    prev = torch.tensor([[0, 1, 2], [2, 2, 2], [1, 0, 1]])
    executed = torch.tensor([[1, 1, 2], [0, 2, 2], [0, 0, 1]])
    td = TensorDict(
        {
            "step_count": step,
            "agents": {"prev_action": prev},
            "next": {"step_count": step + 1, "agents": {"prev_action": executed}},
        },
        [3],
    )
    out = t(td)
    assert out is td
    omega = torch.tensor([1, 2, 4])
    can_act = torch.remainder(step, omega) == 0
    assert torch.equal(td[CAN_ACT], can_act)
    expected = torch.nn.functional.one_hot(prev, 3).bool() | can_act.unsqueeze(-1)
    assert torch.equal(td["agents", "action_mask"], expected)
    next_can_act = torch.remainder(step + 1, omega) == 0
    assert torch.equal(td[("next", *CAN_ACT)], next_can_act)
    expected = torch.nn.functional.one_hot(executed, 3).bool() | next_can_act.unsqueeze(-1)
    assert torch.equal(td["next", "agents", "action_mask"], expected)


def test_no_env_inverse_works_on_a_copy():
    t = ActionFrequencyMask(
        [1, 2], mode="hold", action_spec=Composite(mode=Categorical(3), move=Bounded(-1, 1, (2,)))
    )
    td = TensorDict(
        {
            "step_count": torch.tensor([[1], [2]]),
            "agents": TensorDict(
                {
                    "action": {"mode": torch.tensor([[1, 1], [1, 1]]), "move": torch.ones(2, 2, 2)},
                    "prev_action": {
                        "mode": torch.tensor([[0, 2], [0, 2]]),
                        "move": -torch.ones(2, 2, 2),
                    },
                },
                [2, 2],
            ),
        },
        [2],
    )
    original = td.clone()
    out = t.inv(td)
    assert (td == original).all()  # the input is untouched
    assert torch.equal(out["agents", "action", "mode"], torch.tensor([[1, 2], [1, 1]]))
    expected_move = torch.ones(2, 2, 2)
    expected_move[0, 1] = -1
    assert torch.equal(out["agents", "action", "move"], expected_move)


def test_no_env_without_action_spec_raises():
    t = ActionFrequencyMask([1, 2])
    with pytest.raises(RuntimeError, match="no parent environment"):
        t(TensorDict({"step_count": torch.zeros(1, 1, dtype=torch.long)}, [1]))


def test_no_env_missing_entries_raise():
    t = ActionFrequencyMask([1, 2], action_spec=Categorical(3))
    with pytest.raises(KeyError, match="StepCounter"):
        t(TensorDict({}, [1]))
    with pytest.raises(KeyError, match="reset the environment first"):
        t.inv(TensorDict({"agents": {"action": torch.zeros(1, 2, dtype=torch.long)}}, [1]))
    with pytest.raises(KeyError, match="previous action"):
        t.inv(
            TensorDict(
                {
                    "step_count": torch.ones(1, 1, dtype=torch.long),
                    "agents": {"action": torch.zeros(1, 2, dtype=torch.long)},
                },
                [1],
            )
        )


# ------------------------------------------------------------------ replay buffer
def test_replay_buffer():
    """Forced on extend (inverse), can_act and masks written on sample (forward)."""
    torch.manual_seed(0)
    env = TransformedEnv(ToyMultiAgentEnv(batch_size=(2,)), StepCounter())
    data = env.rollout(9, break_when_any_done=False).reshape(-1)
    t = ActionFrequencyMask(list(FREQS), mode="null", null_action=2, action_spec=Categorical(3))
    rb = ReplayBuffer(storage=LazyTensorStorage(20), batch_size=6)
    rb.append_transform(t)
    policy_actions = data[ACTION].clone()
    rb.extend(data)
    stored = rb.storage[:]
    can_act = torch.remainder(data["step_count"], torch.tensor(FREQS)) == 0
    assert bool((~can_act).any())
    assert torch.equal(stored[ACTION], torch.where(can_act, data[ACTION], 2))
    assert torch.equal(data[ACTION], policy_actions)  # the collected data is untouched
    sample = rb.sample()
    for sub in (sample, sample["next"]):
        expected = torch.remainder(sub["step_count"], torch.tensor(FREQS)) == 0
        assert torch.equal(sub[CAN_ACT], expected)
        null = torch.nn.functional.one_hot(torch.tensor(2), 3).bool()
        assert torch.equal(sub["agents", "action_mask"], null | expected.unsqueeze(-1))


# ------------------------------------------------------------------------ inverse
@pytest.mark.parametrize("kind", ACTION_KINDS)
def test_inverse_in_env(kind):
    """The env's inverse replaces forced actions; the caller's tensordict keeps the policy's."""
    env = make_env(kind, (2,), mode="null")
    td = env.reset()
    td = env.step(env.base_env.full_action_spec.rand().update(td))["next"]  # t = 1
    policy_td = stubborn_policy(env)(td.clone())
    inverted = env.transform.inv(policy_td)
    for rel in LEAVES[kind]:
        policy = leaf(policy_td, ACTION, rel)
        expected = torch.where(expand_cond(td[CAN_ACT], policy), policy, null_of(kind, rel))
        assert torch.equal(leaf(inverted, ACTION, rel), expected)
    assert not bool(td[CAN_ACT][:, 1].any())


# -------------------------------------------------------------------- state_dict
def test_state_dict_roundtrip():
    t = ActionFrequencyMask([1, 3], action_spec=Categorical(3))
    state = t.state_dict()
    assert set(state) == {"action_frequencies"}
    other = ActionFrequencyMask([1, 1], action_spec=Categorical(3))
    other.load_state_dict(state)
    steps = torch.arange(6).unsqueeze(-1)
    assert torch.equal(other.can_act(steps), t.can_act(steps))
    with pytest.raises(RuntimeError, match="size mismatch"):
        ActionFrequencyMask([1, 2, 3]).load_state_dict(state)
    env = make_env("discrete", (2,), mode="null")
    env_state = env.state_dict()
    assert any(key.endswith("action_frequencies") for key in env_state)
    env.load_state_dict(env_state)
    env = env.to("cpu")
    check_env_specs(env)


# ---------------------------------------------------------------- torchrl mock envs
@pytest.mark.parametrize("root_clock", [True, False])
def test_torchrl_nested_counting_env(root_clock):
    step_key = "step_count" if root_clock else ("data", "step_count")
    env = TransformedEnv(
        NestedCountingEnv(nested_dim=3, has_root_done=root_clock, batch_size=(2,)),
        Compose(
            StepCounter(),
            ActionFrequencyMask(
                [1, 2, 3],
                mode="null",
                null_action=0,
                action_key=("data", "action"),
                step_key=step_key,
            ),
        ),
    )
    if root_clock:
        # (with only nested done flags, torchrl's StepCounter alone already fails
        # check_env_specs on this env, so the per-agent clock is checked on rollouts)
        check_env_specs(env)
    rollout = env.rollout(4, break_when_any_done=False)
    step = rollout[step_key]
    step = step.squeeze(-1) if not root_clock else step
    can_act = torch.remainder(step, torch.tensor([1, 2, 3])) == 0
    assert torch.equal(rollout["data", "can_act"], can_act)
    executed = rollout["next", "data", "prev_action"]
    policy = rollout["data", "action"]
    assert torch.equal(executed, torch.where(can_act.unsqueeze(-1), policy, 0))


@pytest.mark.parametrize("mode", ["hold", "null"])
def test_movebox_stack(mode):
    movebox = pytest.importorskip("mtmarl.envs")
    env = TransformedEnv(
        movebox.MoveBoxEnv.hard(num_envs=3),
        Compose(
            StepCounter(),
            ActionFrequencyMask([2, 3], mode=mode, null_action=movebox.MoveBoxEnv.NULL),
        ),
    )
    check_env_specs(env)
    rollout = env.rollout(12, break_when_any_done=False)
    assert torch.equal(rollout[ACTION], rollout[("next", *PREV)])
