"""The trainer: a run directory, checkpoints, and a loop of ``collect`` / ``update`` / ``evaluate``.

It knows no environment, algorithm, critic or variant by name. The env stack comes from the
experiment preset (or ``env_fn``) through :class:`~mtmarl.training.env_stack.EnvMaker`, the
actor and critic from :mod:`mtmarl.modules.builders` (sized from the env's specs), and the loss,
optimisers and update schedule from the algorithm unit (:mod:`mtmarl.algorithms`).

Data layout: every iteration resets all envs and collects ``num_envs x steps_per_env`` frames as
a ``[num_envs, steps_per_env]`` tensordict (time is the last batch dim), so each iteration holds
whole episodes from their start and a resumed run needs no saved environment state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.envs import EnvBase

from mtmarl.algorithms import get_algorithm
from mtmarl.modules.builders import (
    EnvInfo,
    build_actor,
    build_critic,
    check_model_inputs,
    get_variant,
)
from mtmarl.modules.init import orthogonal_init
from mtmarl.modules.running_norm import add_input_norms, update_input_norms
from mtmarl.training._deprecated import DeprecatedTrainerAttributes
from mtmarl.training.callbacks import CallbackList, default_callbacks
from mtmarl.training.checkpoint import (
    CheckpointError,
    load_best_actor,
    load_resume_state,
    save_best_actor,
    save_checkpoint,
)
from mtmarl.training.collectors import check_collector_config, flatten_workers, make_collector
from mtmarl.training.config import (
    ConfigError,
    TrainConfig,
    config_to_yaml,
)
from mtmarl.training.env_stack import EnvMaker
from mtmarl.training.evaluation import EvalResult, evaluate_policy
from mtmarl.training.experiments import Experiment, check_action_prior, get_experiment
from mtmarl.training.guards import NonFiniteError, check_finite, check_run_options, env_horizon
from mtmarl.training.plotting import plot_learning_curve
from mtmarl.training.result import TrainResult
from mtmarl.training.run_dir import RunDirLock, atomic_write_text
from mtmarl.training.stop import StopRequest

__all__ = ["NonFiniteError", "TrainResult", "Trainer", "train"]


class Trainer(DeprecatedTrainerAttributes):
    """Assemble and run one training run from a :class:`TrainConfig`.

    Built in order, each step refusing a bad choice before any work: the algorithm class
    (:func:`~mtmarl.algorithms.get_algorithm`), the env stack, its specs
    (:class:`~mtmarl.modules.builders.EnvInfo`, checked by the algorithm and by
    :func:`~mtmarl.modules.builders.check_model_inputs`), the actor and critic (the builders'
    or yours), the algorithm unit (its loss and optimisers). :meth:`train` loops over the public
    :meth:`collect`, :meth:`update` and :meth:`evaluate` with the hooks of
    :mod:`mtmarl.training.callbacks`. Each iteration logs the algorithm's ``train/...`` metrics,
    ``train/return``, ``train/episodes`` (``train/success_rate``) of the episodes that ended in
    the batch, ``time/fps``, ``time/collect_fps`` and, when it evaluated, ``eval/return``
    (``eval/success_rate``).

    Args:
        config (TrainConfig): the validated configuration.

    Keyword Args:
        env_fn (Callable, optional): ``env_fn(*, num_envs, device, seed, **config.env) ->
            EnvBase`` to train on any torchrl multi-agent env: per-agent actions at
            ``(group, "action")`` -- discrete (``Categorical`` ``(*B, N)``, masked by
            ``(group, "action_mask")`` when present), continuous (``Bounded``
            ``(*B, N, A)``; forced steps from ``(group, "can_act")`` get zero log-prob) or
            hybrid (one of each) -- per-agent observations at ``(group, "observation")``, the
            global ``"state"`` for a centralised critic, the team reward at the root
            ``"reward"``. Defaults to the experiment preset's factory.
        experiment (Experiment, optional): preset providing the env factory, horizon, period
            and success key. Defaults to ``get_experiment(config.experiment)`` unless
            ``env_fn`` is given.
        max_episode_steps (int, optional): evaluation horizon with ``env_fn``. Defaults to
            what the env knows (a ``StepCounter``'s ``max_steps``, or the base env's
            ``max_steps`` / ``horizon`` / ``HORIZON``), else ``config.collector.steps_per_env``.
        period (int, optional): the phase encoding's period ``L`` with ``env_fn`` (the
            ``onehot`` and ``phasic`` variants). Defaults to the experiment's, else the env's
            (:func:`~mtmarl.training.env_stack.resolve_period`).
        group (str): the per-agent group of the env's keys. Defaults to ``"agents"``.
        run_dir (str or Path, optional): where to write. Defaults to
            ``config.run.out_dir / config.run_name``.
        resume (bool): continue from ``run_dir/checkpoints/last.pt``. Defaults to False, in
            which case an existing checkpoint in ``run_dir`` is an error.
        actor (TensorDictModuleBase, optional): your own policy: a ``ProbabilisticActor``
            (or equivalent) writing the action at ``(group, "action")`` with its log-prob
            (``(group, "action_log_prob")``, or per-head ``<name>_log_prob`` keys for a
            composite action). Defaults to ``None`` (built from ``config.model``).
        critic (TensorDictModuleBase, optional): your own critic (an algorithm that accepts
            one, e.g. MAPPO): reads env outputs only (it also runs on ``"next"``) and writes
            ``(group, "state_value")`` ``(*B, N, 1)``. Defaults to ``None``.

    Examples:
        >>> from mtmarl.training import TrainConfig, apply_overrides
        >>> import tempfile
        >>> cfg = apply_overrides(TrainConfig(experiment="movebox-easy"), [
        ...     "collector.num_envs=4", "collector.iterations=1", "eval.episodes=4",
        ...     "run.progress=false", "optim.minibatch_size=40"])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     result = Trainer(cfg, run_dir=d).train()
        ...     sorted(p.name for p in result.run_dir.iterdir() if p.name != ".lock")[:3]
        ['checkpoints', 'config.yaml', 'eval.json']

        MATPPO on a small community (LSTM encoder, Transformer critic):

        >>> from mtmarl.training import get_experiment
        >>> cfg = apply_overrides(get_experiment("community").config, [
        ...     "env.n_prosumers=3", "collector.num_envs=2", "collector.iterations=1",
        ...     "run.progress=false"])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     trainer = Trainer(cfg, run_dir=d)
        ...     type(trainer.critic).__name__, trainer.algorithm.train_global_value
        ('TransformerCritic', True)
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        env_fn: Callable[..., EnvBase] | None = None,
        experiment: Experiment | None = None,
        max_episode_steps: int | None = None,
        period: int | None = None,
        group: str = "agents",
        run_dir: str | Path | None = None,
        resume: bool = False,
        actor: TensorDictModuleBase | None = None,
        critic: TensorDictModuleBase | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise ConfigError(f"Trainer expected a TrainConfig, got {type(config).__name__}")
        self.config = config
        for name, module in (("actor", actor), ("critic", critic)):
            if module is not None and not isinstance(module, TensorDictModuleBase):
                raise ConfigError(
                    f"Trainer expected {name} to be a TensorDictModuleBase, got "
                    f"{type(module).__name__}"
                )
        algorithm_cls = get_algorithm(config.algorithm)
        if critic is not None and not algorithm_cls.accepts_critic:
            raise ConfigError(
                f"Trainer(critic=...) replaces the critic; algorithm={config.algorithm} builds "
                f"its own ({algorithm_cls.default_critic()})"
            )
        if env_fn is None:
            experiment = experiment or get_experiment(config.experiment)
            self.max_episode_steps = experiment.max_episode_steps
            factory, who = experiment.env_factory, f"experiment {experiment.name!r}"
        else:
            self.max_episode_steps = max_episode_steps  # None: inferred from the env below
            factory, who = env_fn, "the env_fn"
        self.success_key = experiment.success_key if experiment else None
        check_run_options(config)
        self.experiment = experiment
        self.variant = get_variant(config.variant)
        check_action_prior(config, experiment, injected_actor=actor is not None)
        check_collector_config(config)
        self.env_maker = EnvMaker(
            config=config,
            factory=factory,
            name=who,
            period=period if period is not None else getattr(experiment, "period", None),
            group=group,
        )
        self.run_dir = (
            Path(run_dir) if run_dir is not None else (Path(config.run.out_dir) / config.run_name)
        )
        self.checkpoint_path = self.run_dir / "checkpoints" / "last.pt"
        self.best_path = self.run_dir / "checkpoints" / "best.pt"
        self.best_iteration: int | None = None
        self.best_return: float | None = None
        self.last_evaluation: EvalResult | None = None
        resume_state = self._check_run_dir(resume)

        torch.manual_seed(config.seed)
        self.device = torch.device(config.device)
        self.env = self.make_env(config.collector.num_envs, seed=config.seed, training=True)
        self.info = EnvInfo.from_env(self.env, group=group)
        if self.max_episode_steps is None:
            self.max_episode_steps = env_horizon(self.env) or config.collector.steps_per_env
        algorithm_cls.check_env(self.info, config)
        check_model_inputs(
            self.info,
            variant=self.variant,
            model=config.model,
            critic=config.critic if critic is None else None,
            actor=actor is None,
        )
        self.actor = (actor if actor is not None else self._build_actor()).to(self.device)
        built_critic = critic is None
        if critic is None:
            critic = build_critic(
                self.info, name=config.critic, variant=self.variant, model=config.model
            )
        self.critic = critic.to(self.device)
        built = [m for m, own in ((self.actor, actor is None), (self.critic, built_critic)) if own]
        if config.model.init == "orthogonal":  # the modules the trainer built
            for module in built:
                orthogonal_init(module, output_gain=0.01 if module is self.actor else 1.0)
        if config.model.obs_norm:
            self._add_input_norms(built)
        self._register_recurrent_primers(self.env)
        self.algorithm = algorithm_cls(
            config=config,
            actor=self.actor,
            critic=self.critic,
            info=self.info,
            variant=self.variant,
        )
        self.iteration = 0
        self.frames = 0
        self.history: list[dict[str, Any]] = []
        self.saved_iteration: int | None = None
        if resume_state is not None:
            self._load_state(resume_state)
            self.saved_iteration = self.iteration
        self.collector = None
        self._iterator = None

    # ------------------------------------------------------------------ construction
    @property
    def loss_module(self) -> torch.nn.Module:
        """The algorithm's loss module (its parameters: actor, critic, targets, anchors)."""
        return self.algorithm.loss_module

    def _build_actor(self) -> TensorDictModuleBase:
        name, prior = self.config.model.action_prior, None
        if name is not None:
            prior = self.experiment.action_prior(
                name, self.env, bonus=self.config.model.action_prior_bonus
            )
        return build_actor(
            self.info,
            variant=self.variant,
            model=self.config.model,
            action_prior=prior,
            # start at the controller: the heads' outputs near zero
            head_output_scale=0.01 if prior is not None else 1.0,
        )

    def _add_input_norms(self, modules: list[TensorDictModuleBase]) -> None:
        """``model.obs_norm``: a :class:`~mtmarl.modules.RunningNorm` on every float
        observation the built actor and critic read (statistics over the batch and agent
        dims; the phase, step count and returns the trainer adds are not normalised)."""
        spec = self.env.observation_spec
        batch_dims = len(spec.shape)
        skip = {"step_count", "phase", "episode_reward", "is_init"}
        shapes = {}
        for key, leaf in spec.items(True, True):
            last = key[-1] if isinstance(key, tuple) else key
            if last in skip or not leaf.dtype.is_floating_point:
                continue
            agent = 1 if isinstance(key, tuple) and key[0] == self.info.group else 0
            shapes[key] = leaf.shape[batch_dims + agent :]
        normalised: list = []
        for module in modules:
            try:
                normalised += add_input_norms(module, shapes)
            except ValueError as err:
                raise ConfigError(f"model.obs_norm: {err}") from None
        if not normalised:
            raise ConfigError(
                "model.obs_norm: the actor and critic the trainer built read none of the "
                f"env's float observations {sorted(map(str, shapes))}"
            )

    def _check_run_dir(self, resume: bool) -> dict | None:
        if resume:
            return load_resume_state(self.checkpoint_path, self.config)
        if self.checkpoint_path.exists():
            raise ConfigError(
                f"run directory {self.run_dir} already holds a checkpoint; resume it "
                f"(`mtmarl train --resume --run-dir {self.run_dir}`, Trainer(resume=True)) or "
                "pick another run directory"
            )
        return None

    def make_env(self, num_envs: int, *, seed: int, training: bool = False) -> EnvBase:
        """The run's env stack (:class:`~mtmarl.training.env_stack.EnvMaker`) of ``num_envs``
        envs; ``training``: a collector's env (episode groups), else a validation env."""
        return self.env_maker(num_envs=num_envs, seed=seed, training=training)

    def _register_recurrent_primers(self, env: EnvBase) -> None:
        if not self.variant.recurrent:
            return
        for module in (self.actor, self.critic):
            for sub in module.modules():
                if hasattr(sub, "make_tensordict_primer"):
                    env.append_transform(sub.make_tensordict_primer())

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (plain data: loads with ``weights_only=True``)."""
        return {
            "iteration": self.iteration,
            "frames": self.frames,
            "loss_module": self.loss_module.state_dict(),
            "algorithm": self.algorithm.state_dict(),
            "history": self.history,
            "config": config_to_yaml(self.config),
            "best": {"iteration": self.best_iteration, "return": self.best_return},
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        algorithm = state.get("algorithm")
        if algorithm is None and "optimizer" in state:  # written before algorithm units
            algorithm = {"optimizers": {"optimizer": state["optimizer"]}}
        try:
            self.loss_module.load_state_dict(state["loss_module"])
            self.algorithm.load_state_dict(algorithm)
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            raise CheckpointError(
                f"checkpoint {self.checkpoint_path} does not match this run's modules: {err}"
            ) from None
        try:
            self.iteration, self.frames = int(state["iteration"]), int(state["frames"])
            self.history = list(state.get("history", []))
            best = state.get("best") or {}
            self.best_iteration, self.best_return = best.get("iteration"), best.get("return")
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(
                f"checkpoint {self.checkpoint_path} holds no valid counters: {err}"
            ) from None

    def save(self) -> Path:
        """Write ``run_dir/checkpoints/last.pt`` atomically."""
        path = save_checkpoint(self.checkpoint_path, self.state_dict())
        self.saved_iteration = self.iteration
        return path

    def keep_if_best(self, evaluation: EvalResult) -> bool:
        """Write the actor to ``best.pt`` if ``evaluation`` beats the best so far; returns
        whether it did."""
        if self.best_return is not None and evaluation.return_mean <= self.best_return:
            return False
        self.best_iteration, self.best_return = self.iteration, float(evaluation.return_mean)
        save_best_actor(self.best_path, self.actor, self.iteration, self.best_return)
        return True

    def load_best(self) -> int:
        """Load the actor of the best evaluation (``eval.keep_best``) into :attr:`actor`;
        returns the iteration it was evaluated at (``0``: the initial policy).

        Raises:
            CheckpointError: no ``best.pt`` (``eval.keep_best`` off, or not trained yet), or
                one that does not fit this actor.
        """
        return load_best_actor(self.best_path, self.actor)

    # ------------------------------------------------------------------ the three steps
    def _iteration_seed(self, iteration: int) -> int:
        return (self.config.seed * 1_000_003 + iteration * 7919) % (2**31 - 1)

    def collect(self) -> TensorDictBase:
        """Collect this iteration's ``[num_envs, steps_per_env]`` batch with the current
        policy (exploring); the collector is built on the first call.

        The torch and env seeds are set from ``(seed, iteration)`` first, so a resumed run
        collects what an uninterrupted one would.
        """
        if self.collector is None:
            self.collector = make_collector(
                self.config,
                env=self.env,
                policy=self.actor,
                env_maker=self.env_maker,
                device=self.device,
            )
            self._iterator = iter(self.collector)
        seed = self._iteration_seed(self.iteration)
        torch.manual_seed(seed)
        self.env.set_seed(seed)
        return flatten_workers(next(self._iterator))

    def update(self, batch: TensorDictBase) -> dict[str, float]:
        """The algorithm's update on ``batch`` (:meth:`~mtmarl.algorithms.Algorithm.update`),
        then the collector's copy of the policy is synced; returns its metrics."""
        lr_factor = self.algorithm.schedule_lr(self.iteration)
        metrics = self.algorithm.update(batch, iteration=self.iteration)
        if self.config.optim.lr_schedule != "constant":
            metrics["train/lr_factor"] = lr_factor
        # model.obs_norm: the statistics move between iterations only (the policy that
        # collected a batch is the one its update starts from)
        # (in place: the losses' functional copies share these buffers; a COMA target
        # critic takes them with its next hard copy)
        for module in (self.actor, self.critic):
            update_input_norms(module, batch)
        if self.collector is not None:
            self.collector.update_policy_weights_()
        return metrics

    def episode_metrics(self, batch: TensorDictBase) -> dict[str, float]:
        """``train/episodes``, ``train/return`` (and ``train/success_rate``) of the episodes
        that ended in ``batch``."""
        done = batch["next", "done"].squeeze(-1)
        out: dict[str, float] = {"train/episodes": float(done.sum())}
        if done.any():
            out["train/return"] = float(batch["next", "episode_reward"].squeeze(-1)[done].mean())
            if self.success_key is not None:
                succ = batch["next", self.success_key].squeeze(-1)[done]
                out["train/success_rate"] = float(succ.float().mean())
        return out

    def evaluate(self, episodes: int | None = None) -> EvalResult:
        """Deterministic evaluation on ``episodes`` fresh envs (default ``config.eval.episodes``),
        seeded ``seed + 10000`` (held-out episodes)."""
        n = episodes or self.config.eval.episodes
        env = self.make_env(n, seed=self.config.seed + 10_000)
        self._register_recurrent_primers(env)
        result = evaluate_policy(
            env, self.actor, max_steps=self.max_episode_steps, success_key=self.success_key
        )
        env.close()
        return result

    def close(self) -> None:
        """Shut the collector down (its worker processes or Ray actors); the next
        :meth:`collect` builds a new one."""
        if self.collector is not None:
            self.collector.shutdown()
        self.collector = self._iterator = None

    # ------------------------------------------------------------------ the loop
    def iterate(self) -> dict[str, Any]:
        """One iteration: :meth:`collect`, :meth:`update`, and :meth:`evaluate` when it is
        due (every ``eval.interval`` iterations and at the last); returns its metrics."""
        cfg, start = self.config, time.perf_counter()
        batch = self.collect()
        collect_time = time.perf_counter() - start
        metrics = {**self.episode_metrics(batch), **self.update(batch)}
        check_finite(self, metrics)
        elapsed = time.perf_counter() - start
        self.iteration += 1
        self.frames += batch.numel()
        metrics.update(iteration=self.iteration, frames=self.frames)
        metrics.update({"time/fps": batch.numel() / elapsed})
        metrics.update({"time/collect_fps": batch.numel() / collect_time})
        self.last_evaluation = None
        last = self.iteration == cfg.collector.iterations
        if self.iteration % cfg.eval.interval == 0 or last:
            if last:  # the trained state is safe before an evaluation that could fail
                self.save()
            self.last_evaluation = evaluation = self.evaluate()
            metrics["eval/return"] = evaluation.return_mean
            if evaluation.success_rate is not None:
                metrics["eval/success_rate"] = evaluation.success_rate
        self.history.append(metrics)
        return metrics

    def train(
        self,
        *,
        callback: Callable[[Trainer, dict[str, Any]], None] | None = None,
        callbacks: Iterable[Any] = (),
    ) -> TrainResult:
        """Run the remaining iterations, then evaluate, plot and checkpoint.

        The run directory is locked for the run (:class:`~mtmarl.training.run_dir.RunDirLock`):
        a second trainer on it fails at once, naming the holder. SIGINT / SIGTERM stop it after
        the current iteration, checkpointed.

        Keyword Args:
            callback (Callable, optional): ``callback(trainer, metrics)`` after each iteration.
            callbacks (Iterable): objects with the hooks of :mod:`mtmarl.training.callbacks`.

        Returns:
            TrainResult: run directory, counters, final evaluation and history.
        """
        cfg = self.config
        extra = [*([callback] if callback else []), *callbacks]
        with RunDirLock(self.run_dir):
            for stale in (*self.run_dir.glob("*.tmp"), *self.run_dir.glob("*/*.tmp")):
                stale.unlink(missing_ok=True)  # a writer killed mid-write left its temp file
            atomic_write_text(self.run_dir / "config.yaml", config_to_yaml(cfg))
            hooks = CallbackList(default_callbacks(self, extra))
            interrupted = False
            try:
                hooks.on_train_start(self)
                with StopRequest() as stop:
                    while self.iteration < cfg.collector.iterations and not interrupted:
                        hooks.on_iteration_end(self, self.iterate())
                        interrupted = stop.requested
                        done = self.iteration == cfg.collector.iterations
                        if interrupted or done or self.iteration % cfg.run.checkpoint_interval == 0:
                            self.save()
            finally:
                self.close()
            evaluation = None if interrupted else (self.last_evaluation or self.evaluate())
            if evaluation is not None:
                atomic_write_text(
                    self.run_dir / "eval.json", json.dumps(evaluation.as_dict(), indent=2)
                )
            if self.history:
                plot_learning_curve(
                    self.history,
                    self.run_dir / "learning_curve.png",
                    title=f"{cfg.experiment} {cfg.variant} {cfg.algorithm} seed {cfg.seed}",
                )
            result = TrainResult(
                run_dir=self.run_dir,
                iterations=self.iteration,
                frames=self.frames,
                interrupted=interrupted,
                evaluation=evaluation,
                history=self.history,
                best_iteration=self.best_iteration,
                best_return=self.best_return,
            )
            hooks.on_train_end(self, result)
        return result


def train(
    config: TrainConfig,
    *,
    env_fn: Callable[..., EnvBase] | None = None,
    max_episode_steps: int | None = None,
    period: int | None = None,
    group: str = "agents",
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
    trainer = Trainer(
        config,
        env_fn=env_fn,
        max_episode_steps=max_episode_steps,
        period=period,
        group=group,
        run_dir=run_dir,
        resume=resume,
    )
    return trainer.train(callback=callback)
