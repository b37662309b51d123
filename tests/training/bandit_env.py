"""A trivially learnable multi-agent env for trainer tests, built through ``env_fn``.

Every agent earns +1 per step for choosing action 1 (of 3); episodes last 4 steps. The trainer
must raise the deterministic return from chance to the maximum (4 steps x 2 agents = 8).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import Compose, EnvBase, StepCounter, TransformedEnv

from mtmarl.transforms import ActionFrequencyMask

N_AGENTS, N_ACTIONS, HORIZON = 2, 3, 4


class BanditTeamEnv(EnvBase):
    """Discrete: +1 per agent choosing action 1. Continuous: 1 - |a - 0.5| per agent."""

    #: the joint period the trainer's phase encodings use (agent 1 acts every 2 steps)
    period = 2

    def __init__(
        self, *, num_envs: int, device=None, seed: int = 0, continuous=False, hybrid=False
    ) -> None:
        super().__init__(batch_size=torch.Size([num_envs]), device=device)
        b, n = self.batch_size, N_AGENTS
        self.observation_spec = Composite(
            agents=Composite(observation=Unbounded((*b, n, 3)), shape=(*b, n)),
            state=Unbounded((*b, 4)),
            shape=b,
        )
        self.continuous, self.hybrid = continuous, hybrid
        if hybrid:  # both leaves: reward (mode == 1) + 1 - |power - 0.5| per agent
            action = Composite(
                mode=Categorical(N_ACTIONS, (*b, n)),
                power=Bounded(-1.0, 1.0, shape=(*b, n, 1)),
                shape=(*b, n),
            )
        elif continuous:
            action = Bounded(-1.0, 1.0, shape=(*b, n, 1))
        else:
            action = Categorical(N_ACTIONS, (*b, n))
        self.action_spec = Composite(agents=Composite(action=action, shape=(*b, n)), shape=b)
        self.reward_spec = Unbounded((*b, 1))
        flag = Categorical(2, shape=(*b, 1), dtype=torch.bool)
        self.done_spec = Composite(
            done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=b
        )
        self._t = torch.zeros(b, dtype=torch.long)
        self._rng = torch.Generator().manual_seed(seed)

    def _set_seed(self, seed):
        self._rng = torch.Generator().manual_seed(0 if seed is None else seed)

    def _obs(self) -> TensorDict:
        b = self.batch_size
        obs = torch.randn(*b, N_AGENTS, 3, generator=self._rng)
        return TensorDict(
            {
                "agents": TensorDict({"observation": obs}, (*b, N_AGENTS)),
                "state": torch.randn(*b, 4, generator=self._rng),
            },
            batch_size=b,
        )

    def _reset(self, tensordict):
        reset = None if tensordict is None else tensordict.get("_reset", None)
        reset = torch.ones(self.batch_size, dtype=torch.bool) if reset is None else reset.view(-1)
        self._t = torch.where(reset, 0, self._t)
        out = self._obs()
        out.update(self.full_done_spec.zero())
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict["agents", "action"]
        self._t = self._t + 1
        if self.hybrid:
            mode, power = action["mode"], action["power"]
            reward = (mode == 1).float() + (1 - (power - 0.5).abs()).squeeze(-1)
            reward = reward.sum(-1, keepdim=True) / 2
        out = self._obs()
        done = (self._t >= HORIZON).unsqueeze(-1)
        out.update(
            {
                "reward": reward
                if self.hybrid
                else (1 - (action - 0.5).abs()).sum((-2, -1)).unsqueeze(-1)
                if self.continuous
                else (action == 1).float().sum(-1, keepdim=True),
                "done": done,
                "terminated": done.clone(),
                "truncated": torch.zeros_like(done),
            }
        )
        return out


def bandit_env_fn(*, num_envs, device, seed, continuous=False, hybrid=False, masked=False):
    """The bandit task; ``continuous`` (and ``masked`` for hybrid actions): agent 1 acts every
    2 steps and holds its action in between (``ActionFrequencyMask``)."""
    transforms = [StepCounter()]
    if continuous or masked:
        transforms.append(ActionFrequencyMask((1, 2), mode="hold"))
    return TransformedEnv(
        BanditTeamEnv(
            num_envs=num_envs, device=device, seed=seed, continuous=continuous, hybrid=hybrid
        ),
        Compose(*transforms),
    )


_PLUGIN = """
from bandit_env import HORIZON, bandit_env_fn

from mtmarl.training import CollectorConfig, Experiment, TrainConfig, register_experiment

register_experiment(
    Experiment(
        name="{name}",
        description="the bandit team task, registered by a module of the user's",
        env_factory=bandit_env_fn,
        config=TrainConfig(
            experiment="{name}",
            variant="basic",
            collector=CollectorConfig(num_envs=4, steps_per_env=HORIZON, iterations=1),
        ),
        max_episode_steps=HORIZON,
    )
)
"""


def plugin_source(name: str) -> str:
    """The source of a user's module that registers the bandit task as preset ``name``
    (for the ``--import`` and entry-point tests)."""
    return _PLUGIN.format(name=name)


def coma_bandit_trainer(run_dir, *extra: str, num_envs: int = 8, minibatch: int = 8):
    """A small COMA ``Trainer`` on the bandit (``num_envs`` x ``HORIZON`` steps a batch, 4
    iterations, minibatches of ``minibatch`` steps); ``extra`` overrides go last."""
    from mtmarl.training import TrainConfig, Trainer, apply_overrides

    cfg = apply_overrides(
        TrainConfig(experiment="bandit"),
        [
            "variant=basic",
            "algorithm=coma",
            f"collector.num_envs={num_envs}",
            f"collector.steps_per_env={HORIZON}",
            "collector.iterations=4",
            f"optim.minibatch_size={minibatch}",
            "model.num_cells=[16]",
            "eval.episodes=4",
            "eval.keep_best=false",
            "run.progress=false",
            *extra,
        ],
    )
    return Trainer(cfg, env_fn=bandit_env_fn, max_episode_steps=HORIZON, run_dir=run_dir)
