"""What the Profile API reads from the store, shaped as its answers.

Every read is a few round trips to Redis at most; the segment statistics need every
segmented customer's state (medians), so they are computed from the member indexes with
batched reads and kept for a few seconds per process.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

import numpy as np

from model_training.model.naming import action_for, label_for
from stream_app.api.models import (
    CustomerHistory,
    CustomerProfile,
    CustomerRow,
    DailySegments,
    DaySizes,
    Flow,
    Flows,
    MeanMedian,
    SegmentMembers,
    Segments,
    SegmentStats,
)
from stream_app.api.problems import ApiProblem
from stream_app.core.events import SegmentChange
from stream_app.core.history import segment_as_of
from stream_app.core.state import CustomerState
from stream_app.service.ports import CustomerStore, SegmentIndex

__all__ = ["STATS_TTL_S", "ProfileReader", "ProfileStore", "decode_cursor", "encode_cursor"]

#: Seconds the segment statistics are reused before being computed again.
STATS_TTL_S = 5.0

#: Customers read per round trip when a whole segment is read.
PAGE = 5000


class ProfileStore(CustomerStore, SegmentIndex, Protocol):
    """A customer store that also keeps the segment indexes."""


def encode_cursor(customer_id: str) -> str:
    """The opaque cursor of a page that ends with ``customer_id``."""
    return base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The customer id a cursor names (422 when it is not one of ours)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiProblem(422, f"cursor: not a cursor this API gave: {cursor!r}") from exc


def _time(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def _action(segment: str) -> str | None:
    try:
        return action_for(segment)
    except KeyError:
        return None


def parse_moment(value: str, name: str) -> datetime:
    """A date (its end: the moment before the next day) or a datetime (UTC when naive)."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
            return moment - timedelta(microseconds=1)
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiProblem(422, f"{name}: expected an ISO date or datetime, got {value!r}") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_day(value: str | None, name: str) -> str | None:
    """An ISO date as ``YYYY-MM-DD`` (None stays None; 422 when it is not a date)."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise ApiProblem(422, f"{name}: expected an ISO date (YYYY-MM-DD), got {value!r}") from exc


class ProfileReader:
    """Reads customers and segments for the API.

    Parameters
    ----------
    store
        The customer store with its segment indexes.
    now
        The stream clock (epoch seconds; None before the first event).
    model_version
        The version the workers serve (None: none yet).
    stats_ttl_s
        Seconds the segment statistics are reused.
    """

    def __init__(
        self,
        store: ProfileStore,
        now: Callable[[], Awaitable[float | None]],
        model_version: Callable[[], Awaitable[str | None]],
        stats_ttl_s: float = STATS_TTL_S,
    ) -> None:
        self.store = store
        self._now = now
        self._model_version = model_version
        self.stats_ttl_s = stats_ttl_s
        self._stats: tuple[float, Segments] | None = None
        self._stats_lock = asyncio.Lock()

    async def now(self) -> float | None:
        """The stream clock."""
        return await self._now()

    async def customer(self, customer_id: str, as_of: str | None = None) -> CustomerProfile:
        """One customer's profile (404 when there is no such customer)."""
        moment = None if as_of is None else parse_moment(as_of, "as_of")
        (state,) = await self.store.load([customer_id])
        if state is None:
            raise ApiProblem(404, f"no customer {customer_id!r}")
        now = await self.now()
        segment = state.segment
        if moment is not None:
            history = await self._changes(customer_id)
            segment = segment_as_of(history, moment)
        recency = state.recency_days(now) if state.has_rfm and now is not None else None
        return CustomerProfile(
            customer_id=customer_id,
            segment=segment,
            label=None if segment is None else label_for(segment),
            action=None if segment is None else _action(segment),
            segment_since=_time(state.segment_since) if moment is None else None,
            model_version=state.model_version,
            recency_days=recency,
            frequency=state.frequency,
            monetary=round(state.monetary, 2),
            first_order=_time(state.first_purchase),
            last_order=_time(state.last_purchase),
            country=state.country,
            clock=_time(now),
            as_of=moment,
        )

    async def history(self, customer_id: str, limit: int) -> CustomerHistory:
        """A customer's recent changes, newest first (404 when there is no such customer)."""
        changes = await self._changes(customer_id)
        if not changes and (await self.store.load([customer_id]))[0] is None:
            raise ApiProblem(404, f"no customer {customer_id!r}")
        return CustomerHistory(customer_id=customer_id, changes=changes[:limit])

    async def _changes(self, customer_id: str) -> list[SegmentChange]:
        entries = await self.store.history(customer_id)
        return [SegmentChange.model_validate_json(entry) for entry in entries]

    async def segments(self) -> Segments:
        """Every segment's statistics, reused for :attr:`stats_ttl_s` seconds."""
        async with self._stats_lock:
            cached = self._stats
            if cached is not None and time.monotonic() - cached[0] < self.stats_ttl_s:
                return cached[1]
            stats = await self._compute_segments()
            self._stats = (time.monotonic(), stats)
            return stats

    async def _compute_segments(self) -> Segments:
        counts = await self.store.segment_counts()
        now = await self.now()
        version = await self._model_version()
        columns: dict[str, np.ndarray] = {}
        for segment in counts:
            rows = [row async for page in self._member_states(segment) for row in page]
            columns[segment] = np.array(
                [_rfm(state, now) for state in rows], dtype=np.float64
            ).reshape(-1, 3)
        customers = sum(len(rows) for rows in columns.values())
        revenue = sum(float(rows[:, 2].sum()) for rows in columns.values())
        stats = [
            SegmentStats(
                name=segment,
                label=label_for(segment),
                action=_action(segment),
                customers=len(rows),
                customer_share=len(rows) / customers if customers else 0.0,
                revenue_share=float(rows[:, 2].sum()) / revenue if revenue else 0.0,
                recency_days=_mean_median(rows[:, 0]),
                frequency=_mean_median(rows[:, 1]),
                monetary=_mean_median(rows[:, 2]),
            )
            for segment, rows in columns.items()
            if len(rows)
        ]
        stats.sort(key=lambda item: (-item.revenue_share, item.name))
        return Segments(
            model_version=version,
            clock=_time(now),
            customers=customers,
            segments=stats,
        )

    async def _member_states(
        self, segment: str, page: int = PAGE
    ) -> AsyncIterator[list[CustomerState]]:
        """Every customer in ``segment``, page by page, in id order.

        The next page is read while the caller works on this one.
        """

        async def read(after: str) -> tuple[list[str], list[CustomerState | None]]:
            ids = await self.store.segment_page(segment, after, page)
            return ids, await self.store.load(ids) if ids else []

        upcoming = asyncio.ensure_future(read(""))
        try:
            while True:
                ids, states = await upcoming
                if len(ids) == page:
                    upcoming = asyncio.ensure_future(read(ids[-1]))
                # A customer who moved between the two reads is left out.
                yield [s for s in states if s is not None and s.segment == segment and s.has_rfm]
                if len(ids) < page:
                    return
        finally:
            if not upcoming.done():
                upcoming.cancel()

    async def members(self, segment: str, cursor: str | None, limit: int) -> SegmentMembers:
        """One page of a segment's customers (404 for a segment nobody is in)."""
        await self._known(segment)
        after = "" if cursor is None else decode_cursor(cursor)
        ids = await self.store.segment_page(segment, after, limit + 1)
        more = len(ids) > limit
        ids = ids[:limit]
        now = await self.now()
        states = await self.store.load(ids)
        rows = [
            _row(state, now)
            for state in states
            if state is not None and state.segment == segment and state.has_rfm
        ]
        return SegmentMembers(
            segment=segment,
            customers=rows,
            next_cursor=encode_cursor(ids[-1]) if more and ids else None,
        )

    async def csv_lines(self, segment: str) -> AsyncIterator[str]:
        """The whole segment as CSV lines (the header first)."""
        await self._known(segment)
        now = await self.now()

        async def lines() -> AsyncIterator[str]:
            yield "customer_id,recency_days,frequency,monetary,country,last_order\n"
            async for states in self._member_states(segment):
                yield "".join(_csv_line(state, now) for state in states)

        return lines()

    async def _known(self, segment: str) -> None:
        if segment not in await self.store.segment_counts():
            raise ApiProblem(404, f"no customer is in segment {segment!r}")

    async def daily(self, since: str | None, until: str | None) -> DailySegments:
        """Segment sizes at the end of each day with changes, carried over from the last."""
        low, high = parse_day(since, "since"), parse_day(until, "until")
        sizes: dict[str, int] = {}
        days = []
        for day, changed in (await self.store.daily_sizes(None, high)).items():
            sizes.update(changed)
            if low is None or day >= low:
                days.append(DaySizes(date=day, segments={k: v for k, v in sizes.items() if v}))
        return DailySegments(days=days)

    async def flows(self, since: str | None, until: str | None) -> Flows:
        """The changes between ``since`` and ``until`` (inclusive days), summed per flow."""
        low, high = parse_day(since, "since"), parse_day(until, "until")
        totals: dict[tuple[str, str, str], int] = {}
        for counts in (await self.store.flows(low, high)).values():
            for flow, count in counts.items():
                totals[flow] = totals.get(flow, 0) + count
        flows = [
            Flow(
                from_segment=source or None,
                to_segment=target,
                reason=reason,  # type: ignore[arg-type]
                customers=count,
            )
            for (source, target, reason), count in sorted(totals.items())
            if count
        ]
        return Flows(since=low, until=high, flows=flows)


