"""Tests for mtmarl.envs.movebox: dynamics, presets, optimal returns, aliasing, bad input, speed."""

from __future__ import annotations

import functools
import math
import re
from unittest.mock import patch

import pytest
import torch
from torchrl.envs.utils import check_env_specs

from mtmarl.envs import MoveBoxEnv, make_movebox_env
from mtmarl.transforms import PhaseEncoding, multi_timescale_period

UP, DOWN, NULL = MoveBoxEnv.UP, MoveBoxEnv.DOWN, MoveBoxEnv.NULL
DY = {UP: 1, DOWN: -1, NULL: 0}


# --------------------------------------------------------------------------- reference model
def ref_step(rows, actions, *, goal, height, move_reward=1.0, goal_reward=20.0):
    """Plain-Python Move Box step: rows = (y0, y1, box_y), actions = (a0, a1)."""
    y0, y1, box = rows
    d0, d1 = DY[actions[0]], DY[actions[1]]

    def clip(y):
        return min(max(y, 0), height - 1)

    push = y0 == box and y1 == box and d0 == d1
    new_box = clip(box + d0) if push else box
    new_rows = (clip(y0 + d0), clip(y1 + d1), new_box)
    at_goal = new_box == goal
    reward = move_reward * (abs(box - goal) - abs(new_box - goal)) + goal_reward * at_goal
    return new_rows, reward, at_goal


def rows_of(td):
    """(E, 3) rows (y0, y1, box_y) read from the global state (phase features may follow)."""
    return td["state"][:, 1 : MoveBoxEnv.STATE_DIM : 2]


def legal_actions(t, periods):
    """Per-agent legal actions at step t: all three on a decision step, else only NULL."""
    return [(UP, DOWN, NULL) if t % p == 0 else (NULL,) for p in periods]


def steps_to_goal(env: MoveBoxEnv):
    """Exact dynamic programme over (rows, t): fewest steps to the goal, inf if impossible."""
    goal, height, horizon, periods = env.goal_row, env.height, env.horizon, env.action_periods

    @functools.cache
    def value(rows, t):
        if t >= horizon:
            return math.inf
        best = math.inf
        for a0 in legal_actions(t, periods)[0]:
            for a1 in legal_actions(t, periods)[1]:
                nxt, _, done = ref_step(rows, (a0, a1), goal=goal, height=height)
                best = min(best, 1 if done else 1 + value(nxt, t + 1))
        return best

    def optimal_joint_actions(rows, t):
        v = value(rows, t)
        out = set()
        for a0 in legal_actions(t, periods)[0]:
            for a1 in legal_actions(t, periods)[1]:
                nxt, _, done = ref_step(rows, (a0, a1), goal=goal, height=height)
                if (1 if done else 1 + value(nxt, t + 1)) == v:
                    out.add((a0, a1))
        return out

    return value, optimal_joint_actions


def greedy_policy(rows: torch.Tensor, can_act: torch.Tensor, goal: int) -> torch.Tensor:
    """Hand-coded joint policy: line up with the box, then push together toward the goal.

    rows (E, 3) float, can_act (E, 2) bool -> actions (E, 2) int64.
    """
    box = rows[:, 2:]
    level = rows[:, :2] == box  # (E, 2)
    toward_goal = torch.where(box < goal, UP, DOWN).expand_as(level)
    toward_box = torch.where(rows[:, :2] < box, UP, DOWN)
    push = (level.all(-1, keepdim=True) & can_act.all(-1, keepdim=True)).expand_as(level)
    act = torch.where(push, toward_goal, torch.where(level, NULL, toward_box))
    return torch.where(can_act, act, torch.full_like(act, NULL))


def can_act_at(t: torch.Tensor, periods) -> torch.Tensor:
    """(E, 2) bool: agent i may act at step t (E,) when t % periods[i] == 0."""
    return torch.stack([t % p == 0 for p in periods], dim=-1)


def act(env: MoveBoxEnv, td, actions) -> None:
    td["agents", "action"] = torch.as_tensor(actions, dtype=torch.int64).expand(env.num_envs, 2)


