"""
Bring your own environment
==========================

mtmarl's trainer knows no particular environment: any batched torchrl ``EnvBase`` that follows
torchrl's multi-agent layout trains with it, from Python or from the ``mtmarl`` command line. This
tutorial writes a small energy task from scratch -- homes with batteries on a shared feeder --
checks it, registers it as an experiment preset, trains MAPPO on it and compares the result with
two hand-written controllers.

**What you will learn**

* the keys and shapes the trainer expects: per-agent entries under ``("agents", ...)`` with batch
  ``(E, N)``, the team reward and done flags at the root ``(E, 1)``, the global ``"state"`` for
  the centralised critic;
* how to write a batched, pure-torch ``EnvBase`` and check it with torchrl's
  ``check_env_specs``;
* the factory contract ``env_factory(*, num_envs, device, seed, **options)``, and the period
  the trainer encodes for the ``phasic`` and ``onehot`` variants;
* how :func:`~mtmarl.training.register_experiment` makes the task a preset that
  :func:`~mtmarl.training.train` and ``mtmarl train NAME --import my_module`` both run.
"""

# %%
# Hyper-parameters
# ----------------
# Four homes, hourly steps over one day, and a budget of about 180k env steps (120 iterations
# of 64 days; about 40 s on 2 CPU cores).

import math
import tempfile

import matplotlib.pyplot as plt
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase, StepCounter, TransformedEnv
from torchrl.envs.utils import ExplorationType, check_env_specs, set_exploration_type

from mtmarl.algorithms import MAPPOConfig
from mtmarl.training import (
    CollectorConfig,
    EvalConfig,
    Experiment,
    OptimConfig,
    TrainConfig,
    Trainer,
    apply_overrides,
    get_experiment,
    list_experiments,
    register_experiment,
)

SEED = 0
N_HOMES = 4
HOURS = 24  # one-day episodes of hourly steps
NUM_ENVS = 64
ITERATIONS = 120
LR = 3e-3
EVAL_DAYS = 64

torch.manual_seed(SEED)

# %%
# The environment
# ---------------
# Every home has rooftop PV, a base load with an evening peak and a battery (10 kWh, 3 kW). Its
# agent sets the battery's power each hour, ``a`` in ``[-1, 1]`` of the rating (``> 0``:
# charging); the battery cannot go below empty or above full. Homes buy at a time-of-use price
# (0.10 at night, 0.20 by day, 0.35 from 17 to 21 h) and sell their surplus at 0.05. The feeder
# is rated for ``1.5 kW`` per home; every kWh the community imports above it costs 1.0. The team
# reward is minus the community's bill and the overload penalty, per home.
#
# Each agent observes its own battery's state of charge, its net load now (load - PV), a noisy
# forecast of its net load in the next hour, the price and the time of day; the critic's
# ``"state"`` holds every agent's observation and the feeder's loading. Every day draws its own
# cloudiness and every home its own PV and load sizes, so the policy must read its observation.
#
# Two rules keep the env batched and pure-torch: every tensor carries the env batch ``E``
# first, and ``_reset`` resets only the envs flagged in ``"_reset"`` (a collector resets envs
# one by one as their episodes end).


