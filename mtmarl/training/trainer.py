"""The generic trainer: env -> ``Collector`` -> value estimator -> minibatches -> loss -> optimiser.

It knows no particular environment: the experiment preset (or ``env_fn``) provides the env stack,
and the actor/critic come from :mod:`mtmarl.modules`' factories, sized from the env's specs.

Data layout: every iteration resets all envs and collects ``num_envs x steps_per_env`` frames as
a ``[num_envs, steps_per_env]`` tensordict (time is the last batch dim), so each iteration holds
whole episodes from their start and a resumed run needs no saved environment state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn
from torchrl.collectors import Collector, MultiSyncCollector
from torchrl.data import Bounded, Categorical, Composite
from torchrl.envs import EnvBase, InitTracker, RewardSum, TransformedEnv
from torchrl.envs.utils import ExplorationType
from torchrl.objectives.multiagent import MAPPOLoss
from torchrl.objectives.utils import distance_loss
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from mtmarl.objectives import leave_one_out
from mtmarl.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mtmarl.training.config import ConfigError, TrainConfig, config_from_yaml, config_to_yaml
from mtmarl.training.evaluation import EvalResult, evaluate_policy, explained_variance
from mtmarl.training.experiments import Experiment, check_takes_episode_groups, get_experiment
from mtmarl.training.plotting import plot_learning_curve

if TYPE_CHECKING:
    from mtmarl.objectives import ReferenceKLLoss

__all__ = ["TrainResult", "Trainer", "train"]

#: Phase encoding each variant needs from the env stack.
PHASE_MODE = {"basic": None, "recurrent": None, "onehot": "onehot", "phasic": "phase"}

AGENTS = "agents"
ACTION = (AGENTS, "action")
MASK = (AGENTS, "action_mask")
CAN_ACT = (AGENTS, "can_act")
OBS = (AGENTS, "observation")
AGENT_REWARD = (AGENTS, "reward")
VALUE = (AGENTS, "state_value")
# MATPPO inputs (model.encoder=lstm, model.critic=transformer)
FORECAST = (AGENTS, "forecast")
DEVICE_STATE = (AGENTS, "device_state")
CONTEXT = (AGENTS, "context")
RATINGS = (AGENTS, "ratings")
LOCAL_STATE = (AGENTS, "local_state")
FEATURE = (AGENTS, "feature")
CRITIC_OBS = (AGENTS, "critic_observation")
AGGREGATE = "aggregate"
GLOBAL_TARGET = "state_value_global_target"
ADVANTAGE = (AGENTS, "advantage")
VALUE_TARGET = (AGENTS, "value_target")


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        run_dir (Path): the run directory.
        iterations (int): iterations completed (over all sessions of a resumed run).
        frames (int): environment steps collected.
        interrupted (bool): the run stopped on SIGINT/SIGTERM after checkpointing.
        evaluation (EvalResult or None): final deterministic evaluation.
        history (list[dict]): per-iteration metrics.
        best_iteration (int or None): iteration of the best evaluation (``0``: the initial
            policy) when ``eval.keep_best``; its actor is ``run_dir/checkpoints/best.pt``.
        best_return (float or None): that evaluation's mean return.

    Examples:
        >>> from pathlib import Path
        >>> TrainResult(Path("runs/x"), 2, 160, False, None).frames
        160
    """

    run_dir: Path
    iterations: int
    frames: int
    interrupted: bool
    evaluation: EvalResult | None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_iteration: int | None = None
    best_return: float | None = None


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between iterations."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:  # noqa: ARG002
        if self.requested:  # a second signal: give up waiting
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not in the main thread: no handler, no interruption
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True)
class _EnvMaker:
    """Builds the training/evaluation env stack; picklable, so that collector worker
    processes can rebuild it (the experiment's factory must be picklable too: a module-level
    function or a ``functools.partial`` of one)."""

    config: TrainConfig
    experiment: Experiment | None
    env_fn: Callable[..., EnvBase] | None

    def __call__(self, *, num_envs: int, seed: int, training: bool = False) -> EnvBase:
        """``training``: an env of the collector (episode groups of
        ``collector.episode_group_size``); otherwise a validation env (independent episodes)."""
        cfg = self.config
        phase_mode = PHASE_MODE[cfg.variant]
        group = cfg.collector.episode_group_size if training else 1
        grouped = {"episode_group_size": group} if group != 1 else {}
        if self.env_fn is None:
            env = self.experiment.make_env(
                cfg, num_envs=num_envs, seed=seed, phase_mode=phase_mode, episode_group_size=group
            )
        else:
            if grouped:
                check_takes_episode_groups(self.env_fn, grouped, "the env_fn")
            env = self.env_fn(
                num_envs=num_envs, device=cfg.device, seed=seed, phase_mode=phase_mode, **grouped
            )
        base = env.base_env if isinstance(env, TransformedEnv) else env
        if getattr(base, "episode_group_size", 1) != group:
            raise ConfigError(
                f"collector.episode_group_size={group}: the env was built with "
                f"episode_group_size={getattr(base, 'episode_group_size', None)!r}"
            )
        if not isinstance(env, TransformedEnv):
            env = TransformedEnv(env)
        env.append_transform(RewardSum(in_keys=["reward"], out_keys=["episode_reward"]))
        if cfg.variant == "recurrent":
            env.append_transform(InitTracker())
        return env


