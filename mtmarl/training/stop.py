"""SIGINT / SIGTERM as a request to stop between iterations (the run checkpoints first)."""

from __future__ import annotations

import signal
from typing import Any

__all__ = ["StopRequest"]


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between iterations; a second signal raises
    ``KeyboardInterrupt``. Outside the main thread it installs nothing.

    Examples:
        >>> with StopRequest() as stop:
        ...     stop.requested
        False
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:  # noqa: ARG002
        if self.requested:  # a second signal: give up waiting
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not in the main thread: no handler, no interruption
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
