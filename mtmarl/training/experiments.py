"""Named experiment presets: the only place in mtmarl that names environments.

An :class:`Experiment` couples an environment factory with the default :class:`TrainConfig` of
a task. ``mtmarl train NAME`` starts from ``get_experiment(NAME).config`` and applies the
command line's overrides. Register your own with :func:`register_experiment`; to reach
them from the command line, name the module that registers them
(``mtmarl train NAME --import my_package.experiments``, :func:`import_experiments`) or let an
installed package declare it under the entry-point group ``mtmarl.experiments``
(:data:`ENTRY_POINT_GROUP`), which the registry loads the first time it is looked up::

    # the pyproject.toml of your package
    [project.entry-points."mtmarl.experiments"]
    feeder = "my_package.experiments"          # a module that calls register_experiment
    # or = "my_package.experiments:FEEDER"     # an Experiment (or a list of them)
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tensordict.utils import NestedKey
from torchrl.envs import EnvBase

from mtmarl._registry import loaded_entry_points
from mtmarl.algorithms import MAPPOConfig
from mtmarl.training.config import (
    CollectorConfig,
    ConfigError,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Experiment",
    "EnvFactory",
    "get_experiment",
    "import_experiments",
    "list_experiments",
    "register_experiment",
]

#: Entry-point group under which installed packages declare their presets: each entry names
#: a module that calls :func:`register_experiment` when imported, or an :class:`Experiment`
#: (or a list of them) to register.
ENTRY_POINT_GROUP = "mtmarl.experiments"

#: ``env_factory(*, num_envs, device, seed, **env_kwargs) -> EnvBase``: the task alone. The
#: trainer appends what the run's choices need (the variant's phase encoding with the
#: experiment's :attr:`~Experiment.period`, see :class:`~mtmarl.training.env_stack.EnvMaker`).
#: A factory that takes ``phase_mode`` (the old contract) still gets it, with a
#: ``DeprecationWarning``.
EnvFactory = Callable[..., EnvBase]


@dataclass(frozen=True)
class Experiment:
    """A named task: environment factory plus default training configuration.

    Attributes:
        name (str): the preset's name (``mtmarl train NAME``).
        description (str): one line for ``mtmarl list``.
        env_factory (EnvFactory): builds the environment stack, see :data:`EnvFactory`.
        config (TrainConfig): the defaults (``config.experiment == name``).
        max_episode_steps (int): horizon used by evaluation.
        success_key (NestedKey or None): boolean ``"next"`` entry marking a successful final
            step, or ``None`` when the task has no success notion.
        env_kwargs_doc (dict[str, str]): the factory's own keyword arguments (``env.*``
            overrides), documented for ``mtmarl list``.
        action_priors (dict[str, Callable[[EnvBase], Callable]]): base controllers that
            ``model.action_prior=NAME`` puts under the hybrid actor (see
            :class:`~mtmarl.modules.ActionPrior`): ``NAME -> make(env)`` returning an
            observation-only ``TensorDictModuleBase`` policy (with ``in_keys``).
        period (int or None): the period ``L`` of the task's joint process, for the phase
            encodings of the ``onehot`` and ``phasic`` variants; ``None`` reads it from the
            env (its ``period`` attribute, or the LCM of an ``ActionFrequencyMask``'s
            frequencies). Defaults to ``None``.
        algorithm_overrides (dict[str, tuple[str, ...]]): per algorithm, ``key=value``
            overrides applied on top of :attr:`config` when a run uses that algorithm
            (:meth:`config_for`; ``mtmarl train NAME algorithm=coma``), e.g. COMA's learning
            rate on this task. Defaults to ``{}``.

    Examples:
        >>> exp = get_experiment("movebox-easy")
        >>> exp.config.experiment, exp.max_episode_steps
        ('movebox-easy', 20)
    """

    name: str
    description: str
    env_factory: EnvFactory
    config: TrainConfig
    max_episode_steps: int
    success_key: NestedKey | None = None
    env_kwargs_doc: dict[str, str] = field(default_factory=dict)
    action_priors: dict[str, Callable[[EnvBase], Callable]] = field(default_factory=dict)
    period: int | None = None
    algorithm_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def config_for(self, algorithm: str) -> TrainConfig:
        """The preset's config for ``algorithm``: :attr:`config` switched to it (the shared
        loss fields kept) with its :attr:`algorithm_overrides`.

        Examples:
            >>> cfg = get_experiment("movebox-easy").config_for("coma")
            >>> cfg.algorithm, type(cfg.loss).__name__
            ('coma', 'COMAConfig')
        """
        return apply_overrides(
            self.config,
            [f"algorithm={algorithm}", *self.algorithm_overrides.get(algorithm, ())],
        )

    def action_prior(self, name: str, env: EnvBase, *, bonus: float):
        """The :class:`~mtmarl.modules.ActionPrior` of :attr:`action_priors` ``[name]``
        (``model.action_prior``) for ``env``, its discrete choice's logit bonus ``bonus``."""
        from mtmarl.modules import ActionPrior

        controller = self.action_priors[name](env)
        return ActionPrior(controller, action_spec=env.full_action_spec, logit_bonus=bonus)

    def make_env(
        self, config: TrainConfig, *, num_envs: int, seed: int, training: bool = False
    ) -> EnvBase:
        """The run's env stack (:class:`~mtmarl.training.env_stack.EnvMaker`): the factory
        called with ``config.env`` (checked first), the variant's phase encoding appended.

        Keyword Args:
            num_envs (int): batch size.
            seed (int): the env's seed.
            training (bool): a collector's env (episode groups of
                ``collector.episode_group_size``). Defaults to False.
        """
        from mtmarl.training.env_stack import EnvMaker

        maker = EnvMaker(
            config=config,
            factory=self.env_factory,
            name=f"experiment {self.name!r}",
            period=self.period,
        )
        return maker(num_envs=num_envs, seed=seed, training=training)