class _MAPPOLoss(MAPPOLoss):
    """``MAPPOLoss``, with an optional :class:`~mtmarl.objectives.ReferenceKLLoss` on the
    distribution of the loss's own actor pass (``_log_weight`` returns it), so that the anchor
    costs one forward pass of the frozen reference without gradients, not a second actor pass;
    its frozen copy is a submodule, so the loss's ``state_dict`` (the checkpoint) holds it."""

    def __init__(
        self, *args: Any, reference_kl: ReferenceKLLoss | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.reference_kl = reference_kl
        self._penalty: TensorDictBase | None = None

    def _log_weight(self, tensordict: TensorDictBase, adv_shape: torch.Size):
        out = super()._log_weight(tensordict, adv_shape)
        if self.reference_kl is not None:
            self._penalty = self.reference_kl.penalty(out[1], tensordict)
        return out

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        td_out = super().forward(tensordict)
        if self._penalty is not None:
            td_out.update(self._penalty)
            self._penalty = None
        return td_out


class _MAPPOWithGlobalValue(_MAPPOLoss):
    """``MAPPOLoss`` that also fits a critic's pooled global value, from the same critic pass.

    ``loss_critic`` runs the critic on the minibatch, which then holds the global value
    (``global_value_key``) next to the per-agent values; the extra term
    ``loss_critic_global = global_value_coeff *`` the PPO critic's distance (smooth L1) to its
    target ``"state_value_global_target"`` is computed from it, so the critic runs once per
    minibatch, not twice.
    """

    def __init__(
        self, *args: Any, global_value_key: str, global_value_coeff: float, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.global_value_key = global_value_key
        self.global_value_coeff = global_value_coeff
        self._global_loss: torch.Tensor | None = None

    def loss_critic(self, tensordict: TensorDictBase):
        out = super().loss_critic(tensordict)
        value = tensordict.get(self.global_value_key)
        loss = distance_loss(
            value,
            tensordict.get(GLOBAL_TARGET).to(value.dtype),
            loss_function=self.loss_critic_type,
        )
        self._global_loss = self.global_value_coeff * loss.mean()
        return out

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        td_out = super().forward(tensordict)
        if self._global_loss is not None:
            td_out.set("loss_critic_global", self._global_loss)
            self._global_loss = None
        return td_out


#: the loss outputs besides ``loss_*`` that ``_update`` logs (as ``train/<name>``)
_LOGGED = ("entropy", "clip_fraction", "kl_approx", "reference_kl")


class _Concat(nn.Module):
    """``cat((*B, a), (*B, b), ...) -> (*B, a + b + ...)`` on the last dim."""

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        return torch.cat(parts, dim=-1)


class Trainer:
    """Assemble and run one training run from a :class:`TrainConfig`.

    Actor and critic follow ``config.model`` (see :class:`~mtmarl.training.ModelConfig`):

    * ``model.encoder``: ``"mlp"`` heads on ``("agents", "observation")``, or ``"lstm"``: a
      :class:`~mtmarl.modules.ForecastEncoder` on ``("agents", "forecast")`` plus
      ``("agents", "device_state")`` (and ``("agents", "context")`` if present) in front of
      the hybrid actor's heads (MATPPO);
    * ``model.critic``: ``"mlp"`` on the global ``"state"`` (MAPPO), ``"transformer"``
      (:class:`~mtmarl.modules.TransformerCritic` over ``("agents", "critic_observation")``
      with ``"aggregate"`` as the global token; MATPPO) or ``"local"`` (each agent's
      observation; IPPO).

    Which value GAE uses: the per-agent values ``("agents", "state_value")`` -- every critic
    writes them -- with the team reward broadcast over the agents, or with each agent's own
    reward ``("agents", "reward")`` when ``loss.agent_rewards`` is set; ``MAPPOLoss`` fits
    them to their GAE targets. A critic that also writes a pooled global value (the Transformer
    critic's ``"state_value_global"``, i.e. any critic with ``global_value_key`` and
    ``global_value_loss``) gets its own single-agent GAE target on the team reward
    (``"state_value_global_target"``) and the loss ``loss_critic_global`` -- the PPO
    critic's distance (smooth L1) to it, weighted by ``loss.global_value_coeff``; both heads
    share the attention encoder.

    With ``loss.reference_kl_coeff > 0`` a :class:`~mtmarl.objectives.ReferenceKLLoss` adds
    ``loss_reference_kl``, the KL from the actor to a frozen copy of itself as built (e.g. the
    controller of its ``model.action_prior``), to every minibatch's losses; the copy is saved
    in the checkpoint, so a resumed run keeps its anchor.

    What each iteration logs (``TrainResult.history``, the logger, ``metrics/scalars``):

    * ``train/return``, ``train/episodes`` (and ``train/success_rate`` for a preset with a
      success key): the episodes that ended in this iteration's batch, exploring;
    * ``train/loss_*``, ``train/entropy``, ``train/clip_fraction``, ``train/kl_approx``
      (``train/reference_kl`` with the anchor) and ``train/grad_norm``: means over the
      iteration's minibatches; ``train/critic_warmup``: 1 while ``optim.critic_warmup`` holds
      the actor;
    * ``train/explained_variance`` (MAPPO): ``1 - Var[target - value] / Var[target]`` of the
      per-agent values against their GAE targets on this batch, before its updates
      (:func:`~mtmarl.training.explained_variance`); near 0 while the advantages are mostly
      the returns' own noise;
    * ``time/fps``, ``time/collect_fps``: frames per second of the whole iteration and of its
      collection;
    * ``eval/return`` (``eval/success_rate``) every ``eval.interval`` iterations.

    Args:
        config (TrainConfig): the validated configuration.

    Keyword Args:
        env_fn (Callable, optional): ``env_fn(*, num_envs, device, seed, phase_mode) -> EnvBase``
            to train on any torchrl multi-agent env: per-agent actions at
            ``("agents", "action")`` -- discrete (``Categorical``, shape ``(*B, N)``; masked by
            ``("agents", "action_mask")`` when present) or continuous (``Bounded``,
            ``(*B, N, A)``; forced steps from ``("agents", "can_act")`` get zero log-prob via
            :class:`~mtmarl.modules.MaskedTanhNormal`) -- observations at
            ``("agents", "observation")``, global ``"state"``, team reward at the root.
            Defaults to the experiment preset's factory.
        experiment (Experiment, optional): preset providing the env factory, horizon and
            success key. Defaults to ``get_experiment(config.experiment)`` unless ``env_fn``
            is given.
        max_episode_steps (int, optional): evaluation horizon with ``env_fn``. Defaults to
            ``config.collector.steps_per_env``.
        run_dir (str or Path, optional): where to write. Defaults to
            ``config.run.out_dir / config.run_name``.
        resume (bool): continue from ``run_dir/checkpoints/last.pt``. Defaults to False, in
            which case an existing checkpoint in ``run_dir`` is an error (nothing is
            overwritten).
        actor (TensorDictModuleBase, optional): your own policy instead of the one
            ``config.model`` describes: a torchrl ``ProbabilisticActor`` (or equivalent) that
            reads the env's observations and writes the action at ``("agents", "action")``
            with its log-prob (``return_log_prob=True``; for composite actions, the per-head
            ``<name>_log_prob`` keys as :func:`~mtmarl.modules.make_hybrid_actor` writes
            them; otherwise ``("agents", "action_log_prob")``). Defaults to ``None``.
        critic (TensorDictModuleBase, optional): your own critic (``algorithm=mappo``): reads
            env outputs only (it also runs on ``"next"``) and writes ``("agents",
            "state_value")`` ``(*B, N, 1)``. Defaults to ``None``.

    Examples:
        >>> from mtmarl.training import TrainConfig, apply_overrides
        >>> import tempfile
        >>> cfg = apply_overrides(TrainConfig(experiment="movebox-easy"), [
        ...     "collector.num_envs=4", "collector.iterations=1", "eval.episodes=4",
        ...     "run.progress=false", "optim.minibatch_size=40"])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     result = Trainer(cfg, run_dir=d).train()
        ...     sorted(p.name for p in result.run_dir.iterdir())[:3]
        ['checkpoints', 'config.yaml', 'eval.json']

        MATPPO on a small community (LSTM encoder, Transformer critic):

        >>> from mtmarl.training import get_experiment
        >>> cfg = apply_overrides(get_experiment("community").config, [
        ...     "env.n_prosumers=3", "collector.num_envs=2", "collector.iterations=1",
        ...     "model.encoder=lstm", "model.critic=transformer", "run.progress=false"])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     trainer = Trainer(cfg, run_dir=d)
        ...     type(trainer.critic).__name__, trainer.train_global_value
        ('TransformerCritic', True)
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        env_fn: Callable[..., EnvBase] | None = None,
        experiment: Experiment | None = None,
        max_episode_steps: int | None = None,
        run_dir: str | Path | None = None,
        resume: bool = False,
        actor: TensorDictModuleBase | None = None,
        critic: TensorDictModuleBase | None = None,
    ) -> None:
        self.config = config
        for name, module in (("actor", actor), ("critic", critic)):
            if module is not None and not isinstance(module, TensorDictModuleBase):
                raise ConfigError(
                    f"Trainer expected {name} to be a TensorDictModuleBase, got "
                    f"{type(module).__name__}"
                )
        if critic is not None and config.algorithm == "coma":
            raise ConfigError(
                "Trainer(critic=...) replaces the MAPPO critic; algorithm=coma builds its own "
                "counterfactual critic"
            )
        if env_fn is None:
            experiment = experiment or get_experiment(config.experiment)
            self.max_episode_steps = experiment.max_episode_steps
            self.success_key = experiment.success_key
        else:
            self.max_episode_steps = max_episode_steps or config.collector.steps_per_env
            self.success_key = experiment.success_key if experiment else None
        self.experiment = experiment
        _check_action_prior(config, experiment, actor)
        self._env_maker = _EnvMaker(config=config, experiment=experiment, env_fn=env_fn)
        _check_collector_config(config)
        self.run_dir = (
            Path(run_dir) if run_dir is not None else (Path(config.run.out_dir) / config.run_name)
        )
        self.checkpoint_path = self.run_dir / "checkpoints" / "last.pt"
        self.best_path = self.run_dir / "checkpoints" / "best.pt"
        self.best_iteration: int | None = None
        self.best_return: float | None = None
        self._resume_state = self._check_run_dir(resume)

        torch.manual_seed(config.seed)
        self.device = torch.device(config.device)
        self.env = self._make_env(config.collector.num_envs, seed=config.seed, training=True)
        self._read_specs(self.env)
        self._check_model_inputs(actor=actor, critic=critic)
        self.actor, self.critic = self._make_modules(actor=actor, critic=critic)
        self.train_global_value = (
            config.algorithm == "mappo"
            and config.loss.global_value_coeff > 0
            and hasattr(self.critic, "global_value_loss")
            and hasattr(self.critic, "global_value_key")
        )
        self._register_recurrent_primers(self.env)
        self.loss_module = self._make_loss()
        self.optimizer = torch.optim.Adam(self.loss_module.parameters(), lr=config.optim.lr)
        self.iteration = 0
        self.frames = 0
        self.history: list[dict[str, Any]] = []
        if self._resume_state is not None:
            self._load_state(self._resume_state)
        self.collector: Collector | None = None

    # ------------------------------------------------------------------ construction
    def _check_run_dir(self, resume: bool) -> dict | None:
        if resume:
            state = load_checkpoint(
                self.checkpoint_path, required=("iteration", "loss_module", "optimizer", "config")
            )
            saved = config_from_yaml(state["config"])
            mismatch = _config_mismatch(saved, self.config)
            if mismatch:
                raise CheckpointError(
                    f"checkpoint {self.checkpoint_path} was written with {mismatch[0]}="
                    f"{mismatch[1]!r}, this run has {mismatch[2]!r}; they must match to resume"
                )
            return state
        if self.checkpoint_path.exists():
            raise ConfigError(
                f"run directory {self.run_dir} already holds a checkpoint; resume it "
                f"(run.resume=true / `mtmarl train --resume`) or pick another run.name"
            )
        return None

    def _make_env(self, num_envs: int, *, seed: int, training: bool = False) -> EnvBase:
        return self._env_maker(num_envs=num_envs, seed=seed, training=training)

    def _read_specs(self, env: EnvBase) -> None:
        action_spec = env.full_action_spec[ACTION]
        self.action_spec = action_spec
        self.hybrid = isinstance(action_spec, Composite)
        if self.hybrid:  # one discrete + one continuous leaf per agent (MATPPO)
            self.continuous = False
            self.n_agents = action_spec.shape[-1]
            if self.config.algorithm == "coma" or self.config.variant == "recurrent":
                raise ConfigError(
                    "hybrid (composite) actions are trained with algorithm=mappo and variants "
                    f"basic, onehot or phasic; got algorithm={self.config.algorithm}, "
                    f"variant={self.config.variant}"
                )
        elif isinstance(action_spec, Categorical):  # (*B, N) indices
            self.continuous = False
            self.n_agents = action_spec.shape[-1]
            self.n_actions = int(action_spec.n)
        elif isinstance(action_spec, Bounded) and action_spec.dtype.is_floating_point:
            self.continuous = True  # (*B, N, A) in [low, high]
            self.n_agents, self.action_dim = action_spec.shape[-2:]
            if self.config.algorithm == "coma":
                raise ConfigError(
                    "algorithm=coma needs discrete actions (its critic outputs one value per "
                    f"action); the env's action at {ACTION} is continuous"
                )
        else:
            raise ConfigError(
                f"the trainer needs a Categorical (discrete) or Bounded (continuous) action at "
                f"{ACTION}, got {type(action_spec).__name__}"
            )
        if self.config.loss.agent_rewards and AGENT_REWARD not in env.reward_keys:
            raise ConfigError(
                f"loss.agent_rewards needs an env that writes each agent's reward at "
                f"{AGENT_REWARD}; this env's reward keys are {env.reward_keys}"
            )
        obs_spec = env.observation_spec
        self.observation_dim = obs_spec[OBS].shape[-1]
        self.state_dim = obs_spec["state"].shape[-1]
        self.has_mask = MASK in obs_spec.keys(True)
        self.has_can_act = CAN_ACT in obs_spec.keys(True)
        self.observation_spec = obs_spec

    def _check_model_inputs(
        self, *, actor: TensorDictModuleBase | None, critic: TensorDictModuleBase | None
    ) -> None:
        """Fail before any work if the env lacks what ``config.model`` reads."""
        model = self.config.model
        keys = set(self.observation_spec.keys(True, True))
        if model.continuous_distribution != "tanh_normal" and actor is None and not self.hybrid:
            raise ConfigError(
                f"model.continuous_distribution={model.continuous_distribution} applies to "
                f"hybrid (composite) actions; the action at {ACTION} is "
                f"{type(self.action_spec).__name__}"
            )
        if model.action_prior is not None and actor is None and not self.hybrid:
            raise ConfigError(
                f"model.action_prior={model.action_prior} centres a hybrid (composite) "
                f"actor; the action at {ACTION} is {type(self.action_spec).__name__}"
            )
        if model.encoder == "lstm" and actor is None:
            if not self.hybrid:
                raise ConfigError(
                    "model.encoder=lstm builds MATPPO's hybrid actor and needs a composite "
                    f"(discrete + continuous) action at {ACTION}, got "
                    f"{type(self.action_spec).__name__}"
                )
            for key in (FORECAST, DEVICE_STATE):
                if key not in keys:
                    raise ConfigError(
                        f"model.encoder=lstm reads {key} from the env's observations, which "
                        f"has no such entry (it has {sorted(map(str, keys))})"
                    )
        if model.critic == "transformer" and critic is None and CRITIC_OBS not in keys:
            raise ConfigError(
                f"model.critic=transformer reads the per-agent critic input {CRITIC_OBS} "
                f"(*B, N, F) from the env's observations, which has no such entry (it has "
                f"{sorted(map(str, keys))})"
            )

    def _make_modules(
        self,
        *,
        actor: TensorDictModuleBase | None = None,
        critic: TensorDictModuleBase | None = None,
    ) -> tuple[TensorDictModuleBase, TensorDictModuleBase]:
        from mtmarl.modules import make_actor

        cfg = self.config
        common = {
            "n_agents": self.n_agents,
            "num_cells": tuple(cfg.model.num_cells),
        }
        variant_args: dict[str, Any] = {}
        if cfg.variant == "phasic":
            variant_args = {
                "pfnn_period": cfg.model.pfnn_period,
                "n_control_points": cfg.model.n_control_points,
            }
        elif cfg.variant == "recurrent":
            variant_args = {"hidden_size": cfg.model.hidden_size}
        if actor is not None:
            pass
        elif self.hybrid:
            actor = self._make_hybrid_actor()
        elif self.continuous:
            from mtmarl.modules import make_continuous_actor

            actor = make_continuous_actor(
                cfg.variant,
                observation_dim=self.observation_dim,
                action_dim=self.action_dim,
                action_spec=self.action_spec,
                can_act_key=CAN_ACT if self.has_can_act else None,
                **common,
                **variant_args,
            )
        else:
            actor = make_actor(
                cfg.variant,
                observation_dim=self.observation_dim,
                n_actions=self.n_actions,
                action_mask_key=MASK if self.has_mask else None,
                **common,
                **variant_args,
            )
        if critic is not None:
            pass
        elif cfg.algorithm == "coma":
            critic = self._make_coma_critic()
        else:
            critic = self._make_critic(common, variant_args)
        return actor.to(self.device), critic.to(self.device)

    def _make_critic(
        self, common: dict[str, Any], variant_args: dict[str, Any]
    ) -> TensorDictModuleBase:
        """``model.critic``: MAPPO's MLP on ``"state"``, IPPO's local critic, or MATPPO's
        Transformer over the agents."""
        from mtmarl.modules import TransformerCritic, make_critic

        cfg = self.config
        if cfg.model.critic == "mlp":
            return make_critic(cfg.variant, state_dim=self.state_dim, **common, **variant_args)
        if cfg.model.critic == "local":
            return make_critic(
                cfg.variant,
                observation_dim=self.observation_dim,
                centralised=False,
                **common,
                **variant_args,
            )
        spec = self.observation_spec
        global_dim = spec[AGGREGATE].shape[-1] if AGGREGATE in spec.keys(True, True) else None
        return TransformerCritic(
            spec[CRITIC_OBS].shape[-1],
            global_features=global_dim,
            d_model=cfg.model.attention_dim,
            num_heads=cfg.model.attention_heads,
            num_layers=cfg.model.attention_layers,
            head_cells=(cfg.model.num_cells[-1],),
            agent_key=CRITIC_OBS,
            global_key=AGGREGATE,
        )

    def _make_encoder(self) -> TensorDictModuleBase:
        """MATPPO's local encoder: LSTM over the forecast window, last hidden state with the
        device state (and the context features and device ratings, if the env has them) ->
        ``FEATURE``."""
        from tensordict.nn import TensorDictModule, TensorDictSequential

        from mtmarl.modules import ForecastEncoder

        cfg = self.config
        spec = self.observation_spec
        forecast_features = spec[FORECAST].shape[-1]
        state_keys = [DEVICE_STATE]
        for key in (CONTEXT, RATINGS):
            if key in spec.keys(True, True):
                state_keys.append(key)
        state_features = sum(spec[k].shape[-1] for k in state_keys)
        encoder = ForecastEncoder(
            forecast_features,
            cfg.model.feature_dim,
            state_features=state_features,
            hidden_size=cfg.model.hidden_size,
            forecast_key=FORECAST,
            state_key=LOCAL_STATE if len(state_keys) > 1 else DEVICE_STATE,
            out_key=FEATURE,
        )
        if len(state_keys) == 1:
            return encoder
        concat = TensorDictModule(_Concat(), in_keys=state_keys, out_keys=[LOCAL_STATE])
        return TensorDictSequential(concat, encoder)

    def _make_hybrid_actor(self) -> TensorDictModuleBase:
        """Parameter-shared hybrid actor on the local observation (MAPPO-style MLP heads, or
        PhaseMLP heads reading the env phase for ``phasic`` -- phase-aware MATPPO heads)."""
        from mtmarl.modules import make_hybrid_actor
        from mtmarl.nn import PhaseMLP

        cfg = self.config
        full_spec = self.env.full_action_spec
        if cfg.model.encoder == "lstm":
            encoder, feature_dim, feature_key = self._make_encoder(), cfg.model.feature_dim, FEATURE
        else:
            encoder, feature_dim, feature_key = None, self.observation_dim, OBS
        heads: dict[str, Any] = {}
        if cfg.variant == "phasic":
            leaves = {k: full_spec[ACTION][k] for k in full_spec[ACTION].keys()}
            n_modes = next(int(v.n) for v in leaves.values() if isinstance(v, Categorical))
            dim = next(v.shape[-1] for v in leaves.values() if isinstance(v, Bounded))
            mlp = functools.partial(
                PhaseMLP,
                num_cells=tuple(cfg.model.num_cells),
                n_control_points=cfg.model.n_control_points,
            )
            heads = {
                "discrete_head": mlp(feature_dim, n_modes),
                "continuous_head": mlp(feature_dim, 2 * dim),
                "head_extra_keys": ["phase"],
            }
        prior = None
        if cfg.model.action_prior is not None:
            from mtmarl.modules import ActionPrior

            controller = self.experiment.action_priors[cfg.model.action_prior](self.env)
            prior = ActionPrior(
                controller, action_spec=full_spec, logit_bonus=cfg.model.action_prior_bonus
            )
        actor = make_hybrid_actor(
            full_spec,
            encoder=encoder,
            feature_dim=feature_dim,
            feature_key=feature_key,
            num_cells=tuple(cfg.model.num_cells),
            action_mask_key=MASK if self.has_mask else None,
            continuous_distribution=cfg.model.continuous_distribution,
            scale_mapping=f"biased_softplus_{float(cfg.model.init_scale)}",
            action_prior=prior,
            **heads,
        )
        if prior is not None:  # start at the controller: heads' outputs near zero
            from mtmarl.modules.hybrid_actor import _HybridHeads

            for module in actor.modules():
                if isinstance(module, _HybridHeads):
                    _shrink_output_layer(module.discrete)
                    _shrink_output_layer(module.continuous)
        return actor

    def _make_coma_critic(self) -> TensorDictModuleBase:
        from mtmarl.modules import COMACritic, PhaseFromStepCount
        from mtmarl.nn import PhaseMLP

        cfg = self.config
        if cfg.variant == "recurrent":
            raise ConfigError(
                "algorithm=coma supports the variants basic, onehot and phasic (its critic "
                "conditions on the full state), got variant=recurrent"
            )
        sizes = {"n_agents": self.n_agents, "n_actions": self.n_actions}
        if cfg.variant != "phasic":
            return COMACritic(**sizes, state_dim=self.state_dim, num_cells=cfg.model.num_cells)
        network = PhaseMLP(
            COMACritic.input_size(self.state_dim, self.n_agents, self.n_actions),
            self.n_actions,
            num_cells=tuple(cfg.model.num_cells),
            n_control_points=cfg.model.n_control_points,
        )
        if cfg.model.pfnn_period is None:
            return COMACritic(**sizes, state_dim=self.state_dim, network=network, phase_key="phase")
        network = PhaseFromStepCount(network, period=cfg.model.pfnn_period)
        return COMACritic(
            **sizes, state_dim=self.state_dim, network=network, phase_key="step_count"
        )

    def _register_recurrent_primers(self, env: EnvBase) -> None:
        if self.config.variant != "recurrent":
            return
        for module in (self.actor, self.critic):
            for sub in module.modules():
                if hasattr(sub, "make_tensordict_primer"):
                    env.append_transform(sub.make_tensordict_primer())

    def _make_loss(self):
        cfg = self.config
        if cfg.algorithm == "coma":
            from torchrl.objectives import HardUpdate

            from mtmarl.objectives import COMALoss

            loss = COMALoss(
                self.actor,
                self.critic,
                gamma=cfg.loss.gamma,
                lmbda=cfg.loss.lmbda,
                entropy_coeff=cfg.loss.entropy_coeff,
                critic_coeff=cfg.loss.critic_coeff,
                normalize_advantage=cfg.loss.normalize_advantage,
            )
            # torchrl's HardUpdate copies when its counter reaches the interval, i.e. every
            # interval + 1 calls; it is stepped once per iteration.
            self.target_updater = HardUpdate(
                loss, value_network_update_interval=cfg.loss.target_update_interval - 1
            )
            return loss
        from torchrl.modules import PopArtValueNorm

        from mtmarl.objectives import ReferenceKLLoss

        options = {
            # loss.reference_kl_coeff > 0: anchored to a frozen copy of the actor as built
            "reference_kl": ReferenceKLLoss(self.actor, coeff=cfg.loss.reference_kl_coeff)
            if cfg.loss.reference_kl_coeff > 0
            else None,
            "value_norm": PopArtValueNorm(shape=1) if cfg.loss.value_norm else None,
            "clip_epsilon": cfg.loss.clip_epsilon,
            "entropy_coeff": cfg.loss.entropy_coeff,
            "critic_coeff": cfg.loss.critic_coeff,
            "normalize_advantage": cfg.loss.normalize_advantage,
        }
        if self.train_global_value:
            loss = _MAPPOWithGlobalValue(
                self.actor,
                self.critic,
                global_value_key=self.critic.global_value_key,
                global_value_coeff=cfg.loss.global_value_coeff,
                **options,
            )
        else:
            loss = _MAPPOLoss(self.actor, self.critic, **options)
        keys = {
            "value": VALUE,
            "advantage": ADVANTAGE,
            "value_target": VALUE_TARGET,
            "reward": "reward",
            "done": "done",
            "terminated": "terminated",
        }
        if not self.hybrid:  # a hybrid actor's per-head action/log-prob keys are read from it
            keys.update(action=ACTION, sample_log_prob=(AGENTS, "action_log_prob"))
        loss.set_keys(**keys)
        return loss

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (plain data: loads with ``weights_only=True``)."""
        return {
            "iteration": self.iteration,
            "frames": self.frames,
            "loss_module": self.loss_module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": self.history,
            "config": config_to_yaml(self.config),
            "best": {"iteration": self.best_iteration, "return": self.best_return},
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        try:
            self.loss_module.load_state_dict(state["loss_module"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(
                f"checkpoint {self.checkpoint_path} does not match this run's modules: {err}"
            ) from None
        self.iteration = int(state["iteration"])
        self.frames = int(state["frames"])
        self.history = list(state.get("history", []))
        best = state.get("best") or {}
        self.best_iteration, self.best_return = best.get("iteration"), best.get("return")

    def save(self) -> Path:
        """Write ``run_dir/checkpoints/last.pt`` atomically."""
        return save_checkpoint(self.checkpoint_path, self.state_dict())

    def _keep_if_best(self, evaluation: EvalResult) -> None:
        """Write the actor to ``best.pt`` if ``evaluation`` beats the best so far."""
        if self.best_return is not None and evaluation.return_mean <= self.best_return:
            return
        self.best_iteration, self.best_return = self.iteration, float(evaluation.return_mean)
        save_checkpoint(
            self.best_path,
            {
                "iteration": self.iteration,
                "return": self.best_return,
                "actor": self.actor.state_dict(),
            },
        )

    def load_best(self) -> int:
        """Load the actor of the best evaluation (``eval.keep_best``) into :attr:`actor`.

        Returns:
            int: the iteration it was evaluated at (``0``: the initial policy).

        Raises:
            CheckpointError: no ``run_dir/checkpoints/best.pt`` (``eval.keep_best`` off, or
                not trained yet), or one that does not fit this actor.
        """
        if not self.best_path.exists():
            raise CheckpointError(
                f"no best actor at {self.best_path}: train with eval.keep_best=true first"
            )
        state = load_checkpoint(self.best_path, required=("iteration", "actor"))
        try:
            self.actor.load_state_dict(state["actor"])
        except RuntimeError as err:
            raise CheckpointError(f"{self.best_path} does not fit this actor: {err}") from None
        return int(state["iteration"])

    # ------------------------------------------------------------------ training
    def _iteration_seed(self, iteration: int) -> int:
        return (self.config.seed * 1_000_003 + iteration * 7919) % (2**31 - 1)

    def _collect(self, iterator: Iterator[TensorDictBase], iteration: int) -> TensorDictBase:
        seed = self._iteration_seed(iteration)
        torch.manual_seed(seed)
        self.env.set_seed(seed)
        data = next(iterator)
        if data.ndim == 3:  # MultiSyncCollector: [workers, envs per worker, T] -> [E, T]
            data = data.reshape(-1, data.shape[-1])
        return data

    @torch.no_grad()
    def _estimate_advantage(self, data: TensorDictBase) -> None:
        """Per-agent GAE on the team reward, written to ``("agents", "advantage" | "value_target")``.

        The critic runs on the whole ``[E, T]`` batch (a recurrent critic in recurrent mode: the
        collector does not run it, so it scans the history itself and writes the next hidden
        states into ``data``); the next observations are then evaluated in step mode from those
        hidden states.
        """
        with self._recurrent_context():
            self.critic(data)
        value = data[VALUE]
        next_in = data["next"].select(*self.critic.in_keys, strict=False)
        next_out = self.critic(next_in)
        next_value = next_out[VALUE]
        shape = (*data.shape, self.n_agents, 1)
        if self.train_global_value:  # the pooled global value's own (single-agent) target
            key = self.critic.global_value_key
            _, global_target = vec_generalized_advantage_estimate(
                self.config.loss.gamma,
                self.config.loss.lmbda,
                data[key],
                next_out[key],
                data["next", "reward"].to(value.dtype),
                data["next", "done"],
                data["next", "terminated"],
                time_dim=data.ndim - 1,
            )
            data.set(GLOBAL_TARGET, global_target)

        def team(key: str) -> torch.Tensor:
            return data["next", key].unsqueeze(-2).expand(shape)

        if self.config.loss.agent_rewards:  # each agent's own reward (e.g. a difference reward)
            reward = data["next", AGENT_REWARD]
        else:
            reward = team("reward")
        adv, target = vec_generalized_advantage_estimate(
            self.config.loss.gamma,
            self.config.loss.lmbda,
            value,
            next_value,
            reward.to(value.dtype),
            team("done"),
            team("terminated"),
            time_dim=data.ndim - 1,
        )
        if self.config.loss.group_baseline:
            adv = leave_one_out(adv, self.config.collector.episode_group_size)
        data.set(ADVANTAGE, adv)
        data.set(VALUE_TARGET, target)
        data.set(VALUE, value)

    def _minibatches(self, data: TensorDictBase) -> Iterator[TensorDictBase]:
        cfg = self.config
        if cfg.variant == "recurrent":  # whole trajectories, time order kept
            per = max(1, cfg.optim.minibatch_size // data.shape[-1])
            perm = torch.randperm(data.shape[0])
            for i in range(0, data.shape[0], per):
                yield data[perm[i : i + per]]
        else:
            # one gather per epoch, then contiguous slices (views) as minibatches
            flat = data.reshape(-1)
            shuffled = flat[torch.randperm(flat.shape[0])]
            size = cfg.optim.minibatch_size
            for i in range(0, shuffled.shape[0], size):
                yield shuffled[i : i + size]

    def _recurrent_context(self):
        if self.config.variant != "recurrent":
            return contextlib.nullcontext()
        from mtmarl.modules import set_recurrent_mode

        return set_recurrent_mode(True)

    def _update(self, data: TensorDictBase) -> dict[str, float]:
        cfg = self.config
        if cfg.algorithm == "mappo":
            self._estimate_advantage(data)
            # the critic's fit before this iteration's updates, as the PPO libraries log it
            explained = explained_variance(data[VALUE], data[VALUE_TARGET])
        else:
            explained = None
            with torch.no_grad():
                self.loss_module.compute_value_target(data)
        sums: dict[str, torch.Tensor] = {}
        count = 0
        # critic warm-up: only the critic's losses reach the optimiser (the actor's parameters
        # get no gradient, so Adam leaves them -- and their moments -- untouched)
        warmup = self.iteration < cfg.optim.critic_warmup
        prefix = "loss_critic" if warmup else "loss_"
        for _ in range(cfg.optim.epochs):
            for batch in self._minibatches(data):
                with self._recurrent_context():
                    losses = self.loss_module(batch)
                total = sum(v for k, v in losses.items() if k.startswith(prefix))
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    self.loss_module.parameters(), cfg.optim.max_grad_norm
                )
                self.optimizer.step()
                # accumulate on device; converted to floats once per iteration (no host sync
                # per minibatch)
                for k, v in losses.items():
                    if k.startswith("loss_") or k in _LOGGED:
                        v = v.detach().mean()
                        sums[k] = sums[k] + v if k in sums else v
                sums["grad_norm"] = sums["grad_norm"] + grad_norm if count else grad_norm
                count += 1
        if cfg.algorithm == "coma":
            self.target_updater.step()
        metrics = {f"train/{k}": float(v) / max(count, 1) for k, v in sums.items()}
        metrics["train/critic_warmup"] = float(warmup)
        if explained is not None:
            metrics["train/explained_variance"] = explained
        return metrics

    def _episode_metrics(self, data: TensorDictBase) -> dict[str, float]:
        done = data["next", "done"].squeeze(-1)
        out: dict[str, float] = {"train/episodes": float(done.sum())}
        if done.any():
            out["train/return"] = float(data["next", "episode_reward"].squeeze(-1)[done].mean())
            if self.success_key is not None:
                succ = data["next", self.success_key].squeeze(-1)[done]
                out["train/success_rate"] = float(succ.float().mean())
        return out

    def evaluate(self, episodes: int | None = None) -> EvalResult:
        """Deterministic evaluation on ``episodes`` fresh envs (default ``config.eval.episodes``)."""
        n = episodes or self.config.eval.episodes
        env = self._make_env(n, seed=self.config.seed + 10_000)
        self._register_recurrent_primers(env)
        result = evaluate_policy(
            env, self.actor, max_steps=self.max_episode_steps, success_key=self.success_key
        )
        env.close()
        return result

    def _make_collector(self) -> Collector:
        """The collector of ``config.collector``: one batch of ``[num_envs, steps_per_env]``
        frames per iteration, all envs reset at its start (workers return
        ``[workers, num_envs / workers, steps_per_env]``, which :meth:`_collect` flattens)."""
        cfg = self.config
        workers = cfg.collector.workers
        options = {
            "frames_per_batch": cfg.collector.frames_per_batch,
            "total_frames": -1,
            "reset_at_each_iter": True,  # whole episodes per iteration (see the module doc)
            "exploration_type": ExplorationType.RANDOM,
            "device": self.device,
        }
        if cfg.collector.backend == "ray":
            return self._make_ray_collector(options)
        options["auto_register_policy_transforms"] = False
        if workers == 1:
            return Collector(self.env, self.actor, **options)
        return MultiSyncCollector(self._worker_env_makers(), self.actor, **options)

    def _worker_env_makers(self) -> list[Callable[[], EnvBase]]:
        """One picklable env factory per worker, each with its own seed."""
        cfg = self.config
        per_worker = cfg.collector.num_envs // cfg.collector.workers
        return [
            functools.partial(
                self._env_maker, num_envs=per_worker, seed=cfg.seed + 1 + w * 7919, training=True
            )
            for w in range(cfg.collector.workers)
        ]

    def _make_ray_collector(self, options: dict[str, Any]):
        """torchrl's ``RayCollector``: ``workers`` Ray actors, each running a ``Collector`` on
        ``num_envs / workers`` envs; ``sync=True`` stacks their batches every iteration.

        Ray is initialised here unless the caller already did (``ray.init(...)``): the
        cluster ``RAY_ADDRESS`` names, else one started on this machine with ``ray start``,
        else a fresh local instance (shut down again with the collector)."""
        from torchrl.collectors.distributed import RayCollector

        cfg = self.config
        remote = {"num_cpus": 1}
        if self.device.type == "cuda":  # the workers share the GPUs Ray schedules them on
            remote["num_gpus"] = 1.0 / cfg.collector.workers
        collector = RayCollector(
            self._worker_env_makers(),
            self.actor,
            # RayCollector stops at total_frames (it has no "-1 = forever"): the run's budget
            frames_per_batch=options["frames_per_batch"],
            total_frames=cfg.collector.total_frames,
            reset_at_each_iter=options["reset_at_each_iter"],
            exploration_type=options["exploration_type"],
            device=options["device"],
            sync=True,
            collector_class=Collector,
            collector_kwargs={"auto_register_policy_transforms": False},
            remote_configs=remote,
            ray_init_config={"address": None, "include_dashboard": False, "log_to_driver": False},
        )
        collector.update_policy_weights_()  # the first sync; later ones follow each update
        return collector

    def train(
        self, *, callback: Callable[[Trainer, dict[str, Any]], None] | None = None
    ) -> TrainResult:
        """Run the remaining iterations, then evaluate, plot and checkpoint.

        Keyword Args:
            callback (Callable, optional): ``callback(trainer, metrics)`` after each iteration.

        Returns:
            TrainResult: run directory, counters, final evaluation and history.
        """
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(config_to_yaml(cfg))
        logger = _make_logger(cfg.run.logger, self.run_dir)
        self.collector = self._make_collector()
        iterator = iter(self.collector)
        progress = _progress(cfg, initial=self.iteration)
        last_eval: dict[str, Any] = {}
        interrupted = False
        evaluation = None
        if cfg.eval.keep_best and self.iteration == 0 and self.best_return is None:
            self._keep_if_best(self.evaluate())  # the initial policy is a candidate too
        try:
            with _StopRequest() as stop:
                while self.iteration < cfg.collector.iterations:
                    start = time.perf_counter()
                    data = self._collect(iterator, self.iteration)
                    collect_time = time.perf_counter() - start
                    metrics = self._episode_metrics(data)
                    metrics.update(self._update(data))
                    self.collector.update_policy_weights_()
                    elapsed = time.perf_counter() - start
                    self.iteration += 1
                    self.frames += data.numel()
                    metrics.update(
                        {
                            "iteration": self.iteration,
                            "frames": self.frames,
                            "time/fps": data.numel() / elapsed,
                            "time/collect_fps": data.numel() / collect_time,
                        }
                    )
                    last = self.iteration == cfg.collector.iterations
                    if self.iteration % cfg.eval.interval == 0 or last:
                        evaluation = self.evaluate()
                        if cfg.eval.keep_best:
                            self._keep_if_best(evaluation)
                        metrics["eval/return"] = evaluation.return_mean
                        if evaluation.success_rate is not None:
                            metrics["eval/success_rate"] = evaluation.success_rate
                    self.history.append(metrics)
                    for key, value in metrics.items():
                        if key not in ("iteration", "frames"):
                            logger.log_scalar(key, value, step=self.frames)
                    _update_progress(progress, metrics, last_eval)
                    if callback is not None:
                        callback(self, metrics)
                    if stop.requested:
                        interrupted = True
                        self.save()
                        break
                    if self.iteration % cfg.run.checkpoint_interval == 0 or last:
                        self.save()
        finally:
            if progress is not None:
                progress.close()
            self.collector.shutdown()
        if not interrupted:
            if evaluation is None:  # resumed at the end: evaluate anyway
                evaluation = self.evaluate()
            (self.run_dir / "eval.json").write_text(json.dumps(evaluation.as_dict(), indent=2))
            self.save()
        if self.history:
            plot_learning_curve(
                self.history,
                self.run_dir / "learning_curve.png",
                title=f"{cfg.experiment} {cfg.variant} {cfg.algorithm} seed {cfg.seed}",
            )
        return TrainResult(
            run_dir=self.run_dir,
            iterations=self.iteration,
            frames=self.frames,
            interrupted=interrupted,
            evaluation=evaluation,
            history=self.history,
            best_iteration=self.best_iteration,
            best_return=self.best_return,
        )


def _check_action_prior(
    config: TrainConfig, experiment: Experiment | None, actor: TensorDictModuleBase | None
) -> None:
    """Fail before any work if ``model.action_prior`` names no controller of the preset.

    Like the rest of ``config.model``, the prior belongs to the actor the trainer builds: an
    injected actor is used as it is (wrap its heads with an ``ActionPrior`` yourself).
    """
    name = config.model.action_prior
    if name is None or actor is not None:
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


def _shrink_output_layer(head: nn.Module, factor: float = 0.01) -> None:
    """Scale the parameters of ``head``'s last parametrised layer by ``factor`` (in place)."""
    for module in reversed(list(head.modules())):
        params = list(module.parameters(recurse=False))
        if params:
            with torch.no_grad():
                for p in params:
                    p.mul_(factor)
            return


def _check_collector_config(config: TrainConfig) -> None:
    """Collector choices the trainer cannot honour, refused before any work."""
    col = config.collector
    if config.variant == "recurrent" and (col.workers > 1 or col.backend == "ray"):
        what = "collector.workers > 1" if col.workers > 1 else "collector.backend='ray'"
        raise ConfigError(
            f"{what} is not supported for variant=recurrent yet (the workers would need the "
            "recurrent primers); use collector.workers=1 and collector.backend=local"
        )
    if col.backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as err:
            raise ConfigError(
                f"collector.backend='ray' needs Ray ({err}); install the extra: "
                "pip install 'mtmarl[distributed]'"
            ) from None


def _config_mismatch(saved: TrainConfig, current: TrainConfig) -> tuple[str, Any, Any] | None:
    """First group/field (other than run bookkeeping, evaluation and the iteration budget) that
    differs between two configs, as ``(name, saved value, current value)``."""
    a, b = dataclasses.asdict(saved), dataclasses.asdict(current)
    for cfg in (a, b):
        del cfg["run"], cfg["eval"], cfg["collector"]["iterations"]
    for key in a:
        if a[key] != b[key]:
            return key, a[key], b[key]
    return None


def _make_logger(kind: str, run_dir: Path):
    if kind == "tensorboard":
        from torchrl.record.loggers import TensorboardLogger

        return TensorboardLogger(exp_name="tensorboard", log_dir=str(run_dir))
    from torchrl.record.loggers import CSVLogger

    return CSVLogger(exp_name="metrics", log_dir=str(run_dir))


def _progress(cfg: TrainConfig, *, initial: int):
    if not cfg.run.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=cfg.collector.iterations,
        initial=initial,
        desc=f"{cfg.experiment} {cfg.variant}",
        unit="it",
        dynamic_ncols=True,
    )


def _update_progress(progress, metrics: dict[str, Any], last_eval: dict[str, Any]) -> None:
    """Frames, fps, training return and success, and the latest deterministic evaluation."""
    if progress is None:
        return
    post = {"frames": metrics["frames"], "fps": f"{metrics['time/fps']:.0f}"}
    if "train/return" in metrics:
        post["return"] = f"{metrics['train/return']:.2f}"
    if "train/success_rate" in metrics:
        post["success"] = f"{100 * metrics['train/success_rate']:.0f}%"
    last_eval.update({k: v for k, v in metrics.items() if k.startswith("eval/")})
    if "eval/success_rate" in last_eval:
        post["eval success"] = f"{100 * last_eval['eval/success_rate']:.0f}%"
    elif "eval/return" in last_eval:
        post["eval return"] = f"{last_eval['eval/return']:.2f}"
    progress.set_postfix(post, refresh=False)
    progress.update(1)


def train(
    config: TrainConfig,
    *,
    env_fn: Callable[..., EnvBase] | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    callback: Callable[[Trainer, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Build a :class:`Trainer` and run it (see there for the arguments).

    Examples:
        >>> from mtmarl.training import TrainConfig, apply_overrides
        >>> import tempfile
        >>> cfg = apply_overrides(TrainConfig(experiment="movebox-easy"), [
        ...     "variant=basic", "collector.num_envs=4", "collector.iterations=2",
        ...     "eval.episodes=4", "run.progress=false", "optim.minibatch_size=40"])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     result = train(cfg, run_dir=d)
        ...     result.iterations, result.frames, result.interrupted
        (2, 160, False)
    """
    trainer = Trainer(config, env_fn=env_fn, run_dir=run_dir, resume=resume)
    return trainer.train(callback=callback)