class FeederEnv(EnvBase):
    """Homes with batteries on one feeder; ``num_envs`` independent days run side by side."""

    CAPACITY_KWH, POWER_KW, SELL_PRICE, OVERLOAD_WEIGHT = 10.0, 3.0, 0.05, 1.0
    N_FEATURES = 6  # SoC, net load, next hour's net load forecast, price, sin / cos hour

    def __init__(self, *, n_homes=4, num_envs=1, device=None, seed=0, forecast_noise=0.2):
        super().__init__(batch_size=torch.Size([num_envs]), device=device)
        E, N = num_envs, n_homes
        self.n_homes, self.forecast_noise = n_homes, forecast_noise
        self.feeder_limit_kw = 1.5 * n_homes
        hour = torch.arange(HOURS, dtype=torch.float32)  # the daily profiles
        self._load = 0.6 + 1.6 * torch.exp(-(((hour - 19) / 2.5) ** 2))  # kW
        self._pv = 3.0 * torch.sin(math.pi * (hour - 6) / 12).clamp_min(0)  # kW per unit size
        night, peak = (hour < 7) | (hour >= 21), (hour >= 17) & (hour < 21)
        self._price = torch.where(night, 0.10, torch.where(peak, 0.35, 0.20))
        # specs: every nested Composite carries its batch shape
        self.observation_spec = Composite(
            agents=Composite(observation=Unbounded((E, N, self.N_FEATURES)), shape=(E, N)),
            state=Unbounded((E, N * self.N_FEATURES + 1)),
            shape=(E,),
        )
        self.action_spec = Composite(
            agents=Composite(action=Bounded(-1.0, 1.0, shape=(E, N, 1)), shape=(E, N)),
            shape=(E,),
        )
        self.reward_spec = Unbounded((E, 1))
        flag = Categorical(2, shape=(E, 1), dtype=torch.bool)
        self.done_spec = Composite(
            done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=(E,)
        )
        self._t = torch.zeros(E, dtype=torch.long)
        self._soc = torch.zeros(E, N)
        self._pv_size = torch.ones(E, N)
        self._load_size = torch.ones(E, N)
        self._set_seed(seed)

    def _set_seed(self, seed):
        self._rng = torch.Generator().manual_seed(0 if seed is None else int(seed))

    def _rand(self, *shape):
        return torch.rand(*shape, generator=self._rng)

    def _net(self, t):
        """``(E, N)`` kW: every home's load minus its PV at step ``t`` ``(E,)`` (hour ``t mod 24``)."""
        h = t % HOURS
        return self._load_size * self._load[h, None] - self._pv_size * self._pv[h, None]

    def _observe(self):
        E, N = self.batch_size[0], self.n_homes
        t = self._t
        noise = 1 + self.forecast_noise * torch.randn(E, N, generator=self._rng)
        angle = 2 * math.pi * t.float() / HOURS
        features = [
            self._soc / self.CAPACITY_KWH,
            self._net(t),
            self._net(t + 1) * noise,
            self._price[t % HOURS, None].expand(E, N),
            angle.sin()[:, None].expand(E, N),
            angle.cos()[:, None].expand(E, N),
        ]
        obs = torch.stack(features, -1)  # (E, N, F)
        loading = self._net(t).sum(-1, keepdim=True) / self.feeder_limit_kw
        return TensorDict(
            {
                "agents": TensorDict({"observation": obs}, batch_size=(E, N)),
                "state": torch.cat((obs.flatten(-2), loading), -1),
            },
            batch_size=(E,),
        )

    def _reset(self, tensordict):
        E, N = self.batch_size[0], self.n_homes
        reset = None if tensordict is None else tensordict.get("_reset", None)
        reset = torch.ones(E, dtype=torch.bool) if reset is None else reset.view(E)
        cloud = 0.3 + 0.7 * self._rand(E, 1)  # the day's clear-sky fraction
        self._t = torch.where(reset, 0, self._t)
        self._soc = torch.where(reset[:, None], self.CAPACITY_KWH * self._rand(E, N), self._soc)
        size = torch.where(reset[:, None], cloud * (0.5 + self._rand(E, N)), self._pv_size)
        self._pv_size = size
        load = torch.where(reset[:, None], 0.7 + 0.6 * self._rand(E, N), self._load_size)
        self._load_size = load
        out = self._observe()
        out.update(self.full_done_spec.zero())
        return out

    @classmethod
    def battery_power(cls, action, soc):
        """``(E, N)`` kW the batteries run for action ``(E, N, 1)`` at charge ``soc`` kWh
        ``(E, N)``: over one hour a battery takes what fits and gives what it holds."""
        power = action.squeeze(-1).clamp(-1, 1) * cls.POWER_KW
        return torch.minimum(power, cls.CAPACITY_KWH - soc).maximum(-soc)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        power = self.battery_power(tensordict["agents", "action"], self._soc)
        self._soc = self._soc + power
        net = self._net(self._t) + power  # (E, N) kW = kWh over the hour
        price = self._price[self._t % HOURS, None]
        bill = (price * net.clamp_min(0) - self.SELL_PRICE * (-net).clamp_min(0)).sum(-1)
        overload = (net.sum(-1) - self.feeder_limit_kw).clamp_min(0)
        reward = -(bill + self.OVERLOAD_WEIGHT * overload) / self.n_homes
        self._t = self._t + 1
        done = (self._t >= HOURS).unsqueeze(-1)
        out = self._observe()
        out.update(
            {
                "reward": reward.unsqueeze(-1),
                "done": done,
                "terminated": done.clone(),
                "truncated": torch.zeros_like(done),
            }
        )
        return out


