"""The in-memory LRU cache of preprocessed subjects the datasets share, within a byte budget.

A subject evicted from it is simply read again when needed; threads share one cache.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medzoo.data.subjects import SubjectData

__all__ = ["CacheInfo"]

logger = logging.getLogger("medzoo.data")


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheInfo:
    """Cache statistics: hits and misses (reads) since creation, evictions, current content."""

    hits: int
    misses: int
    evictions: int
    items: int
    bytes: int
    budget: int


class _Cache:
    """Thread-safe LRU cache of prepared subjects, bounded in bytes.

    A subject being loaded by one thread is waited for, not loaded twice. An entry larger than
    the whole budget is used but not kept.
    """

    def __init__(self, budget: int, load: Callable[[int], Any]) -> None:
        self.budget = budget
        self._load = load
        self._items: OrderedDict[int, Any] = OrderedDict()
        self._loading: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._bytes = self._hits = self._misses = self._evictions = 0
        self._warned_size = False

    def get(self, key: int) -> Any:
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    self._hits += 1
                    return self._items[key]
                event = self._loading.get(key)
                if event is None:
                    event = self._loading[key] = threading.Event()
                    break
            event.wait()  # another thread is loading it; then look again
        try:
            value = self._load(key)
            self._store(key, value)
        finally:
            with self._lock:
                del self._loading[key]
            event.set()
        return value

    def _store(self, key: int, value: Any) -> None:
        size = value.nbytes
        with self._lock:
            self._misses += 1
            if size > self.budget:
                if not self._warned_size and self.budget > 0:
                    self._warned_size = True
                    logger.warning(
                        "a subject needs %.1f MB, more than the whole cache budget of %.1f MB; "
                        "it is read again every time it is used (raise cache_bytes)",
                        size / 1e6,
                        self.budget / 1e6,
                    )
                return
            while self._bytes + size > self.budget:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
                self._evictions += 1
            self._items[key] = value
            self._bytes += size

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(
                self._hits,
                self._misses,
                self._evictions,
                len(self._items),
                self._bytes,
                self.budget,
            )


@dataclass(frozen=True)
class _Entry:
    """A prepared subject: data ready for sampling, plus what sampling needs precomputed."""

    data: SubjectData
    locations: Mapping[int, np.ndarray] | None = None

    @property
    def nbytes(self) -> int:
        extra = sum(v.nbytes for v in self.locations.values()) if self.locations else 0
        return self.data.nbytes + extra
