"""Work on batches in the background, in order, while the consumer reads the next one.

The worker hands each decoded batch to an :class:`InOrder` and goes straight back to the
broker, so reading and validating batch N+1 overlaps with batch N waiting on Redis and Kafka.
Acknowledgement stays exact: a batch's ``done`` callback (which acknowledges its messages, so
their offsets may be committed) runs only after its work returned, and batches finish in the
order they came. A crash loses nothing: whatever was not done is delivered again, and applying
an event is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["InOrder"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class InOrder(Generic[T]):
    """Run ``work`` on each submitted batch, one at a time, in submission order.

    Parameters
    ----------
    work
        The coroutine function that processes one batch.
    depth
        How many batches may wait behind the one being worked on; :meth:`submit` waits
        while that many are waiting (back-pressure on the consumer).
    on_error
        Awaited with the exception when ``work`` raises (the worker stops itself).

    If ``work`` raises, that batch's ``done`` never runs and neither does any later one's
    (their messages stay unacknowledged and are delivered again after a restart); the error
    is raised by the next :meth:`submit` or :meth:`join`.

    Examples
    --------
    >>> async def demo() -> list[str]:
    ...     seen: list[str] = []
    ...     async def work(batch: str) -> None:
    ...         await asyncio.sleep(0)
    ...         seen.append(batch)
    ...     batches = InOrder(work)
    ...     for name in "abc":
    ...         await batches.submit(name, lambda name=name: seen.append(name.upper()))
    ...     await batches.join()
    ...     return seen
    >>> asyncio.run(demo())
    ['a', 'A', 'b', 'B', 'c', 'C']
    """

    def __init__(
        self,
        work: Callable[[T], Awaitable[Any]],
        depth: int = 1,
        on_error: Callable[[BaseException], Awaitable[Any]] | None = None,
    ) -> None:
        self._work = work
        self._on_error = on_error
        self._queue: asyncio.Queue[tuple[T, Callable[[], None]]] = asyncio.Queue(depth)
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def submit(self, batch: T, done: Callable[[], None]) -> None:
        """Queue ``batch``; ``done()`` runs once its work has returned."""
        self._raise_if_failed()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="in-order-batches")
        await self._queue.put((batch, done))

    async def join(self) -> None:
        """Wait until every submitted batch is worked on (or dropped after a failure)."""
        await self._queue.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError("an earlier batch failed; nothing after it was acknowledged") from (
                self._error
            )

    async def _run(self) -> None:
        while True:
            batch, done = await self._queue.get()
            try:
                if self._error is None:
                    await self._work(batch)
                    done()
            except Exception as exc:
                log.exception("processing a batch failed; it and later ones stay unacknowledged")
                self._error = exc
                if self._on_error is not None:
                    await self._on_error(exc)
            finally:
                self._queue.task_done()
