"""The five-zone building energy-management task of seed 004 (section V-B).

A batched pure-torch environment (:class:`BuildingEnv`, :func:`make_building_env`) built
from one file per concept: the reduced-order thermal model and HVAC power
(:mod:`~mtmarl.envs.building.thermal_model`), the battery
(:mod:`~mtmarl.envs.building.storage`) and the exogenous inputs from real weather and an
office schedule (:mod:`~mtmarl.envs.building.exogenous`).
"""

from mtmarl.envs.building.baselines import RuleBasedPolicy
from mtmarl.envs.building.env import BuildingEnv, make_building_env
from mtmarl.envs.building.exogenous import building_exogenous, office_occupancy
from mtmarl.envs.building.metrics import building_episode_metrics
from mtmarl.envs.building.reference import OpenLoopPlan, OpenLoopPolicy, plan_open_loop
from mtmarl.envs.building.storage import EnergyStorage
from mtmarl.envs.building.thermal_model import (
    FiveZoneROM,
    chiller_power,
    fan_power,
    project_total_flow,
    resample_rom,
)

__all__ = [
    # the environment and its usual transform stack
    "BuildingEnv",
    "make_building_env",
    # rule-based baseline (thermostats + battery covering the tracking error)
    "RuleBasedPolicy",
    # model-based upper reference (perfect-foresight trajectory optimisation over the model)
    "plan_open_loop",
    "OpenLoopPlan",
    "OpenLoopPolicy",
    # per-episode metrics: return, tracking RMSE (kW), comfort violation (K min)
    "building_episode_metrics",
    # physics: thermal model, HVAC power, flow constraint, battery
    "FiveZoneROM",
    "resample_rom",
    "fan_power",
    "chiller_power",
    "project_total_flow",
    "EnergyStorage",
    # exogenous inputs
    "building_exogenous",
    "office_occupancy",
]
