"""Run summaries' headlines by (object name, generation): each immutable summary is read once per process.

Only what a country file needs is kept (``aggregator/headline.py``), so an entry stays small
whatever the summary held; a summary over the size limit is judged from its listing, never read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aggregator.headline import Unreadable, read_headline
from mmm_backfill import metrics
from mmm_backfill.config import Settings
from mmm_backfill.errors import ObjectTooLarge
from mmm_backfill.storage import ObjectInfo, Storage

#: Entries kept before the least recently used is dropped; a headline is at most about 1 kB,
#: so this bounds the cache near 100 MB while covering every run of a large bucket.
MAX_ENTRIES = 100_000
#: The verdict on a summary over the size limit.
TOO_LARGE = Unreadable("too_large")
#: Parallel downloads when a rebuild meets many new summaries (the first rebuild of a country);
#: below the HTTP client's pool of 10 connections, so none is opened and thrown away.
FETCH_THREADS = 8

Key = tuple[str, int]


class SummaryCache:
    """LRU map from ``(name, generation)`` to the summary's Headline (or its Unreadable verdict).

    A generation names one immutable version of an object, so an entry never goes stale.
    Safe to share between threads; ``downloads`` counts the objects actually read.
    ``max_bytes``: summaries listed larger are ``too_large`` without a download
    (``Settings.max_summary_bytes``).
    """

    def __init__(
        self,
        storage: Storage,
        max_entries: int = MAX_ENTRIES,
        parse: Callable[[bytes], Any] = read_headline,
        max_bytes: int = Settings.max_summary_bytes,
    ) -> None:
        self.storage = storage
        self.max_entries = max_entries
        self.parse = parse
        self.max_bytes = max_bytes
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

    def get(self, obj: ObjectInfo) -> Any | None:
        """The listed summary's headline; None when that version no longer exists (not cached: it may be a race)."""
        key = (obj.name, obj.generation)
        hit, value = self.cached(key)
        if hit:
            return value
        value = TOO_LARGE if obj.size > self.max_bytes else self._read(obj)
        if value is not None:
            self._store(key, value)
        return value

    def _read(self, obj: ObjectInfo) -> Any | None:
        with self._lock:
            self.downloads += 1
        metrics.SUMMARIES_FETCHED.inc()
        try:
            found = self.storage.read_object(obj, self.max_bytes)
        except ObjectTooLarge:  # stored compressed, and larger once decoded
            return TOO_LARGE
        return None if found is None else self.parse(found)

    def get_many(self, objects: Iterable[ObjectInfo], threads: int = FETCH_THREADS) -> dict[Key, Any]:
        """``get`` for many listed summaries, reading the misses in parallel; vanished objects are left out."""
        found: dict[Key, Any] = {}
        misses: list[ObjectInfo] = []
        for obj in objects:
            hit, value = self.cached((obj.name, obj.generation))
            if hit:
                found[obj.name, obj.generation] = value
            else:
                misses.append(obj)
        if len(misses) > 1:
            with ThreadPoolExecutor(max_workers=min(threads, len(misses)), thread_name_prefix="fetch") as pool:
                values = pool.map(self.get, misses)
                found.update(((obj.name, obj.generation), value) for obj, value in zip(misses, values, strict=True))
        elif misses:
            found[misses[0].name, misses[0].generation] = self.get(misses[0])
        return {key: value for key, value in found.items() if value is not None}