# --------------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"num_envs": 0}, ValueError, "num_envs >= 1"),
        ({"num_envs": 2.0}, TypeError, "num_envs"),
        ({"height": 1}, ValueError, "height >= 2"),
        ({"agent_start_rows": (0, 5)}, ValueError, r"agent_start_rows\[1\] in \[0, 4\]"),
        ({"agent_start_rows": (0,)}, ValueError, "sequence of 2 ints"),
        ({"box_start_row": -1}, ValueError, "box_start_row"),
        ({"goal_row": 7}, ValueError, "goal_row"),
        ({"goal_row": 1}, ValueError, "box_start_row != goal_row"),
        ({"action_periods": (1, 0)}, ValueError, r"action_periods\[1\] >= 1"),
        ({"action_periods": (1, 2, 3)}, ValueError, "sequence of 2 ints"),
        ({"horizon": 0}, ValueError, "horizon >= 1"),
        ({"goal_reward": "20"}, TypeError, "goal_reward"),
        ({"random_start": 1}, TypeError, "random_start"),
        ({"validate_actions": 1}, TypeError, "validate_actions"),
        ({"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs, err, match):
    with pytest.raises(err, match=match):
        MoveBoxEnv(**kwargs)


def test_presets():
    easy, hard = MoveBoxEnv.easy(num_envs=2), MoveBoxEnv.hard(num_envs=2)
    assert easy.action_periods == (1, 2) and hard.action_periods == (2, 3)
    assert math.gcd(*hard.action_periods) == 1  # co-prime
    assert easy.horizon == hard.horizon == 20
    assert easy.batch_size == hard.batch_size == torch.Size([2])
    assert (MoveBoxEnv.UP, MoveBoxEnv.DOWN, MoveBoxEnv.NULL) == (0, 1, 2)


@pytest.mark.parametrize("num_envs", [1, 3])
@pytest.mark.parametrize("preset", ["easy", "hard"])
@pytest.mark.parametrize("random_start", [False, True])
def test_check_env_specs(num_envs, preset, random_start):
    env = getattr(MoveBoxEnv, preset)(num_envs=num_envs, random_start=random_start, seed=0)
    check_env_specs(env)
    td = env.reset()
    assert td["agents", "observation"].shape == (num_envs, 2, 4)
    assert td["agents", "observation"].dtype == torch.float32
    assert td["state"].shape == (num_envs, MoveBoxEnv.STATE_DIM)
    assert env.full_action_spec["agents", "action"].shape == (num_envs, 2)
    assert env.full_action_spec["agents", "action"].n == 3
    td = env.rand_step(td)
    assert td["next", "reward"].shape == (num_envs, 1)
    assert td["next", "reward"].dtype == torch.float32
    for key in ("done", "terminated", "truncated"):
        assert td["next", key].shape == (num_envs, 1) and td["next", key].dtype == torch.bool


def test_observation_and_state_layout():
    env = MoveBoxEnv(agent_start_rows=(3, 0), box_start_row=2, goal_row=4, height=6)
    td = env.reset()
    assert td["agents", "observation"][0].tolist() == [[0, 3, 1, 2], [2, 0, 1, 2]]
    assert td["state"][0].tolist() == [0, 3, 2, 0, 1, 2]


# --------------------------------------------------------------------------- exact dynamics
def scenario(rows, actions, *, goal=4, height=5):
    """One step from rows (y0, y1, box) -> (next rows, reward, terminated, truncated)."""
    env = MoveBoxEnv(agent_start_rows=rows[:2], box_start_row=rows[2], goal_row=goal, height=height)
    td = env.reset()
    act(env, td, actions)
    nxt = env.step(td)["next"]
    return (
        tuple(int(v) for v in rows_of(nxt)[0].tolist()),
        nxt["reward"].item(),
        nxt["terminated"].item(),
        nxt["truncated"].item(),
    )


@pytest.mark.parametrize(
    "rows, actions, expected_rows, expected_reward",
    [
        # joint push from both sides: box and both agents move up, +1
        ((1, 1, 1), (UP, UP), (2, 2, 2), 1.0),
        # joint push away from the goal: -1
        ((2, 2, 2), (DOWN, DOWN), (1, 1, 1), -1.0),
        # one agent pushes alone: it moves, the box does not
        ((1, 1, 1), (UP, NULL), (2, 1, 1), 0.0),
        ((1, 1, 1), (NULL, UP), (1, 2, 1), 0.0),
        # level but opposite moves: no push
        ((2, 2, 2), (UP, DOWN), (3, 1, 2), 0.0),
        # same move but one agent not level: no push
        ((0, 1, 1), (UP, UP), (1, 2, 1), 0.0),
        ((2, 1, 1), (UP, UP), (3, 2, 1), 0.0),
        # nobody moves
        ((1, 1, 1), (NULL, NULL), (1, 1, 1), 0.0),
        # walls: agents blocked at the bottom and the top
        ((0, 4, 2), (DOWN, UP), (0, 4, 2), 0.0),
        # walls: a joint push into the bottom wall moves nothing
        ((0, 0, 0), (DOWN, DOWN), (0, 0, 0), 0.0),
    ],
)
def test_hand_written_dynamics(rows, actions, expected_rows, expected_reward):
    new_rows, reward, terminated, truncated = scenario(rows, actions)
    assert new_rows == expected_rows
    assert reward == expected_reward
    assert not terminated and not truncated


def test_push_into_top_wall_is_blocked():
    # goal below the box: the box sits at the top wall and cannot move further up
    assert scenario((4, 4, 4), (UP, UP), goal=0) == ((4, 4, 4), 0.0, False, False)


def test_goal_ends_episode_with_bonus():
    new_rows, reward, terminated, truncated = scenario((3, 3, 3), (UP, UP))
    assert new_rows == (4, 4, 4)
    assert reward == 1.0 + 20.0
    assert terminated and not truncated
    # goal below the start works the same way
    assert scenario((1, 1, 1), (DOWN, DOWN), goal=0) == ((0, 0, 0), 21.0, True, False)


def test_custom_rewards():
    env = MoveBoxEnv(
        agent_start_rows=(3, 3), box_start_row=3, goal_row=4, move_reward=0.5, goal_reward=7.0
    )
    td = env.reset()
    act(env, td, (UP, UP))
    assert env.step(td)["next", "reward"].item() == 7.5


@pytest.mark.parametrize("horizon", [1, 3])
def test_truncation_at_horizon(horizon):
    env = MoveBoxEnv(num_envs=2, horizon=horizon)
    td = env.reset()
    for t in range(1, horizon + 1):
        act(env, td, (NULL, NULL))
        td = env.step(td)
        assert td["next", "truncated"].all().item() == (t == horizon)
        assert td["next", "done"].all().item() == (t == horizon)
        assert not td["next", "terminated"].any()
        td = td["next"]


def test_goal_on_last_step_is_terminated_not_truncated():
    env = MoveBoxEnv(agent_start_rows=(3, 3), box_start_row=3, horizon=1)
    td = env.reset()
    act(env, td, (UP, UP))
    nxt = env.step(td)["next"]
    assert nxt["terminated"].item() and not nxt["truncated"].item() and nxt["done"].item()


def assert_matches_reference(
    env: MoveBoxEnv, data, action_key=("agents", "action")
) -> tuple[int, int]:
    """Check every transition of a stacked (E, T) rollout against the plain-Python model.

    ``action_key`` names the executed actions. Returns the numbers of goal terminations and of
    truncations seen.
    """
    rows = rows_of(data.reshape(-1)).long().view(env.num_envs, -1, 3).tolist()
    next_rows = rows_of(data["next"].reshape(-1)).long().view(env.num_envs, -1, 3).tolist()
    actions = data[action_key].tolist()
    reward = data["next", "reward"].squeeze(-1).tolist()
    terminated = data["next", "terminated"].squeeze(-1).tolist()
    truncated = data["next", "truncated"].squeeze(-1).tolist()
    n_goal = n_trunc = 0
    for i in range(env.num_envs):
        t = 0
        for k in range(len(rows[i])):
            t += 1
            exp_rows, exp_reward, at_goal = ref_step(
                tuple(rows[i][k]), tuple(actions[i][k]), goal=env.goal_row, height=env.height
            )
            assert tuple(next_rows[i][k]) == exp_rows, (i, k)
            assert reward[i][k] == exp_reward, (i, k)
            assert terminated[i][k] == at_goal, (i, k)
            assert truncated[i][k] == (t >= env.horizon and not at_goal), (i, k)
            if terminated[i][k] or truncated[i][k]:
                n_goal += terminated[i][k]
                n_trunc += truncated[i][k]
                t = 0
                if k + 1 < len(rows[i]):  # reset away from the goal
                    assert rows[i][k + 1][2] != env.goal_row
    return n_goal, n_trunc


def random_rollout(env: MoveBoxEnv, seed: int, n: int = 30):
    """(E, n) rollout of a seeded uniform random policy through ``step_and_maybe_reset``."""
    gen = torch.Generator().manual_seed(seed)
    td = env.reset()
    out = []
    for _ in range(n):
        action = torch.randint(0, 3, (env.num_envs, 2), generator=gen)
        td["agents", "action"] = action.to(env.device)
        data, td = env.step_and_maybe_reset(td)
        out.append(data.clone())
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("preset", ["easy", "hard"])
def test_matches_reference_model_on_random_rollouts(preset):
    """Every transition of many auto-resetting random episodes equals the plain-Python model."""
    env = getattr(MoveBoxEnv, preset)(num_envs=64, random_start=True, seed=3)
    n_goal, n_trunc = assert_matches_reference(env, random_rollout(env, seed=0, n=60))
    assert n_goal > 0 and n_trunc > 0  # both kinds of episode end were exercised


# --------------------------------------------------------------------------- optimal policy
@pytest.mark.parametrize("preset, n_steps", [("easy", 7), ("hard", 19)])
def test_shortest_solution_length(preset, n_steps):
    """The paper's 7 (easy) and 19 (hard) steps are the exact optimum under the periods."""
    env = getattr(MoveBoxEnv, preset)()
    value, _ = steps_to_goal(env)
    start = (*env.agent_start_rows, env.box_start_row)
    assert value(start, 0) == n_steps
    assert n_steps <= env.horizon


@pytest.mark.parametrize("preset, n_steps", [("easy", 7), ("hard", 19)])
def test_hand_coded_optimal_policy_returns_23(preset, n_steps):
    env = getattr(MoveBoxEnv, preset)(num_envs=3)
    td = env.reset()
    total = torch.zeros(env.num_envs)
    for step in range(1, env.horizon + 1):
        t = torch.full((env.num_envs,), step - 1)
        td["agents", "action"] = greedy_policy(
            rows_of(td), can_act_at(t, env.action_periods), env.goal_row
        )
        td = env.step(td)
        total += td["next", "reward"].squeeze(-1)
        if td["next", "done"].all():
            break
        td = td["next"]
    assert step == n_steps
    assert td["next", "terminated"].all() and not td["next", "truncated"].any()
    assert total.tolist() == [23.0] * env.num_envs  # 3 moves toward the goal + 20


@pytest.mark.parametrize("preset", ["easy", "hard"])
def test_observation_aliasing(preset):
    """Same fast-agent observation at two steps of the optimal run, disjoint optimal actions."""
    env = getattr(MoveBoxEnv, preset)()
    _, optimal = steps_to_goal(env)
    td = env.reset()
    seen = {}  # fast observation -> {step: set of optimal fast actions}
    for step in range(env.horizon):
        rows = tuple(int(v) for v in rows_of(td)[0].tolist())
        joint = optimal(rows, step)
        obs = tuple(td["agents", "observation"][0, 0].tolist())
        seen.setdefault(obs, {})[step] = {a0 for a0, _ in joint}
        td["agents", "action"] = torch.tensor([min(joint)])  # any optimal joint action
        td = env.step(td)
        if td["next", "done"].item():
            break
        td = td["next"]
    aliased = [
        (obs, by_step)
        for obs, by_step in seen.items()
        if len(by_step) > 1
        and any(not (a & b) for a in by_step.values() for b in by_step.values() if a is not b)
    ]
    assert aliased, seen
    # the level fast agent must wait when the slow one cannot act and push when it can
    obs, by_step = aliased[0]
    assert obs[1] == obs[3]  # level with the box
    assert {NULL} in by_step.values() and {UP} in by_step.values()


def test_pushing_without_the_slow_agent_breaks_alignment():
    """Easy, t = 1: the fast agent's push (optimal at t = 2) fails and loses alignment."""
    eager, patient = MoveBoxEnv.easy(), MoveBoxEnv.easy()
    tds = []
    for env in (eager, patient):
        td = env.reset()
        act(env, td, (UP, NULL))
        tds.append(env.step(td)["next"])  # t = 1: fast level with the box
    td_eager, td_patient = tds
    obs_t1 = td_patient["agents", "observation"][0, 0].clone()
    assert obs_t1[1] == obs_t1[3]

    act(eager, td_eager, (UP, NULL))  # pushes while the slow agent may not act
    nxt = eager.step(td_eager)["next"]
    assert rows_of(nxt)[0].tolist() == [2, 1, 1] and nxt["reward"].item() == 0.0

    act(patient, td_patient, (NULL, NULL))  # waits
    td_patient = patient.step(td_patient)["next"]  # t = 2: identical fast observation
    assert torch.equal(td_patient["agents", "observation"][0, 0], obs_t1)
    act(patient, td_patient, (UP, UP))
    assert patient.step(td_patient)["next", "reward"].item() == 1.0


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [3, -1, 7])
def test_out_of_range_action_raises_and_changes_nothing(bad):
    env = MoveBoxEnv.easy(num_envs=4)
    td = env.reset()
    actions = torch.full((4, 2), NULL)
    actions[2, 1] = bad
    td["agents", "action"] = actions
    state = td["state"].clone()
    with pytest.raises(ValueError, match=rf"actions in \[0, 2\].*got \[{bad}\]"):
        env.step(td)
    td["agents", "action"] = torch.full((4, 2), NULL)
    assert torch.equal(env.step(td)["next", "state"], state)  # nothing moved


def test_without_validation_the_step_has_no_host_sync():
    env = MoveBoxEnv(num_envs=4, validate_actions=False)
    td = env.reset()
    td["agents", "action"] = torch.full((4, 2), UP)
    with patch.object(torch.Tensor, "tolist", side_effect=AssertionError("host sync")):
        out = env.step(td)["next"]
    assert out["reward"].shape == (4, 1)
    with pytest.raises(AssertionError, match="host sync"):  # the check does sync
        with patch.object(torch.Tensor, "tolist", side_effect=AssertionError("host sync")):
            MoveBoxEnv(num_envs=4).step(td)


@pytest.mark.parametrize("shape", [(4,), (4, 3), (4, 2, 1)])
def test_wrong_action_shape_raises(shape):
    env = MoveBoxEnv.easy(num_envs=4)
    td = env.reset().exclude("agents").set(("agents", "action"), torch.full(shape, NULL))
    expected = re.escape(f"of shape (4, 2) (num_envs, n_agents), got {shape}")
    with pytest.raises(ValueError, match=expected):
        env.step(td)


def test_float_actions_raise():
    env = MoveBoxEnv.easy(num_envs=2)
    td = env.reset().exclude("agents").set(("agents", "action"), torch.full((2, 2), 0.5))
    with pytest.raises(TypeError, match="integer actions"):
        env.step(td)


# --------------------------------------------------------------------------- resets, seeding
def test_partial_reset_only_resets_flagged_envs():
    env = MoveBoxEnv.easy(num_envs=3)
    td = env.reset()
    act(env, td, (UP, UP))  # envs move: fast level, slow above the box
    td = env.step(td)["next"]
    moved = rows_of(td).clone()
    td["_reset"] = torch.tensor([[False], [True], [False]])
    td = env.reset(td)
    rows = rows_of(td)
    start = torch.tensor([0.0, 1.0, 1.0])
    assert torch.equal(rows[1], start)
    assert torch.equal(rows[0], moved[0]) and torch.equal(rows[2], moved[2])
    assert not torch.equal(moved[0], start)
    # the step counters were kept for envs 0 and 2: they truncate one step before env 1
    for _ in range(env.horizon - 1):
        act(env, td, (NULL, NULL))
        td = env.step(td)["next"]
    assert td["truncated"].squeeze(-1).tolist() == [True, False, True]


def test_step_and_maybe_reset_resets_finished_envs_only():
    env = MoveBoxEnv(num_envs=2, agent_start_rows=(3, 3), box_start_row=3, goal_row=4)
    td = env.reset()
    td["agents", "action"] = torch.tensor([[UP, UP], [NULL, NULL]])
    data, td = env.step_and_maybe_reset(td)
    assert data["next", "done"].squeeze(-1).tolist() == [True, False]
    assert rows_of(data["next"]).tolist() == [[4, 4, 4], [3, 3, 3]]
    assert rows_of(td).tolist() == [[3, 3, 3], [3, 3, 3]]  # env 0 back at its start
    assert not td["done"].any()


def test_partial_step_only_advances_flagged_envs():
    env = MoveBoxEnv.easy(num_envs=2)
    td = env.reset()
    act(env, td, (UP, NULL))
    td["_step"] = torch.tensor([True, False])
    td = env.step(td)["next"]
    assert rows_of(td).tolist() == [[1, 1, 1], [0, 1, 1]]
    # env 1 did not count the skipped step: it truncates one step after env 0
    for _ in range(env.horizon - 1):
        act(env, td, (NULL, NULL))
        td = env.step(td)["next"]
    assert td["truncated"].squeeze(-1).tolist() == [True, False]


def test_seeded_rollouts_are_reproducible():
    a = random_rollout(MoveBoxEnv.easy(num_envs=16, random_start=True, seed=7), seed=1)
    b = random_rollout(MoveBoxEnv.easy(num_envs=16, random_start=True, seed=7), seed=1)
    c = random_rollout(MoveBoxEnv.easy(num_envs=16, random_start=True, seed=8), seed=1)
    assert (a == b).all()
    assert not torch.equal(a["state"], c["state"])
    # set_seed restarts the generator
    env = MoveBoxEnv.easy(num_envs=16, random_start=True, seed=0)
    env.set_seed(7)
    assert (random_rollout(env, seed=1) == a).all()


def test_unseeded_env_follows_torch_manual_seed():
    torch.manual_seed(123)
    a = MoveBoxEnv.easy(num_envs=16, random_start=True).reset()["state"]
    torch.manual_seed(123)
    b = MoveBoxEnv.easy(num_envs=16, random_start=True).reset()["state"]
    assert torch.equal(a, b)


def test_random_start_never_starts_at_goal_and_covers_rows():
    env = MoveBoxEnv.easy(num_envs=2000, random_start=True, seed=0)
    rows = rows_of(env.reset()).long()
    assert (rows[:, 2] != env.goal_row).all()
    assert set(rows[:, 2].tolist()) == set(range(env.height)) - {env.goal_row}
    assert set(rows[:, :2].flatten().tolist()) == set(range(env.height))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("random_start", [False, True])
def test_cuda(random_start):
    env = MoveBoxEnv.hard(num_envs=32, random_start=random_start, seed=5, device="cuda")
    check_env_specs(env)
    data = random_rollout(env, seed=2, n=40)
    assert data.device.type == "cuda" and data["next", "state"].device.type == "cuda"
    n_goal, n_trunc = assert_matches_reference(env, data.cpu())
    assert n_trunc > 0
    env.set_seed(5)
    assert (random_rollout(env, seed=2, n=40) == data).all()  # reproducible on the device
    # an env built on the CPU and moved behaves the same, state and generator included
    moved = MoveBoxEnv.hard(num_envs=32, random_start=random_start, seed=5).to("cuda")
    assert (random_rollout(moved, seed=2, n=40) == data).all()
    stack = make_movebox_env("hard", phase_mode="onehot", num_envs=8).to("cuda")
    check_env_specs(stack)


# --------------------------------------------------------------------------- make_movebox_env
@pytest.mark.parametrize("difficulty", ["easy", "hard"])
@pytest.mark.parametrize("phase_mode", [None, "phase", "onehot", "sincos"])
def test_make_movebox_env_specs(difficulty, phase_mode):
    env = make_movebox_env(difficulty, phase_mode=phase_mode, num_envs=3, seed=0)
    check_env_specs(env)
    td = env.reset()
    period = multi_timescale_period(env.base_env.action_periods)
    assert period == {"easy": 2, "hard": 6}[difficulty]
    assert td["step_count"].shape == (3, 1)
    assert td["agents", "can_act"].shape == (3, 2)
    assert td["agents", "action_mask"].shape == (3, 2, 3)
    n_obs = td["agents", "observation"].shape[-1]
    if phase_mode in (None, "phase"):
        assert n_obs == 4
    else:
        assert n_obs == 4 + PhaseEncoding(period, mode=phase_mode).encoding_dim
    assert ("phase" in td.keys()) == (phase_mode == "phase")


def test_make_movebox_env_bad_difficulty():
    with pytest.raises(ValueError, match=r"difficulty in \('easy', 'hard'\), got 'medium'"):
        make_movebox_env("medium")


@pytest.mark.parametrize("difficulty, n_steps", [("easy", 7), ("hard", 19)])
def test_stack_optimal_policy_returns_23(difficulty, n_steps):
    """The hand-coded policy, told only who may act (can_act), solves both presets."""
    env = make_movebox_env(difficulty, num_envs=2)
    td = env.reset()
    total = torch.zeros(2)
    n_taken = 0
    while n_taken < env.base_env.horizon:
        td["agents", "action"] = greedy_policy(
            rows_of(td), td["agents", "can_act"], env.base_env.goal_row
        )
        td = env.step(td)
        n_taken += 1
        total += td["next", "reward"].squeeze(-1)
        if td["next", "done"].all():
            break
        td = td["next"]
    assert n_taken == n_steps
    assert td["next", "terminated"].all()
    assert total.tolist() == [23.0, 23.0]


def test_stack_enforces_the_slow_agents_period_and_env_alone_does_not():
    """The multi-timescale rule lives in ActionFrequencyMask, not in MoveBoxEnv."""
    stacked, plain = make_movebox_env("easy"), MoveBoxEnv.easy()
    td_s, td_p = stacked.reset(), plain.reset()
    for env, td in ((stacked, td_s), (plain, td_p)):
        act(env, td, (NULL, NULL))
    td_s, td_p = stacked.step(td_s)["next"], plain.step(td_p)["next"]  # t = 1
    assert td_s["agents", "can_act"].tolist() == [[True, False]]
    for env, td in ((stacked, td_s), (plain, td_p)):
        act(env, td, (NULL, UP))  # the slow agent tries to move at t = 1
    out_s, out_p = stacked.step(td_s)["next"], plain.step(td_p)["next"]
    assert rows_of(out_s)[0].tolist() == [0, 1, 1]  # forced to NULL
    assert out_s["agents", "prev_action"].tolist() == [[NULL, NULL]]
    assert rows_of(out_p)[0].tolist() == [0, 2, 1]  # single-timescale: it moves


def test_stack_rand_action_step_and_maybe_reset():
    """The collector's path: random actions, auto-resets, step_count and can_act in step."""
    env = make_movebox_env("hard", phase_mode="onehot", num_envs=16, seed=0)
    torch.manual_seed(0)
    td = env.reset()
    steps = []
    for _ in range(45):
        td = env.rand_action(td)
        data, td = env.step_and_maybe_reset(td)
        steps.append(data)
    data = torch.stack(steps, dim=1)  # (16, 45)
    t = data["step_count"].squeeze(-1)
    assert torch.equal(data["agents", "can_act"], can_act_at(t, (2, 3)))
    # the slow agent only ever executed NULL off its decision steps
    executed = data["next", "agents", "prev_action"]
    assert (executed[..., 1][t % 3 != 0] == NULL).all()
    assert (executed[..., 0][t % 2 != 0] == NULL).all()
    # the env's own horizon ends episodes and step_count restarts with them
    done = data["next", "done"].squeeze(-1)
    assert done.any()
    assert (t[:, 1:][done[:, :-1]] == 0).all()
    assert (t <= env.base_env.horizon - 1).all()
    executed_key = ("next", "agents", "prev_action")
    n_goal, n_trunc = assert_matches_reference(env.base_env, data, executed_key)
    assert n_trunc > 0
