"""Move Box: the two-agent, two-timescale gridworld of seed 004 (section V-A).

Two agents stand in the side columns of a vertical corridor, the box in the
middle column between them. Each step every agent chooses ``UP``, ``DOWN`` or
``NULL``. The box moves one row only when both agents are level with it (same
row) and both choose the same move; the agents then move with it. An agent that
is not part of such a joint push simply moves in its own column (walls block
it). The team gets ``+1`` for every row the box moves toward the goal (``-1``
for a row away from it) and ``+20`` when the box reaches the goal row, which
ends the episode.

The multi-timescale rule (the slow agent may only act every ``p`` steps, null in
between) is *not* part of the environment: compose
:class:`~mtmarl.transforms.ActionFrequencyMask` on top of it, as
:func:`make_movebox_env` does. Without the transform the same environment runs
single-timescale.

Grid coordinates (``x`` column, ``y`` row)::

    y = height - 1   .  .  .        columns: x = 0  agent 0 ("fast", red)
      ...            .  .  .                 x = 1  the box
    y = goal_row     .  G  .                 x = 2  agent 1 ("slow", blue)
      ...            .  .  .
    y = 0            .  .  .        UP is y + 1, DOWN is y - 1

Shape glossary: ``E`` = ``num_envs`` (the env's ``batch_size`` is ``(E,)``),
``N = 2`` agents.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite
from torchrl.envs import Compose, StepCounter, TransformedEnv

from mtmarl._checks import bounded_int
from mtmarl.envs._batched import BatchedTorchEnv, action_entry, check_action_layout
from mtmarl.transforms import ActionFrequencyMask, PhaseEncoding, multi_timescale_period

__all__ = ["MoveBoxEnv", "make_movebox_env"]

_DIFFICULTIES = ("easy", "hard")
_ACTION_KEY = ("agents", "action")


def _check_int(value: object, name: str, *, low: int, who: str = "MoveBoxEnv") -> int:
    return bounded_int(value, name, low=low, who=who)


def _check_row(value: object, name: str, height: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"MoveBoxEnv expected {name} to be an int row in [0, {height - 1}], "
            f"got {type(value).__name__} {value!r}"
        )
    if not 0 <= value < height:
        raise ValueError(
            f"MoveBoxEnv expected {name} in [0, {height - 1}] (height={height}), got {value}"
        )
    return value


def _check_pair(value: object, name: str) -> tuple[object, object]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(
            f"MoveBoxEnv expected {name} to be a sequence of 2 ints (one per agent), got {value!r}"
        )
    return value[0], value[1]


class MoveBoxEnv(BatchedTorchEnv):
    """Batched, pure-torch Move Box environment (seed 004, section V-A).

    ``num_envs`` independent gridworlds are stepped together as one tensor
    program (no Python loop over environments), on CPU or CUDA.

    **Reconstruction of the paper's numbers.** The paper states: 2 agents,
    actions up / down / null, 4-D observations (own position, box position),
    ``+1`` per box move toward the goal and ``+20`` at the goal, at most 20
    steps, a fast agent acting every step and a slow one every 2 steps (easy);
    the hard version uses larger co-prime periods whose values were lost in
    extraction, and "the easy version can be solved with 7 actions while the
    hard version requires 19". Reading "actions" as *time steps of the shortest
    solution*, one layout explains both numbers with the same 20-step horizon:

    * a 5-row corridor, box starting on row 1, goal on row 4 (3 box moves, so the
      best return is ``3 * 1 + 20 = 23``, the paper's solved return in Table I);
      the slow agent starts level with the box (row 1), the fast agent one row
      below it (row 0);
    * easy, periods ``(1, 2)``: the fast agent steps up at ``t = 0``; joint
      pushes are possible at even ``t``, so the box moves at ``t = 2, 4, 6`` and
      the episode ends after **7** steps;
    * hard, periods ``(2, 3)`` (co-prime, ``L = 6``): the fast agent steps up at
      ``t = 0``; both agents act together only at ``t = 0 mod 6``, so the pushes
      happen at ``t = 6, 12, 18`` and the episode ends after **19** steps -- one
      step of slack in the 20-step horizon, which is what makes hard exploration
      hard. ``L = 6`` lies between the PFNN periods 4 and 15 that the paper
      compares and calls smaller / larger than ``L``; Table I's hard return of
      12.0 at 50 % success is ``(23 + 1) / 2``: solved runs get the full 23,
      the others the 1 of the time-unaware baseline. Periods ``(3, 5)`` were
      rejected: joint pushes only at ``t = 0 mod 15`` would need 46 steps.

    (Decision steps are taken to be ``t = 0 mod p`` with ``t`` counted from the
    reset, the convention of :class:`~mtmarl.transforms.ActionFrequencyMask`.)
    The reward for a box move *away* from the goal is ``-1`` (not stated in the
    paper): with it the move reward is the potential difference of the box's
    distance to the goal, so it cannot be farmed by pushing back and forth and
    does not change which policies are optimal.

    **Observation aliasing.** On easy, after the fast agent has stepped up (t = 1)
    its observation is ``(0, 1, 1, 1)`` at both ``t = 1`` and ``t = 2``; the
    shortest solution waits at ``t = 1`` (the slow agent cannot act) and pushes at
    ``t = 2``. A time-unaware fast policy cannot do both.

    **Episodes.** An episode terminates when the box reaches ``goal_row``
    (``terminated``) and is truncated after ``horizon`` steps (``truncated``); the
    environment counts steps itself (a ``(num_envs,)`` counter), so the horizon
    holds with or without a :class:`~torchrl.envs.StepCounter`. Partial resets
    (``"_reset"`` of shape ``(E, 1)``, as sent by ``step_and_maybe_reset``) reset
    only the flagged environments; partial steps (``"_step"``) advance only the
    flagged ones.

    Keys (``E = num_envs``, ``N = 2``):

    * in: ``("agents", "action")`` -- ``(E, N)`` int64 in ``{UP, DOWN, NULL}``;
      a missing entry raises ``KeyError``, a wrong shape ``ValueError``, a dtype other
      than int64 ``TypeError`` and a value outside ``[0, 2]`` ``ValueError``, all naming
      the key and before the state changes (nothing is clamped or cast).
    * out: ``("agents", "observation")`` -- ``(E, N, 4)`` float32, raw grid
      coordinates ``(own x, own y, box x, box y)`` as floats (not normalised;
      ``x`` in ``[0, 2]``, ``y`` in ``[0, height - 1]``);
      ``"state"`` -- ``(E, 6)`` float32, the Markov state
      ``(x0, y0, x1, y1, box x, box y)`` for centralised critics (time is not
      part of it: add a :class:`~torchrl.envs.StepCounter` for that);
      ``"reward"`` -- ``(E, 1)`` float32 team reward;
      ``"done"``, ``"terminated"``, ``"truncated"`` -- ``(E, 1)`` bool.

    Keyword Args:
        num_envs (int): number of environments stepped together, the env's
            ``batch_size`` is ``(num_envs,)``. Defaults to ``1``.
        height (int): number of rows of the corridor (``>= 2``). Defaults to ``5``.
        agent_start_rows (tuple[int, int]): start rows of agent 0 (fast, left)
            and agent 1 (slow, right). Defaults to ``(0, 1)``.
        box_start_row (int): start row of the box. Defaults to ``1``.
        goal_row (int): row the box must reach (must differ from
            ``box_start_row``). Defaults to ``4``.
        action_periods (tuple[int, int]): every how many steps agent 0 and agent 1
            may act. Stored for :func:`make_movebox_env` and documentation; the
            environment itself does not enforce them. Defaults to ``(1, 2)``.
        horizon (int): episode length limit in steps. Defaults to ``20``.
        move_reward (float): reward per row the box moves toward the goal (its
            negative per row away). Defaults to ``1.0``.
        goal_reward (float): reward when the box reaches the goal. Defaults to
            ``20.0``.
        random_start (bool): if ``True``, every reset draws the agents' rows
            uniformly from ``[0, height - 1]`` and the box's row uniformly from
            the rows other than ``goal_row`` (with the env's seeded generator);
            if ``False`` the start rows above are used. Defaults to ``False``.
        validate_actions (bool): check every step that the actions are in
            ``{0, 1, 2}``, raising ``ValueError`` (one host synchronisation per step;
            free on CPU, a stall on CUDA). ``False`` keeps the step loop free of host
            syncs; out-of-range actions are then undefined behaviour. The key's presence,
            the shape and the dtype (int64) are always checked. Defaults to ``True``.
        device (torch.device | str | None): device of all tensors. Defaults to
            ``None`` (CPU).
        seed (int | None): seed of the env's random generator (only used with
            ``random_start``); ``None`` draws one from torch's global generator,
            so ``torch.manual_seed`` makes it reproducible. Defaults to ``None``.

    Examples:
        >>> env = MoveBoxEnv.easy(num_envs=3)
        >>> td = env.reset()
        >>> td["agents", "observation"][0]
        tensor([[0., 0., 1., 1.],
                [2., 1., 1., 1.]])
        >>> td["agents", "action"] = torch.tensor([[MoveBoxEnv.UP, MoveBoxEnv.NULL]] * 3)
        >>> td = env.step(td)
        >>> td["next", "agents", "observation"][0, 0].tolist()  # fast agent now level
        [0.0, 1.0, 1.0, 1.0]
        >>> td["next", "state"].shape, td["next", "reward"].shape
        (torch.Size([3, 6]), torch.Size([3, 1]))
    """

    UP: int = 0
    """Action index: move one row up (``y + 1``)."""
    DOWN: int = 1
    """Action index: move one row down (``y - 1``)."""
    NULL: int = 2
    """Action index: do nothing (the only legal action of an agent between its decision steps)."""
    N_ACTIONS: int = 3
    """Number of discrete actions per agent."""
    N_AGENTS: int = 2
    """Number of agents (0: fast, left column; 1: slow, right column)."""
    AGENT_COLUMNS: tuple[int, int] = (0, 2)
    """Columns (``x``) of agent 0 and agent 1."""
    BOX_COLUMN: int = 1
    """Column (``x``) of the box."""
    STATE_DIM: int = 6
    """Size of the global ``"state"``: ``(x0, y0, x1, y1, box x, box y)``."""

    batch_locked = True

    def __init__(
        self,
        *,
        num_envs: int = 1,
        height: int = 5,
        agent_start_rows: Sequence[int] = (0, 1),
        box_start_row: int = 1,
        goal_row: int = 4,
        action_periods: Sequence[int] = (1, 2),
        horizon: int = 20,
        move_reward: float = 1.0,
        goal_reward: float = 20.0,
        random_start: bool = False,
        validate_actions: bool = True,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ) -> None:
        num_envs = _check_int(num_envs, "num_envs", low=1)
        height = _check_int(height, "height", low=2)
        starts = tuple(
            _check_row(r, f"agent_start_rows[{i}]", height)
            for i, r in enumerate(_check_pair(agent_start_rows, "agent_start_rows"))
        )
        box_start_row = _check_row(box_start_row, "box_start_row", height)
        goal_row = _check_row(goal_row, "goal_row", height)
        if box_start_row == goal_row:
            raise ValueError(
                f"MoveBoxEnv expected box_start_row != goal_row (the box would start at the "
                f"goal), got both = {goal_row}"
            )
        periods = tuple(
            _check_int(p, f"action_periods[{i}]", low=1)
            for i, p in enumerate(_check_pair(action_periods, "action_periods"))
        )
        horizon = _check_int(horizon, "horizon", low=1)
        for name, value in (("move_reward", move_reward), ("goal_reward", goal_reward)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(
                    f"MoveBoxEnv expected {name} to be a float, got {type(value).__name__} "
                    f"{value!r}"
                )
        if not isinstance(random_start, bool):
            raise TypeError(
                f"MoveBoxEnv expected random_start to be a bool, got "
                f"{type(random_start).__name__} {random_start!r}"
            )
        if not isinstance(validate_actions, bool):
            raise TypeError(
                f"MoveBoxEnv expected validate_actions to be a bool, got "
                f"{type(validate_actions).__name__} {validate_actions!r}"
            )
        super().__init__(num_envs=num_envs, device=device, seed=seed, who="MoveBoxEnv")
        device = self.device
        self.height = height
        self.agent_start_rows = starts
        self.box_start_row = box_start_row
        self.goal_row = goal_row
        self.action_periods = periods
        self.horizon = horizon
        self.move_reward = float(move_reward)
        self.goal_reward = float(goal_reward)
        self.random_start = random_start
        self.validate_actions = validate_actions

        # constants (float32: small integers are exact)
        self._dy = torch.tensor([1.0, -1.0, 0.0], device=device)  # row change of UP, DOWN, NULL
        # columns of (agent 0, agent 1, box), broadcast over envs
        self._xs = torch.tensor(
            [float(self.AGENT_COLUMNS[0]), float(self.AGENT_COLUMNS[1]), float(self.BOX_COLUMN)],
            device=device,
        ).expand(num_envs, 3)
        # state (x0, y0, x1, y1, bx, by) -> observation rows (own x, own y, bx, by)
        self._obs_index = torch.tensor([0, 1, 4, 5, 2, 3, 4, 5], device=device)
        self._start_rows = torch.tensor(
            [float(starts[0]), float(starts[1]), float(box_start_row)], device=device
        ).expand(num_envs, 3)
        self._n_start_rows = torch.tensor(
            [float(height), float(height), float(height - 1)], device=device
        )
        self._goal = float(goal_row)
        self._top = float(height - 1)
        self._false = torch.zeros((num_envs, 1), dtype=torch.bool, device=device)

        # the whole Markov state: rows (E, 3) of (agent 0, agent 1, box), steps since reset (E,)
        self._rows = self._start_rows.clone()
        self._t = torch.zeros((num_envs,), dtype=torch.int64, device=device)

        self._generator = torch.Generator(device=device)
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        self.set_seed(seed)
        self._make_specs()

    # ------------------------------------------------------------------ presets
    @classmethod
    def easy(
        cls,
        *,
        num_envs: int = 1,
        random_start: bool = False,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ) -> MoveBoxEnv:
        """The easy task: periods ``(1, 2)``, horizon 20, shortest solution 7 steps.

        Layout: height 5, agents start on rows ``(0, 1)``, box on row 1, goal row 4
        (see the class docstring for the reasoning).

        Keyword Args:
            num_envs (int): number of environments. Defaults to ``1``.
            random_start (bool): draw start rows at every reset. Defaults to ``False``.
            device (torch.device | str | None): device. Defaults to ``None`` (CPU).
            seed (int | None): seed of the env's generator. Defaults to ``None``.

        Examples:
            >>> env = MoveBoxEnv.easy(num_envs=2)
            >>> env.action_periods, env.horizon, env.batch_size
            ((1, 2), 20, torch.Size([2]))
        """
        return cls(
            num_envs=num_envs,
            action_periods=(1, 2),
            horizon=20,
            random_start=random_start,
            device=device,
            seed=seed,
        )

    @classmethod
    def hard(
        cls,
        *,
        num_envs: int = 1,
        random_start: bool = False,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ) -> MoveBoxEnv:
        """The hard task: co-prime periods ``(2, 3)``, horizon 20, shortest solution 19 steps.

        Same layout as :meth:`easy`; only the action periods change (see the class
        docstring for why ``(2, 3)`` with the unchanged 20-step horizon).

        Keyword Args:
            num_envs (int): number of environments. Defaults to ``1``.
            random_start (bool): draw start rows at every reset. Defaults to ``False``.
            device (torch.device | str | None): device. Defaults to ``None`` (CPU).
            seed (int | None): seed of the env's generator. Defaults to ``None``.

        Examples:
            >>> env = MoveBoxEnv.hard()
            >>> env.action_periods, env.horizon
            ((2, 3), 20)
        """
        return cls(
            num_envs=num_envs,
            action_periods=(2, 3),
            horizon=20,
            random_start=random_start,
            device=device,
            seed=seed,
        )

    # -------------------------------------------------------------------- specs
    def _make_specs(self) -> None:
        E, N, device = self.num_envs, self.N_AGENTS, self.device
        top = float(self.height - 1)
        obs_high = torch.tensor([2.0, top, 2.0, top], device=device).expand(E, N, 4)
        state_high = torch.tensor([2.0, top, 2.0, top, 2.0, top], device=device).expand(E, 6)
        self.observation_spec = Composite(
            agents=Composite(
                observation=Bounded(
                    low=torch.zeros_like(obs_high),
                    high=obs_high.clone(),
                    shape=(E, N, 4),
                    dtype=torch.float32,
                    device=device,
                ),
                shape=(E, N),
                device=device,
            ),
            state=Bounded(
                low=torch.zeros_like(state_high),
                high=state_high.clone(),
                shape=(E, 6),
                dtype=torch.float32,
                device=device,
            ),
            shape=(E,),
            device=device,
        )
        self.action_spec = Composite(
            agents=Composite(
                action=Categorical(
                    n=self.N_ACTIONS, shape=(E, N), dtype=torch.int64, device=device
                ),
                shape=(E, N),
                device=device,
            ),
            shape=(E,),
            device=device,
        )
        self._set_team_reward_and_done_specs(E, device)

    # ----------------------------------------------------------------- dynamics
    _TENSOR_ATTRS = (
        "_dy",
        "_xs",
        "_obs_index",
        "_start_rows",
        "_n_start_rows",
        "_false",
        "_rows",
        "_t",
    )

    def _observe(self, rows: torch.Tensor) -> TensorDict:
        """Observation/state tensordict for rows ``(E, 3)`` (no done/reward entries)."""
        E = self.num_envs
        state = torch.stack((self._xs, rows), dim=-1).view(E, 6)  # (x0, y0, x1, y1, bx, by)
        obs = state.index_select(1, self._obs_index).view(E, 2, 4)
        return TensorDict(
            {
                "agents": TensorDict({"observation": obs}, batch_size=(E, 2), device=self.device),
                "state": state,
            },
            batch_size=(E,),
            device=self.device,
        )

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: object) -> TensorDictBase:
        E = self.num_envs
        if self.random_start:
            # agents uniform over all rows, box uniform over the rows other than the goal
            u = torch.rand((E, 3), generator=self._generator, device=self._t.device)
            rows = (u * self._n_start_rows).floor_()  # box row in [0, height - 2] ...
            rows[:, 2] += rows[:, 2] >= self._goal  # ... then skip the goal row
        else:
            rows = self._start_rows
        reset = tensordict.get("_reset", None) if tensordict is not None else None
        if reset is None:
            self._rows = rows.clone()
            self._t = torch.zeros_like(self._t)
        else:
            mask = reset.reshape(E)
            self._rows = torch.where(mask.unsqueeze(-1), rows, self._rows)
            self._t = self._t.masked_fill(mask, 0)
        out = self._observe(self._rows)
        out.set("done", self._false.clone())
        out.set("terminated", self._false.clone())
        out.set("truncated", self._false.clone())
        return out

    def _check_action(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The step's action, checked before anything is computed (so a refused step changes
        nothing): present, shape ``(E, 2)``, dtype int64 and (``validate_actions``) values in
        ``[0, 2]``."""
        action = action_entry(tensordict, _ACTION_KEY, who="MoveBoxEnv")
        check_action_layout(
            action,
            _ACTION_KEY,
            shape=(*self.batch_size, self.N_AGENTS),
            dtype=torch.int64,
            who="MoveBoxEnv",
            dims="num_envs, n_agents",
            meaning="integer actions UP=0, DOWN=1, NULL=2",
        )
        if not self.validate_actions:
            return action
        # one reduction and one host sync
        lo, hi = torch.stack(torch.aminmax(action)).tolist()
        if lo < 0 or hi >= self.N_ACTIONS:
            bad = action[(action < 0) | (action >= self.N_ACTIONS)]
            raise ValueError(
                f"MoveBoxEnv expected {_ACTION_KEY!r} to hold actions in [0, {self.N_ACTIONS - 1}] "
                f"(UP=0, DOWN=1, NULL=2), got {sorted(set(bad.tolist()))}"
            )
        return action

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self._check_action(tensordict)
        E = self.num_envs
        dy = self._dy.index_select(0, action.reshape(-1)).view(E, 2)  # (E, 2) row changes
        rows = self._rows

        # joint push: both agents level with the box and making the same move; the level
        # agents then move with the box, and walls block all three alike
        level = (rows[:, :2] == rows[:, 2:]).all(-1)  # (E,)
        push = level & (dy[:, 0] == dy[:, 1])
        moves = torch.cat((dy, (dy[:, 0] * push).unsqueeze(-1)), dim=-1)  # (E, 3)
        new_rows = (rows + moves).clamp_(0.0, self._top)

        t = self._t + 1
        partial = tensordict.get("_step", None)
        if partial is not None:
            mask = partial.reshape(E)
            new_rows = torch.where(mask.unsqueeze(-1), new_rows, rows)
            t = torch.where(mask, t, self._t)

        box, new_box = rows[:, 2], new_rows[:, 2]
        closer = (box - self._goal).abs() - (new_box - self._goal).abs()  # +1, 0 or -1
        terminated = new_box == self._goal
        reward = closer * self.move_reward + terminated * self.goal_reward
        truncated = (t >= self.horizon) & ~terminated
        self._rows, self._t = new_rows, t

        out = self._observe(new_rows)
        terminated = terminated.unsqueeze(-1)
        truncated = truncated.unsqueeze(-1)
        out.set("reward", reward.unsqueeze(-1))
        out.set("done", terminated | truncated)
        out.set("terminated", terminated)
        out.set("truncated", truncated)
        return out


def make_movebox_env(
    difficulty: str,
    *,
    phase_mode: str | None = None,
    num_envs: int = 1,
    random_start: bool = False,
    device: torch.device | str | None = None,
    seed: int | None = None,
) -> TransformedEnv:
    """The usual Move Box stack: env, step counter, action-frequency mask, optional phase.

    Builds ``TransformedEnv(MoveBoxEnv.<difficulty>(...), Compose(StepCounter(),
    ActionFrequencyMask(periods, mode="null", null_action=MoveBoxEnv.NULL)[,
    PhaseEncoding(L, mode=phase_mode)]))`` with ``L`` the least common multiple
    of the agents' action periods (2 on easy, 6 on hard). The
    :class:`~torchrl.envs.StepCounter` has no ``max_steps``: the environment
    truncates at its own horizon.

    Keys added on top of :class:`MoveBoxEnv`'s: root ``"step_count"`` ``(E, 1)``
    int64; ``("agents", "can_act")`` ``(E, 2)`` bool, ``("agents",
    "action_mask")`` ``(E, 2, 3)`` bool and ``("agents", "prev_action")`` from
    :class:`~mtmarl.transforms.ActionFrequencyMask`; with ``phase_mode="phase"`` a
    root ``"phase"`` ``(E, 1)``, with ``"onehot"``/``"sincos"`` the phase features
    appended to ``("agents", "observation")`` and to the global ``"state"`` (so that a
    centralised critic sees the phase as well).

    Args:
        difficulty (str): ``"easy"`` or ``"hard"`` (see :meth:`MoveBoxEnv.easy`,
            :meth:`MoveBoxEnv.hard`).

    Keyword Args:
        phase_mode (str | None): mode of the
            :class:`~mtmarl.transforms.PhaseEncoding` (``"phase"``, ``"onehot"`` or
            ``"sincos"``), or ``None`` for a time-unaware stack. Defaults to ``None``.
        num_envs (int): number of environments. Defaults to ``1``.
        random_start (bool): draw start rows at every reset. Defaults to ``False``.
        device (torch.device | str | None): device. Defaults to ``None`` (CPU).
        seed (int | None): seed of the env's generator. Defaults to ``None``.

    Examples:
        >>> env = make_movebox_env("easy", phase_mode="onehot", num_envs=4)
        >>> td = env.reset()
        >>> td["agents", "can_act"][0].tolist()  # both may act at t = 0
        [True, True]
        >>> td["agents", "observation"].shape  # 4 coordinates + one-hot phase (L = 2)
        torch.Size([4, 2, 6])
    """
    if difficulty not in _DIFFICULTIES:
        raise ValueError(
            f"make_movebox_env expected difficulty in {_DIFFICULTIES}, got {difficulty!r}"
        )
    preset = MoveBoxEnv.easy if difficulty == "easy" else MoveBoxEnv.hard
    env = preset(num_envs=num_envs, random_start=random_start, device=device, seed=seed)
    transforms = [
        StepCounter(),
        ActionFrequencyMask(env.action_periods, mode="null", null_action=MoveBoxEnv.NULL),
    ]
    if phase_mode is not None:
        period = multi_timescale_period(env.action_periods)
        # appended encodings go to the agents' observations *and* the global state, so that
        # centralised critics are time-aware too
        in_keys = None if phase_mode == "phase" else [("agents", "observation"), "state"]
        transforms.append(PhaseEncoding(period, mode=phase_mode, in_keys=in_keys))
    return TransformedEnv(env, Compose(*transforms))
