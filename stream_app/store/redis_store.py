"""The customer-state store on Redis: Lua scripts, one call per chunk of customers, pipelined."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import redis.asyncio as aioredis

from stream_app.core.columns import StateColumns
from stream_app.core.effects import OrderEffect
from stream_app.core.state import CustomerState, ItemTotals
from stream_app.service.ports import DUE_LEASE_S, AppliedBatch, SegmentUpdate
from stream_app.store.client import configured_client, redis_client
from stream_app.store.keys import Keys
from stream_app.store.round_trip import RoundTrip, Script, call, lua_script

if TYPE_CHECKING:
    from stream_app.settings import Settings

__all__ = ["RedisStore", "change_day", "decode_state"]

T = TypeVar("T")

#: The state fields apply.lua and load_states.lua read back, in this order.
_FIELDS = (
    "frequency",
    "spent",
    "returned_matched",
    "first_purchase",
    "last_purchase",
    "last_order",
    "country",
    "segment",
    "segment_since",
    "model_version",
    "sequence",
    "seg_r",
    "seg_f",
    "seg_m",
    "unannounced",
)


def decode_state(customer_id: str, fields: Mapping[str, str | None]) -> CustomerState:
    """Build a :class:`CustomerState` (without items and event ids) from its Redis hash."""
    return _from_row(customer_id, [fields.get(name) for name in _FIELDS])


#: The state fields :meth:`RedisStore.load_rfm` reads, in this order.
_RFM_FIELDS = ("frequency", "spent", "returned_matched", "last_purchase", "country", "segment")


def _number(value: str | None) -> float | None:
    return float(value) if value else None


def _from_row(customer_id: str, row: Sequence[str | None]) -> CustomerState:
    """Build a state from the values of :data:`_FIELDS`, in that order (the hot path)."""
    (frequency, spent, matched, first, last, order, country, segment, since, version,
     sequence, seg_r, seg_f, seg_m, unannounced) = row  # fmt: skip
    return CustomerState(
        customer_id,
        int(frequency or 0),
        float(spent or 0.0),
        float(matched or 0.0),
        _number(first),
        _number(last),
        order or "",
        country or "",
        segment or None,
        _number(since),
        version or None,
        int(sequence or 0),
        (int(seg_r), int(seg_f or 0), float(seg_m or 0)) if seg_r else None,
        unannounced == "1",
    )


def _apply_row(effect: OrderEffect) -> tuple[Any, ...]:
    """One event as apply.lua reads it. Times and totals as text: Redis stores them exactly
    as Python wrote them; only returns need the per-stock-code values."""
    return (
        effect.event_id,
        1 if effect.is_return else 0,
        repr(effect.occurred_at),
        effect.country,
        repr(effect.total),
        effect.skus,
        effect.units,
        effect.values if effect.is_return else (),
        effect.digest,
    )


def _item_fields(columns: StateColumns) -> tuple[list[Any], list[int]]:
    """The items hashes' fields and values of every customer, one after the other, and where
    each customer's begin (as :meth:`RedisStore.put` writes them: zeros left out)."""
    bought, returned = columns.bought > 0, columns.returned > 0
    width = 2 * bought + 4 * returned
    ends = np.cumsum(width)
    at = ends - width
    flat = np.empty(int(ends[-1]) if len(ends) else 0, dtype=object)
    skus = np.asarray(columns.skus, dtype=object)
    flat[at[bought]] = "b:" + skus[bought]
    flat[at[bought] + 1] = columns.bought[bought].tolist()
    back = at[returned] + 2 * bought[returned]
    flat[back] = "r:" + skus[returned]
    flat[back + 1] = columns.returned[returned].tolist()
    flat[back + 2] = "v:" + skus[returned]
    flat[back + 3] = list(map(repr, columns.returned_value[returned].tolist()))
    starts = np.r_[0, ends][columns.item_starts]
    return flat.tolist(), starts.tolist()


def _record_row(update: SegmentUpdate) -> tuple[Any, ...]:
    """One segment update as record_segment.lua reads it."""
    return (
        update.segment,
        update.previous_segment or "",
        repr(update.since),
        update.model_version,
        update.sequence,
        update.history_entry,
        *(("", "", "") if update.rfm is None else map(repr, update.rfm)),
        update.reason,
        change_day(update.since),
    )