def _bind_error(factory: EnvFactory, env_kwargs: dict) -> TypeError | None:
    """Why the factory cannot be called with ``env_kwargs`` (and the trainer's own), if not."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # not introspectable: nothing to check
        return None
    legacy = {"phase_mode": None} if "phase_mode" in signature.parameters else {}
    try:
        signature.bind(num_envs=1, device="cpu", seed=0, **legacy, **env_kwargs)
    except TypeError as err:
        return err
    return None


def check_env_kwargs(factory: EnvFactory, env_kwargs: dict, name: str) -> None:
    """Fail before any work if ``env_kwargs`` does not fit the factory's signature."""
    reserved = {"num_envs", "device", "seed", "phase_mode", "episode_group_size"} & set(env_kwargs)
    if reserved:
        raise ConfigError(
            f"env.{sorted(reserved)[0]} is set by the trainer; use collector.num_envs, "
            f"device, seed, variant or collector.episode_group_size instead"
        )
    err = _bind_error(factory, env_kwargs)
    if err is not None:
        raise ConfigError(f"env options {env_kwargs} do not fit {name}: {err}")


def check_takes_episode_groups(factory: EnvFactory, env_kwargs: dict, who: str) -> None:
    """Fail before any work if ``factory`` cannot take ``env_kwargs``, which hold
    ``episode_group_size`` (``collector.episode_group_size`` > 1)."""
    err = _bind_error(factory, env_kwargs)
    if err is not None:
        raise ConfigError(
            f"collector.episode_group_size={env_kwargs['episode_group_size']} needs an env "
            f"that takes episode_group_size; {who} does not ({err})"
        )


