"""
MATPPO from parts
=================

``mtmarl train community`` trains MATPPO (seed 000) on the community energy market for you; this
tutorial assembles the same method from its parts so that you can change any of them: the
batched :class:`~mtmarl.envs.CommunityEnergyEnv`, the LSTM
:class:`~mtmarl.modules.ForecastEncoder`, the parameter-shared hybrid actor of
:func:`~mtmarl.modules.make_hybrid_actor` and the :class:`~mtmarl.modules.TransformerCritic`,
wired into torchrl's ``Collector``, ``MultiAgentGAE`` and ``ClipPPOLoss`` (as ``MAPPOLoss``).

**What you will learn**

* what the community env gives each prosumer (a 3-hour forecast window and a device triplet) and
  the critic (per-agent tokens plus a community aggregate);
* how to stack the LSTM encoder and the discrete + continuous heads into one
  ``ProbabilisticActor`` shared by all prosumers;
* how the Transformer critic's two values are trained: the per-agent values by
  ``MultiAgentGAE`` + ``ClipPPOLoss`` on each prosumer's difference reward, the pooled
  global value by its own GAE target on the community reward;
* how to look at the critic's attention over the prosumers;
* how to start the actor at the rule-based controller with an
  :class:`~mtmarl.modules.ActionPrior`, so that PPO learns a residual on top of it, and
  keep it near the controller with a :class:`~mtmarl.objectives.ReferenceKLLoss`;
* how to bound what any policy can reach on a day with a perfect-foresight linear program.
"""

# %%
# Hyper-parameters
# ----------------
# A tiny budget so that the documentation builds in well under a minute: 6 prosumers, 8 days per
# iteration, 4 iterations. It shows the plumbing, not a trained policy -- see
# ``studies/community/results.py`` for the benchmark budgets.

import matplotlib.pyplot as plt
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torchrl.collectors import Collector
from torchrl.envs import StepCounter, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives.multiagent import MAPPOLoss
from torchrl.objectives.value import GAE

from mtmarl.envs import CommunityEnergyEnv
from mtmarl.modules import ForecastEncoder, TransformerCritic, make_hybrid_actor

SEED = 0
N_PROSUMERS = 6
NUM_ENVS = 8
HORIZON = CommunityEnergyEnv.HORIZON  # 96 steps of 15 minutes: one day
ITERATIONS = 4
EPOCHS = 2
MINIBATCH = 384
LR = 1e-3
FEATURE_DIM = 32

torch.manual_seed(SEED)
torch.set_num_threads(1)

# %%
# The environment
# ---------------
# Every prosumer sees ``("agents", "forecast")`` -- the next 12 intervals of its PV, its load
# and the import price -- and ``("agents", "device_state")`` -- battery SoC, EV SoC, indoor
# temperature -- plus time and EV context, its devices' ratings ``("agents", "ratings")`` and
# ``("agents", "action_mask")``, the EV levels that still meet the car's deadline. The critic's
# inputs are per-agent
# ``("agents", "critic_observation")`` and the community ``"aggregate"`` (net load, market
# prices, transformer loading, time). The action is hybrid: an EV charging level and
# (battery, heat-pump) powers in ``[-1, 1]``. The reward is the community's (root ``"reward"``);
# with ``agent_rewards=True`` the env also writes each prosumer's *difference reward*
# ``("agents", "reward")``: the community reward minus the community reward had this
# prosumer's battery, EV charger and heat pump been idle (exact, because energy cost and
# overload depend on the community's net exchange alone), plus its own comfort and EV terms.

env = TransformedEnv(
    CommunityEnergyEnv(n_prosumers=N_PROSUMERS, num_envs=NUM_ENVS, seed=SEED, agent_rewards=True),
    StepCounter(),
)
td = env.reset()
for key in (
    ("agents", "forecast"),
    ("agents", "device_state"),
    ("agents", "context"),
    ("agents", "ratings"),
    ("agents", "action_mask"),
    ("agents", "critic_observation"),
    "aggregate",
):
    print(key, tuple(td[key].shape))
print(env.full_action_spec["agents", "action"])

