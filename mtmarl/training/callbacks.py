"""What the training loop calls around its iterations: logging, progress, keeping the best.

A callback is any object with the hooks it needs (all optional):

* ``on_train_start(trainer)``: before the first iteration of this session;
* ``on_iteration_end(trainer, metrics)``: after each iteration's update (and evaluation, when
  one ran: ``metrics`` then holds ``eval/...``);
* ``on_train_end(trainer, result)``: after the final evaluation.

:meth:`~mtmarl.training.Trainer.train` always runs :class:`KeepBest` (with
``eval.keep_best``), :class:`LogMetrics` and :class:`ShowProgress` (with ``run.progress``),
then the callbacks you pass; a plain function ``f(trainer, metrics)`` is an
``on_iteration_end``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from mtmarl.training.trainer import Trainer, TrainResult

__all__ = [
    "Callback",
    "CallbackList",
    "default_callbacks",
    "FunctionCallback",
    "KeepBest",
    "LogMetrics",
    "ShowProgress",
    "make_logger",
    "truncate_csv_metrics",
]


@runtime_checkable
class Callback(Protocol):
    """The hooks of the training loop (implement the ones you need).

    Examples:
        >>> class CountIterations:
        ...     def __init__(self):
        ...         self.n = 0
        ...     def on_iteration_end(self, trainer, metrics):
        ...         self.n += 1
        >>> hasattr(CountIterations(), "on_iteration_end")
        True
    """

    def on_iteration_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """After each iteration."""


class FunctionCallback:
    """``f(trainer, metrics)`` as an ``on_iteration_end`` hook.

    Examples:
        >>> seen = []
        >>> FunctionCallback(lambda t, m: seen.append(m["iteration"])).on_iteration_end(None, {"iteration": 3})
        >>> seen
        [3]
    """

    def __init__(self, fn: Callable[[Trainer, dict[str, Any]], None]) -> None:
        if not callable(fn):
            raise TypeError(f"FunctionCallback expected a callable, got {type(fn).__name__}")
        self.fn = fn

    def on_iteration_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.fn(trainer, metrics)


class KeepBest:
    """Keep the actor of the best evaluation (highest mean return) in ``checkpoints/best.pt``.

    The initial policy is a candidate too (evaluated at the start of a fresh run), so a run
    that only gets worse keeps iteration 0. :meth:`~mtmarl.training.Trainer.load_best` loads it.

    Examples:
        >>> hasattr(KeepBest(), "on_iteration_end")
        True
    """

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.iteration == 0 and trainer.best_return is None:
            trainer.keep_if_best(trainer.evaluate())

    def on_iteration_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if trainer.last_evaluation is not None and "eval/return" in metrics:
            trainer.keep_if_best(trainer.last_evaluation)


class LogMetrics:
    """Write every metric to the run's torchrl logger (CSV or TensorBoard), at step =
    frames.

    Args:
        logger: a torchrl logger (``log_scalar(name, value, step=...)``).

    Examples:
        >>> class Printer:
        ...     def log_scalar(self, name, value, step):
        ...         print(name, value, step)
        >>> LogMetrics(Printer()).on_iteration_end(None, {"iteration": 1, "frames": 80,
        ...                                               "train/return": 2.0})
        train/return 2.0 80
    """

    def __init__(self, logger: Any, *, csv_dir: Path | None = None) -> None:
        self.logger = logger
        self.csv_dir = csv_dir

    def on_train_start(self, trainer: Trainer) -> None:
        """A resumed run: drop the CSV rows logged after its checkpoint (a run killed between
        checkpoints logged iterations that it trains again), so each iteration is there once."""
        if self.csv_dir is not None and self.csv_dir.is_dir():
            truncate_csv_metrics(self.csv_dir, after_step=trainer.frames)

    def on_iteration_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        for key, value in metrics.items():
            if key not in ("iteration", "frames"):
                self.logger.log_scalar(key, value, step=metrics["frames"])


class ShowProgress:
    """A tqdm progress bar: frames, fps, training return and success, and the latest
    deterministic evaluation.

    Keyword Args:
        total (int): iterations of the run.
        initial (int): iterations done (a resumed run).
        desc (str): the bar's label.

    Examples:
        >>> bar = ShowProgress(total=2, initial=0, desc="test", disable=True)
        >>> bar.on_iteration_end(None, {"frames": 10, "time/fps": 5.0, "eval/return": 1.0})
        >>> bar.last_eval
        {'eval/return': 1.0}
    """

    def __init__(self, *, total: int, initial: int, desc: str, disable: bool = False) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit="it",
            dynamic_ncols=True,
            disable=disable,
        )
        self.last_eval: dict[str, Any] = {}

    def on_iteration_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        post = {"frames": metrics["frames"], "fps": f"{metrics['time/fps']:.0f}"}
        if "train/return" in metrics:
            post["return"] = f"{metrics['train/return']:.2f}"
        if "train/success_rate" in metrics:
            post["success"] = f"{100 * metrics['train/success_rate']:.0f}%"
        self.last_eval.update({k: v for k, v in metrics.items() if k.startswith("eval/")})
        if "eval/success_rate" in self.last_eval:
            post["eval success"] = f"{100 * self.last_eval['eval/success_rate']:.0f}%"
        elif "eval/return" in self.last_eval:
            post["eval return"] = f"{self.last_eval['eval/return']:.2f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def on_train_end(self, trainer: Trainer, result: TrainResult | None) -> None:
        self.bar.close()


def truncate_csv_metrics(folder: Path, *, after_step: int) -> int:
    """Drop the rows ``step,value`` with ``step > after_step`` from every CSV under
    ``folder`` (torchrl's ``CSVLogger`` layout), rewriting each file atomically; returns the
    number of rows dropped.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as d:
        ...     f = Path(d) / "train" / "return.csv"
        ...     f.parent.mkdir()
        ...     _ = f.write_text("10,1.0\\n20,2.0\\n30,3.0\\n")
        ...     truncate_csv_metrics(Path(d), after_step=20), f.read_text().splitlines()
        (1, ['10,1.0', '20,2.0'])
    """
    from mtmarl.training.run_dir import atomic_write_text

    dropped = 0
    for path in sorted(folder.rglob("*.csv")):
        lines = path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if _step_of(line) <= after_step]
        if len(kept) != len(lines):
            dropped += len(lines) - len(kept)
            atomic_write_text(path, "".join(kept))
    return dropped


def _step_of(line: str) -> float:
    try:
        return float(line.split(",", 1)[0])
    except ValueError:  # a header or a torn line: keep headers, drop nothing else by mistake
        return float("-inf")


def make_logger(kind: str, run_dir: Path):
    """The torchrl logger of ``run.logger`` (``"csv"`` or ``"tensorboard"``) in ``run_dir``."""
    if kind == "tensorboard":
        from torchrl.record.loggers import TensorboardLogger

        return TensorboardLogger(exp_name="tensorboard", log_dir=str(run_dir))
    from torchrl.record.loggers import CSVLogger

    return CSVLogger(exp_name="metrics", log_dir=str(run_dir))


_HOOKS = ("on_train_start", "on_iteration_end", "on_train_end")


class CallbackList:
    """Calls each hook on every callback that has it, in order; a plain function becomes a
    :class:`FunctionCallback`.

    Examples:
        >>> seen = []
        >>> hooks = CallbackList([lambda t, m: seen.append(m["iteration"])])
        >>> hooks.on_train_start(None); hooks.on_iteration_end(None, {"iteration": 1})
        >>> seen
        [1]
    """

    def __init__(self, callbacks: list[Any]) -> None:
        self.callbacks = [
            FunctionCallback(cb) if callable(cb) and not any(hasattr(cb, h) for h in _HOOKS) else cb
            for cb in callbacks
        ]

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            if hasattr(cb, hook):
                getattr(cb, hook)(*args)

    def on_train_start(self, trainer: Trainer) -> None:
        self._call("on_train_start", trainer)

    def on_iteration_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self._call("on_iteration_end", trainer, metrics)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self._call("on_train_end", trainer, result)


def default_callbacks(trainer: Trainer, extra: list[Any]) -> list[Any]:
    """The run's own hooks -- :class:`KeepBest` (``eval.keep_best``), :class:`LogMetrics`,
    :class:`ShowProgress` (``run.progress``) -- then ``extra``."""
    cfg = trainer.config
    callbacks: list[Any] = [KeepBest()] if cfg.eval.keep_best else []
    csv_dir = trainer.run_dir / "metrics" if cfg.run.logger == "csv" else None
    callbacks.append(LogMetrics(make_logger(cfg.run.logger, trainer.run_dir), csv_dir=csv_dir))
    if cfg.run.progress:
        callbacks.append(
            ShowProgress(
                total=cfg.collector.iterations,
                initial=trainer.iteration,
                desc=f"{cfg.experiment} {cfg.variant}",
            )
        )
    return [*callbacks, *extra]
