"""COMA, run as its authors and PyMARL / EPyMARL run it (seed 004 trains COMA agents).

Counterfactual multi-agent policy gradients (Foerster et al., 2018) with
:class:`~mtmarl.objectives.COMALoss` and the counterfactual critic
(:class:`~mtmarl.modules.COMACritic`, ``model.critic=coma``). Its update of one batch is not
PPO's: the unclipped ``-A log pi`` has no importance ratio, so the policy is stepped **once per
batch, on-policy**; the critic is fitted first, so that the advantages come from a critic that
has seen the batch:

1. TD(lambda) targets from the **target critic** on the whole batch (whole trajectories);
2. ``loss.critic_epochs`` passes of shuffled minibatches of ``optim.minibatch_size`` steps
   fit the critic (its own Adam and gradient-norm clip, ``loss.critic_lr``,
   ``loss.critic_max_grad_norm``); every critic step counts towards the target critic's hard
   copy, every ``loss.target_update_interval`` critic steps;
3. one actor step on the whole batch with the counterfactual advantages of the fitted critic
   (its own Adam and clip, ``loss.actor_lr``, ``loss.actor_max_grad_norm``); none during the
   first ``optim.critic_warmup`` iterations.

``optim.epochs`` and ``optim.max_grad_norm`` are PPO's schedule; COMA's are the ``loss.*``
options above, and a run that sets the former with ``algorithm=coma`` is refused.

A recurrent variant has a recurrent actor (whole trajectories in every minibatch) and the
feed-forward critic: the critic conditions on the full state.

Advantages are not normalised: their natural shrinking as the policy sharpens is part of the
estimator, and z-scoring them drives the entropy to collapse (``loss.normalize_advantage=true``
is refused).

**Epsilon floor** (optional, off by default: ``loss.epsilon_start=0``). As PyMARL / EPyMARL run
COMA, the policy can be mixed with the uniform distribution over each agent's *allowed*
actions, ``pi_eps = (1 - eps) * pi + eps / n_allowed`` (``0`` on masked actions), with ``eps``
annealed linearly from ``loss.epsilon_start`` to ``loss.epsilon_finish`` over
``loss.epsilon_anneal_frames`` collected frames (PyMARL: 0.5 -> 0.01 over 500,000 env steps).
The actions are sampled from ``pi_eps`` and the loss (log-prob, baseline, entropy) uses it too;
its ``eps`` is that of the batch's collection. The actor's distribution becomes a
:class:`~mtmarl.modules.EpsilonMaskedCategorical`; its mode is the unmixed argmax, so a
deterministic evaluation is unaffected, and forced steps keep log-prob 0. ``eps`` is a
function of the iteration (``iteration * collector.num_envs * collector.steps_per_env``
frames), so a resumed run acts as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase
from tensordict.nn import ProbabilisticTensorDictModule
from torch.distributions import Categorical
from torchrl.modules import MaskedCategorical

from mtmarl.algorithms.base import Algorithm, AlgorithmConfig, MetricSums, clipped_step
from mtmarl.errors import ConfigError, check_positive, check_range
from mtmarl.modules.epsilon_categorical import EpsilonMaskedCategorical

__all__ = ["COMA", "COMAConfig"]


@dataclass
class COMAConfig(AlgorithmConfig):
    """COMA's ``loss.*`` options (with :class:`~mtmarl.algorithms.AlgorithmConfig`'s
    ``gamma``, ``lmbda`` -- the TD(lambda) parameter, COMA's 0.8 --, ``entropy_coeff`` and
    ``critic_coeff``).

    Attributes:
        target_update_interval (int): copy the critic into the target critic every this many
            critic steps (PyMARL: 200). Defaults to 200.
        critic_epochs (int): passes of minibatches fitting the critic per batch, before the
            actor step. Defaults to 1.
        actor_epochs (int): actor steps on each whole batch. More than 1 reuses the batch
            off-policy without an importance ratio (the unclipped ``-A log pi``), which
            stops COMA from learning; kept to measure that. Defaults to 1.
        actor_lr (float or None): the actor's Adam learning rate; ``None`` takes
            ``optim.lr``. Defaults to ``None``.
        critic_lr (float or None): the critic's; ``None`` takes ``optim.lr``. Defaults to
            ``None``.
        actor_max_grad_norm (float): the actor's gradient-norm clip (PyMARL: 10). Defaults
            to 10.0.
        critic_max_grad_norm (float): the critic's. Defaults to 10.0.
        normalize_advantage (bool): must stay ``False`` (see the module). Defaults to False.
        epsilon_start (float): the policy's uniform floor over the allowed actions at frame 0,
            in ``[0, 1]`` (PyMARL: 0.5); ``0`` turns the floor off (see the module). Defaults
            to 0.0.
        epsilon_finish (float): the floor after ``epsilon_anneal_frames`` frames, in
            ``[0, epsilon_start]`` when the floor is on (PyMARL: 0.01). Defaults to 0.01.
        epsilon_anneal_frames (int): collected frames (env steps of all agents, as PyMARL's
            ``t_env``) of the linear anneal from start to finish, > 0. Defaults to 500000
            (PyMARL's ``epsilon_anneal_time``).

    Examples:
        >>> COMAConfig().lmbda, COMAConfig().target_update_interval
        (0.8, 200)
        >>> cfg = COMAConfig(epsilon_start=0.5, epsilon_finish=0.01, epsilon_anneal_frames=1000)
        >>> [round(cfg.epsilon_at(f), 3) for f in (0, 500, 1000, 5000)], COMAConfig().epsilon_at(0)
        ([0.5, 0.255, 0.01, 0.01], 0.0)
        >>> try:
        ...     COMAConfig(normalize_advantage=True)
        ... except ConfigError as err:
        ...     print(str(err).split(":")[0])
        loss.normalize_advantage must be false for algorithm=coma
    """

    lmbda: float = 0.8
    target_update_interval: int = 200
    critic_epochs: int = 4
    actor_epochs: int = 1
    actor_lr: float | None = None
    critic_lr: float | None = None
    actor_max_grad_norm: float = 10.0
    critic_max_grad_norm: float = 10.0
    normalize_advantage: bool = False
    epsilon_start: float = 0.0
    epsilon_finish: float = 0.01
    epsilon_anneal_frames: int = 500_000

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(
            "loss",
            target_update_interval=self.target_update_interval,
            critic_epochs=self.critic_epochs,
            actor_epochs=self.actor_epochs,
            actor_max_grad_norm=self.actor_max_grad_norm,
            critic_max_grad_norm=self.critic_max_grad_norm,
        )
        check_range("loss", "epsilon_start", self.epsilon_start, low=0.0, high=1.0)
        check_range("loss", "epsilon_finish", self.epsilon_finish, low=0.0, high=1.0)
        check_positive("loss", epsilon_anneal_frames=self.epsilon_anneal_frames)
        if self.epsilon_start > 0 and self.epsilon_finish > self.epsilon_start:
            raise ConfigError(
                f"loss.epsilon_finish must be <= loss.epsilon_start (the floor is annealed "
                f"down), got {self.epsilon_finish!r} > {self.epsilon_start!r}"
            )
        for name in (
            "target_update_interval",
            "critic_epochs",
            "actor_epochs",
            "epsilon_anneal_frames",
        ):
            if not isinstance(getattr(self, name), int):
                raise ConfigError(f"loss.{name} must be an int, got {getattr(self, name)!r}")
        for name in ("actor_lr", "critic_lr"):
            if getattr(self, name) is not None:
                check_positive("loss", **{name: getattr(self, name)})
        if self.normalize_advantage:
            raise ConfigError(
                "loss.normalize_advantage must be false for algorithm=coma: z-scoring the "
                "counterfactual advantages removes their shrinking as the policy sharpens "
                "and drives its entropy to collapse"
            )

    def epsilon_at(self, frames: int) -> float:
        """The policy's floor after ``frames`` collected frames (``0.0`` when it is off)."""
        if self.epsilon_start == 0:
            return 0.0
        if frames >= self.epsilon_anneal_frames:
            return float(self.epsilon_finish)
        share = max(frames, 0) / self.epsilon_anneal_frames
        return float(self.epsilon_start + (self.epsilon_finish - self.epsilon_start) * share)


#: what the actor step logs, from COMALoss's output on the whole batch
_ACTOR_STEP_LOGGED = (
    "loss_objective",
    "loss_entropy",
    "entropy",
    "advantage",
    "action_value",
    "value_target",
    "critic_td_error",
    "explained_variance",
)


class COMA(Algorithm):
    """COMA with its own schedule: critic minibatch passes, then one on-policy actor step.

    **Logged** (``train/...``): ``loss_critic`` (mean over the critic steps),
    ``loss_objective`` and ``loss_entropy`` (the actor step), ``entropy``, ``advantage``
    (mean counterfactual advantage), ``action_value``, ``value_target``, ``critic_td_error``,
    ``explained_variance`` (of the critic's Q of the taken actions against the TD(lambda)
    targets, after the critic's passes), ``grad_norm_actor``, ``grad_norm_critic``,
    ``critic_steps`` (total, for the target copies) and ``critic_warmup`` (1 while
    ``optim.critic_warmup`` holds the actor) and ``epsilon`` (the policy's floor the batch was
    collected with, ``0`` when ``loss.epsilon_start=0``). The actor's terms are absent in a
    warm-up iteration.

    Keys: the actor's and critic's inputs, ``(group, "action")`` ``(E, T, N)``,
    ``(group, "can_act")`` (forced steps leave the actor's terms), ``("next", "reward" |
    "done" | "terminated")``; writes ``(group, "value_target")`` ``(E, T, N, 1)``.

    Examples:
        >>> from mtmarl.training import get_experiment, Trainer, apply_overrides
        >>> import tempfile
        >>> cfg = apply_overrides(get_experiment("movebox-easy").config_for("coma"), [
        ...     "collector.num_envs=4", "collector.iterations=1", "eval.episodes=4",
        ...     "run.progress=false", "optim.minibatch_size=40"])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     trainer = Trainer(cfg, run_dir=d)
        ...     metrics = trainer.update(trainer.collect())
        >>> type(trainer.critic).__name__, metrics["train/critic_steps"]  # 4 passes x 2 minibatches
        ('COMACritic', 8.0)
    """

    name: ClassVar[str] = "coma"
    description: ClassVar[str] = (
        "counterfactual multi-agent policy gradients (seed 004); discrete actions"
    )
    config_class: ClassVar[type[AlgorithmConfig]] = COMAConfig
    critics: ClassVar[tuple[str, ...]] = ("coma",)
    action_kinds: ClassVar[tuple[str, ...]] = ("discrete",)
    accepts_critic: ClassVar[bool] = False
    metrics: ClassVar[tuple[str, ...]] = (
        "loss_critic",
        *_ACTOR_STEP_LOGGED,
        "grad_norm_actor",
        "grad_norm_critic",
        "critic_steps",
        "critic_warmup",
        "epsilon",
    )

    @classmethod
    def check_config(cls, config: Any) -> None:
        super().check_config(config)
        defaults = type(config.optim)()
        for name, own in (
            ("epochs", "critic_epochs / actor_epochs"),
            ("max_grad_norm", ("actor_max_grad_norm / critic_max_grad_norm")),
        ):
            if getattr(config.optim, name) != getattr(defaults, name):
                raise ConfigError(
                    f"optim.{name} is MAPPO's schedule; algorithm=coma's is loss.{own} "
                    f"(got optim.{name}={getattr(config.optim, name)!r})"
                )
        collector = config.collector
        if config.loss.epsilon_start > 0 and (
            collector.workers > 1 or collector.backend != "local"
        ):
            raise ConfigError(
                "loss.epsilon_start > 0 needs collector.workers=1 and collector.backend=local: "
                "the floor is set on the actor in the training process and is not part of the "
                f"weights synced to workers (got collector.workers={collector.workers}, "
                f"collector.backend={collector.backend!r})"
            )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from mtmarl.objectives import COMALoss

        cfg, loss = self.config, self.config.loss
        self.loss_module = COMALoss(
            self.actor,
            self.critic,
            gamma=loss.gamma,
            lmbda=loss.lmbda,
            entropy_coeff=loss.entropy_coeff,
            critic_coeff=loss.critic_coeff,
        )
        self.loss_module.set_keys(
            action=self.info.key("action"),
            can_act=self.info.key("can_act"),
            value_target=self.info.key("value_target"),
        )
        self.actor_params = list(self.loss_module.actor_network_params.values(True, True))
        self.critic_params = list(self.loss_module.critic_network_params.values(True, True))
        self.actor_optimizer = torch.optim.Adam(
            self.actor_params, lr=loss.actor_lr if loss.actor_lr is not None else cfg.optim.lr
        )
        self.critic_optimizer = torch.optim.Adam(
            self.critic_params,
            lr=loss.critic_lr if loss.critic_lr is not None else cfg.optim.lr,
        )
        #: critic steps so far (the target critic is copied every target_update_interval)
        self.critic_steps = 0
        # this unit updates the target critic itself (a hard copy every K critic steps, by
        # the saved critic-step count, so that a resumed run copies when an uninterrupted
        # one would); tell torchrl, which warns about target parameters without an updater
        for key in self.loss_module._has_update_associated:
            self.loss_module._has_update_associated[key] = True
        #: the next iteration to be collected: the policy's floor is a function of it
        self.epsilon_iteration = 0
        self._policy_module = self._install_epsilon() if loss.epsilon_start > 0 else None
        self._set_epsilon(0)

    def _install_epsilon(self) -> ProbabilisticTensorDictModule:
        """Swap the actor's (masked) categorical for :class:`EpsilonMaskedCategorical`."""
        found = [m for m in self.actor.modules() if isinstance(m, ProbabilisticTensorDictModule)]
        if len(found) != 1 or found[0].distribution_class not in (Categorical, MaskedCategorical):
            classes = [m.distribution_class.__name__ for m in found]
            raise ConfigError(
                "loss.epsilon_start > 0 needs an actor with one Categorical / MaskedCategorical "
                f"distribution (as build_actor makes for discrete actions); got {classes}"
            )
        module = found[0]
        if set(module.dist_keys) - {"logits", "mask"}:
            raise ConfigError(
                "loss.epsilon_start > 0 needs a categorical actor fed with logits (and a mask); "
                f"its distribution reads {list(module.dist_keys)}"
            )
        module.distribution_class = EpsilonMaskedCategorical
        module.distribution_kwargs = {**module.distribution_kwargs, "epsilon": 0.0}
        return module

    def epsilon(self, iteration: int) -> float:
        """The policy's floor at ``iteration`` (after ``iteration`` batches of
        ``collector.num_envs * collector.steps_per_env`` frames)."""
        return self.config.loss.epsilon_at(iteration * self.config.collector.frames_per_batch)

    def _set_epsilon(self, iteration: int) -> float:
        eps = self.epsilon(iteration)
        if self._policy_module is not None:
            self._policy_module.distribution_kwargs["epsilon"] = eps
        return eps

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_optimizer, "critic": self.critic_optimizer}

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "critic_steps": self.critic_steps,
            "epsilon_iteration": self.epsilon_iteration,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.critic_steps = int(state["critic_steps"])
        # absent from checkpoints written before the floor existed (which had it off)
        self.epsilon_iteration = int(state.get("epsilon_iteration", 0))
        self._set_epsilon(self.epsilon_iteration)

    def _copy_target(self) -> None:
        loss = self.loss_module
        with torch.no_grad():
            loss.target_critic_network_params.data.copy_(loss.critic_network_params.data)

    def update(self, batch: TensorDictBase, *, iteration: int) -> dict[str, float]:
        cfg, loss_cfg = self.config, self.config.loss
        loss = self.loss_module
        # the loss's policy is the one the batch was collected with (its floor included)
        eps = self._set_epsilon(iteration)
        with torch.no_grad():
            loss.compute_value_target(batch)  # from the target critic, on whole trajectories
        sums = MetricSums()
        for _ in range(loss_cfg.critic_epochs):
            for minibatch in self.variant.minibatches(batch, cfg.optim.minibatch_size):
                losses = loss(minibatch)
                norm = clipped_step(
                    self.critic_optimizer,
                    losses["loss_critic"],
                    self.critic_params,
                    loss_cfg.critic_max_grad_norm,
                )
                sums.add({"loss_critic": losses["loss_critic"], "grad_norm_critic": norm})
                self.critic_steps += 1
                if self.critic_steps % loss_cfg.target_update_interval == 0:
                    self._copy_target()
        warmup = iteration < cfg.optim.critic_warmup
        for _ in range(0 if warmup else loss_cfg.actor_epochs):
            losses = loss(batch)  # advantages of the fitted critic, on-policy
            actor_loss = losses["loss_objective"] + losses.get(
                "loss_entropy", torch.zeros((), device=losses["loss_objective"].device)
            )
            norm = clipped_step(
                self.actor_optimizer, actor_loss, self.actor_params, loss_cfg.actor_max_grad_norm
            )
            logged = {k: losses[k] for k in _ACTOR_STEP_LOGGED if k in losses.keys()}
            sums.add({**logged, "grad_norm_actor": norm})
        metrics = sums.means()
        metrics["train/critic_steps"] = float(self.critic_steps)
        metrics["train/critic_warmup"] = float(warmup)
        metrics["train/epsilon"] = eps
        # the next collection's floor
        self.epsilon_iteration = iteration + 1
        self._set_epsilon(self.epsilon_iteration)
        return metrics
