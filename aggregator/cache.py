"""Parsed run summaries by (object name, generation): each immutable summary is downloaded once per process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aggregator.country import parse_summary
from mmm_backfill import metrics
from mmm_backfill.storage import Storage

#: Entries kept before the least recently used is dropped; a parsed summary is a few kB,
#: so this bounds the cache at a few hundred MB while covering every run of a large bucket.
MAX_ENTRIES = 100_000
#: Parallel downloads when a rebuild meets many new summaries (the first rebuild of a country);
#: below the HTTP client's pool of 10 connections, so none is opened and thrown away.
FETCH_THREADS = 8

Key = tuple[str, int]


class SummaryCache:
    """LRU map from ``(name, generation)`` to the parsed summary (or its Unreadable verdict).

    A generation names one immutable version of an object, so an entry never goes stale.
    Safe to share between threads; ``downloads`` counts the objects actually read.
    """

    def __init__(
        self, storage: Storage, max_entries: int = MAX_ENTRIES, parse: Callable[[bytes], Any] = parse_summary
    ) -> None:
        self.storage = storage
        self.max_entries = max_entries
        self.parse = parse
        self.downloads = 0
        self._entries: OrderedDict[Key, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, key: Key) -> tuple[bool, Any]:
        """``(True, value)`` on a hit (marking it recently used), else ``(False, None)``."""
        with self._lock:
            if key not in self._entries:
                return False, None
            self._entries.move_to_end(key)
            return True, self._entries[key]

    def _store(self, key: Key, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def get(self, name: str, generation: int) -> Any | None:
        """The parsed summary; None when that version no longer exists (not cached: it may be a race)."""
        hit, value = self.cached((name, generation))
        if hit:
            return value
        found = self.storage.read(name, generation)
        with self._lock:
            self.downloads += 1
        metrics.SUMMARIES_FETCHED.inc()
        if found is None:
            return None
        value = self.parse(found[0])
        self._store((name, generation), value)
        return value

    def get_many(self, keys: Iterable[Key], threads: int = FETCH_THREADS) -> dict[Key, Any]:
        """``get`` for many keys, downloading the misses in parallel; vanished objects are left out."""
        found: dict[Key, Any] = {}
        misses: list[Key] = []
        for key in keys:
            hit, value = self.cached(key)
            if hit:
                found[key] = value
            else:
                misses.append(key)
        if len(misses) > 1:
            with ThreadPoolExecutor(max_workers=min(threads, len(misses)), thread_name_prefix="fetch") as pool:
                found.update(zip(misses, pool.map(lambda key: self.get(*key), misses), strict=True))
        elif misses:
            found[misses[0]] = self.get(*misses[0])
        return {key: value for key, value in found.items() if value is not None}
