"""
Making any environment multi-timescale
======================================

In a multi-timescale system agent ``n`` may only choose a new action every ``omega_n`` steps: a
battery dispatcher decides every 15 minutes, a heat pump every hour, a tariff once a day. Between
its decision steps an agent *holds* its previous action (a setpoint) or does *nothing*. This
tutorial turns an ordinary torchrl multi-agent environment into such a system with two transforms,
without touching the environment's code.

**What you will learn**

* how to compute the joint period ``L = LCM(omega_1, ..., omega_N)`` with
  :func:`~mtmarl.transforms.multi_timescale_period`;
* how :class:`~mtmarl.transforms.ActionFrequencyMask` (after a
  :class:`~torchrl.envs.StepCounter`) enforces the action frequencies, what it tells the policy
  (``can_act``, ``action_mask``) and where the *executed* action is recorded;
* why a policy fed the mask through :class:`~torchrl.modules.MaskedCategorical` gets no
  log-probability and no entropy on forced steps;
* how :class:`~mtmarl.transforms.PhaseEncoding` gives a policy the phase ``t mod L``.
"""

# %%
# Hyper-parameters
# ----------------
# Three agents acting every 1, 2 and 3 steps, a handful of environments and steps.

import matplotlib.pyplot as plt
import torch
from tensordict import TensorDict
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import Compose, EnvBase, StepCounter, TransformedEnv
from torchrl.envs.utils import check_env_specs
from torchrl.modules import MaskedCategorical

from mtmarl.transforms import ActionFrequencyMask, PhaseEncoding, multi_timescale_period

SEED = 0
NUM_ENVS = 4
N_STEPS = 12
ACTION_FREQUENCIES = (1, 2, 3)  # omega_n: agent n may act when t % omega_n == 0
N_LEVELS = 3  # heater power levels 0 (off), 1 (half), 2 (full)

torch.manual_seed(SEED)

# %%
# An ordinary multi-agent environment
# -----------------------------------
# Three rooms, each heated by one agent that picks a power level. It follows torchrl's
# multi-agent conventions: per-agent entries under ``("agents", ...)`` with batch
# ``(num_envs, n_agents)``, a team reward and the done flags at the root. It knows nothing about
# timescales: every agent may change its level at every step.


class RoomsEnv(EnvBase):
    """``E`` copies of ``N`` rooms; agent ``n`` sets the heater power of room ``n``."""

    def __init__(self, num_envs: int, n_agents: int):
        super().__init__(batch_size=(num_envs,))
        E, N = num_envs, n_agents
        self.observation_spec = Composite(
            agents=Composite(observation=Unbounded((E, N, 1)), shape=(E, N)), shape=(E,)
        )
        self.action_spec = Composite(
            agents=Composite(action=Categorical(N_LEVELS, shape=(E, N)), shape=(E, N)),
            shape=(E,),
        )
        self.reward_spec = Unbounded((E, 1))
        self.temperature = torch.zeros(E, N, 1)

    def _observe(self, **extra) -> TensorDict:
        agents = TensorDict(
            observation=self.temperature.clone(), batch_size=self.temperature.shape[:2]
        )
        done = torch.zeros(*self.batch_size, 1, dtype=torch.bool)
        return TensorDict(agents=agents, done=done, **extra, batch_size=self.batch_size)

    def _reset(self, tensordict):
        self.temperature = torch.rand(self.temperature.shape)  # (partial resets: left out)
        return self._observe()

    def _step(self, tensordict):
        power = tensordict["agents", "action"].unsqueeze(-1).float() / (N_LEVELS - 1)
        self.temperature = 0.8 * self.temperature + 0.5 * power  # heat loss + heating
        return self._observe(reward=-(self.temperature - 1.0).abs().sum((-1, -2)).unsqueeze(-1))

    def _set_seed(self, seed):
        torch.manual_seed(seed)


base_env = RoomsEnv(NUM_ENVS, len(ACTION_FREQUENCIES))
check_env_specs(base_env)

# %%
# Adding the timescales
# ---------------------
# Both transforms read the time step from the ``"step_count"`` of a
# :class:`~torchrl.envs.StepCounter`, so it comes first (without it they refuse to be appended and
# say so). :class:`~mtmarl.transforms.ActionFrequencyMask` uses ``mode="hold"`` here: between its
# decision steps a heater keeps its last power level, like a setpoint. (``mode="null"`` with
# ``null_action=...`` executes a do-nothing action instead, as in the Move Box task of
# :func:`~mtmarl.envs.make_movebox_env`.) :class:`~mtmarl.transforms.PhaseEncoding` adds the
# phase ``(t mod L) / L`` as a root entry ``"phase"``, the input of
# :class:`~mtmarl.nn.PhaseLinear`.

L = multi_timescale_period(ACTION_FREQUENCIES)
print(f"omega = {ACTION_FREQUENCIES}: the joint period is L = {L}")

