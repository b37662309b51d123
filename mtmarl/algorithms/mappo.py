"""MAPPO (and IPPO and MATPPO, which differ from it only by their critic).

Clipped PPO on a parameter-shared actor with per-agent values: GAE on the team reward broadcast
over the agents (or on each agent's own reward), ``optim.epochs`` passes of shuffled
minibatches of ``optim.minibatch_size`` samples (whole trajectories for a recurrent variant)
through :class:`~mtmarl.objectives.MAPPOLoss`, one Adam over actor and critic. The critic is a
choice of :data:`~mtmarl.modules.builders.CRITICS`: ``mlp`` on the global state (MAPPO),
``local`` (IPPO) or ``transformer`` (MATPPO, seed 000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from mtmarl.algorithms.base import (
    Algorithm,
    AlgorithmConfig,
    MetricSums,
    clipped_step,
    explained_variance,
)
from mtmarl.errors import ConfigError, check_positive, check_range

__all__ = ["MAPPO", "MAPPOConfig"]


@dataclass
class MAPPOConfig(AlgorithmConfig):
    """MAPPO's ``loss.*`` options (with :class:`~mtmarl.algorithms.AlgorithmConfig`'s
    ``gamma``, ``lmbda``, ``entropy_coeff``, ``critic_coeff``).

    Attributes:
        clip_epsilon (float): PPO ratio clip, > 0. Defaults to 0.2.
        value_norm (bool): normalise value targets with torchrl's PopArt. Defaults to False.
        normalize_advantage (bool): standardise advantages over each minibatch (over the
            batch, not across agents). Defaults to True.
        global_value_coeff (float): weight of the loss of a critic's pooled global value
            (``model.critic=transformer``) against its own GAE target on the team reward
            (the PPO critic's distance, smooth L1), added to the PPO losses; 0 leaves the
            global head untrained. Defaults to 1.0.
        agent_rewards (bool): run GAE on each agent's own reward ``(group, "reward")``
            ``(*B, N, 1)`` (an env that decomposes its team reward, e.g.
            ``CommunityEnergyEnv(agent_rewards=True)``) instead of the team reward
            broadcast over the agents -- per-agent credit assignment; the pooled global
            value stays on the team reward. Checked against the env's reward keys when the
            run is built. Defaults to False.
        reference_kl_coeff (float): weight of a KL penalty from the actor to its own initial
            copy, ``coeff * KL(pi_theta || pi_0)`` per agent-step
            (:class:`~mtmarl.objectives.ReferenceKLLoss`), added to the PPO losses: it
            anchors a run that starts from a good policy (``model.action_prior``) where
            PPO's clip only bounds each update; >= 0, 0 turns it off. Defaults to 0.0.
        group_baseline (bool): subtract from each env's GAE advantages ``(E, T, N, 1)``
            the mean advantage of the other envs of its episode group
            (``collector.episode_group_size`` >= 2) at the same step and agent, a
            leave-one-out baseline (as RLOO's and GRPO's) that removes what the envs of a
            group share and leaves what their actions changed; the gradient stays
            unbiased and the critic is unchanged. Defaults to False.

    Examples:
        >>> MAPPOConfig(clip_epsilon=0.1).clip_epsilon
        0.1
        >>> try:
        ...     MAPPOConfig(lmbda=1.5)
        ... except ConfigError as err:
        ...     print(err)
        loss.lmbda must be in [0.0, 1.0], got 1.5
    """

    clip_epsilon: float = 0.2
    value_norm: bool = False
    normalize_advantage: bool = True
    global_value_coeff: float = 1.0
    agent_rewards: bool = False
    reference_kl_coeff: float = 0.0
    group_baseline: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("loss", clip_epsilon=self.clip_epsilon)
        check_range("loss", "reference_kl_coeff", self.reference_kl_coeff, low=0.0)
        check_range("loss", "global_value_coeff", self.global_value_coeff, low=0.0)


#: the loss outputs besides ``loss_*`` that :meth:`MAPPO.update` logs
_LOGGED = ("entropy", "clip_fraction", "kl_approx", "reference_kl")
_GLOBAL_TARGET = "state_value_global_target"


class MAPPO(Algorithm):
    """Clipped multi-agent PPO with per-agent values (MAPPO / IPPO / MATPPO by the critic).

    **Update of one batch** (:meth:`update`): per-agent GAE (:meth:`estimate_advantage`),
    then ``optim.epochs`` passes over the variant's minibatches, each one Adam step on the
    sum of the PPO losses with the gradient norm clipped at ``optim.max_grad_norm``. For the
    first ``optim.critic_warmup`` iterations only the ``loss_critic*`` terms are stepped (the
    actor, and so the collecting policy, stays as it was built).

    **Logged** (``train/...``): ``loss_objective``, ``loss_critic``, ``loss_entropy``
    (``loss_critic_global``, ``loss_reference_kl`` when on), ``entropy``,
    ``clip_fraction``, ``kl_approx`` (``reference_kl``), ``grad_norm``: means over the
    minibatches; ``critic_warmup`` (1 while the actor is held); ``explained_variance``:
    ``1 - Var[target - value] / Var[target]`` of the values against their GAE targets on
    this batch before its updates (:func:`~mtmarl.algorithms.explained_variance`).

    Keys: reads the actor's and critic's inputs, ``("next", "reward" | "done" |
    "terminated")`` ``(E, T, 1)`` (or ``("next", group, "reward")`` ``(E, T, N, 1)`` with
    ``loss.agent_rewards``); writes ``(group, "state_value" | "advantage" | "value_target")``
    ``(E, T, N, 1)`` (and ``"state_value_global_target"`` ``(E, T, 1)`` for a critic with a
    global value) into the batch.

    Examples:
        >>> from mtmarl.training import TrainConfig, Trainer, apply_overrides
        >>> import tempfile
        >>> cfg = apply_overrides(TrainConfig(experiment="movebox-easy"), [
        ...     "collector.num_envs=4", "collector.iterations=1", "eval.episodes=4",
        ...     "run.progress=false", "optim.minibatch_size=40"])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     trainer = Trainer(cfg, run_dir=d)
        ...     metrics = trainer.update(trainer.collect())
        >>> type(trainer.algorithm).__name__, "train/explained_variance" in metrics
        ('MAPPO', True)
    """

    name: ClassVar[str] = "mappo"
    description: ClassVar[str] = (
        "clipped multi-agent PPO; model.critic=mlp (MAPPO), local (IPPO), transformer (MATPPO)"
    )
    config_class: ClassVar[type[AlgorithmConfig]] = MAPPOConfig
    critics: ClassVar[tuple[str, ...]] = ("mlp", "local", "transformer")
    metrics: ClassVar[tuple[str, ...]] = (
        "loss_objective",
        "loss_critic",
        "loss_entropy",
        "loss_critic_global",
        "loss_reference_kl",
        *_LOGGED,
        "grad_norm",
        "critic_warmup",
        "explained_variance",
    )

    @classmethod
    def check_config(cls, config: Any) -> None:
        super().check_config(config)
        if config.loss.group_baseline and config.collector.episode_group_size < 2:
            raise ConfigError(
                "loss.group_baseline needs collector.episode_group_size >= 2 (the envs a "
                f"baseline is taken over), got {config.collector.episode_group_size}"
            )

    @classmethod
    def check_env(cls, info: Any, config: Any) -> None:
        super().check_env(info, config)
        reward = info.key("reward")
        if config.loss.agent_rewards and reward not in info.reward_keys:
            raise ConfigError(
                f"loss.agent_rewards needs an env that writes each agent's reward at {reward}; "
                f"this env's reward keys are {list(info.reward_keys)}"
            )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from torchrl.modules import PopArtValueNorm

        from mtmarl.objectives import MAPPOLoss, ReferenceKLLoss

        cfg, loss = self.config, self.config.loss
        critic = self.critic
        #: whether the critic's pooled global value is trained (a critic that writes one)
        self.train_global_value = (
            loss.global_value_coeff > 0
            and hasattr(critic, "global_value_loss")
            and hasattr(critic, "global_value_key")
        )
        self.loss_module = MAPPOLoss(
            self.actor,
            critic,
            clip_epsilon=loss.clip_epsilon,
            entropy_coeff=loss.entropy_coeff,
            critic_coeff=loss.critic_coeff,
            normalize_advantage=loss.normalize_advantage,
            value_norm=PopArtValueNorm(shape=1) if loss.value_norm else None,
            # anchored to a frozen copy of the actor as built
            reference_kl=ReferenceKLLoss(self.actor, coeff=loss.reference_kl_coeff)
            if loss.reference_kl_coeff > 0
            else None,
            global_value_key=critic.global_value_key if self.train_global_value else None,
            global_value_coeff=loss.global_value_coeff,
            global_value_target_key=_GLOBAL_TARGET,
        )
        keys = {
            "value": self.info.key("state_value"),
            "advantage": self.info.key("advantage"),
            "value_target": self.info.key("value_target"),
            "reward": "reward",
            "done": "done",
            "terminated": "terminated",
        }
        if self.info.action_kind != "hybrid":  # a hybrid actor's per-head keys come from it
            keys.update(
                action=self.info.key("action"),
                sample_log_prob=self.info.key("action_log_prob"),
            )
        self.loss_module.set_keys(**keys)
        self.optimizer = torch.optim.Adam(self.loss_module.parameters(), lr=cfg.optim.lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    @torch.no_grad()
    def estimate_advantage(self, data: TensorDictBase) -> None:
        """Per-agent GAE, written to ``(group, "advantage" | "value_target")``.

        The critic runs on the whole ``[E, T]`` batch (a recurrent critic in recurrent mode:
        the collector does not run it, so it scans the history itself and writes the next
        hidden states into ``data``); the next observations are then evaluated in step mode
        from those hidden states. With ``loss.group_baseline`` the advantages are
        :func:`~mtmarl.objectives.leave_one_out` over the episode groups.

        Args:
            data (TensorDictBase): an ``[E, T]`` batch, modified in place.
        """
        from mtmarl.objectives import leave_one_out

        loss, info = self.config.loss, self.info
        value_key = info.key("state_value")
        with self.variant.context():
            self.critic(data)
        value = data[value_key]
        next_in = data["next"].select(*self.critic.in_keys, strict=False)
        next_out = self.critic(next_in)
        next_value = next_out[value_key]
        shape = (*data.shape, info.n_agents, 1)
        if self.train_global_value:  # the pooled global value's own (single-agent) target
            key = self.critic.global_value_key
            _, global_target = vec_generalized_advantage_estimate(
                loss.gamma,
                loss.lmbda,
                data[key],
                next_out[key],
                data["next", "reward"].to(value.dtype),
                data["next", "done"],
                data["next", "terminated"],
                time_dim=data.ndim - 1,
            )
            data.set(_GLOBAL_TARGET, global_target)

        def team(key: str) -> torch.Tensor:
            return data["next", key].unsqueeze(-2).expand(shape)

        if loss.agent_rewards:  # each agent's own reward (e.g. a difference reward)
            reward = data["next", info.key("reward")]
        else:
            reward = team("reward")
        adv, target = vec_generalized_advantage_estimate(
            loss.gamma,
            loss.lmbda,
            value,
            next_value,
            reward.to(value.dtype),
            team("done"),
            team("terminated"),
            time_dim=data.ndim - 1,
        )
        if loss.group_baseline:
            adv = leave_one_out(adv, self.config.collector.episode_group_size)
        data.set(info.key("advantage"), adv)
        data.set(info.key("value_target"), target)
        data.set(value_key, value)

    def update(self, batch: TensorDictBase, *, iteration: int) -> dict[str, float]:
        cfg = self.config
        self.estimate_advantage(batch)
        # the critic's fit before this iteration's updates, as the PPO libraries log it
        explained = explained_variance(
            batch[self.info.key("state_value")], batch[self.info.key("value_target")]
        )
        # critic warm-up: only the critic's losses reach the optimiser (the actor's
        # parameters get no gradient, so Adam leaves them -- and their moments -- untouched)
        warmup = iteration < cfg.optim.critic_warmup
        prefix = "loss_critic" if warmup else "loss_"
        sums = MetricSums()
        params = list(self.loss_module.parameters())
        # the losses read the root of each step (GAE has used "next"): minibatches of the
        # root alone copy half the data
        samples = batch.exclude("next")
        if self.loss_module.reference_kl is not None:  # the frozen anchor: once per batch
            with self.variant.context():
                self.loss_module.reference_kl.cache(samples)
        for _ in range(cfg.optim.epochs):
            for minibatch in self.variant.minibatches(samples, cfg.optim.minibatch_size):
                with self.variant.context():
                    losses = self.loss_module(minibatch)
                total = sum(v for k, v in losses.items() if k.startswith(prefix))
                grad_norm = clipped_step(self.optimizer, total, params, cfg.optim.max_grad_norm)
                logged = {k: v for k, v in losses.items() if k.startswith("loss_") or k in _LOGGED}
                sums.add({**logged, "grad_norm": grad_norm})
        metrics = sums.means()
        metrics["train/critic_warmup"] = float(warmup)
        metrics["train/explained_variance"] = explained
        return metrics