def _rfm(state: CustomerState, now: float | None) -> tuple[float, float, float]:
    recency = float(state.recency_days(now)) if now is not None else math.nan
    return recency, float(state.frequency), state.monetary


def _mean_median(values: np.ndarray) -> MeanMedian:
    return MeanMedian(mean=round(float(values.mean()), 4), median=float(np.median(values)))


def _row(state: CustomerState, now: float | None) -> CustomerRow:
    return CustomerRow(
        customer_id=state.customer_id,
        recency_days=state.recency_days(now) if now is not None else 0,
        frequency=state.frequency,
        monetary=round(state.monetary, 2),
        country=state.country,
        last_order=_time(state.last_purchase),
    )


def _csv_line(state: CustomerState, now: float | None) -> str:
    last = state.last_purchase
    return (
        f"{_quoted(state.customer_id)},{state.recency_days(now) if now is not None else 0},"
        f"{state.frequency},{round(state.monetary, 2):.2f},{_quoted(state.country)},"
        f"{'' if last is None else datetime.fromtimestamp(last, tz=UTC).isoformat()}\n"
    )


#: Text a CSV field must be quoted for.
_SPECIAL = re.compile(r'[,"\r\n]')


def _quoted(field: str) -> str:
    if _SPECIAL.search(field):
        return '"' + field.replace('"', '""') + '"'
    return field
