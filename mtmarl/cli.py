"""The ``mtmarl`` command: parses, then calls :mod:`mtmarl.training`.

::

    mtmarl list [--import MODULE ...]
    mtmarl train EXPERIMENT [key=value ...] [--run-dir DIR] [--resume] [--import MODULE ...]
    mtmarl evaluate RUN_DIR [--episodes N] [--out FILE] [--import MODULE ...]

Overrides use dotted keys and YAML values, e.g. ``variant=onehot seed=3 optim.lr=1e-3
model.num_cells=[128,128]``; a typo'd key or an out-of-range value fails before any work.

``--import MODULE`` (repeatable; a dotted module name or a ``.py`` file) imports a module that
registers presets of your own (:func:`~mtmarl.training.register_experiment`) before the command
looks its experiment up; installed packages can declare theirs under the entry-point group
``mtmarl.experiments`` instead (:mod:`mtmarl.training.experiments`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _cmd_list(_args: argparse.Namespace) -> int:
    from mtmarl.algorithms import list_algorithms
    from mtmarl.modules.builders import CRITICS, ENCODERS, VARIANT_REGISTRY
    from mtmarl.training import list_experiments

    print("experiments:")
    for exp in list_experiments():
        print(f"  {exp.name:<16} {exp.description}")
        for key, doc in exp.env_kwargs_doc.items():
            print(f"  {'':<16}   env.{key}: {doc}")
    print("algorithms (algorithm=NAME):")
    for cls in list_algorithms():
        print(f"  {cls.name:<16} {cls.description} [critics: {', '.join(cls.critics)}]")
    print("variants (variant=NAME):")
    for variant in VARIANT_REGISTRY.values():
        print(f"  {variant.name:<16} {variant.description}")
    print("critics (model.critic=NAME):")
    for entry in CRITICS.values():
        print(f"  {entry.name:<16} {entry.description}")
    print("encoders (model.encoder=NAME):")
    for entry in ENCODERS.values():
        print(f"  {entry.name:<16} {entry.description}")
    return 0


def _print_eval(result, run_dir: Path, *, plot: Path | None = None) -> None:
    line = f"evaluation over {result.episodes} episodes: return {result.return_mean:.2f}"
    line += f" +- {result.return_ci:.2f}"
    if result.success_rate is not None:
        lo, hi = result.success_ci
        line += (
            f", success {100 * result.success_rate:.0f}% (95% CI {100 * lo:.0f}-{100 * hi:.0f}%)"
        )
    print(line, flush=True)
    if plot is not None and plot.exists():
        print(f"learning curve: {plot}")
    print(f"run directory: {run_dir}", flush=True)


def _run_config(run_dir: Path):
    """A run directory's own config: its ``config.yaml``, else the one its checkpoint holds."""
    from mtmarl.training import CheckpointError, config_from_yaml, load_checkpoint

    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a run directory (no such folder)")
    config_file = run_dir / "config.yaml"
    if config_file.is_file():
        try:
            return config_from_yaml(config_file.read_text())
        except UnicodeDecodeError as err:
            raise CheckpointError(f"{config_file} is not a config file: {err}") from None
    checkpoint = run_dir / "checkpoints" / "last.pt"
    if not checkpoint.is_file():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.yaml, no checkpoint)")
    state = load_checkpoint(checkpoint, required=("config",))
    return config_from_yaml(state["config"])


