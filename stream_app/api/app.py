"""The Profile API: customers, segments, flows, models and the stream, over HTTP.

Stateless: it reads Redis (and the segment-changes topic for the live feed), so any number
of replicas can run. Customer data is personal data: see README, "rfm serve".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from sse_starlette import EventSourceResponse, ServerSentEvent

from stream_app.api.auth import RequireKey
from stream_app.api.changes import ChangeFeed
from stream_app.api.models import (
    CustomerHistory,
    CustomerProfile,
    DailySegments,
    Flows,
    Health,
    Models,
    ModelVersion,
    PartitionLag,
    Problem,
    SegmentMembers,
    Segments,
    StreamInfo,
)
from stream_app.api.problems import PROBLEM_TYPE, ApiProblem, install_problem_handlers
from stream_app.api.reads import ProfileReader, ProfileStore
from stream_app.kafka.status import stream_status
from stream_app.settings import Clock, Settings
from stream_app.store.redis_store import RedisStore
from stream_app.store.registry import ModelRegistry

__all__ = ["MAX_CONCURRENT", "PING_S", "create_app"]

#: Requests reading Redis at once per process; the others wait their turn.
MAX_CONCURRENT = 64

#: Seconds between the comment pings of the change feed.
PING_S = 15.0

#: Seconds ``/v1/stream`` reuses what it read (it asks the broker too).
_STREAM_TTL_S = 2.0

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_TYPE: {}}} for status in (401, 404, 422, 503)
}


def _static_dir() -> Path:
    return Path(str(files("stream_app.api").joinpath("static")))


def _plotly_js() -> Path:
    return Path(str(files("plotly").joinpath("package_data", "plotly.min.js")))


class _Stream:
    """``/v1/stream``: the status, and the events-applied rate from samples of the counter."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._samples: list[tuple[float, int]] = []
        self._cached: tuple[float, StreamInfo] | None = None
        self._lock = asyncio.Lock()

    async def info(self) -> StreamInfo:
        async with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < _STREAM_TTL_S:
                return self._cached[1]
            status = await stream_status(self.settings, broker_optional=True)
            applied = status.counters.get("applied", 0)
            now = time.monotonic()
            self._samples = [s for s in self._samples if now - s[0] <= 60.0]
            self._samples.append((now, applied))
            first = self._samples[0]
            rate = (applied - first[1]) / (now - first[0]) if now - first[0] >= 1.0 else None
            broken = status.broker_problem is not None
            info = StreamInfo(
                clock=None if status.clock is None else datetime.fromtimestamp(status.clock, UTC),
                events_applied=applied,
                events_per_s=None if rate is None else round(max(rate, 0.0), 3),
                lag=None if broken else sum(part.lag for part in status.lag),
                partitions=[
                    PartitionLag(topic=status.orders_topic, partition=p.partition, lag=p.lag)
                    for p in status.lag
                ],
                dead_letters=None if broken else status.dead_letters,
                workers=status.workers,
            )
            self._cached = (now, info)
            return info


