"""Tests for mtmarl.envs.building.reference: the perfect-foresight planner and its replay."""

from __future__ import annotations

import pytest
import torch

from mtmarl.envs.building import (
    BuildingEnv,
    OpenLoopPolicy,
    RuleBasedPolicy,
    make_building_env,
    plan_open_loop,
)
from mtmarl.envs.building.reference import _STATE


@pytest.fixture(scope="module")
def planned():
    """A rule-based rollout, and a plan from the same start states initialised at it."""
    env = make_building_env(num_envs=8, seed=3, horizon=15)
    rule = env.rollout(15, RuleBasedPolicy(env.base_env))
    env = make_building_env(num_envs=8, seed=3, horizon=15)
    td0 = env.reset()
    before = {name: getattr(env.base_env, name).clone() for name in _STATE}
    plan = plan_open_loop(
        env.base_env, iterations=60, initial_actions=rule["agents", "action"][..., 0]
    )
    after = {name: getattr(env.base_env, name) for name in _STATE}
    return env, td0, rule, plan, before, after


def test_planning_leaves_the_env_state_untouched(planned):
    _, _, _, _, before, after = planned
    for name, value in before.items():
        assert torch.equal(value, after[name]), name


def test_initial_return_is_the_rule_based_return(planned):
    _, _, rule, plan, _, _ = planned
    torch.testing.assert_close(plan.initial_returns, rule["next", "reward"].sum((-2, -1)))


def test_plan_improves_on_its_initialisation(planned):
    _, _, _, plan, _, _ = planned
    assert (plan.returns >= plan.initial_returns).all()
    assert plan.returns.mean() > plan.initial_returns.mean() + 1.0


def test_replay_through_the_transformed_env_executes_the_plan(planned):
    env, td0, _, plan, _, _ = planned
    replay = env.rollout(15, OpenLoopPolicy(plan.actions), auto_reset=False, tensordict=td0.clone())
    torch.testing.assert_close(replay["next", "reward"].sum((-2, -1)), plan.returns)
    # the hold transform changed nothing: the plan already holds the slow agents' actions
    executed = replay["next", "agents", "prev_action"][..., 0]
    torch.testing.assert_close(executed, plan.actions.clamp(-1, 1))


def test_slow_agents_hold_their_actions_over_five_minutes(planned):
    _, _, _, plan, _, _ = planned
    slow = plan.actions[..., :6]
    for start in range(0, 15, 5):
        block = slow[:, start : start + 5]
        assert torch.equal(block, block[:, :1].expand_as(block))
    assert plan.actions.abs().max() <= 1.0


def test_zero_iterations_return_the_initial_plan():
    env = BuildingEnv(num_envs=2, seed=0, horizon=5)
    env.reset()
    init = torch.full((2, 5, 7), 0.25)
    plan = plan_open_loop(env, iterations=0, initial_actions=init)
    torch.testing.assert_close(plan.actions, init)
    torch.testing.assert_close(plan.returns, plan.initial_returns)


def test_steps_plans_a_prefix():
    env = BuildingEnv(num_envs=2, seed=0, horizon=20)
    env.reset()
    assert plan_open_loop(env, steps=7, iterations=2).actions.shape == (2, 7, 7)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"iterations": -1}, ValueError, "iterations"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 31}, ValueError, "steps"),
        ({"initial_actions": torch.zeros(2, 30, 6)}, ValueError, r"\(2, 30, 7\)"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    env = BuildingEnv(num_envs=2, seed=0)
    env.reset()
    with pytest.raises(error, match=match):
        plan_open_loop(env, **kwargs)


def test_needs_the_base_env_at_a_decision_step():
    env = make_building_env(num_envs=2, seed=0)
    with pytest.raises(TypeError, match="base_env"):
        plan_open_loop(env)
    td = env.reset()
    env.step(env.rand_action(td))
    with pytest.raises(ValueError, match="decision step"):
        plan_open_loop(env.base_env)


@pytest.mark.parametrize("batch", [(), (2,), (3, 2)])
def test_open_loop_policy_batch_shapes(batch):
    n = max(1, int(torch.Size(batch).numel()))
    actions = torch.rand(n, 4, 7)
    policy = OpenLoopPolicy(actions)
    from tensordict import TensorDict

    step = torch.arange(n).remainder(4).reshape(*batch, 1) if batch else torch.tensor([2])
    td = TensorDict({"step_count": step}, batch)
    out = policy(td)["agents", "action"]
    assert out.shape == (*batch, 7, 1)
    flat_step = step.reshape(-1)
    expected = actions[torch.arange(n), flat_step]
    torch.testing.assert_close(out.reshape(n, 7), expected)


def test_open_loop_policy_errors():
    from tensordict import TensorDict

    with pytest.raises(ValueError, match=r"\(E, T, N\)"):
        OpenLoopPolicy(torch.zeros(4, 7))
    policy = OpenLoopPolicy(torch.zeros(1, 3, 7))
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        policy(TensorDict({"step_count": torch.tensor([[3]])}, [1]))