def _cmd_train(args: argparse.Namespace) -> int:
    from mtmarl.training import Trainer, apply_overrides, get_experiment

    if args.resume:
        # what was trained is what is resumed: the run's own config; overrides that change what
        # was trained are refused by the trainer, naming them
        config = _run_config(Path(args.run_dir))
        if args.experiment is not None and args.experiment != config.experiment:
            raise _UserError(
                f"--resume: {args.run_dir} trained experiment {config.experiment!r}, not "
                f"{args.experiment!r}"
            )
    else:
        # a preset's own settings for another algorithm (algorithm=coma): the last one given
        algorithm = [o.split("=", 1)[1] for o in args.overrides if o.startswith("algorithm=")]
        experiment = get_experiment(args.experiment)
        config = experiment.config_for(algorithm[-1]) if algorithm else experiment.config
    config = apply_overrides(config, args.overrides)
    run_dir = args.run_dir
    if run_dir is None and not config.run.name:
        # a fresh directory per invocation, so that running the same command twice never
        # collides with (or overwrites) an earlier run
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(config.run.out_dir) / f"{config.run_name}-{stamp}"
    trainer = Trainer(config, run_dir=run_dir, resume=args.resume)
    print(
        f"training {config.experiment} ({config.variant}, {config.algorithm}, seed "
        f"{config.seed}) for {config.collector.total_frames} frames -> {trainer.run_dir}"
    )
    result = trainer.train()
    if result.interrupted:
        print(
            f"interrupted after iteration {result.iterations}; checkpoint saved. Resume with:\n"
            f"  mtmarl train --resume --run-dir {result.run_dir}",
            file=sys.stderr,
        )
        return 130
    _print_eval(result.evaluation, result.run_dir, plot=result.run_dir / "learning_curve.png")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from mtmarl.training import Trainer
    from mtmarl.training.run_dir import atomic_write_text

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise _UserError(f"{run_dir} is not a run directory (no config.yaml)")
    config = _run_config(run_dir)
    trainer = Trainer(config, run_dir=run_dir, resume=True)
    result = trainer.evaluate(args.episodes)
    _print_eval(result, run_dir)  # first: a read-only run directory still shows the result
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else run_dir / f"eval-{result.episodes}-{stamp}.json"
    try:
        atomic_write_text(out, json.dumps(result.as_dict(), indent=2))
    except OSError as err:
        raise _UserError(f"could not write {out}: {err}") from None
    print(f"written to {out}")
    return 0


class _UserError(Exception):
    """A user's mistake the command line reports in one line."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


_UNKNOWN_HINT = (
    "an experiment of your own: --import MODULE (a module or .py file that calls "
    "register_experiment), or an installed package's 'mtmarl.experiments' entry point"
)


# --help is read in a terminal: plain text here (the module docstring is reStructuredText for the
# API docs), laid out as written (RawDescriptionHelpFormatter)
_DESCRIPTION = """\
Train and evaluate multi-timescale multi-agent RL agents on the experiment presets
(Move Box, building energy management, community energy trading).

Overrides use dotted keys and YAML values, e.g. variant=onehot seed=3 optim.lr=1e-3
model.num_cells=[128,128]; a misspelled key or an out-of-range value fails before any work.
Run `mtmarl COMMAND --help` for a command's options."""

_EPILOG = """\
examples:
  mtmarl list
  mtmarl train movebox-easy seed=1
  mtmarl train movebox-easy algorithm=coma --run-dir runs/coma
  mtmarl train --resume --run-dir runs/coma
  mtmarl evaluate runs/coma --episodes 200"""

_LIST_DESCRIPTION = """\
List the experiment presets (with their env.* settings), the algorithms, the policy
variants, the critics and the encoders that the overrides of `mtmarl train` can name."""

_TRAIN_DESCRIPTION = """\
Train on an experiment preset, then evaluate the final policy. The run directory gets the
resolved config.yaml, CSV metrics, checkpoints and eval.json. Ctrl-C saves a checkpoint
and stops; --resume continues from it."""

_EVALUATE_DESCRIPTION = """\
Evaluate a run's last checkpoint (deterministic policy) and write the result as JSON: the
mean return with its 95% confidence interval, and the success rate where the experiment
has one."""

_IMPORT_EPILOG = """\
Presets of your own: --import MODULE imports a module (or a .py file) that calls
mtmarl.training.register_experiment before the command looks the experiment up; an
installed package can declare its presets under the entry-point group
'mtmarl.experiments' instead."""

