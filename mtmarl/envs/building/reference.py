"""A model-based upper reference for :class:`~mtmarl.envs.building.BuildingEnv`.

:func:`plan_open_loop` optimises each episode's whole joint action sequence against the env's
own (known, deterministic) model with perfect foresight of the weather and the reference, by
gradient ascent through the env's differentiable torch step; :class:`OpenLoopPolicy` replays
the plan. The result is the number a perfect learner would approach: the learned policies see
only the current observation, this planner knows the next 30 minutes exactly.

Shape glossary: ``E`` = ``num_envs``, ``T`` = planned steps (the env's horizon by default),
``N = 7`` agents.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase

from mtmarl.envs.building.env import BuildingEnv

__all__ = ["OpenLoopPlan", "OpenLoopPolicy", "plan_open_loop"]

# the env's state: what a plan starts from and what planning must leave untouched
_STATE = BuildingEnv._STATE_ATTRS
# atanh of the initial actions is clipped here so that saturated actions keep a gradient
_INIT_LIMIT = 0.995


@dataclass
class OpenLoopPlan:
    """What :func:`plan_open_loop` returns.

    Attributes:
        actions (torch.Tensor): ``(E, T, 7)`` normalised joint actions in ``[-1, 1]``; the slow
            agents' actions are constant over their periods (aligned with the episode step).
        returns (torch.Tensor): ``(E,)`` the plan's episode return under the env's model.
        initial_returns (torch.Tensor): ``(E,)`` the return of the initial actions.

    Examples:
        >>> plan = OpenLoopPlan(torch.zeros(2, 3, 7), torch.ones(2), torch.zeros(2))
        >>> float((plan.returns - plan.initial_returns).min())
        1.0
    """

    actions: torch.Tensor
    returns: torch.Tensor
    initial_returns: torch.Tensor


def _rollout(
    env: BuildingEnv, state: dict[str, torch.Tensor], actions: torch.Tensor
) -> torch.Tensor:
    """(E,) return of ``actions`` ``(E, T, 7)`` from ``state``, differentiable in ``actions``."""
    for name, value in state.items():
        setattr(env, name, value)
    total = actions.new_zeros(actions.shape[0])
    for t in range(actions.shape[1]):
        td = TensorDict(
            {"agents": TensorDict({"action": actions[:, t].unsqueeze(-1)}, [env.num_envs, 7])},
            [env.num_envs],
        )
        total = total + env._step(td).get("reward")[:, 0]
    return total


def _expand_held(raw: torch.Tensor, periods: tuple[int, ...], steps: int, t0: int) -> torch.Tensor:
    """(E, T, N) actions from per-agent decision values: agent ``n`` keeps the value chosen at
    its last decision step ``t`` with ``t % periods[n] == 0`` (``t`` counted from the episode's
    start, the current step being ``t0``); ``raw`` is ``(E, T, N)`` and only the decision steps'
    entries are used."""
    t = torch.arange(t0, t0 + steps, device=raw.device)
    cols = []
    for n, p in enumerate(periods):
        last = torch.div(t, p, rounding_mode="floor") * p - t0  # index of the last decision
        last = last.clamp_min(0)
        cols.append(raw[:, last, n])
    return torch.stack(cols, dim=-1)


def plan_open_loop(
    env: BuildingEnv,
    *,
    steps: int | None = None,
    iterations: int = 300,
    lr: float = 0.05,
    initial_actions: torch.Tensor | None = None,
) -> OpenLoopPlan:
    """Optimises the joint actions of the next ``steps`` minutes of every env (perfect foresight).

    The env must sit at a decision step of every agent (right after a reset). Its state is
    restored afterwards, so a rollout of :class:`OpenLoopPolicy` from the same state executes the
    plan. Actions are parameterised as ``tanh(theta)`` with one value per agent and decision
    step (the slow agents' actions are held over their periods, as
    :class:`~mtmarl.transforms.ActionFrequencyMask` in ``"hold"`` mode does), and ``theta`` is
    improved by Adam on the summed team reward through the env's torch dynamics. The best
    iterate of each env is kept, so the plan's return is never below the initial actions'
    (which should come from a good policy, e.g. :class:`~mtmarl.envs.building.RuleBasedPolicy`:
    the objective is non-convex).

    Args:
        env (BuildingEnv): the base env (``make_building_env(...).base_env``), reset.

    Keyword Args:
        steps (int, optional): planned steps. Defaults to the rest of the episode.
        iterations (int): Adam steps. Defaults to ``300``.
        lr (float): Adam learning rate on ``theta``. Defaults to ``0.05``.
        initial_actions (torch.Tensor, optional): ``(E, steps, 7)`` starting point in
            ``[-1, 1]`` (at each agent's decision steps). Defaults to zeros (mid-range).

    Returns:
        OpenLoopPlan: actions ``(E, steps, 7)`` and returns ``(E,)``.

    Examples:
        >>> from mtmarl.envs.building import BuildingEnv
        >>> env = BuildingEnv(num_envs=2, seed=0, horizon=10)
        >>> _ = env.reset()
        >>> plan = plan_open_loop(env, iterations=20)
        >>> plan.actions.shape, bool((plan.returns >= plan.initial_returns).all())
        (torch.Size([2, 10, 7]), True)
    """
    if not isinstance(env, BuildingEnv):
        raise TypeError(
            f"plan_open_loop expected a BuildingEnv (use env.base_env of a TransformedEnv), got "
            f"{type(env).__name__}"
        )
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(
            f"plan_open_loop expected iterations to be an int >= 0, got {iterations!r}"
        )
    if not lr > 0:
        raise ValueError(f"plan_open_loop expected lr > 0, got {lr!r}")
    t0 = int(env._t.min())
    if int(env._t.max()) != t0:
        raise ValueError("plan_open_loop expected all envs at the same episode step")
    off = [n for n, p in enumerate(env.action_periods) if t0 % p]
    if off:
        raise ValueError(
            f"plan_open_loop expected every agent at a decision step, but agents {off} are not "
            f"at step {t0} (periods {env.action_periods})"
        )
    remaining = env.horizon - t0
    steps = remaining if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= remaining:
        raise ValueError(f"plan_open_loop expected 1 <= steps <= {remaining}, got {steps!r}")
    E, N = env.num_envs, env.N_AGENTS
    shape = (E, steps, N)
    if initial_actions is None:
        initial_actions = torch.zeros(shape, device=env.device)
    elif tuple(initial_actions.shape) != shape:
        raise ValueError(
            f"plan_open_loop expected initial_actions of shape {shape}, got "
            f"{tuple(initial_actions.shape)}"
        )
    state = {name: getattr(env, name) for name in _STATE}
    periods = tuple(env.action_periods)
    theta = torch.atanh(initial_actions.detach().clamp(-_INIT_LIMIT, _INIT_LIMIT)).clone()
    theta.requires_grad_(True)
    optimizer = torch.optim.Adam([theta], lr=lr)
    best_actions = _expand_held(initial_actions.detach().clamp(-1, 1), periods, steps, t0)
    try:
        with torch.enable_grad():
            initial = _rollout(env, state, best_actions).detach()
            best = initial.clone()
            for _ in range(iterations):
                actions = _expand_held(torch.tanh(theta), periods, steps, t0)
                returns = _rollout(env, state, actions)
                with torch.no_grad():
                    better = returns > best
                    best = torch.where(better, returns, best)
                    best_actions = torch.where(better[:, None, None], actions, best_actions)
                optimizer.zero_grad(set_to_none=True)
                (-returns.sum()).backward()
                optimizer.step()
    finally:
        for name, value in state.items():
            setattr(env, name, value)
    return OpenLoopPlan(actions=best_actions.detach(), returns=best, initial_returns=initial)


class OpenLoopPolicy:
    """Replays planned actions by episode step.

    Reads ``"step_count"`` ``(E, 1)`` (a :class:`~torchrl.envs.StepCounter`, as in
    :func:`~mtmarl.envs.building.make_building_env`); writes ``("agents", "action")``
    ``(E, 7, 1)`` = ``actions[:, step_count - start]``.

    Args:
        actions (torch.Tensor): ``(E, T, 7)`` planned actions (:attr:`OpenLoopPlan.actions`).

    Keyword Args:
        start (int): the episode step of ``actions[:, 0]``. Defaults to ``0``.

    Examples:
        >>> policy = OpenLoopPolicy(torch.arange(14.0).reshape(1, 2, 7))
        >>> td = TensorDict({"step_count": torch.tensor([[1]])}, [1])
        >>> policy(td)["agents", "action"][0, :, 0].tolist()
        [7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0]
    """

    def __init__(self, actions: torch.Tensor, *, start: int = 0) -> None:
        if actions.ndim != 3:
            raise ValueError(
                f"OpenLoopPolicy expected actions (E, T, N), got {tuple(actions.shape)}"
            )
        self.actions = actions
        self.start = int(start)

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Writes the planned action of the current step into ``tensordict``."""
        step = tensordict.get("step_count")[..., 0] - self.start
        T = self.actions.shape[1]
        if bool(((step < 0) | (step >= T)).any()):
            raise IndexError(f"OpenLoopPolicy has a plan for steps [0, {T}), got {step.tolist()}")
        index = step.reshape(-1, 1, 1).expand(-1, 1, self.actions.shape[-1])
        action = self.actions.gather(1, index)[:, 0]
        tensordict.set(("agents", "action"), action.reshape(*tensordict.batch_size, -1, 1))
        return tensordict
