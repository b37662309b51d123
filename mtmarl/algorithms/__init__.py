"""Training algorithms as units: one file per algorithm, a registry the trainer reads.

Each algorithm (an :class:`Algorithm` subclass) owns its ``loss.*`` config (an
:class:`AlgorithmConfig` subclass), what it supports, its loss and optimisers, and its update
of one collected batch; the :class:`~mtmarl.training.Trainer` only collects, calls
``update`` and evaluates. ``mtmarl list`` prints the registry.
"""

from mtmarl.algorithms.base import (
    Algorithm,
    AlgorithmConfig,
    MetricSums,
    clipped_step,
    explained_variance,
)
from mtmarl.algorithms.coma import COMA, COMAConfig
from mtmarl.algorithms.mappo import MAPPO, MAPPOConfig
from mtmarl.algorithms.registry import (
    ALGORITHMS,
    ENTRY_POINT_GROUP,
    get_algorithm,
    list_algorithms,
    register_algorithm,
)

register_algorithm(MAPPO)
register_algorithm(COMA)

__all__ = [
    # the unit
    "Algorithm",
    "AlgorithmConfig",
    # built-in algorithms
    "MAPPO",
    "MAPPOConfig",
    "COMA",
    "COMAConfig",
    # registry
    "ALGORITHMS",
    "ENTRY_POINT_GROUP",
    "get_algorithm",
    "list_algorithms",
    "register_algorithm",
    # helpers for writing one
    "MetricSums",
    "clipped_step",
    "explained_variance",
]
