"""
Multi-timescale building control
================================

Seven agents run a five-zone office: five zone agents and a chiller agent change their set-points
every 5 minutes, a battery agent every minute, and together they must make the building's total
power follow a demand-response reference that changes every 3 minutes, without leaving the
comfort band. This tutorial trains phasic (PFNN) MAPPO agents on it with :mod:`mtmarl.training`
and compares them with a rule-based controller and a model-based reference.

**What you will learn**

* how :func:`~mtmarl.envs.building.make_building_env` composes the env with the timescale
  transforms, and how the joint period ``L = LCM(5, 5, 1, 3-min reference cycle) = 15`` comes out;
* how to train a phasic policy from Python with a small budget through
  :class:`~mtmarl.training.Trainer`;
* how to score any policy in physical units (tracking RMSE in kW, comfort violation in K min)
  with :func:`~mtmarl.envs.building.building_episode_metrics`, and how far it is from
  :func:`~mtmarl.envs.building.plan_open_loop`, an optimiser with perfect foresight over the
  env's own model.
"""

# %%
# Hyper-parameters
# ----------------
# A small budget (about 20k frames, well under a minute on 2 CPU cores). The ``building``
# preset trains for 192k frames; ``studies/building/results.py`` has the full comparison.

import matplotlib.pyplot as plt
import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

from mtmarl.envs.building import (
    OpenLoopPolicy,
    RuleBasedPolicy,
    building_episode_metrics,
    make_building_env,
    plan_open_loop,
)
from mtmarl.training import Trainer, apply_overrides, get_experiment

SEED = 0
NUM_ENVS = 32  # parallel training episodes per iteration
ITERATIONS = 20  # 32 envs x 30 minutes x 20 = 19.2k frames
EVAL_EPISODES = 16
PLAN_ITERATIONS = 100  # Adam steps of the model-based reference

torch.manual_seed(SEED)

# %%
# The environment and its timescales
# ----------------------------------
# ``make_building_env`` builds ``BuildingEnv`` -> ``StepCounter`` -> ``ActionFrequencyMask``
# (``hold``: between its decision steps an agent's action is replaced by its previous one) ->
# ``PhaseEncoding`` (``mode="phase"`` writes the scalar ``(t mod L) / L`` that ``PhaseLinear``
# reads). ``can_act`` shows who may act at each minute.

env = make_building_env(phase_mode="phase", num_envs=2, seed=SEED)
base = env.base_env
print("action periods (min):", base.action_periods)
print("reference period (min):", base.reference_period, "-> L =", base.period)
td = env.rollout(6, env.rand_action)
print("can_act at minutes 0..5 (zones, chiller, battery):")
print(td["agents", "can_act"][0].int())
print("phase:", td["phase"][0, :, 0].tolist())

# %%
# Train phasic MAPPO
# ------------------
# The ``building`` preset already has ``variant=phasic``: a parameter-shared ``PhaseMLP`` actor
# whose weights are a cyclic Catmull-Rom spline of the phase, and a PFNN centralised critic on
# the global state. Held (forced) steps get zero log-probability, so only real decisions are
# trained.

config = apply_overrides(
    get_experiment("building").config,
    [
        f"seed={SEED}",
        f"collector.num_envs={NUM_ENVS}",
        f"collector.iterations={ITERATIONS}",
        f"optim.minibatch_size={NUM_ENVS * 30 // 4}",
        f"eval.episodes={EVAL_EPISODES}",
        "eval.interval=5",
        "run.progress=false",
    ],
)
import tempfile  # noqa: E402

run_dir = tempfile.mkdtemp(prefix="building-tutorial-")
trainer = Trainer(config, run_dir=run_dir)
result = trainer.train()
print(f"deterministic evaluation: {result.evaluation.return_mean:.2f} per episode")

# %%
# Compare with the rule-based controller and the model-based reference
# ---------------------------------------------------------------------
# All three policies run on the same evaluation episodes (same env seed). The reference plans
# each episode's 30 minutes of joint actions by gradient ascent through the env's torch dynamics,
# knowing the weather and the reference in advance, starting from the rule-based actions.

EVAL_SEED = 123


def rollout(make_policy, phase_mode=None):
    """30 minutes of every evaluation episode under ``make_policy(env)``."""
    env = make_building_env(phase_mode=phase_mode, num_envs=EVAL_EPISODES, seed=EVAL_SEED)
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        return env.rollout(30, make_policy(env))


rule = rollout(lambda env: RuleBasedPolicy(env.base_env))
phasic = rollout(lambda env: trainer.actor, phase_mode="phase")

env = make_building_env(num_envs=EVAL_EPISODES, seed=EVAL_SEED)
td0 = env.reset()
plan = plan_open_loop(
    env.base_env, iterations=PLAN_ITERATIONS, initial_actions=rule["agents", "action"][..., 0]
)
with torch.no_grad():
    reference = env.rollout(30, OpenLoopPolicy(plan.actions), auto_reset=False, tensordict=td0)

rewards = {}
for name, data in [("rule-based", rule), ("phasic MAPPO", phasic), ("reference", reference)]:
    m = building_episode_metrics(data)
    rewards[name] = m["return"].mean().item()
    print(
        f"{name:>13}: reward {m['return'].mean():7.2f}  tracking RMSE "
        f"{m['tracking_rmse_kw'].mean():5.2f} kW  comfort {m['comfort_degree_minutes'].mean():.2f}"
        " K min"
    )
# the reference is the bound a perfect learner approaches: it beats the rule-based controller
assert rewards["reference"] > rewards["rule-based"], rewards

# %%
# Plot tracking over one episode
# ------------------------------

minutes = range(30)
fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
ax0.step(
    minutes,
    rule["building", "reference_power"][0, :, 0],
    "k",
    where="post",
    lw=2,
    label="reference",
)
for name, data in [("rule-based", rule), ("phasic MAPPO", phasic), ("model-based", reference)]:
    ax0.step(minutes, data["next", "building", "power"][0, :, 0], where="post", label=name)
ax0.set_ylabel("total power (kW)")
ax0.legend(fontsize=8)
temp = phasic["next", "building", "zone_temperature"][0]
for z in range(5):
    ax1.plot(minutes, temp[:, z], label=f"zone {z + 1}")
ax1.axhspan(22.0, 28.0, color="green", alpha=0.1, label="comfort band")
ax1.set_ylabel("zone temperature (deg C), phasic")
ax1.set_xlabel("minute")
ax1.legend(fontsize=7, ncol=3)
fig.tight_layout()

# %%
# With this small budget the phasic agents are still learning; the full preset and three
# seeds per variant are in ``studies/building/README.md``.