def create_app(settings: Settings, *, store: ProfileStore | None = None) -> FastAPI:
    """The Profile API of the deployment ``settings`` describe.

    Parameters
    ----------
    settings
        Redis, the broker, the model directory and the API keys (``RFM_API_KEYS``).
    store
        The customer store to read (default: the Redis of the settings, closed with the app).
    """
    redis = RedisStore.from_settings(settings)
    reads_store: ProfileStore = redis if store is None else store
    registry = ModelRegistry(settings.model_dir, redis.client, redis.keys)
    feed = ChangeFeed(settings)
    stream = _Stream(settings)
    limit = asyncio.Semaphore(MAX_CONCURRENT)

    async def now() -> float | None:
        return time.time() if settings.clock is Clock.WALL else await reads_store.clock()

    reader = ProfileReader(reads_store, now, registry.current_version)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await feed.close()
            await redis.close()

    app = FastAPI(
        title="RFM Profile API",
        version="1",
        description="Customers' RFM and segments, segment statistics and flows, live. "
        "Customer data is personal data: keep the API on loopback or behind TLS with keys.",
        lifespan=lifespan,
        responses=_ERRORS,
    )
    install_problem_handlers(app)
    app.add_middleware(RequireKey, keys=settings.api_key_set)
    app.state.reader = reader
    app.state.feed = feed

    @app.get("/health", response_model=Health, tags=["service"])
    async def health() -> Health:
        """The server answers (needs no key)."""
        return Health()

    @app.get("/v1/customers/{customer_id}", response_model=CustomerProfile, tags=["customers"])
    async def customer(
        customer_id: str,
        as_of: Annotated[str | None, Query(description="ISO date or datetime")] = None,
    ) -> CustomerProfile:
        """One customer's RFM at the stream clock and segment (or the segment held ``as_of``)."""
        async with limit:
            return await reader.customer(customer_id, as_of)

    @app.get(
        "/v1/customers/{customer_id}/history", response_model=CustomerHistory, tags=["customers"]
    )
    async def history(
        customer_id: str, limit_: Annotated[int, Query(alias="limit", ge=1, le=50)] = 50
    ) -> CustomerHistory:
        """The customer's recent segment changes, newest first."""
        async with limit:
            return await reader.history(customer_id, limit_)

    @app.get("/v1/segments", response_model=Segments, tags=["segments"])
    async def segments() -> Segments:
        """Every segment: size, shares and RFM means and medians (reused for a few seconds)."""
        async with limit:
            return await reader.segments()

    @app.get("/v1/segments/daily", response_model=DailySegments, tags=["segments"])
    async def daily(since: str | None = None, until: str | None = None) -> DailySegments:
        """Segment sizes at the end of each stream-clock day with changes."""
        async with limit:
            return await reader.daily(since, until)

    async def csv(segment: str) -> StreamingResponse:
        async with limit:
            lines = await reader.csv_lines(segment)
        return StreamingResponse(
            lines,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{segment}.csv"'},
        )

    @app.get(
        "/v1/segments/{segment}/customers.csv",
        tags=["segments"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def members_csv(segment: str) -> StreamingResponse:
        """The whole segment as CSV."""
        return await csv(segment)

    @app.get(
        "/v1/segments/{segment}/customers",
        response_model=SegmentMembers,
        tags=["segments"],
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def members(
        segment: str,
        cursor: str | None = None,
        limit_: Annotated[int, Query(alias="limit", ge=1, le=1000)] = 100,
        accept: Annotated[str, Header()] = "",
    ) -> Any:
        """One page of the segment's customers in id order (``Accept: text/csv``: all)."""
        if "text/csv" in accept:
            return await csv(segment)
        async with limit:
            return await reader.members(segment, cursor, limit_)

    @app.get("/v1/flows", response_model=Flows, tags=["segments"])
    async def flows(since: str | None = None, until: str | None = None) -> Flows:
        """Customers moved between segments over the days from ``since`` to ``until``."""
        async with limit:
            return await reader.flows(since, until)

    @app.get("/v1/models", response_model=Models, tags=["models"])
    async def models() -> Models:
        """Every stored model version and the one served."""
        async with limit:
            current = await registry.current_version()
            rows = await registry.versions()
        return Models(
            current=current,
            versions=[
                ModelVersion(
                    version=row["version"],
                    created_at=row.get("trained_at"),
                    current=bool(row["current"]),
                )
                for row in rows
            ],
        )

    @app.get("/v1/models/{version}", tags=["models"])
    async def model_card(version: str) -> dict[str, Any]:
        """The model card of one version."""
        if version not in {row["version"] for row in await registry.versions()}:
            raise ApiProblem(404, f"no model version {version!r}")
        return await registry.card(version)

    @app.get("/v1/stream", response_model=StreamInfo, tags=["service"])
    async def stream_info() -> StreamInfo:
        """Clock, events applied and their rate, lag, dead letters and workers."""
        async with limit:
            return await stream.info()

    @app.get(
        "/v1/changes/stream",
        tags=["service"],
        response_class=EventSourceResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def changes(request: Request) -> EventSourceResponse:
        """Each segment change published from now on, as an SSE event ``change``."""
        subscription = feed.subscribe()
        queue = await subscription.__aenter__()

        async def events() -> AsyncIterator[ServerSentEvent]:
            try:
                while True:
                    yield ServerSentEvent(data=await queue.get(), event="change")
            finally:
                await subscription.__aexit__(None, None, None)

        return EventSourceResponse(events(), ping=int(PING_S))

    static = _static_dir()

    @app.get("/static/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> FileResponse:
        return FileResponse(_plotly_js(), media_type="text/javascript")

    if static.is_dir():
        app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        index = static / "index.html"
        if not index.is_file():
            raise ApiProblem(404, "the live page is not installed")
        return FileResponse(index, media_type="text/html")

    return app
