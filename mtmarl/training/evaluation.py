"""Deterministic evaluation with confidence intervals."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from mtmarl.algorithms.base import explained_variance

__all__ = [
    "EvalResult",
    "evaluate_policy",
    "explained_variance",
    "mean_confidence_interval",
    "wilson_interval",
]


def wilson_interval(successes: int, n: int, *, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a success rate (95% by default).

    Args:
        successes (int): number of successes.
        n (int): number of trials (> 0).

    Keyword Args:
        z (float): normal quantile. Defaults to 1.96 (95%).

    Examples:
        >>> lo, hi = wilson_interval(100, 100)
        >>> round(lo, 3), round(hi, 3)
        (0.963, 1.0)
    """
    if n <= 0:
        raise ValueError(f"wilson_interval expected n > 0, got {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_confidence_interval(values: torch.Tensor, *, z: float = 1.96) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation confidence interval.

    Args:
        values (torch.Tensor): ``(n,)`` samples.

    Keyword Args:
        z (float): normal quantile. Defaults to 1.96 (95%).

    Examples:
        >>> mean_confidence_interval(torch.tensor([1.0, 1.0, 1.0]))
        (1.0, 0.0)
    """
    values = values.double().flatten()
    n = values.numel()
    if n == 0:
        raise ValueError("mean_confidence_interval expected at least one value, got none")
    mean = values.mean().item()
    half = z * values.std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")
    return mean, half


@dataclass
class EvalResult:
    """Outcome of :func:`evaluate_policy`.

    Attributes:
        episodes (int): episodes evaluated (one per env).
        return_mean (float): mean undiscounted episode return.
        return_ci (float): half-width of the 95% interval of the mean return.
        success_rate (float or None): fraction of successful episodes (``None`` when the
            experiment defines no success).
        success_ci (tuple[float, float] or None): 95% Wilson interval of the success rate.
        episode_length (float): mean episode length.

    Examples:
        >>> r = EvalResult(episodes=2, return_mean=1.0, return_ci=0.0, success_rate=None,
        ...                success_ci=None, episode_length=5.0)
        >>> r.as_dict()["episodes"]
        2
    """

    episodes: int
    return_mean: float
    return_ci: float
    success_rate: float | None
    success_ci: tuple[float, float] | None
    episode_length: float

    def as_dict(self) -> dict:
        """JSON-friendly dict."""
        out = asdict(self)
        if self.success_ci is not None:
            out["success_ci"] = list(self.success_ci)
        return out


@torch.no_grad()
def evaluate_policy(
    env: EnvBase,
    policy: TensorDictModuleBase,
    *,
    max_steps: int,
    success_key: NestedKey | None = None,
) -> EvalResult:
    """Run the deterministic policy for one episode in every env of a batched env.

    The policy runs under ``ExplorationType.DETERMINISTIC`` (argmax / distribution mode) for
    ``max_steps`` steps; each env's first episode is scored (the env's batch size is the number
    of episodes).

    Args:
        env (EnvBase): batched env with ``batch_size=(n_episodes,)``, team reward at root
            ``("next", "reward")`` ``(n, 1)`` and root ``("next", "done")``.
        policy (TensorDictModuleBase): the actor.

    Keyword Args:
        max_steps (int): episode horizon; every episode must end within it.
        success_key (NestedKey, optional): boolean entry of the ``"next"`` tensordict, ``(n, 1)``,
            that marks a successful final step (e.g. ``"terminated"`` when reaching the goal is
            the only termination). ``None``: no success rate.

    Returns:
        EvalResult: returns, success rate and their 95% intervals.

    Examples:
        >>> from mtmarl.envs import make_movebox_env
        >>> from mtmarl.modules import make_actor
        >>> env = make_movebox_env("easy", num_envs=8, seed=0)
        >>> actor = make_actor("basic", n_agents=2, observation_dim=4, n_actions=3)
        >>> result = evaluate_policy(env, actor, max_steps=20, success_key="terminated")
        >>> result.episodes, 0.0 <= result.success_rate <= 1.0
        (8, True)
    """
    if len(env.batch_size) != 1:
        raise ValueError(
            f"evaluate_policy expected an env with batch_size (n_episodes,), got {env.batch_size}"
        )
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout: TensorDictBase = env.rollout(
            max_steps, policy, break_when_any_done=False, auto_cast_to_device=True
        )
    nxt = rollout["next"]
    done = nxt["done"].squeeze(-1)  # (n, T)
    reward = nxt["reward"].squeeze(-1)
    n, steps = done.shape
    ended = done.any(-1)
    if not bool(ended.all()):
        raise RuntimeError(
            f"evaluate_policy: {int((~ended).sum())} of {n} episodes did not end within "
            f"max_steps={max_steps}"
        )
    first_done = done.float().argmax(-1)  # index of each env's first done
    in_first = torch.arange(steps, device=done.device) <= first_done.unsqueeze(-1)
    returns = (reward * in_first).sum(-1)
    success_rate = success_ci = None
    if success_key is not None:
        succ = nxt[success_key].squeeze(-1).gather(-1, first_done.unsqueeze(-1)).squeeze(-1)
        k = int(succ.sum())
        success_rate = k / n
        success_ci = wilson_interval(k, n)
    mean, half = mean_confidence_interval(returns)
    return EvalResult(
        episodes=n,
        return_mean=mean,
        return_ci=half,
        success_rate=success_rate,
        success_ci=success_ci,
        episode_length=float((first_done + 1).float().mean()),
    )