env = FeederEnv(n_homes=N_HOMES, num_envs=3, seed=SEED)
check_env_specs(env)  # raises if what the env returns disagrees with its specs
td = env.rollout(HOURS, break_when_any_done=False)  # random actions from the action spec
print(td["agents", "observation"].shape, td["next", "reward"].shape, td["state"].shape)

# %%
# The factory and the preset
# --------------------------
# The trainer builds every env through a factory it calls as
# ``factory(num_envs=..., device=..., seed=...)`` plus the ``env.*`` options of the config. The
# factory builds the task only: what a run's choices need on top is the trainer's to add. For
# the ``phasic`` and ``onehot`` variants it appends a :class:`~mtmarl.transforms.PhaseEncoding`
# of ``t mod L`` (a root ``"phase"`` the phase-functioned layers read, or the one-hot phase
# appended to the observations *and* the state) with the experiment's ``period`` ``L``, here the
# day. A module-level function (or a ``functools.partial`` of one) keeps the factory picklable
# for multi-process collection.


def make_feeder_env(*, num_envs, device, seed, n_homes=N_HOMES):
    return TransformedEnv(
        FeederEnv(n_homes=n_homes, num_envs=num_envs, device=device, seed=seed), StepCounter()
    )


register_experiment(
    Experiment(
        name="feeder",
        description="homes with batteries on a shared feeder (the bring-your-own-env tutorial)",
        env_factory=make_feeder_env,
        config=TrainConfig(
            experiment="feeder",
            variant="basic",
            algorithm="mappo",
            collector=CollectorConfig(
                num_envs=NUM_ENVS, steps_per_env=HOURS, iterations=ITERATIONS
            ),
            loss=MAPPOConfig(gamma=0.99, lmbda=0.95, entropy_coeff=0.001),
            optim=OptimConfig(lr=LR, epochs=4, minibatch_size=NUM_ENVS * HOURS // 4),
            eval=EvalConfig(episodes=EVAL_DAYS, interval=20),
        ),
        max_episode_steps=HOURS,
        period=HOURS,  # what the phase encodings of variant=phasic / onehot count
        env_kwargs_doc={"n_homes": f"homes on the feeder (default {N_HOMES})"},
    )
)
print([e.name for e in list_experiments()])

# %%
# From a file of your own, the command line runs the same preset::
#
#     mtmarl list --import my_feeder.py
#     mtmarl train feeder variant=phasic env.n_homes=8 --import my_feeder.py
#     mtmarl evaluate runs/feeder-... --import my_feeder.py
#
# where ``my_feeder.py`` holds the env, the factory and the ``register_experiment`` call (a
# dotted module name works too). An installed package can declare the module under the
# entry-point group ``mtmarl.experiments`` instead, and its presets are there without
# ``--import``.

# %%
# Two controllers to beat
# -----------------------
# ``idle`` leaves the batteries alone; ``rule`` stores each home's PV surplus and discharges
# to cover its own load while the price is at its peak. Both run on the same evaluation days
# (one seed, ``EVAL_DAYS`` envs) as the learned policy below.


def idle(td):
    td["agents", "action"] = torch.zeros(*td["agents", "observation"].shape[:-1], 1)
    return td


def rule(td):
    obs = td["agents", "observation"]
    net, price = obs[..., 1], obs[..., 3]
    store = (-net).clamp_min(0) / FeederEnv.POWER_KW  # the surplus, as a fraction of the rating
    cover = -(net.clamp_min(0) / FeederEnv.POWER_KW) * (price >= 0.35)
    td["agents", "action"] = (store + cover).clamp(-1, 1).unsqueeze(-1)
    return td


def day_return(policy):
    eval_env = make_feeder_env(num_envs=EVAL_DAYS, device="cpu", seed=SEED + 1)
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        rollout = eval_env.rollout(HOURS, policy, break_when_any_done=False)
    return rollout["next", "reward"].sum(-2).mean().item(), rollout


controllers = {name: day_return(policy) for name, policy in {"idle": idle, "rule": rule}.items()}
baselines = {name: value for name, (value, _) in controllers.items()}
print({name: round(value, 3) for name, value in baselines.items()})

# %%
# Train
# -----
# :class:`~mtmarl.training.Trainer` takes the preset's config with ``key=value`` overrides, as
# the command line does (:func:`~mtmarl.training.train` is the same in one call); a typo'd key or
# a factory option the env does not take fails here, before any work. The run directory holds
# the resolved config, CSV metrics and checkpoints; ``eval.keep_best`` keeps the actor of the
# best validation evaluation, which ``load_best`` puts back.

config = apply_overrides(get_experiment("feeder").config, [f"seed={SEED}", "run.progress=false"])
run_dir = tempfile.TemporaryDirectory()
trainer = Trainer(config, run_dir=run_dir.name)
result = trainer.train()
best = trainer.load_best()
learned, rollout = day_return(trainer.actor)
run_dir.cleanup()
print(f"best validation iteration {best}; on the controllers' days:")
print({**{k: round(v, 3) for k, v in baselines.items()}, "MAPPO": round(learned, 3)})
# what the text below claims: far ahead of idle batteries, level with the rule (within 0.1 a day)
assert learned > baselines["idle"] + 2.0, (learned, baselines)
assert learned > baselines["rule"] - 0.1, (learned, baselines)

# %%
# What it learned
# ---------------
# MAPPO ends level with the rule, within 0.1 per day (on the docs' machine a little ahead: -0.81
# against -0.86; the idle batteries -4.64); the script asserts both. The figure shows the community's net import hour by hour (mean over the
# evaluation days) under each policy, and the learned batteries' mean command. The learned
# batteries charge from the midday surplus and a little from the cheap night, and from 17 h run
# down below the feeder's rating (dashed) -- further than the homes' own load, selling the rest:
# in this reward energy left at the day's end is worth nothing, so it is sold rather than kept. A
# terminal value for the stored energy (or a ``truncated`` day end, which the critic bootstraps
# past) would change that; such choices are the env designer's, and the trainer takes them as they
# come.

curves = {name: td for name, (_, td) in controllers.items()}
curves["MAPPO"] = rollout


def net_import(td):
    obs = td["agents", "observation"]  # before each step: the net load without the battery
    power = FeederEnv.battery_power(td["agents", "action"], obs[..., 0] * FeederEnv.CAPACITY_KWH)
    return (obs[..., 1] + power).sum(-1).mean(0)  # (HOURS,) kW


fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3))
for name, td in curves.items():
    ax0.plot(range(HOURS), net_import(td), label=name)
ax0.axhline(1.5 * N_HOMES, color="k", ls="--", lw=0.8)
ax0.set_xlabel("hour")
ax0.set_ylabel("community net import (kW)")
ax0.legend()
ax1.plot(range(HOURS), rollout["agents", "action"].clamp(-1, 1).mean((0, 2, 3)))
ax1.axhline(0, color="k", lw=0.5)
ax1.set_xlabel("hour")
ax1.set_ylabel("mean battery command")
plt.tight_layout()
plt.show()

# %%
# From here: ``variant=phasic`` reads the daily phase the trainer encodes, ``model.critic=``
# swaps the centralised critic, :class:`~mtmarl.transforms.ActionFrequencyMask` makes some
# agents act every few hours, and ``collector.workers=`` collects in several processes (the
# factory must then live in an importable module, not in a script).