# %%
# The actor: LSTM encoder + hybrid heads, shared by all prosumers
# ---------------------------------------------------------------
# :class:`~mtmarl.modules.ForecastEncoder` runs an LSTM over each prosumer's window (no state
# carried between steps: the window is part of the observation), concatenates the last hidden
# state with the device state and maps it linearly to the local feature. Here the device state
# is extended with the context features (time of day, EV plug-in and deadline) and the ratings
# (a shared policy must know how big each household's devices are) by a small concatenation
# module in front. :func:`~mtmarl.modules.make_hybrid_actor` then puts a categorical head (EV
# level, a ``MaskedCategorical`` on the deadline mask) and a tanh-normal head (powers, bounded
# by the spec) on the feature, joined in a ``CompositeDistribution``.

LOCAL_KEYS = [("agents", "device_state"), ("agents", "context"), ("agents", "ratings")]
concat = TensorDictModule(
    lambda *parts: torch.cat(parts, -1), in_keys=LOCAL_KEYS, out_keys=[("agents", "local_state")]
)
LOCAL_FEATURES = sum(td[k].shape[-1] for k in LOCAL_KEYS)


def make_actor(action_prior=None):
    encoder = ForecastEncoder(
        3,
        FEATURE_DIM,
        state_features=LOCAL_FEATURES,
        hidden_size=32,
        state_key=("agents", "local_state"),
    )
    return make_hybrid_actor(
        env.full_action_spec,
        encoder=TensorDictSequential(concat, encoder),
        feature_dim=FEATURE_DIM,
        num_cells=(64,),
        action_mask_key=("agents", "action_mask"),
        action_prior=action_prior,
    )


actor = make_actor()
print("actor writes", actor.dist_sample_keys, "and", actor.log_prob_keys)

# %%
# The critic: attention over the prosumers
# ----------------------------------------
# One token per prosumer plus a global token projected from the community aggregate; no
# positional encoding across prosumers, so the same weights serve any N. It writes per-agent
# values ``("agents", "state_value")`` (used by GAE) and a pooled ``"state_value_global"``.

critic = TransformerCritic(
    len(CommunityEnergyEnv.STATE_AGENT_FEATURES),
    global_features=len(CommunityEnergyEnv.STATE_AGGREGATE_FEATURES),
    d_model=32,
    num_heads=4,
    num_layers=2,
    agent_key=("agents", "critic_observation"),
    global_key="aggregate",
)

# %%
# Collector, value estimators, loss
# ---------------------------------
# ``MAPPOLoss`` is ``ClipPPOLoss`` with a ``MultiAgentGAE`` default estimator. Here it runs on
# each prosumer's difference reward ``(E, T, N, 1)`` next to its value ``(E, T, N, 1)``: with
# the community reward alone, every prosumer's advantage carries the noise of all the others
# (``benchmarks/README.md`` compares the two). ``reward="reward"`` is the paper's version: the
# team reward ``(E, T, 1)`` broadcast over the agents. The loss reads
# the hybrid actor's per-head log-probabilities itself. ``shifted=True`` evaluates the critic
# once over ``T + 1`` steps instead of vmapping it over ``(root, next)``. A second,
# single-agent ``GAE`` gives the pooled global value its target on the community reward.

collector = Collector(
    env,
    actor,
    frames_per_batch=NUM_ENVS * HORIZON,
    total_frames=NUM_ENVS * HORIZON * ITERATIONS,
    reset_at_each_iter=True,  # every batch holds whole days
    exploration_type=ExplorationType.RANDOM,
    auto_register_policy_transforms=False,
)
loss = MAPPOLoss(actor, critic, entropy_coeff=0.001)
loss.set_keys(
    value=("agents", "state_value"),
    reward=("agents", "reward"),
    done="done",
    terminated="terminated",
)
loss.make_value_estimator(gamma=0.99, lmbda=0.95, shifted=True)
global_gae = GAE(gamma=0.99, lmbda=0.95, value_network=critic, shifted=True)
global_gae.set_keys(
    value="state_value_global",
    advantage="advantage_global",
    value_target="state_value_global_target",
)
optim = torch.optim.Adam(loss.parameters(), lr=LR)

# %%
# The training loop
# -----------------
# GAE on whole days in time order, then PPO epochs over shuffled single steps; the global value's
# MSE is simply added to the PPO losses.

