"""Coalescing of completion events per country: many events, one rebuild. Pure: no threads, no timers.

A country's window opens with its first pending event and closes ``window`` seconds later, however
many events keep arriving (a steady stream cannot postpone a rebuild forever). The events of a
batch are its items: the caller acks them once the rebuild they wait for is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Batch(Generic[T]):
    """Pending items of one country, gathered since ``opened_at`` (clock seconds)."""

    country: str
    opened_at: float
    items: list[T] = field(default_factory=list)


class Coalescer(Generic[T]):
    """Gathers items per country and hands out a country's batch once its window has passed.

    window: seconds a batch stays open after its first item.
    clock: monotonic seconds; injected so tests control time.
    """

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = max(0.0, window)
        self.clock = clock
        self._batches: dict[str, Batch[T]] = {}

    def __len__(self) -> int:
        """Pending items over all countries."""
        return sum(len(batch.items) for batch in self._batches.values())

    def add(self, country: str, item: T) -> None:
        batch = self._batches.get(country)
        if batch is None:
            batch = self._batches[country] = Batch(country, self.clock())
        batch.items.append(item)

    def _oldest(self) -> Batch[T] | None:
        return min(self._batches.values(), key=lambda b: b.opened_at, default=None)

    def wait_seconds(self) -> float | None:
        """Seconds until the next batch is due (0 when one is), None when nothing is pending."""
        oldest = self._oldest()
        if oldest is None:
            return None
        return max(0.0, oldest.opened_at + self.window - self.clock())

    def pop_due(self) -> Batch[T] | None:
        """The oldest batch whose window has passed, removed; None when none has."""
        oldest = self._oldest()
        if oldest is None or self.clock() < oldest.opened_at + self.window:
            return None
        return self._batches.pop(oldest.country)

    def pop_any(self) -> Batch[T] | None:
        """The oldest batch, window or not (for a stopping service that finishes what it holds)."""
        oldest = self._oldest()
        return None if oldest is None else self._batches.pop(oldest.country)