def check_action_prior(
    config: TrainConfig, experiment: Experiment | None, *, injected_actor: bool = False
) -> None:
    """Fail before any work if ``model.action_prior`` names no controller of the preset.

    Like the rest of ``config.model``, the prior belongs to the actor the trainer builds: an
    injected actor is used as it is (wrap its heads with an ``ActionPrior`` yourself).
    """
    name = config.model.action_prior
    if name is None or injected_actor:
        return
    known = sorted(experiment.action_priors) if experiment is not None else []
    if name not in known:
        where = f"experiment {experiment.name!r}" if experiment is not None else "env_fn"
        raise ConfigError(
            f"model.action_prior={name!r} is not a controller of {where}; known: {known}"
        )
    if config.model.continuous_distribution != "tanh_normal":
        raise ConfigError(
            f"model.action_prior shifts the TanhNormal head and needs "
            f"model.continuous_distribution=tanh_normal, got "
            f"{config.model.continuous_distribution}"
        )


_REGISTRY: dict[str, Experiment] = {}


def register_experiment(experiment: Experiment, *, overwrite: bool = False) -> Experiment:
    """Add a preset to the registry.

    Args:
        experiment (Experiment): the preset; its ``config.experiment`` must equal its name.

    Keyword Args:
        overwrite (bool): replace an existing preset of the same name. Defaults to False.

    Examples:
        >>> exp = get_experiment("movebox-easy")
        >>> try:
        ...     register_experiment(exp)
        ... except ValueError as err:
        ...     print(err)
        experiment 'movebox-easy' is already registered (pass overwrite=True to replace it)
    """
    if experiment.name in _REGISTRY and not overwrite:
        raise ValueError(
            f"experiment {experiment.name!r} is already registered "
            f"(pass overwrite=True to replace it)"
        )
    if experiment.config.experiment != experiment.name:
        raise ValueError(
            f"experiment {experiment.name!r} has config.experiment="
            f"{experiment.config.experiment!r}; they must match"
        )
    _REGISTRY[experiment.name] = experiment
    return experiment


def get_experiment(name: str) -> Experiment:
    """The preset called ``name`` (built in, registered, or an installed package's).

    Raises:
        KeyError: no preset has that name.
        ImportError: an installed package's ``mtmarl.experiments`` entry point is broken.

    Examples:
        >>> try:
        ...     get_experiment("movebox")
        ... except KeyError as err:
        ...     print(err.args[0])
        unknown experiment 'movebox'; known: ['building', 'community', 'community-scratch', 'movebox-easy', 'movebox-hard', 'vmas-navigation']
    """
    _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown experiment {name!r}; known: {sorted(_REGISTRY)}") from None


def list_experiments() -> list[Experiment]:
    """All registered presets, sorted by name (with the installed packages', see the module).

    Raises:
        ImportError: an installed package's ``mtmarl.experiments`` entry point is broken.

    Examples:
        >>> [e.name for e in list_experiments()]
        ['building', 'community', 'community-scratch', 'movebox-easy', 'movebox-hard', 'vmas-navigation']
    """
    _load_entry_points()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def import_experiments(module: str) -> list[str]:
    """Import the module that registers your presets, for ``mtmarl ... --import MODULE``.

    Args:
        module (str): a dotted module name (``"my_package.experiments"``) or the path of a
            ``.py`` file; a file is imported by its stem with its folder put at the front
            of ``sys.path`` (unless it is on it already), so that collector worker processes
            can import it too. A module
            already imported is not run again.

    Returns:
        list[str]: the names of the presets the import added, sorted.

    Raises:
        ImportError: the module (or file) cannot be imported, or raised while importing.

    Examples:
        >>> import_experiments("mtmarl.training.experiments")  # the built-in presets' module
        []
        >>> try:
        ...     import_experiments("no_such_module_here")
        ... except ImportError as err:
        ...     print(err)
        could not import 'no_such_module_here' (--import): No module named 'no_such_module_here'
    """
    _load_entry_points()
    before = set(_REGISTRY)
    name = module
    if module.endswith(".py"):
        path = Path(module).resolve()
        if not path.is_file():
            raise ImportError(f"could not import {module!r} (--import): no such file {path}")
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        name = path.stem
    try:
        importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"could not import {module!r} (--import): {err}") from err
    except Exception as err:
        raise ImportError(
            f"importing {module!r} (--import) raised {type(err).__name__}: {err}"
        ) from err
    return sorted(set(_REGISTRY) - before)


