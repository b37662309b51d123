"""The env stack a run trains and evaluates on: the factory's env plus what the run adds.

An env factory (an :class:`~mtmarl.training.Experiment`'s, or ``train(..., env_fn=...)``)
builds the task; :class:`EnvMaker` then appends what the *run's* choices need, so that no
factory has to know them:

* the variant's :class:`~mtmarl.transforms.PhaseEncoding` of ``t mod L`` (a root ``"phase"``
  for ``phasic``; the one-hot phase appended to ``(group, "observation")`` and ``"state"``
  for ``onehot``), with ``L`` the run's period (:func:`resolve_period`) and a
  :class:`~torchrl.envs.StepCounter` in front when the env has no ``"step_count"``;
* ``RewardSum`` (``"episode_reward"``) for the logged returns, and ``InitTracker`` for a
  recurrent variant.

The maker is picklable (a frozen dataclass of the config and the factory), so collector worker
processes rebuild the same stack.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torchrl.envs import EnvBase, InitTracker, RewardSum, StepCounter, TransformedEnv

from mtmarl.errors import ConfigError
from mtmarl.modules.builders import get_variant
from mtmarl.training.config import TrainConfig
from mtmarl.training.experiments import check_takes_episode_groups

if TYPE_CHECKING:
    pass

__all__ = ["EnvMaker", "resolve_period", "transforms_of"]


def _takes_phase_mode(factory: Callable) -> bool:
    try:
        return "phase_mode" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def transforms_of(env: TransformedEnv) -> list:
    """The transforms of a ``TransformedEnv``, whether it holds a ``Compose`` or one transform.

    Examples:
        >>> from torchrl.envs import StepCounter
        >>> from mtmarl.envs import MoveBoxEnv
        >>> [type(t).__name__ for t in transforms_of(TransformedEnv(MoveBoxEnv.easy(), StepCounter()))]
        ['StepCounter']
    """
    from torchrl.envs import Compose

    transform = env.transform
    return list(transform) if isinstance(transform, Compose) else [transform]


def resolve_period(env: EnvBase, period: int | None = None) -> int | None:
    """The period ``L`` of the env's joint process: ``period`` if given, else the base env's
    ``period`` attribute (e.g. :attr:`~mtmarl.envs.BuildingEnv.period`), else the least
    common multiple of an :class:`~mtmarl.transforms.ActionFrequencyMask`'s action
    frequencies in the stack, else ``None``.

    Examples:
        >>> from mtmarl.envs import make_building_env, make_movebox_env
        >>> resolve_period(make_movebox_env("hard", num_envs=1))   # periods (2, 3)
        6
        >>> resolve_period(make_building_env(num_envs=1))
        15
        >>> resolve_period(make_building_env(num_envs=1), period=30)
        30
    """
    from mtmarl.transforms import ActionFrequencyMask

    if period is not None:
        return int(period)
    base = env.base_env if isinstance(env, TransformedEnv) else env
    found = getattr(base, "period", None)
    if isinstance(found, int) and not isinstance(found, bool):
        return found
    if isinstance(env, TransformedEnv):
        for transform in transforms_of(env):
            if isinstance(transform, ActionFrequencyMask):
                return math.lcm(*(int(w) for w in transform.action_frequencies.tolist()))
    return None


@dataclass(frozen=True)
class EnvMaker:
    """Builds the training / evaluation env stack of a run (see the module).

    Attributes:
        config (TrainConfig): the run's config (``variant``, ``env``, ``device``,
            ``collector.episode_group_size``).
        factory (Callable): ``factory(*, num_envs, device, seed, **config.env[,
            episode_group_size]) -> EnvBase``. A factory that still takes ``phase_mode``
            (the old contract) gets it, with a ``DeprecationWarning``, and appends the phase
            encoding itself.
        name (str): who the factory is, for messages (``"experiment 'x'"``, ``"the env_fn"``).
        period (int or None): the phase encoding's period ``L``; ``None`` resolves it from
            the env (:func:`resolve_period`). Defaults to ``None``.
        group (str): the per-agent group. Defaults to ``"agents"``.
        check_kwargs (bool): check ``config.env`` against the factory's signature. Defaults
            to True.

    Examples:
        >>> from mtmarl.training import get_experiment
        >>> cfg = get_experiment("movebox-easy").config          # variant=phasic
        >>> maker = EnvMaker(config=cfg, factory=get_experiment("movebox-easy").env_factory,
        ...                  name="experiment 'movebox-easy'")
        >>> env = maker(num_envs=2, seed=0)
        >>> env.reset()["phase"].shape
        torch.Size([2, 1])
    """

    config: TrainConfig
    factory: Callable[..., EnvBase]
    name: str
    period: int | None = None
    group: str = "agents"
    check_kwargs: bool = True

    def __call__(self, *, num_envs: int, seed: int, training: bool = False) -> EnvBase:
        """The env stack of ``num_envs`` batched envs.

        Keyword Args:
            num_envs (int): batch size.
            seed (int): the env's seed.
            training (bool): an env of the collector (episode groups of
                ``collector.episode_group_size``); otherwise a validation env (independent
                episodes). Defaults to False.

        Raises:
            ConfigError: ``config.env`` does not fit the factory, the factory ignored the
                episode groups, or the variant needs a phase and no period is known.
        """
        from mtmarl.training.experiments import check_env_kwargs
        from mtmarl.transforms import PhaseEncoding

        cfg = self.config
        variant = get_variant(cfg.variant)
        group = cfg.collector.episode_group_size if training else 1
        kwargs = dict(cfg.env)
        if self.check_kwargs:
            check_env_kwargs(self.factory, kwargs, self.name)
        if group != 1:
            kwargs["episode_group_size"] = group
            check_takes_episode_groups(self.factory, kwargs, f"the env factory of {self.name}")
        legacy = _takes_phase_mode(self.factory)
        if legacy:
            warnings.warn(
                f"the env factory of {self.name} takes phase_mode: the trainer now appends the "
                "phase encoding itself (from Experiment(period=...) or the env's period); "
                "drop the argument, it will not be passed in the next release",
                DeprecationWarning,
                stacklevel=2,
            )
            kwargs["phase_mode"] = variant.phase_mode
        try:
            env = self.factory(num_envs=num_envs, device=cfg.device, seed=seed, **kwargs)
        except (ValueError, TypeError, KeyError) as err:  # the env refused an option
            options = {k: v for k, v in kwargs.items() if k != "phase_mode"}
            raise ConfigError(
                f"the env of {self.name} refused its options (env.* {options}, num_envs={num_envs}): "
                f"{err}"
            ) from None
        except (MemoryError, RuntimeError) as err:
            if "memory" not in str(err).lower() and not isinstance(err, MemoryError):
                raise
            raise ConfigError(
                f"the env of {self.name} with collector.num_envs={num_envs} does not fit in memory: {err}"
            ) from None
        if not isinstance(env, EnvBase):
            raise ConfigError(
                f"the env factory of {self.name} must return a torchrl EnvBase, got {type(env).__name__}"
            )
        base = env.base_env if isinstance(env, TransformedEnv) else env
        # (read from the instance: a not yet started torchrl batched env recurses on getattr)
        if group != 1 and vars(base).get("episode_group_size", 1) != group:
            raise ConfigError(
                f"collector.episode_group_size={group}: the env was built with "
                f"episode_group_size={vars(base).get('episode_group_size')!r}"
            )
        if not isinstance(env, TransformedEnv):
            env = TransformedEnv(env)
        if variant.phase_mode is not None and not legacy:
            period = resolve_period(env, self.period)
            if period is None:
                raise ConfigError(
                    f"variant={variant.name} encodes the phase t mod L, and {self.name} has no "
                    "period L: give one (Experiment(period=...), train(..., period=...)), "
                    "or use variant=basic or variant=recurrent"
                )
            if "step_count" not in env.observation_spec.keys():
                env.append_transform(StepCounter())
            in_keys = None
            if variant.phase_mode != "phase":
                in_keys = [(self.group, "observation")]
                in_keys += ["state"] if "state" in env.observation_spec.keys() else []
            env.append_transform(PhaseEncoding(period, mode=variant.phase_mode, in_keys=in_keys))
        if "reward" not in env.reward_keys:
            raise ConfigError(
                f"the trainer needs the team reward at the root key 'reward' (*B, 1); the env "
                f"of {self.name} writes its rewards at {list(env.reward_keys)} (add it, e.g. a "
                "torchrl UnaryTransform averaging the agents' rewards: docs, 'Train on a "
                "PettingZoo or VMAS environment')"
            )
        env.append_transform(RewardSum(in_keys=["reward"], out_keys=["episode_reward"]))
        if variant.recurrent:
            env.append_transform(InitTracker())
        return env