def change_day(since: float) -> str:
    """The stream-clock day (UTC, ``YYYY-MM-DD``) a change recorded at ``since`` counts in.

    >>> change_day(1291161600.0)
    '2010-12-01'
    """
    return datetime.fromtimestamp(since, tz=UTC).date().isoformat()


def _day_range(since: str | None, until: str | None) -> tuple[str, str]:
    """ZRANGEBYLEX bounds of the days from ``since`` to ``until`` (inclusive)."""
    return ("-" if since is None else f"[{since}", "+" if until is None else f"[{until}")


class RedisStore:
    """Customer state in Redis, laid out as docs/design.md describes it.

    Every public method is one round trip (one pipeline, however many chunks it holds).

    Parameters
    ----------
    client
        A ``redis.asyncio.Redis`` created with ``decode_responses=True``.
    keys
        The key builder (its prefix separates deployments sharing one Redis).
    """

    def __init__(
        self, client: aioredis.Redis, keys: Keys, max_history: int = 50, chunk_size: int = 250
    ) -> None:
        # redis-py's annotations do not model decode_responses=True; values are str here.
        self.client: Any = client
        self.keys = keys
        self.max_history = max_history
        self.chunk_size = chunk_size
        self._apply = lua_script(client, "apply.lua")
        self._record = lua_script(client, "record_segment.lua")
        self._clock = lua_script(client, "advance_clock.lua")
        self._set_clock = lua_script(client, "set_clock.lua")
        self._pop_due = lua_script(client, "pop_due.lua")
        self._load = lua_script(client, "load_states.lua")
        self._mark_announced = lua_script(client, "mark_announced.lua")
        self._segment_indexes = lua_script(client, "segment_indexes.lua")
        self._drop_members = lua_script(client, "drop_members.lua")

    @classmethod
    def from_url(cls, url: str, prefix: str = "rfm", *, ca_certs: Path | None = None) -> RedisStore:
        """Connect to the Redis at ``url`` (a ``redis://`` or ``rediss://`` DSN).

        Use it as ``async with RedisStore.from_url(...) as store:`` to close it after use.
        The client comes from :func:`~stream_app.store.client.redis_client` (timeouts, and
        retries after connection errors); ``ca_certs`` checks a ``rediss://`` server.
        """
        return cls(redis_client(url, ca_certs=ca_certs), Keys(prefix))

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore:
        """The store the settings name (``RFM_REDIS_URL``, its CA file and key prefix)."""
        return cls(configured_client(settings), Keys(settings.key_prefix))

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    async def __aenter__(self) -> RedisStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def ping(self) -> None:
        """Check that Redis answers."""
        await call(self.client.ping())

    async def apply(
        self,
        effects: Sequence[OrderEffect],
        clock_time: float | None = None,
        watermarks: Mapping[str, float] | None = None,
        epoch: int | None = None,
        offsets: Sequence[str] = (),
    ) -> AppliedBatch:
        keys = self.keys

        def keys_of(effect: OrderEffect) -> tuple[str, str, str, str]:
            customer = effect.customer_id
            return (
                keys.state(customer),
                keys.orders(customer),
                keys.items(customer),
                keys.digests(customer),
            )

        trip = RoundTrip(self.client)
        # One script call per chunk of events: far fewer commands to pack and parse than one
        # call per event, and each event is still applied once and atomically. Each call reads
        # back its customers' states, and the clock moves in the same round trip.
        chunks = self._queue_chunks(
            trip,
            self._apply,
            effects,
            keys_of,
            lambda chunk: [
                "" if epoch is None else str(epoch),
                json.dumps(list(map(_apply_row, chunk))),
                *_FIELDS,
            ],
            leading_keys=(keys.epoch,),
        )
        if offsets:
            trip.command("HMGET", keys.offsets, *offsets)
        moves_clock = clock_time is not None or bool(watermarks)
        if moves_clock:
            marks = [
                part for item in (watermarks or {}).items() for part in (item[0], repr(item[1]))
            ]
            trip.script(
                self._clock,
                [keys.clock, keys.watermarks],
                ["" if clock_time is None else repr(clock_time), *marks],
            )
        replies = await trip.execute()
        result = AppliedBatch([], [], None)
        states: dict[str, CustomerState | None] = {}
        for chunk, (flags, rows) in zip(chunks, replies, strict=False):
            for flag in flags:
                if isinstance(flag, str):
                    kind, _, detail = flag.partition(":")
                    found = result.conflicts if kind == "conflict" else result.rejected
                    found[len(result.applied)] = detail
                result.applied.append(flag == 1)
            customers = dict.fromkeys(effect.customer_id for effect in chunk)
            for customer, row in zip(customers, rows, strict=True):
                # A later chunk read the customer after more of their events: it wins.
                states[customer] = _from_row(customer, row) if any(row) else None
        result.states.extend(state for state in states.values() if state is not None)
        if offsets:
            stored = replies[len(chunks)]
            result.stored_offsets.update(
                (name, None if value is None else int(value))
                for name, value in zip(offsets, stored, strict=True)
            )
        if moves_clock and replies[-1] is not None:
            result = replace(result, clock=float(replies[-1]))
        return result

    async def record_each(
        self, updates: Sequence[SegmentUpdate], due: Mapping[str, float | None] | None = None
    ) -> list[bool]:
        keys = self.keys
        trip = RoundTrip(self.client)
        chunks = self._queue_chunks(
            trip,
            self._record,
            updates,
            lambda update: (keys.state(update.customer_id), keys.history(update.customer_id)),
            lambda chunk: [
                self.max_history,
                json.dumps(list(map(_record_row, chunk))),
                keys.prefix,
            ],
            leading_keys=(keys.segments, keys.indexed, keys.days),
        )
        if due:
            times = [
                value
                for customer, when in due.items()
                if when is not None
                for value in (repr(when), customer)
            ]
            gone = [customer for customer, when in due.items() if when is None]
            if times:
                trip.command("ZADD", keys.due, *times)
            if gone:
                trip.command("ZREM", keys.due, *gone)
        replies = await trip.execute()
        return [reply == 1 for chunk in replies[: len(chunks)] for reply in chunk]

    async def mark_announced(
        self,
        customer_ids: Sequence[str],
        counts: Mapping[str, int] | None = None,
        offsets: Mapping[str, int] | None = None,
    ) -> None:
        trip = RoundTrip(self.client)
        self._queue_chunks(trip, self._mark_announced, customer_ids, self._state_key)
        self._queue_counters(trip, counts or {})
        if offsets:
            # Last in the round trip: Redis keeps its writes in order (AOF), so a stored
            # offset means everything before it in this and earlier round trips was kept too.
            trip.command(
                "HSET", self.keys.offsets, *(part for pair in offsets.items() for part in pair)
            )
        await trip.execute()

    async def offsets(self) -> dict[str, int]:
        raw: dict[str, str] = await call(self.client.hgetall(self.keys.offsets))
        return {name: int(value) for name, value in raw.items()}

    async def last_changes(self, customer_ids: Sequence[str]) -> list[str | None]:
        trip = RoundTrip(self.client)
        for customer in customer_ids:
            trip.command("LINDEX", self.keys.history(customer), 0)
        replies: list[str | None] = await trip.execute()
        return replies

    async def get(self, customer_id: str) -> CustomerState | None:
        trip = RoundTrip(self.client)
        trip.command("HGETALL", self.keys.state(customer_id))
        trip.command("HGETALL", self.keys.items(customer_id))
        trip.command("SMEMBERS", self.keys.orders(customer_id))
        trip.command("HGETALL", self.keys.digests(customer_id))
        fields, raw_items, orders, applied = await trip.execute()
        if not fields:
            return None
        # Every applied event id is in the digests hash ('' for no digest); stores written
        # before also list them in the orders set.
        digests = {event: digest for event, digest in applied.items() if digest}
        state = decode_state(customer_id, fields)
        items: dict[str, ItemTotals] = {}
        for sku in {name[2:] for name in raw_items}:
            items[sku] = ItemTotals(
                bought=int(raw_items.get(f"b:{sku}", 0)),
                returned=int(raw_items.get(f"r:{sku}", 0)),
                returned_value=float(raw_items.get(f"v:{sku}", 0.0)),
            )
        return replace(state, items=items, orders=frozenset(orders).union(applied), digests=digests)

    async def scan(self, batch_size: int = 1000) -> AsyncIterator[list[CustomerState]]:
        pattern = self.keys.state_pattern()
        cursor = 0
        while True:
            cursor, names = await call(self.client.scan(cursor, match=pattern, count=batch_size))
            if names:
                loaded = await self.load([self.keys.customer_of(name) for name in names])
                yield [state for state in loaded if state is not None]
            if int(cursor) == 0:
                return

    async def scan_from(
        self, cursor: str = "0", batch_size: int = 1000
    ) -> AsyncIterator[tuple[str, list[CustomerState]]]:
        # SCAN's cursor is all the state a scan has: another client can go on from it, and
        # every key there for the whole scan is returned at least once.
        pattern = self.keys.state_pattern()
        position = int(cursor)
        while True:
            position, names = await call(
                self.client.scan(position, match=pattern, count=batch_size)
            )
            loaded = await self.load([self.keys.customer_of(name) for name in names])
            yield str(int(position)), [state for state in loaded if state is not None]
            if int(position) == 0:
                return

    async def put(self, states: Sequence[CustomerState]) -> None:
        """Write whole states (items and event ids included), replacing what is there."""
        trip = RoundTrip(self.client)
        for state in states:
            customer = state.customer_id
            fields: dict[str, str | int] = {
                "frequency": state.frequency,
                "spent": repr(state.spent),
                "returned_matched": repr(state.returned_matched),
                "last_order": state.last_order,
                "country": state.country,
                "sequence": state.sequence,
            }
            for name in ("first_purchase", "last_purchase", "segment_since"):
                value = getattr(state, name)
                if value is not None:
                    fields[name] = repr(value)
            if state.segment is not None:
                fields["segment"] = state.segment
            if state.model_version is not None:
                fields["model_version"] = state.model_version
            if state.segment_rfm is not None:
                fields.update(
                    zip(("seg_r", "seg_f", "seg_m"), map(repr, state.segment_rfm), strict=True)
                )
            if state.unannounced:
                fields["unannounced"] = 1
            if any(totals.returned for totals in state.items.values()):
                fields["has_returns"] = 1  # apply.lua matches returns only for such customers
            keys = [self.keys.state(customer), self.keys.items(customer)]
            digests = self.keys.digests(customer)
            trip.command("DEL", *keys, self.keys.orders(customer), digests)
            trip.command("HSET", keys[0], *(part for pair in fields.items() for part in pair))
            item_fields: dict[str, str | int] = {}
            for sku, totals in state.items.items():
                if totals.bought:
                    item_fields[f"b:{sku}"] = totals.bought
                if totals.returned:
                    item_fields[f"r:{sku}"] = totals.returned
                    item_fields[f"v:{sku}"] = repr(totals.returned_value)
            if item_fields:
                trip.command(
                    "HSET", keys[1], *(part for pair in item_fields.items() for part in pair)
                )
            if state.orders:
                known = state.digests
                trip.command(
                    "HSET",
                    digests,
                    *(part for event in state.orders for part in (event, known.get(event, ""))),
                )
        self._queue_index_reset(trip)
        await trip.execute()

    async def put_columns(self, columns: StateColumns) -> None:
        """Write fresh whole states given column by column: the fields :meth:`put` writes.

        The commands are built from the columns, a customer at a time, without a state object.
        """
        trip = RoundTrip(self.client)
        keys = self.keys
        spent = list(map(repr, columns.spent.tolist()))
        matched = list(map(repr, columns.returned_matched.tolist()))
        first = ["" if math.isnan(t) else repr(t) for t in columns.first_purchase.tolist()]
        last = ["" if math.isnan(t) else repr(t) for t in columns.last_purchase.tolist()]
        frequency, returns = columns.frequency.tolist(), columns.has_returns().tolist()
        item_args, item_starts = _item_fields(columns)
        pairs = np.empty(2 * columns.events, dtype=object)
        pairs[0::2], pairs[1::2] = columns.event_ids, columns.digests
        applied, event_starts = pairs.tolist(), columns.event_starts.tolist()
        for index, customer in enumerate(columns.customers):
            state, items = keys.state(customer), keys.items(customer)
            orders, digests = keys.orders(customer), keys.digests(customer)
            fields: list[str | int] = [
                "frequency", frequency[index], "spent", spent[index],
                "returned_matched", matched[index], "last_order", columns.last_order[index],
                "country", columns.country[index], "sequence", 0,
            ]  # fmt: skip
            if first[index]:
                fields += ("first_purchase", first[index])
            if last[index]:
                fields += ("last_purchase", last[index])
            if returns[index]:
                fields += ("has_returns", 1)  # apply.lua matches returns only for such customers
            trip.command("DEL", state, items, orders, digests)
            trip.command("HSET", state, *fields)
            low, high = item_starts[index], item_starts[index + 1]
            if high > low:
                trip.command("HSET", items, *item_args[low:high])
            low, high = event_starts[index], event_starts[index + 1]
            if high > low:
                trip.command("HSET", digests, *applied[2 * low : 2 * high])
        self._queue_index_reset(trip)
        await trip.execute()

    def _queue_index_reset(self, trip: RoundTrip) -> None:
        """Queue, last after a bulk write, the reset of the global segment indexes.

        They are built again from the states on the next read (segment_indexes.lua), so that
        a change recorded while the states were written is neither lost nor counted twice.
        """
        trip.command("DEL", self.keys.segments)
        trip.script(self._drop_members, [self.keys.indexed], [self.keys.prefix])

    async def load(self, customer_ids: Sequence[str]) -> list[CustomerState | None]:
        if not customer_ids:
            return []
        trip = RoundTrip(self.client)
        self._queue_chunks(trip, self._load, customer_ids, self._state_key, lambda _: _FIELDS)
        rows = (row for chunk in await trip.execute() for row in chunk)
        width = len(_FIELDS)
        return [
            _from_row(customer, row) if row.count(None) != width else None
            for customer, row in zip(customer_ids, rows, strict=True)
        ]

    async def load_rfm(self, customer_ids: Sequence[str]) -> list[CustomerState | None]:
        if not customer_ids:
            return []
        trip = RoundTrip(self.client)
        self._queue_chunks(trip, self._load, customer_ids, self._state_key, lambda _: _RFM_FIELDS)
        rows = (row for chunk in await trip.execute() for row in chunk)
        width = len(_RFM_FIELDS)
        states: list[CustomerState | None] = []
        for customer, row in zip(customer_ids, rows, strict=True):
            if row.count(None) == width:
                states.append(None)
                continue
            frequency, spent, matched, last, country, segment = row
            states.append(
                CustomerState(
                    customer,
                    int(frequency or 0),
                    float(spent or 0.0),
                    float(matched or 0.0),
                    last_purchase=float(last) if last else None,
                    country=country or "",
                    segment=segment or None,
                )
            )
        return states

    async def schedule(self, due: Mapping[str, float]) -> None:
        if due:
            await call(self.client.zadd(self.keys.due, dict(due)))

    async def pop_due(self, now: float, limit: int, lease_s: float = DUE_LEASE_S) -> list[str]:
        ids: list[str] = await self._pop_due([self.keys.due], [repr(now), limit, repr(lease_s)])
        return ids

    async def unschedule(self, customer_ids: Sequence[str]) -> None:
        if customer_ids:
            await call(self.client.zrem(self.keys.due, *customer_ids))

    async def due_count(self, until: float | None = None) -> int:
        top = "+inf" if until is None else repr(until)
        count: int = await call(self.client.zcount(self.keys.due, "-inf", top))
        return count

    async def segment_counts(self) -> dict[str, int]:
        reply = await self._read_segments("counts")
        pairs = zip(reply[::2], reply[1::2], strict=True)
        return {segment: int(count) for segment, count in pairs if segment and int(count) > 0}

    async def ensure_indexes(self) -> None:
        await self._read_segments("nothing")

    async def segment_page(self, segment: str, after: str, limit: int) -> list[str]:
        ids: list[str] = await self._read_segments("page", segment, after, limit)
        return ids

    async def _read_segments(self, what: str, *args: Any) -> Any:
        """Build the segment indexes where they are missing, then read ``what`` of them
        (segment_indexes.lua): one script, so a page or a count never sees half an index."""
        keys = self.keys
        return await self._segment_indexes(
            [keys.segments, keys.indexed], [keys.state_pattern(), keys.prefix, what, *args]
        )

    async def flows(
        self, since: str | None = None, until: str | None = None
    ) -> dict[str, dict[tuple[str, str, str], int]]:
        result: dict[str, dict[tuple[str, str, str], int]] = {}
        for day, fields in (await self._per_day(self.keys.flows, since, until)).items():
            counts = result.setdefault(day, {})
            for name, count in fields.items():
                source, target, reason = name.split("|")
                counts[(source, target, reason)] = int(count)
        return result

    async def daily_sizes(
        self, since: str | None = None, until: str | None = None
    ) -> dict[str, dict[str, int]]:
        days = await self._per_day(self.keys.sizes, since, until)
        return {
            day: {segment: int(size) for segment, size in fields.items()}
            for day, fields in days.items()
        }

    async def _per_day(
        self, key_of: Callable[[str], str], since: str | None, until: str | None
    ) -> dict[str, dict[str, str]]:
        """The hash ``key_of(day)`` of every day with changes from ``since`` to ``until``."""
        low, high = _day_range(since, until)
        days: list[str] = await call(self.client.zrangebylex(self.keys.days, low, high))
        trip = RoundTrip(self.client)
        for day in days:
            trip.command("HGETALL", key_of(day))
        replies: list[dict[str, str]] = await trip.execute() if days else []
        return {day: fields for day, fields in zip(days, replies, strict=True) if fields}

    async def advance_clock(self, event_time: float) -> float:
        value = await self._clock([self.keys.clock, self.keys.watermarks], [repr(event_time)])
        return float(value)

    async def set_clock(self, event_time: float) -> float:
        value = await self._set_clock([self.keys.clock, self.keys.watermarks], [repr(event_time)])
        return float(value)

    async def watermarks(self) -> dict[str, float]:
        """Each orders-topic partition's largest event time seen (epoch seconds)."""
        raw: dict[str, str] = await call(self.client.hgetall(self.keys.watermarks))
        return {partition: float(value) for partition, value in raw.items()}

    async def epoch(self) -> int | None:
        value = await call(self.client.get(self.keys.epoch))
        return int(value) if value is not None else None

    async def create_epoch(self, epoch: int) -> int:
        await call(self.client.set(self.keys.epoch, epoch, nx=True))
        current = await self.epoch()
        assert current is not None
        return current

    async def has_state(self) -> bool:
        keys = self.keys
        found: int = await call(self.client.exists(keys.clock, keys.counters, keys.watermarks))
        return found > 0

    async def clock(self) -> float | None:
        value = await call(self.client.get(self.keys.clock))
        return float(value) if value is not None else None

    async def add_counters(self, counts: Mapping[str, int]) -> None:
        trip = RoundTrip(self.client)
        self._queue_counters(trip, counts)
        await trip.execute()

    async def counters(self) -> dict[str, int]:
        raw: dict[str, str] = await call(self.client.hgetall(self.keys.counters))
        return {name: int(value) for name, value in raw.items()}

    async def history(self, customer_id: str) -> list[str]:
        entries: list[str] = await call(self.client.lrange(self.keys.history(customer_id), 0, -1))
        return entries

    def _state_key(self, customer_id: str) -> tuple[str]:
        return (self.keys.state(customer_id),)

    def _queue_chunks(
        self,
        trip: RoundTrip,
        script: Script,
        items: Sequence[T],
        keys_of: Callable[[T], Sequence[str]],
        args_of: Callable[[Sequence[T]], Sequence[Any]] = lambda chunk: (),
        leading_keys: Sequence[str] = (),
    ) -> list[Sequence[T]]:
        """Queue ``script`` once per chunk of ``items``; return the chunks.

        ``keys_of`` gives each item's keys (after ``leading_keys``), ``args_of`` a chunk's
        arguments. The round trip's replies then begin with the script's replies, one per chunk.
        """
        size = self.chunk_size
        chunks = [items[first : first + size] for first in range(0, len(items), size)]
        for chunk in chunks:
            keys = [*leading_keys, *(key for item in chunk for key in keys_of(item))]
            trip.script(script, keys, args_of(chunk))
        return chunks

    def _queue_counters(self, trip: RoundTrip, counts: Mapping[str, int]) -> None:
        """Queue the increments of the service-wide counters (zeros are left out)."""
        for name, value in counts.items():
            if value:
                trip.command("HINCRBY", self.keys.counters, name, value)
