"""One thread-pool prefetcher, for every loop that wants batches built ahead, in order.

Used by :func:`medzoo.data.iterate` (custom training loops) and by the trainer's batch stream.
The work it runs (reading, resampling, augmenting with numpy and SimpleITK) releases the GIL, so
threads build batches in parallel without copying arrays between processes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["prefetched"]

T = TypeVar("T")


def prefetched(
    function: Callable[..., T],
    arguments: Iterable[tuple],
    *,
    workers: int,
    ahead: int,
    name: str = "medzoo",
) -> Iterator[T]:
    """``function(*args)`` for each ``args`` of ``arguments``, yielded in order.

    Args:
        function: the work for one item (e.g. ``dataset.batch``).
        arguments: one tuple of positional arguments per item; read lazily, as items are
            submitted.
        workers: threads computing items in parallel (at least 1).
        ahead: items submitted before the first is yielded, and kept in flight after (at
            least 1); bounds the memory of results waiting to be consumed.
        name: thread name prefix (shows in profilers and ``py-spy``).
    """
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix=name) as pool:
        pending: deque[Future[T]] = deque()
        for args in arguments:
            pending.append(pool.submit(function, *args))
            if len(pending) >= max(1, ahead):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
