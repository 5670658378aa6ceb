"""The worker's HTTP views on faust's web server: ``/metrics``, ``/health`` and ``/ready``.

``/metrics`` reads what needs Redis (stream clock, due customers, customers per segment) and
the consumer's lag once per scrape, then renders the worker's own registry. ``/ready`` PINGs
Redis with a client of its own (short timeout, no retries), so that it answers quickly while
Redis is away and turns ready again by itself once Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import faust
from faust.web import Request, Response, View
from redis.asyncio import Redis

from stream_app.exceptions import StreamError
from stream_app.observability.metrics import CONTENT_TYPE, WorkerMetrics
from stream_app.observability.probes import Readiness, readiness
from stream_app.service.model_source import ModelSource
from stream_app.service.ports import CustomerStore
from stream_app.settings import Clock, Settings
from stream_app.store.client import configured_client, redis_errors

__all__ = ["PING_TIMEOUT_S", "WorkerViews"]

log = logging.getLogger(__name__)

#: Longest wait for Redis's PONG before ``/ready`` says it does not answer.
PING_TIMEOUT_S = 0.5
#: Longest wait for the Redis-backed gauges of one scrape (stale values are kept after).
GAUGES_TIMEOUT_S = 2.0


class WorkerViews:
    """Serve a worker's metrics and probes.

    Parameters
    ----------
    app
        The faust app (its consumer tells the partitions assigned and their high watermarks).
    settings
        The orders topic (whose lag is measured) and the Redis to PING for ``/ready``.
    store
        Read for the stream clock, due customers and segment sizes.
    models
        The model source (served version, and whether the model state is known).
    processed
        Returns the next offset processed per ``topic:partition``.
    started
        Returns whether the worker's start-up is done.
    metrics
        The registry to serve.
    """

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        store: CustomerStore,
        models: ModelSource,
        processed: Callable[[], Mapping[str, int]],
        started: Callable[[], bool],
        metrics: WorkerMetrics,
    ) -> None:
        self.app = app
        self.orders_topic = settings.orders_topic
        self.wall_clock = settings.clock is Clock.WALL
        self.store = store
        self.models = models
        self.processed = processed
        self.started = started
        self.metrics = metrics
        self._ping_client: Redis = configured_client(
            settings,
            retries=0,
            socket_timeout_s=PING_TIMEOUT_S,
            connect_timeout_s=PING_TIMEOUT_S,
        )

    def install(self) -> None:
        """Add the views to the app's web server."""
        views = self

        @self.app.page("/metrics")
        async def metrics(view: View, request: Request) -> Response:
            await views.refresh_gauges()
            # In the headers: aiohttp refuses a content type with a charset as an argument.
            return view.bytes(views.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

        @self.app.page("/health")
        async def health(view: View, request: Request) -> Response:
            return view.json({"alive": True})

        @self.app.page("/ready")
        async def ready(view: View, request: Request) -> Response:
            answer = await views.readiness()
            return view.json(answer.body(), status=answer.status)

    async def close(self) -> None:
        """Close the PING client."""
        await self._ping_client.aclose()

    def _assignment(self) -> set[Any]:
        try:
            return {tp for tp in self.app.consumer.assignment() if tp.topic == self.orders_topic}
        except Exception:  # the consumer is not started yet (or is stopping)
            return set()

    async def readiness(self) -> Readiness:
        """Gather the facts of readiness and decide."""
        return readiness(
            started=self.started(),
            partitions=len(self._assignment()),
            redis_problem=await self._ping(),
            model_known=self.models.known(),
            model_problem=self.models.last_error,
        )

    async def _ping(self) -> str | None:
        """None when Redis answers a PING in time, else why not."""
        try:
            with redis_errors():
                await asyncio.wait_for(self._ping_client.ping(), PING_TIMEOUT_S)
        except (StreamError, TimeoutError) as exc:
            return str(exc) or type(exc).__name__
        return None

    async def refresh_gauges(self) -> None:
        """Set the gauges read at scrape time: lag, model, and the Redis-backed ones."""
        self.metrics.set_lag(await self._lag())
        serving = self.models.current()
        self.metrics.set_model(serving.version if serving else None)
        try:
            await asyncio.wait_for(self._store_gauges(), GAUGES_TIMEOUT_S)
        except (StreamError, TimeoutError) as exc:
            # The last values stay; the errors of the batch path are counted there.
            log.debug("cannot read the store's gauges: %s", exc)

    async def _store_gauges(self) -> None:
        now = time.time()
        # On the wall clock the stream's now is the machine's (the store keeps no clock).
        self.metrics.set_clock(now if self.wall_clock else await self.store.clock(), now)
        self.metrics.set_due(await self.store.due_count())
        self.metrics.set_segments(await self.store.segment_counts())

    async def _lag(self) -> dict[tuple[str, int], int]:
        """Per assigned orders partition: high watermark - the next offset processed here.

        A partition this worker has processed nothing of yet counts from the consumer's
        position (where it reads next).
        """
        assigned = self._assignment()
        if not assigned:
            return {}
        consumer = self.app.consumer
        processed = self.processed()
        lag: dict[Any, int] = {}
        unknown: list[Any] = []
        for tp in assigned:
            highwater = consumer.highwater(tp)
            if highwater is None:
                unknown.append(tp)
                continue
            lag[tp] = highwater
        if unknown:
            try:
                lag.update(await consumer.highwaters(*unknown))
            except Exception as exc:  # the broker is away: those partitions stay out
                log.debug("cannot read the high watermarks: %s", exc)
        result = {}
        for tp, highwater in lag.items():
            position = processed.get(f"{tp.topic}:{tp.partition}")
            if position is None:
                try:
                    position = await consumer.position(tp)
                except Exception:
                    continue
            if position is not None:
                result[(tp.topic, tp.partition)] = int(highwater) - int(position)
        return result
