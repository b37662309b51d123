"""Batched pure-torch environments (torchrl ``EnvBase`` subclasses) and their ``make_*_env`` stacks.

Every environment steps ``num_envs`` copies as one tensor program, follows torchrl's
multi-agent key convention (per-agent entries under ``("agents", ...)``, team reward and
done flags at the root, global state at ``"state"``) and leaves the multi-timescale rule to
:class:`~mtmarl.transforms.ActionFrequencyMask`, which the ``make_*_env`` helpers compose.
"""

from mtmarl.envs.building import BuildingEnv, RuleBasedPolicy, make_building_env
from mtmarl.envs.community import CommunityEnergyEnv, clear_mid_market
from mtmarl.envs.movebox import MoveBoxEnv, make_movebox_env
from mtmarl.envs.weather import Weather, load_tmy3

__all__ = [
    # Move Box (seed 004, section V-A)
    "MoveBoxEnv",
    "make_movebox_env",
    # building energy management (seed 004, section V-B); physics in mtmarl.envs.building
    "BuildingEnv",
    "make_building_env",
    "RuleBasedPolicy",
    # community energy trading (seed 000); market and devices in mtmarl.envs.community
    "CommunityEnergyEnv",
    "clear_mid_market",
    # real weather (TMY3 files shipped with pvlib), shared by the energy envs
    "Weather",
    "load_tmy3",
]
