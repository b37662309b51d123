"""Typed training configuration, validated at construction.

A :class:`TrainConfig` is a tree of dataclasses. It is built from an experiment preset and
``key=value`` overrides through `OmegaConf <https://omegaconf.readthedocs.io>`_ structured
configs (the engine behind Hydra, which TorchRL's ``sota-implementations`` and BenchMARL use): an
unknown key or a value of the wrong type fails with OmegaConf's message naming the key, and every
dataclass checks its ranges and choices in ``__post_init__`` -- all before any work starts.

Override syntax (dotted keys, YAML values)::

    variant=onehot seed=3 collector.num_envs=128 model.num_cells=[128,128] optim.lr=1e-3
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from mtmarl.algorithms import AlgorithmConfig, MAPPOConfig, get_algorithm
from mtmarl.errors import ConfigError, check_choice, check_positive, check_range
from mtmarl.modules import VARIANTS
from mtmarl.modules.builders import CRITICS, ENCODERS

__all__ = [
    "CONTINUOUS_DISTRIBUTIONS",
    "VARIANTS",
    "CollectorConfig",
    "ConfigError",
    "EvalConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_yaml",
    "config_to_yaml",
]

#: Continuous heads of hybrid actions (``model.continuous_distribution``), see
#: :func:`~mtmarl.modules.make_hybrid_actor`.
CONTINUOUS_DISTRIBUTIONS = ("tanh_normal", "beta")
#: ``model.init``: the layers' initialisation (``"orthogonal"``: :func:`~mtmarl.modules.orthogonal_init`)
INITS = ("default", "orthogonal")
#: ``optim.lr_schedule``: ``"linear"`` anneals every learning rate to 0 over the run
LR_SCHEDULES = ("constant", "linear")

#: the largest seed (torch's and numpy's generators take 32- / 64-bit seeds; derived seeds
#: add offsets, so 31 bits leave room)
MAX_SEED = 2**31 - 1


def _positive(owner: str, **values: float) -> None:
    check_positive(owner, **values)


def _choice(owner: str, name: str, value: str, choices: Sequence[str]) -> None:
    check_choice(owner, name, value, choices)


def _integers(owner: str, **values: object) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{owner}.{name} must be an int, got {value!r}")


@dataclass
class CollectorConfig:
    """How experience is gathered.

    Every iteration resets all envs and collects ``frames_per_batch = num_envs * steps_per_env``
    frames, so iterations hold whole episodes from their start and a resumed run needs no saved
    environment state.

    Attributes:
        num_envs (int): batched envs stepped in one tensor program. Defaults to 64.
        steps_per_env (int): steps collected per env per iteration (the episode horizon is a
            good choice). Defaults to 20.
        iterations (int): collection/update iterations. Defaults to 100.
        workers (int): collector workers, each stepping ``num_envs / workers`` envs. With the
            ``"local"`` backend they are processes of a torchrl ``MultiSyncCollector`` (1
            collects in the training process); with ``"ray"`` they are Ray actors (torchrl
            ``RayCollector``, one ``Collector`` each, on any node of the cluster). With more
            than one worker, or with Ray, the policy samples in the workers, so an
            interrupted-and-resumed run is no longer bit-identical to an uninterrupted one.
            Defaults to 1.
        backend (str): ``"local"`` (this machine's processes) or ``"ray"`` (a Ray cluster:
            the one ``RAY_ADDRESS`` names, else a running local one, else a fresh local
            instance; needs the ``[distributed]`` extra). Both give the same ``[num_envs,
            steps_per_env]`` batch per iteration. Defaults to ``"local"``.
        episode_group_size (int): the training envs come in consecutive groups of this size
            that share every episode (common random numbers: the same day, initial state and
            noise, so that the envs of a group differ only by their actions), passed to the
            env factory as ``episode_group_size`` (e.g.
            :class:`~mtmarl.envs.CommunityEnergyEnv`'s; an env that does not take it fails
            when the run is built). Validation envs draw independent episodes. With
            ``loss.group_baseline`` the groups give each env a leave-one-out baseline. Must
            divide ``num_envs / workers``. Defaults to 1 (independent episodes).

    Examples:
        >>> c = CollectorConfig(num_envs=8, steps_per_env=20, iterations=3)
        >>> c.frames_per_batch, c.total_frames
        (160, 480)
        >>> try:
        ...     CollectorConfig(backend="dask")
        ... except ConfigError as err:
        ...     print(err)
        collector.backend must be one of ['local', 'ray'], got 'dask'
    """

    num_envs: int = 64
    steps_per_env: int = 20
    iterations: int = 100
    workers: int = 1
    backend: str = "local"
    episode_group_size: int = 1

    def __post_init__(self) -> None:
        counts = {
            "num_envs": self.num_envs,
            "steps_per_env": self.steps_per_env,
            "iterations": self.iterations,
            "workers": self.workers,
            "episode_group_size": self.episode_group_size,
        }
        _positive("collector", **counts)
        _integers("collector", **counts)
        _choice("collector", "backend", self.backend, ("local", "ray"))
        if self.num_envs % self.workers:
            raise ConfigError(
                f"collector.num_envs ({self.num_envs}) must be a multiple of collector.workers "
                f"({self.workers})"
            )
        if (self.num_envs // self.workers) % self.episode_group_size:
            raise ConfigError(
                f"collector.episode_group_size ({self.episode_group_size}) must divide the "
                f"envs of each worker (collector.num_envs / collector.workers = "
                f"{self.num_envs // self.workers})"
            )

    @property
    def frames_per_batch(self) -> int:
        """Env steps per iteration (``num_envs * steps_per_env``)."""
        return self.num_envs * self.steps_per_env

    @property
    def total_frames(self) -> int:
        """Env steps over the whole run."""
        return self.frames_per_batch * self.iterations


@dataclass
class ModelConfig:
    """Which actor features and critic, and their sizes.

    The choices compose the methods of the community benchmark (seed 000): ``critic=local``
    is IPPO, ``critic=mlp`` MAPPO, ``encoder=lstm critic=transformer`` MATPPO (add
    ``variant=phasic`` for phase-aware MATPPO heads).

    Attributes:
        encoder (str): actor features, one of :data:`~mtmarl.modules.builders.ENCODERS`.
            ``"mlp"``: the actor's heads
            read the flat ``("agents", "observation")``. ``"lstm"``: a
            :class:`~mtmarl.modules.ForecastEncoder` -- an LSTM over ``("agents",
            "forecast")`` ``(*B, N, W, F)``, its last hidden state concatenated with
            ``("agents", "device_state")`` (and ``("agents", "context")`` when the env has
            it) and linearly mapped to ``feature_dim`` features; hybrid (composite) actions
            only. Defaults to ``"mlp"``.
        critic (str or None): one of :data:`~mtmarl.modules.builders.CRITICS` that the
            algorithm trains (``None``: the algorithm's default, ``"mlp"`` for MAPPO,
            ``"coma"`` for COMA). ``"mlp"``: the
            variant's MLP critic on the global ``"state"`` (MAPPO). ``"transformer"``: a
            :class:`~mtmarl.modules.TransformerCritic` over ``("agents",
            "critic_observation")`` ``(*B, N, Fa)`` with the root ``"aggregate"`` ``(*B, G)``
            as its global token (a learned token if the env has none); GAE uses its
            per-agent values, its pooled global value is trained too (see
            ``loss.global_value_coeff``). ``"local"``: the variant's critic on each agent's
            own ``("agents", "observation")`` (IPPO). ``"coma"``: COMA's counterfactual
            critic. Defaults to ``None``.
        num_cells (list[int]): hidden layer sizes of the actor and the critic (the
            Transformer critic's value heads use the last one). Defaults to ``[64, 64]``.
        hidden_size (int): GRU hidden size of the ``recurrent`` variant and LSTM hidden size
            of ``encoder=lstm``. Defaults to 64.
        feature_dim (int): local feature size ``D`` written by ``encoder=lstm``. Defaults
            to 64.
        attention_dim (int): token width ``d_model`` of ``critic=transformer``. Defaults to
            64.
        attention_heads (int): attention heads of ``critic=transformer`` (must divide
            ``attention_dim``). Defaults to 4.
        attention_layers (int): encoder layers of ``critic=transformer``. Defaults to 2.
        n_control_points (int): spline control points of the ``phasic`` variant. Defaults to 4.
        pfnn_period (int or None): period ``P`` of the phasic networks in env steps; ``None``
            uses the environment's period ``L`` (the paper runs both ``L`` and 4). Defaults to
            ``None``.
        continuous_distribution (str): the continuous head of hybrid (composite) actions, one
            of :data:`CONTINUOUS_DISTRIBUTIONS`: ``"tanh_normal"`` or ``"beta"`` (a
            :class:`~mtmarl.modules.ScaledBeta` on the spec's bounds). Defaults to
            ``"tanh_normal"``.
        action_prior (str or None): a base controller of the experiment
            (:attr:`~mtmarl.training.Experiment.action_priors`, e.g. ``"rule_based"`` or
            ``"rule_based_preheat"``, the preset's, for ``community``) that centres the
            hybrid actor's distribution on its action: an :class:`~mtmarl.modules.ActionPrior`,
            so the policy learns a residual on top of the controller; the heads' output
            layers start at 0.01 of their initialisation, so that the initial deterministic
            policy is close to the controller.
            ``None``: no prior. Defaults to ``None``.
        action_prior_bonus (float): the prior's ``logit_bonus`` on the controller's discrete
            choice, >= 0. Defaults to ``3.0``.
        init_scale (float): the hybrid actor's continuous ``TanhNormal`` head's scale (pre-tanh) when its
            raw output is zero, i.e. the initial exploration noise (``scale_mapping =
            biased_softplus_<init_scale>``); > 0. Defaults to ``1.0``.
        init (str): the layers' initialisation, one of :data:`INITS`: ``"default"`` (torch's)
            or ``"orthogonal"`` (:func:`~mtmarl.modules.orthogonal_init`: linear and
            recurrent weights orthogonal, biases 0, gain sqrt(2) for hidden layers, 0.01 for
            the actor's output layers and 1 for the critic's, as CleanRL's PPO). Not with
            ``action_prior`` (whose heads start near zero). Defaults to ``"default"``.
        obs_norm (bool): normalise every float observation of the env by its running mean
            and std, shared over the agents
            (:class:`~mtmarl.transforms.RunningObservationNorm`, clipped at 10, appended to
            the env stack right after the factory's env); the statistics are updated by the
            training env, saved in checkpoints (``best.pt`` too) and copied, frozen, into
            every evaluation env. Not with ``action_prior`` (its controller reads the raw
            observations) nor ``collector.workers > 1`` (the statistics would live in the
            workers). Defaults to ``False``.

    Examples:
        >>> ModelConfig().num_cells
        [64, 64]
        >>> try:
        ...     ModelConfig(n_control_points=3)
        ... except ConfigError as err:
        ...     print(err)
        model.n_control_points must be >= 4, got 3
        >>> try:
        ...     ModelConfig(critic="gnn")
        ... except ConfigError as err:
        ...     print(err)
        model.critic must be one of ['mlp', 'local', 'transformer', 'coma'] or null, got 'gnn'
    """

    encoder: str = "mlp"
    critic: str | None = None
    num_cells: list[int] = field(default_factory=lambda: [64, 64])
    hidden_size: int = 64
    feature_dim: int = 64
    attention_dim: int = 64
    attention_heads: int = 4
    attention_layers: int = 2
    n_control_points: int = 4
    pfnn_period: int | None = None
    continuous_distribution: str = "tanh_normal"
    action_prior: str | None = None
    action_prior_bonus: float = 3.0
    init_scale: float = 1.0
    init: str = "default"
    obs_norm: bool = False

    def __post_init__(self) -> None:
        _positive("model", init_scale=self.init_scale)
        _choice("model", "init", self.init, INITS)
        if not isinstance(self.obs_norm, bool):
            raise ConfigError(f"model.obs_norm must be true or false, got {self.obs_norm!r}")
        if self.action_prior is not None and (self.obs_norm or self.init != "default"):
            what = "model.obs_norm=true" if self.obs_norm else f"model.init={self.init}"
            raise ConfigError(
                f"{what} does not go with model.action_prior={self.action_prior!r}: the prior's "
                "controller reads the raw observations and its heads start near zero; set "
                "model.action_prior=null (training from scratch)"
            )
        if self.action_prior is not None and (
            not isinstance(self.action_prior, str) or not self.action_prior
        ):
            raise ConfigError(
                f"model.action_prior must be a controller's name or null, got {self.action_prior!r}"
            )
        check_range("model", "action_prior_bonus", self.action_prior_bonus, low=0.0)
        _choice("model", "encoder", self.encoder, list(ENCODERS))
        _choice(
            "model",
            "continuous_distribution",
            self.continuous_distribution,
            CONTINUOUS_DISTRIBUTIONS,
        )
        if self.critic is not None and self.critic not in CRITICS:
            raise ConfigError(
                f"model.critic must be one of {list(CRITICS)} or null, got {self.critic!r}"
            )
        if not self.num_cells:
            raise ConfigError("model.num_cells must name at least one hidden layer, got []")
        _positive(
            "model",
            hidden_size=self.hidden_size,
            feature_dim=self.feature_dim,
            attention_dim=self.attention_dim,
            attention_heads=self.attention_heads,
            attention_layers=self.attention_layers,
            **{f"num_cells[{i}]": n for i, n in enumerate(self.num_cells)},
        )
        if self.attention_dim % self.attention_heads:
            raise ConfigError(
                f"model.attention_heads ({self.attention_heads}) must divide "
                f"model.attention_dim ({self.attention_dim})"
            )
        if self.n_control_points < 4:
            raise ConfigError(f"model.n_control_points must be >= 4, got {self.n_control_points}")
        if self.pfnn_period is not None:
            _positive("model", pfnn_period=self.pfnn_period)


@dataclass
class OptimConfig:
    """Optimiser and update schedule.

    Attributes:
        lr (float): Adam learning rate (MAPPO: actor and critic; COMA: both unless its
            ``loss.actor_lr`` / ``loss.critic_lr`` say otherwise). Defaults to 3e-4.
        max_grad_norm (float): gradient-norm clip (MAPPO). Defaults to 1.0.
        epochs (int): MAPPO's passes over each batch. Defaults to 4.
        minibatch_size (int): samples per minibatch (env steps for feed-forward variants;
            for ``recurrent``, whole trajectories of ``steps_per_env`` steps are kept
            together, so there it is rounded down to a multiple of ``steps_per_env``, at
            least one trajectory; COMA's critic passes cut it from steps whose TD(lambda)
            targets were computed on whole trajectories first). Defaults to 640.
        lr_schedule (str): one of :data:`LR_SCHEDULES`. ``"linear"`` scales every learning
            rate by ``1 - i / collector.iterations`` at iteration ``i`` (0-based: the first
            update at the full rate, the last at ``1 / iterations`` of it), as CleanRL's
            ``anneal_lr``; derived from the iteration, so a resumed run continues it.
            Defaults to ``"constant"``.
        critic_warmup (int): MAPPO: the first this many iterations update only the critic
            (the ``loss_critic*`` terms; the actor, and so the collecting policy, stays as it
            was initialised). Useful when the actor starts from a good policy -- an
            ``model.action_prior`` -- that early updates on an untrained critic's advantages
            would degrade. Defaults to 0.

    Examples:
        >>> OptimConfig(lr=1e-3).epochs
        4
    """

    lr: float = 3e-4
    max_grad_norm: float = 1.0
    epochs: int = 4
    minibatch_size: int = 640
    critic_warmup: int = 0
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        _choice("optim", "lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _positive(
            "optim",
            lr=self.lr,
            max_grad_norm=self.max_grad_norm,
            epochs=self.epochs,
            minibatch_size=self.minibatch_size,
        )
        _integers(
            "optim",
            epochs=self.epochs,
            minibatch_size=self.minibatch_size,
            critic_warmup=self.critic_warmup,
        )
        if self.critic_warmup < 0:
            raise ConfigError(f"optim.critic_warmup must be >= 0, got {self.critic_warmup!r}")


@dataclass
class EvalConfig:
    """Deterministic evaluation.

    Attributes:
        episodes (int): episodes per evaluation (run as one batch of envs). Defaults to 100.
        interval (int): evaluate every this many iterations (and at the end). Defaults to 10.
        keep_best (bool): also evaluate the initial policy, and write the actor of the best
            evaluation so far (highest mean return) to ``run_dir/checkpoints/best.pt``;
            :meth:`~mtmarl.training.Trainer.load_best` loads it. The evaluation episodes come
            from their own seed (``seed + 10000``), so this is model selection on held-out
            episodes, not on the training data. Defaults to True.

    Examples:
        >>> EvalConfig(episodes=10).interval
        10
    """

    episodes: int = 100
    interval: int = 10
    keep_best: bool = True

    def __post_init__(self) -> None:
        _positive("eval", episodes=self.episodes, interval=self.interval)


@dataclass
class RunConfig:
    """Where and how a run is recorded.

    Attributes:
        out_dir (str): parent folder of run directories. Defaults to ``"runs"``.
        name (str or None): run directory name; ``None`` gives
            ``{experiment}-{variant}-{algorithm}-seed{seed}``. Defaults to ``None``.
        checkpoint_interval (int): checkpoint every this many iterations (and on interrupt and
            at the end). Defaults to 10.
        logger (str): ``"csv"`` or ``"tensorboard"``. Defaults to ``"csv"``.
        progress (bool): show a progress bar. Defaults to True.

    Examples:
        >>> try:
        ...     RunConfig(logger="wandb")
        ... except ConfigError as err:
        ...     print(err)
        run.logger must be one of ['csv', 'tensorboard'], got 'wandb'
    """

    out_dir: str = "runs"
    name: str | None = None
    checkpoint_interval: int = 10
    logger: str = "csv"
    progress: bool = True

    def __post_init__(self) -> None:
        _positive("run", checkpoint_interval=self.checkpoint_interval)
        _choice("run", "logger", self.logger, ("csv", "tensorboard"))


@dataclass
class TrainConfig:
    """Everything a training run needs; see the groups' docs for each field.

    Attributes:
        experiment (str): name of the experiment preset (``mtmarl list``).
        variant (str): one of :data:`VARIANTS`. Defaults to ``"phasic"``.
        algorithm (str): a registered algorithm (:data:`~mtmarl.algorithms.ALGORITHMS`:
            ``"mappo"``, ``"coma"``, or your own). Defaults to ``"mappo"``.
        seed (int): seed of torch and the environments, in ``[0, 2**31 - 1]``. Defaults to 0.
        device (str): ``"cpu"``, ``"cuda"``, ... Defaults to ``"cpu"``.
        env (dict): keyword arguments of the experiment's environment factory (checked against
            its signature when the run is built). Defaults to ``{}``.
        loss (AlgorithmConfig): the algorithm's own options, an instance of its
            ``config_class`` (:class:`~mtmarl.algorithms.MAPPOConfig`,
            :class:`~mtmarl.algorithms.COMAConfig`, ...). Switching ``algorithm`` with
            :func:`apply_overrides` keeps the fields all algorithms share (``gamma``,
            ``lmbda``, ``entropy_coeff``, ``critic_coeff``) and starts the others at the new
            algorithm's defaults. Defaults to ``MAPPOConfig()``.

    Examples:
        >>> cfg = apply_overrides(TrainConfig(experiment="movebox-easy"), ["optim.lr=1e-3"])
        >>> cfg.optim.lr, cfg.variant, type(cfg.loss).__name__
        (0.001, 'phasic', 'MAPPOConfig')
        >>> try:
        ...     apply_overrides(cfg, ["optim.lr=-1"])
        ... except ConfigError as err:
        ...     print(err)
        optim.lr must be a finite number > 0, got -1.0
        >>> type(apply_overrides(cfg, ["algorithm=coma"]).loss).__name__
        'COMAConfig'
    """

    experiment: str = "movebox-easy"
    variant: str = "phasic"
    algorithm: str = "mappo"
    seed: int = 0
    device: str = "cpu"
    env: dict[str, Any] = field(default_factory=dict)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: Any = field(default_factory=MAPPOConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        _choice("config", "variant", self.variant, VARIANTS)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"config.seed must be an int, got {self.seed!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"config.seed must be in [0, {MAX_SEED}], got {self.seed}")
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(f"config.device must be a device name, got {self.device!r}")
        algorithm = get_algorithm(self.algorithm)
        if isinstance(self.loss, dict):  # e.g. built by hand from plain data
            self.loss = _algorithm_config(algorithm.config_class, self.loss)
        algorithm.check_config(self)
        if self.model.obs_norm and (
            self.collector.workers > 1 or self.collector.backend != "local"
        ):
            raise ConfigError(
                "model.obs_norm needs collector.workers=1 and collector.backend=local (the "
                "running statistics are kept by the trainer's own env), got "
                f"workers={self.collector.workers}, backend={self.collector.backend!r}"
            )
        if self.model.obs_norm and getattr(self.loss, "reference_kl_coeff", 0) > 0:
            raise ConfigError(
                "model.obs_norm does not go with loss.reference_kl_coeff > 0: the anchor is a "
                "frozen copy of the initial actor, whose input statistics would stay empty"
            )
        if self.optim.critic_warmup >= self.collector.iterations:
            raise ConfigError(
                f"optim.critic_warmup must be < collector.iterations (the actor would never "
                f"be trained), got {self.optim.critic_warmup} >= {self.collector.iterations}"
            )

    @property
    def critic(self) -> str:
        """The critic this run trains: ``model.critic``, or the algorithm's default."""
        return self.model.critic or get_algorithm(self.algorithm).default_critic()

    @property
    def run_name(self) -> str:
        """The run directory's name: ``{experiment}-{variant}-{algorithm}[-{encoder}]
        [-{critic}]-seed{seed}``, the encoder and critic named when they are not the
        defaults (``mlp`` and the algorithm's own)."""
        if self.run.name:
            return self.run.name
        parts = [self.experiment, self.variant, self.algorithm]
        if self.model.encoder != "mlp":
            parts.append(self.model.encoder)
        if (
            self.model.critic is not None
            and self.critic != get_algorithm(self.algorithm).default_critic()
        ):
            parts.append(self.model.critic)
        return "-".join(parts) + f"-seed{self.seed}"


def _algorithm_config(cls: type[AlgorithmConfig], values: dict[str, Any]) -> AlgorithmConfig:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"loss.{unknown[0]} is not an option of {cls.__name__}; its options are {sorted(names)}"
        )
    return cls(**values)


def _switch_algorithm(config: TrainConfig, name: str) -> TrainConfig:
    """``config`` with ``algorithm=name``: the shared loss fields carried over, the new
    algorithm's ``loss`` class at its defaults otherwise, ``model.critic`` reset to the new
    algorithm's default unless it trains the same one."""
    algorithm = get_algorithm(name)
    if name == config.algorithm:
        return config
    shared = {f.name for f in dataclasses.fields(AlgorithmConfig)}
    loss = algorithm.config_class(
        **{k: getattr(config.loss, k) for k in shared if hasattr(config.loss, k)}
    )
    critic = config.model.critic if config.model.critic in algorithm.critics else None
    model = dataclasses.replace(config.model, critic=critic)
    return dataclasses.replace(config, algorithm=name, loss=loss, model=model)


def config_mismatch(saved: TrainConfig, current: TrainConfig) -> tuple[str, Any, Any] | None:
    """First group/field (other than run bookkeeping, evaluation and the iteration budget) that
    differs between two configs, as ``(name, saved value, current value)``."""
    a, b = dataclasses.asdict(saved), dataclasses.asdict(current)
    for cfg in (a, b):
        del cfg["run"], cfg["eval"], cfg["collector"]["iterations"]
    for key in a:
        if a[key] != b[key]:
            return key, a[key], b[key]
    return None


def _config_error(err: OmegaConfBaseException) -> ConfigError:
    message = str(err).splitlines()[0]
    key = getattr(err, "full_key", None)
    if key and key not in message:
        message = f"{key}: {message}"
    return ConfigError(message)


def _to_config(node: Any) -> TrainConfig:
    try:
        return OmegaConf.to_object(node)
    except OmegaConfBaseException as err:
        raise _config_error(err) from None


def apply_overrides(config: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """Return a new validated config with ``key=value`` overrides applied.

    Args:
        config (TrainConfig): the base configuration (e.g. an experiment preset).
        overrides (Sequence[str]): dotted ``key=value`` strings; values are parsed as YAML.

    Raises:
        ConfigError: malformed override, unknown key, wrong type or out-of-range value; the
            message names the key.

    Examples:
        >>> apply_overrides(TrainConfig(), ["variant=onehot", "model.num_cells=[8]"]).model.num_cells
        [8]
    """
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override must look like key=value, got {item!r}")
    import yaml

    for item in overrides:  # each value must parse, named if it does not
        try:
            OmegaConf.from_dotlist([item])
        except (OmegaConfBaseException, yaml.YAMLError, ValueError) as err:
            key = item.split("=", 1)[0]
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"{key}: the value of {item!r} does not parse ({first})") from None
    try:
        dotlist = OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as err:
        raise _config_error(err) from None
    if "algorithm" in dotlist:
        config = _switch_algorithm(config, dotlist["algorithm"])
    base = OmegaConf.structured(config)
    try:
        merged = OmegaConf.merge(base, dotlist)
    except OmegaConfBaseException as err:
        raise _loss_key_error(err, config) or _config_error(err) from None
    return _to_config(merged)


def _loss_key_error(err: OmegaConfBaseException, config: TrainConfig) -> ConfigError | None:
    """An unknown ``loss.*`` key, named with the algorithm whose options they are."""
    key = getattr(err, "full_key", None) or ""
    if not (isinstance(err, ConfigKeyError) and key.startswith("loss.")):
        return None
    cls = type(config.loss)
    names = sorted(f.name for f in dataclasses.fields(cls))
    return ConfigError(
        f"{key} is not an option of {cls.__name__} (algorithm={config.algorithm}); its options "
        f"are {names}"
    )


def config_to_yaml(config: TrainConfig) -> str:
    """The resolved configuration as YAML (what a run directory records).

    Examples:
        >>> text = config_to_yaml(TrainConfig(experiment="movebox-easy", seed=2))
        >>> "seed: 2" in text and config_from_yaml(text).seed == 2
        True
    """
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def config_from_yaml(text: str) -> TrainConfig:
    """Parse and validate a configuration written by :func:`config_to_yaml`.

    Examples:
        >>> config_from_yaml("experiment: movebox-hard\\nvariant: basic").variant
        'basic'
    """
    import yaml

    if not isinstance(text, str):
        raise ConfigError(f"a config file holds text, got {type(text).__name__}")
    try:
        loaded = OmegaConf.create(text)
    except (OmegaConfBaseException, ValueError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"not a config file: {first}") from None
    if not isinstance(loaded, dict) and not OmegaConf.is_dict(loaded):
        raise ConfigError(f"a config file holds a mapping, got {type(loaded).__name__}")
    name = loaded.get("algorithm", TrainConfig.algorithm)
    if not isinstance(name, str):
        raise ConfigError(f"config.algorithm must be a str, got {name!r}")
    cls = get_algorithm(name).config_class
    try:
        base = OmegaConf.structured(TrainConfig(algorithm=name, loss=cls()))
        merged = OmegaConf.merge(base, loaded)
    except OmegaConfBaseException as err:
        raise _config_error(err) from None
    return _to_config(merged)


def __getattr__(name: str) -> Any:
    """Names that moved, kept for one release with a ``DeprecationWarning``."""
    moved = {
        "LossConfig": ("mtmarl.algorithms.MAPPOConfig", MAPPOConfig),
        "ALGORITHMS": ("mtmarl.algorithms.ALGORITHMS", None),
    }
    if name not in moved:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    where, value = moved[name]
    warnings.warn(
        f"mtmarl.training.config.{name} moved to {where}; the old name goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    if value is None:
        from mtmarl.algorithms import ALGORITHMS

        value = ALGORITHMS
    return value
