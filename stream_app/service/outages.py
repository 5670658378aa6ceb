"""Wait out outages of Redis and Kafka: call again, with back-off, until the call goes through.

The batch path retries each store call itself (:class:`~stream_app.service.processor.
BatchProcessor`) and the publishers retry each publish
(:class:`~stream_app.kafka.publisher.RetryingPublisher`). The worker's other work (the start-up
task and the timers) goes through :func:`outlast`, so that an outage pauses it, with the same
back-off, instead of stopping the worker. Only the errors that say the system is away
(:data:`OUTAGE_ERRORS`) are waited out; anything else (a refusal, a bug) propagates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from stream_app.exceptions import BrokerUnavailableError, StoreUnavailableError

__all__ = ["FIRST_DELAY_S", "MAX_DELAY_S", "OUTAGE_ERRORS", "outlast"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The errors that may pass by themselves: Redis or the broker is away, stalled or loading.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (StoreUnavailableError, BrokerUnavailableError)

#: First pause after a failed attempt; it doubles up to :data:`MAX_DELAY_S` (as in the batch
#: path and the publishers).
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0


async def outlast(
    call: Callable[..., Awaitable[T]],
    *args: Any,
    what: str,
    first_delay_s: float = FIRST_DELAY_S,
    on_outage: Callable[[Exception], None] | None = None,
) -> T:
    """Await ``call(*args)`` until it returns, retrying after each outage error.

    The whole call is made again, so it must be safe to repeat from its start (each use
    says why it is).

    Parameters
    ----------
    call, args
        The coroutine function and its positional arguments.
    what
        What the call does, for the log (``"the decay step"``).
    first_delay_s
        First pause; it doubles up to :data:`MAX_DELAY_S`.
    on_outage
        Called with each outage error before the pause (the worker counts them).

    Returns
    -------
    T
        What ``call`` returned once it went through.

    Examples
    --------
    >>> attempts = []
    >>> async def flaky() -> str:
    ...     attempts.append(1)
    ...     if len(attempts) < 3:
    ...         raise StoreUnavailableError("Redis is restarting")
    ...     return "done"
    >>> asyncio.run(outlast(flaky, what="a demo", first_delay_s=0.001)), len(attempts)
    ('done', 3)
    """
    delay = first_delay_s
    while True:
        try:
            return await call(*args)
        except OUTAGE_ERRORS as exc:
            if on_outage is not None:
                on_outage(exc)
            log.error("%s paused, retrying in %.1fs: %s", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