_entry_points_loaded = False


def _load_entry_points() -> None:
    """Load the :data:`ENTRY_POINT_GROUP` entry points of the installed packages, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True  # first: an entry point that looks a preset up does not recurse
    try:
        for who, loaded in loaded_entry_points(ENTRY_POINT_GROUP):
            _register_loaded(loaded, who)
    except BaseException:
        _entry_points_loaded = False  # the next lookup reports the broken entry point again
        raise


def _register_loaded(loaded: object, who: str) -> None:
    """Register what an entry point names: a module registered its presets on import."""
    if isinstance(loaded, types.ModuleType):
        return
    items = [loaded] if isinstance(loaded, Experiment) else loaded
    if not isinstance(items, (list, tuple)) or not all(isinstance(e, Experiment) for e in items):
        raise ImportError(
            f"{who} must name a module that calls register_experiment, an Experiment or a list "
            f"of them; got {type(loaded).__name__}"
        )
    for experiment in items:
        if _REGISTRY.get(experiment.name) is not experiment:
            try:
                register_experiment(experiment)
            except ValueError as err:
                raise ImportError(f"{who}: {err}") from err


# --------------------------------------------------------------------------------------------
# Built-in presets
# --------------------------------------------------------------------------------------------


def _make_movebox(difficulty: str, *, num_envs: int, device: str, seed: int) -> EnvBase:
    from mtmarl.envs import make_movebox_env

    return make_movebox_env(difficulty, num_envs=num_envs, device=device, seed=seed)


def _movebox_factory(difficulty: str) -> EnvFactory:
    # a partial of a module-level function: picklable, so collector worker processes can
    # rebuild the env
    return functools.partial(_make_movebox, difficulty)


def _movebox_config(
    name: str, *, horizon: int, iterations: int, entropy_coeff: float
) -> TrainConfig:
    return TrainConfig(
        experiment=name,
        variant="phasic",
        algorithm="mappo",
        collector=CollectorConfig(num_envs=64, steps_per_env=horizon, iterations=iterations),
        loss=MAPPOConfig(gamma=0.99, lmbda=0.95, entropy_coeff=entropy_coeff),
        optim=OptimConfig(lr=3e-4, epochs=4, minibatch_size=64 * horizon // 4),
        eval=EvalConfig(episodes=100, interval=10),
    )


#: ``algorithm=coma`` on Move Box: COMA's TD(lambda) 0.8 and lr 5e-4 (PyMARL's COMA
#: learning rate), its other options at their defaults (COMAConfig)
_MOVEBOX_COMA = ("loss.lmbda=0.8", "optim.lr=5e-4")

register_experiment(
    Experiment(
        name="movebox-easy",
        description="Move Box easy (seed 004, Table I): 2 agents, action periods (1, 2)",
        env_factory=_movebox_factory("easy"),
        config=_movebox_config("movebox-easy", horizon=20, iterations=60, entropy_coeff=0.01),
        max_episode_steps=20,
        success_key="terminated",
        algorithm_overrides={"coma": _MOVEBOX_COMA},
    )
)

register_experiment(
    Experiment(
        name="movebox-hard",
        description="Move Box hard (seed 004, Table I): 2 agents, co-prime periods (2, 3)",
        env_factory=_movebox_factory("hard"),
        # a stronger entropy bonus: at 0.01 two of four phasic seeds settled on a one-push policy
        # before finding the 19-step solution (lr 3e-4, 100 iterations)
        config=_movebox_config("movebox-hard", horizon=20, iterations=150, entropy_coeff=0.03),
        max_episode_steps=20,
        success_key="terminated",
        algorithm_overrides={"coma": _MOVEBOX_COMA},
    )
)


def _building_factory(
    *, num_envs: int, device: str, seed: int, horizon: int = 30, action_levels: int | None = None
) -> EnvBase:
    from mtmarl.envs import make_building_env

    return make_building_env(
        num_envs=num_envs, device=device, seed=seed, horizon=horizon, action_levels=action_levels
    )


register_experiment(
    Experiment(
        name="building",
        description="5-zone building HVAC + storage (seed 004, sec. V-B): 7 agents, periods "
        "(5 x6, 1), L = 15, continuous actions",
        env_factory=_building_factory,
        config=TrainConfig(
            experiment="building",
            variant="phasic",
            algorithm="mappo",
            collector=CollectorConfig(num_envs=64, steps_per_env=30, iterations=100),
            loss=MAPPOConfig(gamma=0.99, lmbda=0.95, entropy_coeff=0.001),
            # lr 1e-3: at 3e-4 neither basic nor phasic beat the rule-based baseline in
            # 192k frames (seed 0: -33.4 / -53.3 vs -23.8); at 1e-3 both did (-18.6 / -12.7)
            optim=OptimConfig(lr=1e-3, epochs=4, minibatch_size=480),
            # phasic: one spline control point per minute of the L = 15 cycle, so the PFNN
            # weights can differ at every phase the agents see (only the phasic variant reads
            # it). Seed 0, 192k frames: K = 4 reached -12.7, K = 15 -7.4 by 115k frames.
            model=ModelConfig(n_control_points=15),
            eval=EvalConfig(episodes=64, interval=10),
        ),
        max_episode_steps=30,
        success_key=None,
        env_kwargs_doc={
            "horizon": "episode length, minutes (default 30)",
            "action_levels": "K: discrete actions, K levels per agent (default null: continuous; "
            "algorithm=coma sets 5)",
        },
        # COMA needs discrete actions: 5 levels of every normalised action (the bounds, the
        # midpoint and the quarter points); its TD(lambda) 0.8
        algorithm_overrides={"coma": ("env.action_levels=5", "loss.lmbda=0.8")},
    )
)


def _community_factory(
    *,
    num_envs: int,
    device: str,
    seed: int,
    n_prosumers: int = 10,
    comfort_weight: float = 1.0,
    ev_weight: float = 0.5,
    overload_weight: float = 1.0,
    agent_rewards: bool = True,
    episode_group_size: int = 1,
) -> EnvBase:
    from torchrl.envs import StepCounter, TransformedEnv

    from mtmarl.envs import CommunityEnergyEnv

    env = CommunityEnergyEnv(
        n_prosumers=n_prosumers,
        num_envs=num_envs,
        episode_group_size=episode_group_size,
        device=device,
        seed=seed,
        comfort_weight=comfort_weight,
        ev_weight=ev_weight,
        overload_weight=overload_weight,
        agent_rewards=agent_rewards,
    )
    return TransformedEnv(env, StepCounter())


#: ``ev_spread`` of the ``rule_based_spread`` prior and the thermostat deadband of both
#: community priors: the best mean return of a grid (deadband 0, 0.5, 0.75, 0.9 x ev_spread 0,
#: 0.4, 0.5, 0.6, 0.75) at N = 10, 50 and 100 on a community no benchmark trains or evaluates
#: on (env seed 30000; 64 / 32 / 16 days; studies/community/prior_selection.py)
COMMUNITY_EV_SPREAD = 0.6
COMMUNITY_THERMOSTAT_DEADBAND = 0.9
#: the battery pacing of the ``rule_based_spread`` prior (``battery_spread``,
#: ``battery_refill_hour`` of RuleBasedSelfConsumptionPolicy): the best mean return of a second
#: grid at that deadband (ev_spread 0.5, 0.6, 0.75 x battery_spread 0, 0.5, 0.75, 1 x refill
#: hour 4-8) on the same community and days (studies/community/results/prior_selection.md)
COMMUNITY_BATTERY_SPREAD = 1.0
COMMUNITY_BATTERY_REFILL_HOUR = 5.0
#: the heat pumps' pre-heating of the ``rule_based_preheat`` prior (``preheat_target``,
#: ``preheat_hours``): the best mean return of a third grid at the values above (target 0, 0.2,
#: 0.3, 0.45, 0.6 x window from 11-14 h to 16 h) on the same community and days; the
#: preset's prior (studies/community/results/prior_selection.md, stage 3)
COMMUNITY_PREHEAT_TARGET = 0.2
COMMUNITY_PREHEAT_HOURS = (13.0, 16.0)


def _community_rule_based(
    env: EnvBase,
    *,
    ev_spread: float = 0.0,
    battery_spread: float = 0.0,
    battery_refill_hour: float = 7.0,
    preheat_target: float = 0.0,
    preheat_hours: tuple[float, float] = (12.0, 16.0),
):
    """The community's rule-based self-consumption controller (``model.action_prior``), with
    the deadband thermostat; ``ev_spread > 0`` spreads off-peak EV charging over the night,
    ``battery_spread > 0`` paces the batteries' discharge until ``battery_refill_hour``,
    ``preheat_target > 0`` pre-conditions the homes in ``preheat_hours``."""
    from mtmarl.envs.community import RuleBasedSelfConsumptionPolicy

    return RuleBasedSelfConsumptionPolicy(
        env,
        ev_spread=ev_spread,
        thermostat_deadband=COMMUNITY_THERMOSTAT_DEADBAND,
        battery_spread=battery_spread,
        battery_refill_hour=battery_refill_hour,
        preheat_target=preheat_target,
        preheat_hours=preheat_hours,
    )


_COMMUNITY_SPREAD_PRIOR = functools.partial(
    _community_rule_based,
    ev_spread=COMMUNITY_EV_SPREAD,
    battery_spread=COMMUNITY_BATTERY_SPREAD,
    battery_refill_hour=COMMUNITY_BATTERY_REFILL_HOUR,
)

register_experiment(
    Experiment(
        name="community",
        description="community energy trading (seed 000), MATPPO: N prosumers "
        "(env.n_prosumers=10), hybrid actions, LSTM forecast encoder + Transformer critic; "
        "baselines: model.critic=mlp (MAPPO), model.critic=local (IPPO), variant=phasic "
        "(phase-aware heads), model.action_prior=null loss.reference_kl_coeff=0 (no rule-based "
        "prior, no KL anchor to it), "
        "loss.agent_rewards=false (GAE on the community reward only)",
        env_factory=_community_factory,
        config=TrainConfig(
            experiment="community",
            variant="basic",
            algorithm="mappo",
            collector=CollectorConfig(num_envs=16, steps_per_env=96, iterations=50),
            # MATPPO (seed 000): the actor reads an LSTM over the forecast window, the critic
            # attends over the prosumers; model.critic=mlp / local give MAPPO / IPPO. LSTM
            # hidden 32: half the update time of 64 on CPU; lr 1e-3 as in
            # studies/community/results.py
            # The actor starts at the rule-based controller (spread EV charging, paced
            # batteries, pre-heated homes: model.action_prior=rule_based_preheat; the best of
            # the priors on the selection community, prior_selection.md) and learns a residual
            # (model.action_prior=null model.init_scale=1.0 loss.reference_kl_coeff=0 trains from
            # scratch, as before):
            # benchmarks/README.md compares the two. Little initial exploration around it
            # (init_scale 0.1, logit bonus 5: the controller's EV level has probability 0.99):
            # with 0.3 and 3 the final iterates fell well below the paced prior (N = 10,
            # selection community: -7.91 against -7.12; benchmarks/README.md)
            model=ModelConfig(
                encoder="lstm",
                critic="transformer",
                hidden_size=32,
                action_prior="rule_based_preheat",
                action_prior_bonus=5.0,
                init_scale=0.1,
            ),
            # GAE on each prosumer's difference reward (the env's agent_rewards: the community
            # reward minus the community reward had its devices been idle), which carries the
            # prosumer's own effect without the others' noise; loss.agent_rewards=false runs
            # GAE on the community reward, as the paper does (benchmarks/README.md compares)
            # lmbda 0.99: with 0.95, the advantage of deferring an EV barely sees the forced
            # fast charging 6-8 h later, and policies learned to defer every car to its
            # deadline (N = 50, MATPPO, final iterates: return -10.3 with 0.95, -6.5 with
            # 0.99; studies/community/results/ablation_gae_lambda.md)
            # reference_kl_coeff 0.1: a KL anchor to the initial actor (the prior), which PPO's
            # clip alone does not give; the final iterates stayed near the prior instead of
            # drifting below it (N = 50, selection community: -5.77 against -6.04; best actors
            # level; studies/community/results/ablation_reference_kl.md). Without a prior
            # (model.action_prior=null) set it to 0: the anchor would be the random init
            loss=MAPPOConfig(
                gamma=0.99,
                lmbda=0.99,
                entropy_coeff=0.001,
                agent_rewards=True,
                reference_kl_coeff=0.1,
            ),
            optim=OptimConfig(lr=1e-3, epochs=4, minibatch_size=768),
            eval=EvalConfig(episodes=16, interval=10),
        ),
        max_episode_steps=96,
        success_key=None,
        period=96,  # the daily cycle: 96 steps of 15 minutes
        env_kwargs_doc={
            "n_prosumers": "community size N (default 10)",
            "comfort_weight": "reward penalty per deg C h outside the comfort band (default 1.0)",
            "ev_weight": "reward penalty per kWh of unmet EV energy (default 0.5)",
            "overload_weight": "reward penalty per kWh above the transformer rating (default 1.0)",
            "agent_rewards": "also write each prosumer's difference reward at (agents, reward), "
            "for loss.agent_rewards=true (default true)",
        },
        action_priors={
            "rule_based": _community_rule_based,
            # spread EV charging and paced batteries
            "rule_based_spread": _COMMUNITY_SPREAD_PRIOR,
            # ... and pre-heated homes in the afternoon
            "rule_based_preheat": functools.partial(
                _COMMUNITY_SPREAD_PRIOR,
                preheat_target=COMMUNITY_PREHEAT_TARGET,
                preheat_hours=COMMUNITY_PREHEAT_HOURS,
            ),
        },
    )
)


_COMMUNITY = get_experiment("community")

register_experiment(
    dataclasses.replace(
        _COMMUNITY,
        name="community-scratch",
        description="community energy trading (seed 000), MATPPO from scratch as the paper "
        "trains it: the community preset without the rule-based prior and its KL anchor, "
        "with running observation normalisation (model.critic=mlp / local: MAPPO / IPPO)",
        config=dataclasses.replace(
            _COMMUNITY.config,
            experiment="community-scratch",
            model=dataclasses.replace(
                _COMMUNITY.config.model,
                action_prior=None,
                init_scale=1.0,
                # the one option of the N = 10 ablation that helped beyond a seed std:
                # best-actor return -6.63 +- 1.99 against -10.87 +- 0.93 without it;
                # model.init=orthogonal -9.48, optim.lr_schedule=linear -12.65, all three
                # -7.54 (3 seeds, 77k env steps; studies/community/README.md)
                obs_norm=True,
            ),
            loss=dataclasses.replace(_COMMUNITY.config.loss, reference_kl_coeff=0.0),
        ),
        action_priors={},
    )
)


# --------------------------------------------------------------------------------------------
# VMAS (optional extra ``[vmas]``): a task other MARL stacks report on
# --------------------------------------------------------------------------------------------


def _flatten_agents(observation):
    """``(*B, N, F) -> (*B, N * F)``: the agents' observations side by side (global state)."""
    return observation.flatten(-2)