_TRAIN_EPILOG = """\
examples:
  mtmarl train movebox-easy                        phasic MAPPO on Move Box (easy)
  mtmarl train movebox-easy seed=1 variant=onehot  with overrides
  mtmarl train movebox-easy algorithm=coma --run-dir runs/coma
  mtmarl train --resume --run-dir runs/coma        continue an interrupted run

"""

_EVALUATE_EPILOG = """\
examples:
  mtmarl evaluate runs/coma                  the run's own eval.episodes
  mtmarl evaluate runs/coma --episodes 200   writes runs/coma/eval-200-TIME.json

"""


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="mtmarl",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=raw,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # every command takes --import, after its own arguments as its other options
    imports = argparse.ArgumentParser(add_help=False)
    imports.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE (dotted name or .py file) first, for the experiments it registers; "
        "repeatable",
    )

    p_list = sub.add_parser(
        "list",
        parents=[imports],
        help="list the experiments, algorithms, variants, critics and encoders",
        description=_LIST_DESCRIPTION,
        epilog=_IMPORT_EPILOG,
        formatter_class=raw,
    )
    p_list.set_defaults(func=_cmd_list)

    p_train = sub.add_parser(
        "train",
        parents=[imports],
        help="train on an experiment preset",
        description=_TRAIN_DESCRIPTION,
        epilog=_TRAIN_EPILOG + _IMPORT_EPILOG,
        formatter_class=raw,
    )
    p_train.add_argument(
        "experiment", nargs="?", metavar="EXPERIMENT", help="preset name (see `mtmarl list`)"
    )
    p_train.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, dotted keys and YAML values (seed=3, optim.lr=1e-3, "
        "algorithm=coma)",
    )
    p_train.add_argument(
        "--run-dir",
        default=None,
        metavar="DIR",
        help="run directory (default: run.out_dir/EXPERIMENT-VARIANT-ALGORITHM-seedN-TIMESTAMP)",
    )
    p_train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in --run-dir, with the run's own config",
    )
    p_train.set_defaults(func=_cmd_train)

    p_eval = sub.add_parser(
        "evaluate",
        parents=[imports],
        help="evaluate a run's last checkpoint",
        description=_EVALUATE_DESCRIPTION,
        epilog=_EVALUATE_EPILOG + _IMPORT_EPILOG,
        formatter_class=raw,
    )
    p_eval.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by mtmarl train")
    p_eval.add_argument(
        "--episodes",
        type=_positive_int,
        default=None,
        metavar="N",
        help="number of episodes (default: the run's eval.episodes)",
    )
    p_eval.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="where to write the result (default: RUN_DIR/eval-N-TIME.json)",
    )
    p_eval.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mtmarl`` console script; returns the exit code."""
    from mtmarl.training import (
        CheckpointError,
        ConfigError,
        NonFiniteError,
        RunDirLockedError,
        import_experiments,
    )

    parser = build_parser()
    # overrides may come after options (`train X --run-dir D seed=1`): collect the leftovers
    args, extra = parser.parse_known_args(argv)
    if args.command != "train" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "train":
        unknown = [item for item in extra if "=" not in item]
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.overrides = list(args.overrides) + extra
        # `mtmarl train movebox-easy seed=1`: argparse puts key=value into `experiment` when the
        # preset is omitted; keep the two apart.
        if args.experiment is not None and "=" in args.experiment:
            args.overrides.insert(0, args.experiment)
            args.experiment = None
        if args.experiment is None and not (args.resume and args.run_dir):
            parser.error("train needs an EXPERIMENT (or --resume --run-dir DIR)")
        if args.resume and not args.run_dir:
            parser.error("--resume needs --run-dir DIR (the run to continue)")
    try:
        for module in args.imports:
            import_experiments(module)
        return args.func(args)
    except (
        ConfigError,
        CheckpointError,
        RunDirLockedError,
        NonFiniteError,
        _UserError,
        KeyError,
        ImportError,
    ) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        if isinstance(err, KeyError) and str(message).startswith("unknown experiment"):
            message += f"\n  ({_UNKNOWN_HINT})"
        print(f"mtmarl: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
