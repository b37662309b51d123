"""Community energy trading (seed 000): prosumers, their devices and the mid-market-rate platform.

One concept per file: :mod:`~mtmarl.envs.community.market` (the cloud trading platform's
clearing), :mod:`~mtmarl.envs.community.devices` (battery, EV and heat-pump physics),
:mod:`~mtmarl.envs.community.env` (:class:`CommunityEnergyEnv`, the batched torchrl env),
:mod:`~mtmarl.envs.community.baselines` (no-flexibility and rule-based self-consumption policies),
:mod:`~mtmarl.envs.community.mpc` (receding-horizon control from the agents' forecasts),
:mod:`~mtmarl.envs.community.reference` (perfect-foresight planning: what no policy can beat) and
:mod:`~mtmarl.envs.community.metrics` (per-episode KPIs and seeded evaluation rollouts).
"""

from mtmarl.envs.community.baselines import (
    NoFlexibilityPolicy,
    RuleBasedSelfConsumptionPolicy,
    thermostat,
)
from mtmarl.envs.community.devices import battery_step, ev_step, hvac_step
from mtmarl.envs.community.env import CommunityEnergyEnv
from mtmarl.envs.community.market import (
    MarketClearing,
    clear_mid_market,
    grid_only_bill,
    mid_market_rate,
)
from mtmarl.envs.community.metrics import (
    COMMUNITY_KPI_NAMES,
    community_episode_kpis,
    community_kpis,
    evaluation_rollout,
    perfect_foresight_rollout,
    physical_rating,
)
from mtmarl.envs.community.mpc import ModelPredictiveController
from mtmarl.envs.community.reference import PerfectForesightPlan, perfect_foresight_plan

__all__ = [
    # the environment
    "CommunityEnergyEnv",
    # the cloud trading platform's mid-market-rate market
    "MarketClearing",
    "clear_mid_market",
    "grid_only_bill",
    "mid_market_rate",
    # non-learned baselines
    "NoFlexibilityPolicy",
    "RuleBasedSelfConsumptionPolicy",
    "thermostat",
    # model-predictive control from the agents' forecasts
    "ModelPredictiveController",
    # perfect-foresight planning: the bound no policy beats, and runnable plans
    "PerfectForesightPlan",
    "perfect_foresight_plan",
    # per-episode KPIs and the seeded evaluation rollouts they are measured on
    "COMMUNITY_KPI_NAMES",
    "community_episode_kpis",
    "community_kpis",
    "evaluation_rollout",
    "perfect_foresight_rollout",
    "physical_rating",
    # device physics
    "battery_step",
    "ev_step",
    "hvac_step",
]