env = TransformedEnv(
    base_env,
    Compose(
        StepCounter(),
        ActionFrequencyMask(ACTION_FREQUENCIES, mode="hold"),
        PhaseEncoding(L),
    ),
)
check_env_specs(env)
td = env.reset()
for key in (("agents", "can_act"), ("agents", "action_mask"), ("agents", "prev_action"), "phase"):
    print(f"{str(key):28s} shape {tuple(td[key].shape)}, {td[key].dtype}")

# %%
# A policy that ignores the rules
# -------------------------------
# To see the transform at work we roll out a *stubborn* random policy that draws from the base
# environment's action spec and so also tries to act on forced steps. Torchrl's inverse
# transforms work on a copy, so the rollout keeps the policy's action at ``("agents", "action")``;
# the action the rooms actually *executed* at step ``t`` is the previous action of the next
# observation, ``("next", "agents", "prev_action")``.

unmasked_spec = base_env.full_action_spec


def stubborn_policy(tensordict):
    return tensordict.update(unmasked_spec.rand())


rollout = env.rollout(N_STEPS, stubborn_policy)
policy_action = rollout["agents", "action"][0]  # first environment: (T, N)
executed = rollout["next", "agents", "prev_action"][0]
can_act = rollout["agents", "can_act"][0]
overruled = (policy_action != executed) & ~can_act
print(f"the policy was overruled on {int(overruled.sum())} of {int((~can_act).sum())} forced steps")
# the executed action stays at the last decision on every forced step
assert bool(overruled.any()) and bool(
    (executed[1:][~can_act[1:]] == executed[:-1][~can_act[1:]]).all()
)
print("phase over time:", [round(u, 3) for u in rollout["phase"][0].squeeze(-1).tolist()])

# %%
# Policy versus executed actions
# ------------------------------
# The shaded steps are decision steps (``can_act``). Between them the executed level (line) stays
# at the last decision, whatever the policy (crosses) asked for.

steps = torch.arange(N_STEPS)
fig, axes = plt.subplots(len(ACTION_FREQUENCIES), 1, figsize=(7, 5), sharex=True)
for n, ax in enumerate(axes):
    for t in steps[can_act[:, n]].tolist():
        ax.axvspan(t - 0.5, t + 0.5, color="tab:green", alpha=0.15, lw=0)
    ax.step(steps, executed[:, n], where="mid", color="tab:blue", label="executed")
    ax.plot(steps, policy_action[:, n], "x", color="tab:red", label="policy")
    ax.set_ylabel(f"agent {n}\n(omega={ACTION_FREQUENCIES[n]})")
    ax.set_yticks(range(N_LEVELS))
axes[0].legend(loc="lower right", bbox_to_anchor=(1, 1), fontsize=8, ncols=2, frameon=False)
axes[-1].set_xlabel("step t")
plt.tight_layout()
plt.show()

# %%
# Forced steps cost nothing in the policy gradient
# ------------------------------------------------
# For discrete actions the transform also writes ``("agents", "action_mask")``: all ``True`` on
# decision steps, the one-hot of the forced action otherwise (it also masks the environment's
# action spec, so ``env.rand_action()`` only draws executable actions). A
# :class:`~torchrl.modules.MaskedCategorical` built on it gives the executed action of a forced
# step probability one: its log-probability and the entropy are exactly zero, so forced steps
# add nothing to a PPO or COMA gradient.

mask = rollout["agents", "action_mask"]
logits = torch.randn(mask.shape)
dist = MaskedCategorical(logits=logits, mask=mask)
log_prob = dist.log_prob(rollout["next", "agents", "prev_action"])
all_can_act = rollout["agents", "can_act"]
print("forced steps: max |log-prob| =", log_prob[~all_can_act].abs().max().item())
print("forced steps: max entropy    =", dist.entropy()[~all_can_act].abs().max().item())
print("decision steps: mean entropy =", round(dist.entropy()[all_can_act].mean().item(), 3))
# exactly zero, as the text says
assert log_prob[~all_can_act].abs().max().item() == 0.0
assert dist.entropy()[~all_can_act].abs().max().item() == 0.0

# %%
# Random rollouts respect the mask
# --------------------------------
# Because the mask is written into the action spec, torchrl's random policy (and a collector
# without a policy) draws only executable actions: the policy's and the executed actions agree.

rollout = env.rollout(N_STEPS)
agree = torch.equal(rollout["agents", "action"], rollout["next", "agents", "prev_action"])
print("random actions always executable:", agree)
assert agree

# %%
# The same two transforms work on any torchrl multi-agent environment -- discrete, continuous or
# hybrid (composite) actions, batched or inside a :class:`~torchrl.envs.ParallelEnv` -- as long as
# a ``StepCounter`` (or another integer clock named by ``step_key``) comes first.