def _mean_over_agents(reward):
    """``(*B, N, 1) -> (*B, 1)``: the team reward, mean of the agents' rewards."""
    return reward.mean(-2)


def _vmas_navigation_factory(
    *,
    num_envs: int,
    device: str,
    seed: int,
    n_agents: int = 3,
    max_steps: int = 100,
    collisions: bool = True,
    agents_with_same_goal: int = 1,
    split_goals: bool = False,
    observe_all_goals: bool = False,
    shared_rew: bool = False,
    lidar_range: float = 0.35,
    agent_radius: float = 0.1,
) -> EnvBase:
    """VMAS ``navigation`` through torchrl's ``VmasEnv``, mapped onto the trainer's keys.

    The scenario options default to BenchMARL's ``task=vmas/navigation``. VMAS writes per-agent
    ``("agents", "observation")`` ``(E, N, 18)``, ``("agents", "reward")`` ``(E, N, 1)`` and root
    ``"done"``/``"terminated"`` ``(E, 1)`` (the ``max_steps`` time limit counts as terminal, as
    in BenchMARL); two ``UnaryTransform`` s add root ``"state"`` ``(E, N * 18)`` (the agents'
    observations concatenated, for the centralised critic) and the team reward ``"reward"``
    ``(E, 1)`` = mean of the agents' rewards (on the per-agent scale that BenchMARL's
    ``episode_reward_mean`` reports). Actions: ``("agents", "action")`` ``Bounded`` ``(E, N, 2)``
    in ``[-1, 1]`` (continuous forces).
    """
    try:
        from torchrl.envs.libs.vmas import VmasEnv
        from vmas import __version__  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f"experiment vmas-navigation needs VMAS ({err}); pip install 'mtmarl[vmas]'"
        ) from None
    from torchrl.envs import Compose, TransformedEnv, UnaryTransform

    env = VmasEnv(
        "navigation",
        num_envs=num_envs,
        device=device,
        seed=seed,
        continuous_actions=True,
        max_steps=max_steps,
        n_agents=n_agents,
        collisions=collisions,
        agents_with_same_goal=agents_with_same_goal,
        split_goals=split_goals,
        observe_all_goals=observe_all_goals,
        shared_rew=shared_rew,
        lidar_range=lidar_range,
        agent_radius=agent_radius,
    )
    return TransformedEnv(
        env,
        Compose(
            UnaryTransform(
                in_keys=[("agents", "observation")], out_keys=["state"], fn=_flatten_agents
            ),
            UnaryTransform(
                in_keys=[("agents", "reward")], out_keys=["reward"], fn=_mean_over_agents
            ),
        ),
    )


