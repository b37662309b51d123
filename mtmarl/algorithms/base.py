"""What an algorithm is: its config, what it supports, its loss, its update of one batch.

An :class:`Algorithm` is one unit (BenchMARL's ``algorithms/`` is the model): a class that
owns

* its **config** (:attr:`Algorithm.config_class`, a dataclass of only its own fields, the
  ``loss.*`` group of a :class:`~mtmarl.training.TrainConfig`; :class:`AlgorithmConfig`
  holds the fields every algorithm shares);
* what it **supports** (:attr:`~Algorithm.action_kinds`, :attr:`~Algorithm.critics`,
  :attr:`~Algorithm.supports_recurrent`), checked by :meth:`Algorithm.check_config` before any
  work and by :meth:`Algorithm.check_env` once the env's specs are known;
* its **loss**, value estimator, optimisers and target updaters, built in its constructor;
* its **update schedule** for one collected batch (:meth:`Algorithm.update`), which returns the
  metrics it logs (:attr:`~Algorithm.metrics`);
* its **state** (:meth:`Algorithm.state_dict`): what a resumed run needs.

The :class:`~mtmarl.training.Trainer` knows no algorithm by name: it looks the class up in
:data:`~mtmarl.algorithms.ALGORITHMS` and calls these. A new algorithm is one file with a
subclass and a :func:`~mtmarl.algorithms.register_algorithm` call.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn

from mtmarl.errors import ConfigError, check_positive, check_range

if TYPE_CHECKING:
    from mtmarl.modules.builders import EnvInfo, Variant

__all__ = ["Algorithm", "AlgorithmConfig", "MetricSums", "clipped_step", "explained_variance"]


@dataclass
class AlgorithmConfig:
    """The hyper-parameters every algorithm has (the ``loss.*`` group of a run's config).

    A subclass adds its own fields and checks them in ``__post_init__`` (calling
    ``super().__post_init__()``). When a run switches algorithm (``algorithm=NAME`` on the
    command line), the fields of this base class carry over from the preset's config; the
    others start at the new algorithm's defaults.

    Attributes:
        gamma (float): discount, in ``[0, 1]``. Defaults to 0.99.
        lmbda (float): GAE / TD(lambda) parameter, in ``[0, 1]``. Defaults to 0.95.
        entropy_coeff (float): entropy bonus weight, >= 0. Defaults to 0.01.
        critic_coeff (float): critic loss weight, > 0. Defaults to 1.0.

    Examples:
        >>> AlgorithmConfig().gamma
        0.99
        >>> try:
        ...     AlgorithmConfig(gamma=float("nan"))
        ... except ConfigError as err:
        ...     print(err)
        loss.gamma must be in [0.0, 1.0], got nan
    """

    gamma: float = 0.99
    lmbda: float = 0.95
    entropy_coeff: float = 0.01
    critic_coeff: float = 1.0

    def __post_init__(self) -> None:
        check_range("loss", "gamma", self.gamma, low=0.0, high=1.0)
        check_range("loss", "lmbda", self.lmbda, low=0.0, high=1.0)
        check_range("loss", "entropy_coeff", self.entropy_coeff, low=0.0)
        check_positive("loss", critic_coeff=self.critic_coeff)


def explained_variance(value: torch.Tensor, target: torch.Tensor) -> float:
    """``1 - Var[target - value] / Var[target]`` over all elements (``nan`` if the targets are
    constant): 1 for a critic that predicts its targets, 0 for one no better than their mean,
    negative for one worse than that.

    Args:
        value (Tensor): the critic's predictions, any shape.
        target (Tensor): their targets (e.g. GAE's value targets), the same shape.

    Returns:
        float: the explained variance, computed in float64.

    Raises:
        ValueError: if the shapes differ.

    Examples:
        >>> import torch
        >>> target = torch.tensor([1.0, 2.0, 3.0, 4.0])
        >>> explained_variance(target, target), explained_variance(torch.full((4,), 2.5), target)
        (1.0, 0.0)
    """
    if value.shape != target.shape:
        raise ValueError(
            f"explained_variance expected value and target of one shape, got {tuple(value.shape)} "
            f"and {tuple(target.shape)}"
        )
    target = target.detach().double()
    var = target.var(unbiased=False)
    if var == 0:
        return float("nan")
    return float(1 - (target - value.detach().double()).var(unbiased=False) / var)


class MetricSums:
    """Sums of per-step scalars kept on the device, averaged into floats once.

    Converting a loss to a Python float forces a host sync; accumulating the tensors and
    converting once per :meth:`Algorithm.update` costs one.

    Examples:
        >>> import torch
        >>> sums = MetricSums()
        >>> sums.add({"loss_objective": torch.tensor(1.0)})
        >>> sums.add({"loss_objective": torch.tensor(3.0)})
        >>> sums.means()
        {'train/loss_objective': 2.0}
    """

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, values: dict[str, torch.Tensor]) -> None:
        """Add one step's scalars (tensors are detached and averaged over their elements)."""
        for key, value in values.items():
            value = value.detach().float().mean() if isinstance(value, torch.Tensor) else value
            self._sums[key] = self._sums[key] + value if key in self._sums else value
            self._counts[key] = self._counts.get(key, 0) + 1

    def means(self, prefix: str = "train/") -> dict[str, float]:
        """``{prefix + key: mean}`` as floats."""
        return {f"{prefix}{k}": float(v) / self._counts[k] for k, v in self._sums.items()}


def clipped_step(
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    parameters: Iterable[nn.Parameter],
    max_grad_norm: float,
) -> torch.Tensor:
    """``zero_grad``, ``backward``, clip the gradient norm, ``step``; returns the norm.

    Examples:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> opt = torch.optim.SGD([w], lr=1.0)
        >>> norm = clipped_step(opt, (10 * w).sum(), [w], max_grad_norm=1.0)
        >>> round(norm.item(), 3), [round(x, 3) for x in w.tolist()]
        (14.142, [0.293, 0.293])
    """
    parameters = list(parameters)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    return norm


class Algorithm(abc.ABC):
    """One training algorithm: its loss, optimisers and update of one collected batch.

    Subclasses set the class attributes and implement :meth:`update` (and build their loss
    in ``__init__``, calling ``super().__init__``). See :mod:`mtmarl.algorithms.mappo` for a
    complete one.

    Attributes:
        name (str): the registry name (``algorithm=NAME``).
        description (str): one line for ``mtmarl list``.
        config_class (type[AlgorithmConfig]): its ``loss.*`` config.
        critics (tuple[str, ...]): the :data:`~mtmarl.modules.builders.CRITICS` it trains;
            the first is the default of ``model.critic``.
        action_kinds (tuple[str, ...]): the action kinds it trains (``"discrete"``,
            ``"continuous"``, ``"hybrid"``).
        supports_recurrent (bool): whether a recurrent variant works with it.
        accepts_critic (bool): whether ``Trainer(critic=...)`` may inject a critic.
        metrics (tuple[str, ...]): the names :meth:`update` logs (without ``train/``).

    Args:
        config (TrainConfig): the run's config; ``config.loss`` is a :attr:`config_class`.
        actor (TensorDictModuleBase): the policy (writes the action and its log-prob).
        critic (TensorDictModuleBase): the critic.
        info (EnvInfo): the env's specs.
        variant (Variant): the variant (its minibatch layout and recurrent context).

    Examples:
        >>> from mtmarl.algorithms import ALGORITHMS
        >>> all(issubclass(cls, Algorithm) for cls in ALGORITHMS.values())
        True
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    config_class: ClassVar[type[AlgorithmConfig]] = AlgorithmConfig
    critics: ClassVar[tuple[str, ...]] = ()
    action_kinds: ClassVar[tuple[str, ...]] = ("discrete", "continuous", "hybrid")
    supports_recurrent: ClassVar[bool] = True
    accepts_critic: ClassVar[bool] = True
    metrics: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        config: Any,
        actor: TensorDictModuleBase,
        critic: TensorDictModuleBase,
        info: EnvInfo,
        variant: Variant,
    ) -> None:
        self.config = config
        self.actor = actor
        self.critic = critic
        self.info = info
        self.variant = variant
        self.loss_module: nn.Module | None = None

    # ------------------------------------------------------------------ support
    @classmethod
    def check_config(cls, config: Any) -> None:
        """Refuse, before any work, a config this algorithm cannot run.

        The base checks that ``config.loss`` is a :attr:`config_class`, that
        ``config.model.critic`` is one of :attr:`critics` and that the variant is not
        recurrent unless :attr:`supports_recurrent`; subclasses add theirs.

        Raises:
            ConfigError: naming the option and what this algorithm accepts.
        """
        if not isinstance(config.loss, cls.config_class):
            raise ConfigError(
                f"algorithm={cls.name} takes loss options of {cls.config_class.__name__}, got "
                f"{type(config.loss).__name__}"
            )
        critic = config.model.critic
        if critic is not None and critic not in cls.critics:
            raise ConfigError(
                f"algorithm={cls.name} trains the critics {list(cls.critics)}; got "
                f"model.critic={critic!r}"
            )
        if not cls.supports_recurrent and config.variant == "recurrent":
            raise ConfigError(
                f"algorithm={cls.name} does not support variant=recurrent; use basic, onehot "
                "or phasic"
            )

    @classmethod
    def check_env(cls, info: EnvInfo, config: Any) -> None:
        """Refuse an env whose actions (or reward keys) this algorithm cannot train.

        Raises:
            ConfigError: naming the action kind and what this algorithm accepts.
        """
        if info.action_kind not in cls.action_kinds:
            raise ConfigError(
                f"algorithm={cls.name} trains {' or '.join(cls.action_kinds)} actions; the "
                f"env's action at {info.key('action')} is {info.action_kind}"
            )

    @classmethod
    def default_critic(cls) -> str:
        """The critic used when ``model.critic`` is ``None``."""
        return cls.critics[0]

    # ------------------------------------------------------------------ training
    @abc.abstractmethod
    def update(self, batch: TensorDictBase, *, iteration: int) -> dict[str, float]:
        """Train on one collected ``[E, T]`` batch; return the metrics (``"train/..."``).

        Args:
            batch (TensorDictBase): whole episodes from their start, time the last dim.

        Keyword Args:
            iteration (int): the iteration index (0-based), e.g. for warm-up schedules.
        """

    def schedule_lr(self, iteration: int) -> float:
        """Set every optimiser's learning rates for ``iteration`` (``optim.lr_schedule``):
        ``"constant"`` leaves them, ``"linear"`` scales each param group's base rate by
        ``1 - iteration / collector.iterations``. Returns the factor.

        Examples:
            >>> from mtmarl.training import TrainConfig, Trainer, apply_overrides
            >>> import tempfile
            >>> cfg = apply_overrides(TrainConfig(experiment="movebox-easy"), [
            ...     "collector.num_envs=4", "collector.iterations=4", "optim.lr=1e-3",
            ...     "optim.lr_schedule=linear", "run.progress=false"])
            >>> with tempfile.TemporaryDirectory() as d:
            ...     algorithm = Trainer(cfg, run_dir=d).algorithm
            ...     factor = algorithm.schedule_lr(3)
            >>> factor, algorithm.optimizer.param_groups[0]["lr"]
            (0.25, 0.00025)
        """
        if self.config.optim.lr_schedule == "constant":
            return 1.0
        factor = max(0.0, 1.0 - iteration / self.config.collector.iterations)
        for optimizer in self.optimizers().values():
            for group in optimizer.param_groups:
                base = group.setdefault("base_lr", group["lr"])
                group["lr"] = base * factor
        return factor

    # ------------------------------------------------------------------ state
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The algorithm's optimisers by name (their states are checkpointed)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs besides the modules: optimiser states and
        counters (plain data, so that checkpoints load with ``weights_only=True``)."""
        return {"optimizers": {k: o.state_dict() for k, o in self.optimizers().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output.

        Raises:
            KeyError, ValueError: a state of another algorithm or layout.
        """
        saved = state["optimizers"]
        mine = self.optimizers()
        if set(saved) != set(mine):
            raise ValueError(
                f"the checkpoint holds the optimisers {sorted(saved)}, algorithm={self.name} "
                f"has {sorted(mine)}"
            )
        for key, optimizer in mine.items():
            optimizer.load_state_dict(saved[key])
