"""Bounded admission of rank work: a worker pool and a queue of fixed size.

Ranking is blocking and CPU-bound, so it runs on a thread pool, never on the
event loop. At most `worker_threads` requests run and `max_queue_size` wait;
one more is refused at once with `OverloadedError` (HTTP 503), so that a
burst cannot grow an unbounded queue and the latency of everything in it.
"""

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from recship.errors import ConfigError, OverloadedError

T = TypeVar("T")


class AdmissionGate:
    """Runs blocking work on a bounded pool, refusing work beyond its bound.

    A slot is taken on admission and given back when the work itself ends in
    its thread, not when the awaiting request goes away, so the count stays
    true even when a client disconnects mid-request.

    Args:
        worker_threads: threads that run work at once.
        max_queue_size: admitted work that may wait for a thread.
    """

    def __init__(self, worker_threads: int, max_queue_size: int) -> None:
        if worker_threads < 1 or max_queue_size < 0:
            raise ConfigError(
                f"worker_threads={worker_threads}, max_queue_size={max_queue_size}: "
                "need worker_threads >= 1 and max_queue_size >= 0"
            )
        self.worker_threads = worker_threads
        self.max_queue_size = max_queue_size
        self.capacity = worker_threads + max_queue_size
        self._in_flight = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=worker_threads, thread_name_prefix="recship-rank"
        )

    @property
    def in_flight(self) -> int:
        """Admitted work not yet finished: running plus waiting."""
        return self._in_flight

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """Runs `work(*args)` on the pool and waits for its result.

        Args:
            work: a blocking function.
            *args: its arguments.

        Returns:
            What `work` returned.

        Raises:
            OverloadedError: the pool and its queue are full.
        """
        self._admit()
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(
                self._executor, self._run_and_leave, work, args
            )
        except BaseException:
            self._leave()
            raise
        return await future

    def run_blocking(self, work: Callable[..., T], *args: object) -> T:
        """`run` for a thread outside the event loop (the warm-up): admits
        `work(*args)`, runs it on the pool and waits for its result.

        Raises:
            OverloadedError: the pool and its queue are full.
        """
        self._admit()
        try:
            future = self._executor.submit(self._run_and_leave, work, args)
        except BaseException:
            self._leave()
            raise
        return future.result()

    def shutdown(self) -> None:
        """Drops waiting work and lets the threads end after their current
        work; returns at once, so a stuck ranker cannot hang the event loop."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _admit(self) -> None:
        """Takes a slot, or refuses when none is free."""
        with self._lock:
            if self._in_flight >= self.capacity:
                raise OverloadedError(
                    f"server is at capacity ({self.worker_threads} running, "
                    f"{self.max_queue_size} queued); retry after a short delay"
                )
            self._in_flight += 1

    def _leave(self) -> None:
        """Gives a slot back."""
        with self._lock:
            self._in_flight -= 1

    def _run_and_leave(self, work: Callable[..., T], args: tuple[object, ...]) -> T:
        """Runs in a pool thread: the work, then gives its slot back."""
        try:
            return work(*args)
        finally:
            self._leave()
