"""Training: typed configs, the generic trainer, experiment presets, checkpoints, evaluation.

Nothing below ``mtmarl.training`` imports it; the ``mtmarl`` command line calls into it.
"""

from mtmarl.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mtmarl.training.config import (
    ALGORITHMS,
    VARIANTS,
    CollectorConfig,
    ConfigError,
    EvalConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    apply_overrides,
    config_from_yaml,
    config_to_yaml,
)
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
from mtmarl.training.trainer import Trainer, TrainResult, train

__all__ = [
    # configuration
    "ALGORITHMS",
    "VARIANTS",
    "CollectorConfig",
    "ConfigError",
    "EvalConfig",
    "LossConfig",
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
