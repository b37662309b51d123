"""Training: typed configs, the generic trainer, experiment presets, checkpoints, evaluation.

Nothing below ``mtmarl.training`` imports it; the ``mtmarl`` command line calls into it.
"""

from typing import Any

from mtmarl.algorithms import ALGORITHMS
from mtmarl.training.callbacks import Callback, FunctionCallback, KeepBest, LogMetrics, ShowProgress
from mtmarl.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mtmarl.training.config import (
    VARIANTS,
    CollectorConfig,
    ConfigError,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    apply_overrides,
    config_from_yaml,
    config_to_yaml,
)
from mtmarl.training.env_stack import EnvMaker, resolve_period
from mtmarl.training.evaluation import (
    EvalResult,
    evaluate_policy,
    explained_variance,
    mean_confidence_interval,
    wilson_interval,
)
from mtmarl.training.experiments import (
    ENTRY_POINT_GROUP,
    Experiment,
    get_experiment,
    import_experiments,
    list_experiments,
    register_experiment,
)
from mtmarl.training.plotting import plot_learning_curve
from mtmarl.training.run_dir import RunDirLock, RunDirLockedError, atomic_write_text
from mtmarl.training.trainer import NonFiniteError, Trainer, TrainResult, train

__all__ = [
    # configuration
    "ALGORITHMS",
    "VARIANTS",
    "CollectorConfig",
    "ConfigError",
    "EvalConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_yaml",
    "config_to_yaml",
    # experiment presets
    "ENTRY_POINT_GROUP",
    "Experiment",
    "get_experiment",
    "import_experiments",
    "list_experiments",
    "register_experiment",
    # training
    "Trainer",
    "TrainResult",
    "train",
    "NonFiniteError",
    "EnvMaker",
    "resolve_period",
    # callbacks of the training loop
    "Callback",
    "FunctionCallback",
    "KeepBest",
    "LogMetrics",
    "ShowProgress",
    # run directories
    "RunDirLock",
    "RunDirLockedError",
    "atomic_write_text",
    # evaluation, checkpoints, plots
    "EvalResult",
    "evaluate_policy",
    "explained_variance",
    "mean_confidence_interval",
    "wilson_interval",
    "CheckpointError",
    "load_checkpoint",
    "save_checkpoint",
    "plot_learning_curve",
]


def __getattr__(name: str) -> Any:
    """Names that moved, kept for one release with a ``DeprecationWarning``."""
    if name == "LossConfig":
        from mtmarl.training import config

        return config.LossConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