returns = []
for data in collector:
    with torch.no_grad():
        loss.value_estimator(data)
        global_gae(data)
    flat = data.reshape(-1)
    for _ in range(EPOCHS):
        for idx in torch.randperm(flat.numel()).split(MINIBATCH):
            batch = flat[idx]
            out = loss(batch)
            total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
            total = total + critic.global_value_loss(batch)
            optim.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_(loss.parameters(), 1.0)
            optim.step()
    collector.update_policy_weights_()
    returns.append(data["next", "reward"].sum(-2).mean().item())
    print(f"iteration {len(returns)}: return per day {returns[-1]:.1f}")
collector.shutdown()

# %%
# A deterministic day and the critic's attention
# ----------------------------------------------
# ``ExplorationType.DETERMINISTIC`` takes the most likely EV level and ``tanh(loc)`` powers.
# :meth:`~mtmarl.modules.TransformerCritic.attention_weights` returns every layer's weights
# ``(B, layers, heads, N + 1, N + 1)`` (token 0 is the global token). We show the last layer,
# averaged over heads, at 18:00 -- the evening peak, when EVs arrive -- next to each
# prosumer's uncontrolled net load (base load minus PV) at that time.

eval_env = TransformedEnv(
    CommunityEnergyEnv(n_prosumers=N_PROSUMERS, num_envs=1, seed=SEED + 1), StepCounter()
)
with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
    day = eval_env.rollout(HORIZON, actor, break_when_any_done=False)
step = 6 * 4  # 18:00 (episodes start at noon)
weights = critic.attention_weights(day[:, step])[0, -1].mean(0)  # (N + 1, N + 1)
obs = day[0, step]["agents", "critic_observation"]
net_load = obs[:, 4] - obs[:, 3]  # load - PV, kW

labels = ["global"] + [f"P{i + 1}" for i in range(N_PROSUMERS)]
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(12, 3.6))
ax1.plot(range(1, len(returns) + 1), returns, marker=".")
ax1.set(xlabel="iteration", ylabel="return per day", title="training (tiny budget)")
im = ax2.imshow(weights, cmap="viridis")
ax2.set_xticks(range(N_PROSUMERS + 1), labels, rotation=45)
ax2.set_yticks(range(N_PROSUMERS + 1), labels)
ax2.set(xlabel="attended token", ylabel="query token", title="last-layer attention, 18:00")
fig.colorbar(im, ax=ax2, fraction=0.046)
ax3.bar(labels[1:], net_load)
ax3.set(ylabel="kW", title="base load - PV at 18:00 (critic input)")
fig.tight_layout()
plt.show()

# %%
# Starting from the rule-based controller
# ---------------------------------------
# A policy trained from scratch spends most of its budget re-discovering what a simple rule
# already does (keep the house in its comfort band, soak up PV with the battery, charge EVs
# before they leave). :class:`~mtmarl.modules.ActionPrior` runs a fixed controller -- here
# :class:`~mtmarl.envs.community.RuleBasedSelfConsumptionPolicy`, which reads only the
# prosumer's own observation -- between the heads and the distribution, and shifts the
# parameters toward its action: ``+ logit_bonus`` on its EV level, ``+ atanh(u)`` on the
# tanh-normal ``loc``. With the heads' outputs at zero the deterministic policy *is* the
# controller; PPO then learns a correction, with exact log-probabilities (the prior is
# recomputed from the stored observation when the loss re-runs the actor). ``mtmarl train
# community`` does this with the same controller, EV charging spread over the night, batteries
# paced to last until the morning, a deadband thermostat and homes pre-heated (or pre-cooled)
# in the afternoon, ahead of the evening's peak price
# (``RuleBasedSelfConsumptionPolicy(env, ev_spread=0.6, battery_spread=1.0,
# battery_refill_hour=5.0, thermostat_deadband=0.9, preheat_target=0.2,
# preheat_hours=(13, 16))``, ``model.action_prior=rule_based_preheat``;
# ``model.action_prior=rule_based`` spreads, paces and pre-heats nothing).

from mtmarl.envs.community import RuleBasedSelfConsumptionPolicy  # noqa: E402
from mtmarl.modules import ActionPrior  # noqa: E402