register_experiment(
    Experiment(
        name="vmas-navigation",
        description="VMAS navigation (needs the [vmas] extra): 3 agents, continuous actions, "
        "MAPPO as in BenchMARL's mappo/vmas/navigation",
        env_factory=_vmas_navigation_factory,
        config=TrainConfig(
            experiment="vmas-navigation",
            variant="basic",
            algorithm="mappo",
            # BenchMARL: on_policy_collected_frames_per_batch=6000 from
            # on_policy_n_envs_per_worker=10 envs (600 steps = 6 episodes of 100 per env),
            # max_n_frames=3e6 (500 iterations)
            collector=CollectorConfig(num_envs=10, steps_per_env=600, iterations=500),
            # BenchMARL's mlp layers: [256, 256] for the actor and the centralised critic
            model=ModelConfig(num_cells=[256, 256]),
            # BenchMARL mappo.yaml: lmbda 0.9, clip 0.2, no entropy bonus, critic_coef 1, no
            # advantage normalisation; gamma 0.99
            loss=MAPPOConfig(
                gamma=0.99,
                lmbda=0.9,
                clip_epsilon=0.2,
                entropy_coeff=0.0,
                critic_coeff=1.0,
                normalize_advantage=False,
            ),
            # on_policy_n_minibatch_iters=45 minibatches of on_policy_minibatch_size=400 drawn
            # without replacement from 6000 frames = 3 epochs of 15; lr 5e-5, grad clip 5
            optim=OptimConfig(lr=5e-5, max_grad_norm=5.0, epochs=3, minibatch_size=400),
            # evaluation_episodes=10 every evaluation_interval=120_000 frames (20 iterations)
            eval=EvalConfig(episodes=10, interval=20),
        ),
        max_episode_steps=100,
        success_key=None,
    )
)
