"""SIGTERM and SIGINT as a request to stop, for commands that must finish their batch in hand.

Kubernetes stops a Job's container with SIGTERM, then SIGKILL after the grace period; as PID 1
the default handlers never run. A command therefore notes the signal, finishes or abandons the
batch it holds without losing a message, prints what it did and exits with ``128 + signal``.
The handler only sets a flag: a Pub/Sub pull in progress is never abandoned (an abandoned pull
keeps the messages the server gives it leased until their ack deadline).
"""

from __future__ import annotations

import signal
import threading
from types import TracebackType

#: The signals that ask a command to stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Set by SIGTERM/SIGINT while installed (main thread only), or by ``request`` from code or tests."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def request(self, signum: int | None = None) -> None:
        self.signum = self.signum or signum
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def name(self) -> str:
        """``SIGTERM``/``SIGINT``, or ``stop`` when asked by code."""
        return signal.Signals(self.signum).name if self.signum else "stop"

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (1 when asked by code)."""
        return 128 + self.signum if self.signum else 1

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, lambda number, _frame: self.request(number))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