rule = RuleBasedSelfConsumptionPolicy(env)
residual = make_actor(ActionPrior(rule, action_spec=env.full_action_spec))
with torch.no_grad():
    for head in (residual.module[0][1].module.discrete, residual.module[0][1].module.continuous):
        for p in head.parameters():
            p.zero_()  # the trainer shrinks the heads' output layers instead
with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
    eval_env.set_seed(SEED)
    day_residual = eval_env.rollout(HORIZON, residual, break_when_any_done=False)
    eval_env.set_seed(SEED)
    day_rule = eval_env.rollout(HORIZON, rule, break_when_any_done=False)
r_residual = day_residual["next", "reward"].sum().item()
r_rule = day_rule["next", "reward"].sum().item()
print(f"return of one day: residual actor at init {r_residual:.3f}, rule-based {r_rule:.3f}")
assert abs(r_residual - r_rule) < 0.05 * abs(r_rule)

# %%
# Keeping PPO near the controller
# -------------------------------
# PPO's clip bounds each update against the previous iterate, not the sum of the updates: a
# run that starts at a good controller can drift away from it, iteration after iteration.
# :class:`~mtmarl.objectives.ReferenceKLLoss` adds ``coeff * KL(pi_theta || pi_0)``, with
# ``pi_0`` a frozen copy of the actor as it is now (the controller), in closed form per
# agent-step (the EV levels' categorical plus the pre-tanh normals of the powers). Its
# ``loss_reference_kl`` is one more term to add to the PPO losses:
# ``out = loss(batch).update(anchor(batch))``. ``mtmarl train community`` does this with
# ``loss.reference_kl_coeff=0.1``, handing the anchor the distribution of the PPO loss's own
# actor pass (:meth:`~mtmarl.objectives.ReferenceKLLoss.penalty`), so that only the frozen
# copy runs a second time. Here: a nudge of the heads moves the policy away from the copy,
# and a few steps on the penalty alone bring it back.

from mtmarl.objectives import ReferenceKLLoss  # noqa: E402

anchor = ReferenceKLLoss(residual, coeff=0.1)
steps = day_residual.exclude("next")
with torch.no_grad():
    residual.module[0][1].module.continuous[-1].bias.add_(0.3)  # a drift of the powers
kl_nudged = anchor(steps)["reference_kl"].item()
anchor_optim = torch.optim.Adam(residual.parameters(), lr=1e-2)
for _ in range(20):
    anchor_optim.zero_grad()
    anchor(steps)["loss_reference_kl"].backward()
    anchor_optim.step()
kl_after = anchor(steps)["reference_kl"].item()
print(f"KL to the controller per agent-step: nudged {kl_nudged:.3f}, after 20 steps {kl_after:.3f}")
assert kl_after < kl_nudged

# %%
# How far from the best possible day
# -----------------------------------
# :func:`~mtmarl.envs.community.perfect_foresight_plan` solves the day as one linear program
# on the env's own device models, with the whole day known (PV, loads, prices, the cars'
# schedules) and the EV charger relaxed to any power: no policy can beat its return on that
# day. Given a policy's EV levels instead, it plans the batteries and heat pumps for them,
# and the env can run the plan (:meth:`~mtmarl.envs.community.PerfectForesightPlan.actions`).

from mtmarl.envs.community import perfect_foresight_plan  # noqa: E402

eval_env.set_seed(SEED)
eval_env.reset()
bound = perfect_foresight_plan(eval_env)
r_bound = bound.episode_return.item()
print(
    f"return of the same day: perfect-foresight bound {r_bound:.3f} (cost {bound.cost.item():.2f},"
    f" peak {bound.peak_kw.item():.1f} kW), rule-based {r_rule:.3f}"
)
assert r_bound >= r_rule

# %%
# With a real budget (``mtmarl train community``: the same parts, 50 iterations of 16 days) the
# attention concentrates on the prosumers whose flexibility matters at the moment. From here,
# swap any part: ``make_hybrid_actor(..., discrete_head=PhaseLinear(...), head_extra_keys=
# ["phase"])`` for phase-aware heads, the critic's depth and width, the community size (the
# critic's weights do not depend on N), or the env's reward weights.
print(
    "attention rows sum to 1:", bool(torch.allclose(weights.sum(-1), torch.ones(N_PROSUMERS + 1)))
)
