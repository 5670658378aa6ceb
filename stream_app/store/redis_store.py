"""The customer-state store on Redis: Lua scripts, one call per chunk of customers, pipelined."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS

from stream_app.core.columns import StateColumns
from stream_app.core.effects import OrderEffect
from stream_app.core.state import CustomerState, ItemTotals
from stream_app.service.ports import DUE_LEASE_S, AppliedBatch, SegmentUpdate
from stream_app.store.client import configured_client, redis_client
from stream_app.store.keys import ClusterKeys, Keys, keys_for, slot_of
from stream_app.store.round_trip import ReplicaWait, RoundTrip, Script, call, lua_script

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

    Every public method is one round trip (one pipeline, however many chunks it holds), but
    for the flows of :meth:`record_each` and the segment reads on a Redis Cluster.

    On a Redis Cluster (a ``RedisCluster`` client) every script call carries the keys of one
    hash slot only: the events, updates or ids of a call are grouped by their customer's slot,
    and the pipeline sends each node its calls at once. What a script updates with the
    customers (the store epoch, the segment counts and member indexes) is kept per slot
    (:class:`~stream_app.store.keys.ClusterKeys`).

    Parameters
    ----------
    client
        A ``redis.asyncio.Redis`` or ``RedisCluster`` created with ``decode_responses=True``.
    keys
        The key builder (its prefix separates deployments sharing one Redis); on a cluster
        client a plain :class:`Keys` is taken as the :class:`ClusterKeys` of its prefix.
    wait_replicas
        On a cluster: the replicas every write must reach before a round trip returns (see
        :class:`~stream_app.store.round_trip.RoundTrip`).
    """

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        keys: Keys,
        max_history: int = 50,
        chunk_size: int = 250,
        wait_replicas: int = 0,
    ) -> None:
        # redis-py's annotations do not model decode_responses=True; values are str here.
        self.client: Any = client
        self.cluster = isinstance(client, RedisCluster)
        if self.cluster and not isinstance(keys, ClusterKeys):
            keys = ClusterKeys(keys.prefix)
        self.keys = keys
        #: The per-slot and sharded keys (the same builder as ``keys`` on a cluster).
        self.slot_keys = keys if isinstance(keys, ClusterKeys) else ClusterKeys(keys.prefix)
        self.max_history = max_history
        self.chunk_size = chunk_size
        self.replica_wait = ReplicaWait(wait_replicas)
        self._apply = lua_script(client, "apply.lua")
        self._record = lua_script(client, "record_segment.lua")
        self._clock = lua_script(client, "advance_clock.lua")
        self._set_clock = lua_script(client, "set_clock.lua")
        self._pop_due = lua_script(client, "pop_due.lua")
        self._lease_due = lua_script(client, "lease_due.lua")
        self._node_counts = lua_script(client, "node_counts.lua")
        self._node_page = lua_script(client, "node_page.lua")
        self._node_epochs = lua_script(client, "node_epochs.lua")
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
        """The store the settings name (``RFM_REDIS_URL``, its CA file, ``RFM_REDIS_CLUSTER``,
        the key prefix)."""
        return cls(
            configured_client(settings),
            keys_for(settings),
            max_history=settings.history_length,
            wait_replicas=settings.redis_wait_replicas,
        )

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

        trip = self._trip()
        # One script call per chunk of events: far fewer commands to pack and parse than one
        # call per event, and each event is still applied once and atomically. Each call reads
        # back its customers' states, and the clock moves in the same round trip.
        chunks = self._queue_chunks(
            trip,
            self._apply,
            effects,
            keys_of,
            lambda chunk, _: [
                "" if epoch is None else str(epoch),
                json.dumps(list(map(_apply_row, chunk))),
                *_FIELDS,
            ],
            leading_keys=lambda slot: (
                keys.epoch if slot is None else self.slot_keys.slot_epoch(slot),
            ),
            customer_of=lambda effect: effect.customer_id,
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
        result = AppliedBatch([False] * len(effects), [], None)
        states: dict[str, CustomerState | None] = {}
        for chunk, (flags, rows) in zip(chunks, replies, strict=False):
            for index, flag in zip(chunk, flags, strict=True):
                if isinstance(flag, str):
                    kind, _, detail = flag.partition(":")
                    found = result.conflicts if kind == "conflict" else result.rejected
                    found[index] = detail
                result.applied[index] = flag == 1
            customers = dict.fromkeys(effects[index].customer_id for index in chunk)
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
        trip = self._trip()
        chunks = self._queue_chunks(
            trip,
            self._record,
            updates,
            lambda update: (keys.state(update.customer_id), keys.history(update.customer_id)),
            lambda chunk, slot: [
                self.max_history,
                json.dumps(list(map(_record_row, chunk))),
                keys.prefix if slot is None else self.slot_keys.slot_members_prefix(slot),
                "1" if slot is None else "0",
            ],
            leading_keys=lambda slot: (
                (keys.segments, keys.indexed, keys.days)
                if slot is None
                else (
                    self.slot_keys.slot_segments(slot),
                    self.slot_keys.slot_indexed(slot),
                    self.slot_keys.slot_key(slot, "days"),
                )
            ),
            customer_of=lambda update: update.customer_id,
        )
        if due:
            self._queue_due(
                trip,
                {customer: when for customer, when in due.items() if when is not None},
                [customer for customer, when in due.items() if when is None],
            )
        replies = await trip.execute()
        stored = [0] * len(updates)
        for chunk, reply in zip(chunks, replies, strict=False):
            for index, flag in zip(chunk, reply, strict=True):
                stored[index] = flag
        if self.cluster:
            await self._record_flows(
                [u for u, flag in zip(updates, stored, strict=True) if flag == 1]
            )
        return [flag in (1, 2) for flag in stored]

    async def _record_flows(self, changes: Sequence[SegmentUpdate]) -> None:
        """On a cluster: add the changes just stored to the flows of their days.

        A round trip after the changes' own (the flows are in no customer's hash slot): a
        worker that dies in between leaves those changes out of the flows, not out of the
        state (docs/design.md §3).
        """
        if not changes:
            return
        flows: dict[str, Counter[str]] = {}
        for update in changes:
            flow = f"{update.previous_segment or ''}|{update.segment}|{update.reason}"
            flows.setdefault(change_day(update.since), Counter())[flow] += 1
        trip = self._trip()
        for day, counts in flows.items():
            trip.command("ZADD", self.keys.days, 0, day)
            for flow, count in counts.items():
                trip.command("HINCRBY", self.keys.flows(day), flow, count)
        await trip.execute()

    async def mark_announced(
        self,
        customer_ids: Sequence[str],
        counts: Mapping[str, int] | None = None,
        offsets: Mapping[str, int] | None = None,
    ) -> None:
        trip = self._trip()
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
        trip = self._trip(writes=False)
        for customer in customer_ids:
            trip.command("LINDEX", self.keys.history(customer), 0)
        replies: list[str | None] = await trip.execute()
        return replies

    async def get(self, customer_id: str) -> CustomerState | None:
        trip = self._trip(writes=False)
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
        async for _, states in self.scan_from("0", batch_size):
            if states:
                yield states

    async def scan_from(
        self, cursor: str = "0", batch_size: int = 1000
    ) -> AsyncIterator[tuple[str, list[CustomerState]]]:
        # SCAN's cursor is all the state a scan has: another client can go on from it, and
        # every key there for the whole scan is returned at least once. On a cluster the
        # cursor is "NODE:CURSOR": the nodes in the order of the slots they serve, each
        # scanned in turn (a failover keeps the order: the replica serves its master's slots).
        pattern = self.keys.state_pattern()
        node_index, _, position_text = cursor.rpartition(":")
        node, position = int(node_index or 0), int(position_text)
        while True:
            if self.cluster:
                nodes = [primary for primary, _ in await self._slots_by_node()]
                if node >= len(nodes):
                    return
                positions, names = await call(
                    self.client.scan(
                        position, match=pattern, count=batch_size, target_nodes=nodes[node]
                    )
                )
                position = int(next(iter(positions.values())))
                if position == 0:
                    node += 1
                done = node >= len(nodes)
                after = "0" if done else f"{node}:{position}"
            else:
                position, names = await call(
                    self.client.scan(position, match=pattern, count=batch_size)
                )
                done = int(position) == 0
                after = str(int(position))
            loaded = await self.load([self.keys.customer_of(name) for name in names])
            yield after, [state for state in loaded if state is not None]
            if done:
                return

    async def put(self, states: Sequence[CustomerState]) -> None:
        """Write whole states (items and event ids included), replacing what is there."""
        trip = self._trip()
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
        self._queue_index_reset(trip, [state.customer_id for state in states])
        await trip.execute()

    async def put_columns(self, columns: StateColumns) -> None:
        """Write fresh whole states given column by column: the fields :meth:`put` writes.

        The commands are built from the columns, a customer at a time, without a state object.
        """
        trip = self._trip()
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
        self._queue_index_reset(trip, columns.customers)
        await trip.execute()

    def _queue_index_reset(self, trip: RoundTrip, customer_ids: Sequence[str]) -> None:
        """Queue dropping the segment indexes that cover ``customer_ids`` (after their states).

        Last in the round trip: the indexes are built again from the states on the next read
        (segment_indexes.lua), so that a change recorded while these were written is neither
        lost nor counted twice. On a cluster only the indexes of those customers' slots go.
        """
        keys = self.keys
        if not self.cluster:
            trip.command("DEL", keys.segments)
            trip.script(self._drop_members, [keys.indexed], [keys.prefix])
            return
        for slot in sorted({slot_of(customer) for customer in customer_ids}):
            trip.command("DEL", self.slot_keys.slot_segments(slot))
            trip.script(
                self._drop_members,
                [self.slot_keys.slot_indexed(slot)],
                [self.slot_keys.slot_members_prefix(slot)],
            )

    async def load(self, customer_ids: Sequence[str]) -> list[CustomerState | None]:
        if not customer_ids:
            return []
        rows = await self._load_fields(customer_ids, _FIELDS)
        width = len(_FIELDS)
        return [
            _from_row(customer, row) if row.count(None) != width else None
            for customer, row in zip(customer_ids, rows, strict=True)
        ]

    async def _load_fields(
        self, customer_ids: Sequence[str], fields: Sequence[str]
    ) -> list[list[str | None]]:
        """The ``fields`` of each customer's state hash, in the order of ``customer_ids``."""
        trip = self._trip(writes=False)
        chunks = self._queue_chunks(
            trip, self._load, customer_ids, self._state_key, lambda _, __: fields
        )
        rows: list[list[str | None]] = [[]] * len(customer_ids)
        for chunk, reply in zip(chunks, await trip.execute(), strict=True):
            for index, row in zip(chunk, reply, strict=True):
                rows[index] = row
        return rows

    async def load_rfm(self, customer_ids: Sequence[str]) -> list[CustomerState | None]:
        if not customer_ids:
            return []
        rows = await self._load_fields(customer_ids, _RFM_FIELDS)
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
            trip = self._trip()
            self._queue_due(trip, due, ())
            await trip.execute()

    async def pop_due(self, now: float, limit: int, lease_s: float = DUE_LEASE_S) -> list[str]:
        args = [repr(now), limit, repr(lease_s)]
        if not self.cluster:
            ids: list[str] = await self._pop_due([self.keys.due], args)
            return ids
        # The earliest due of every due set, then a lease of the earliest `limit` of them,
        # each only if still due (another caller may have leased it in between).
        shards = self.slot_keys.due_shards
        trip = self._trip(writes=False)
        for shard in shards:
            trip.command("ZRANGEBYSCORE", shard, "-inf", repr(now), "WITHSCORES", "LIMIT", 0, limit)
        found = [
            (float(score), customer, shard)
            for shard, pairs in zip(shards, await trip.execute(), strict=True)
            for customer, score in pairs
        ]
        picked = sorted(found)[:limit]
        per_shard: dict[str, list[str]] = {}
        for _, customer, shard in picked:
            per_shard.setdefault(shard, []).append(customer)
        trip = self._trip()
        for shard, customers in per_shard.items():
            trip.script(self._lease_due, [shard], [repr(now), repr(lease_s), *customers])
        leased = {customer for taken in await trip.execute() for customer in taken}
        return [customer for _, customer, _ in picked if customer in leased]

    async def unschedule(self, customer_ids: Sequence[str]) -> None:
        if customer_ids:
            trip = self._trip()
            self._queue_due(trip, {}, customer_ids)
            await trip.execute()

    async def due_count(self, until: float | None = None) -> int:
        top = "+inf" if until is None else repr(until)
        trip = self._trip(writes=False)
        for shard in self._due_keys():
            trip.command("ZCOUNT", shard, "-inf", top)
        return sum(int(count) for count in await trip.execute())

    def _due_keys(self) -> list[str]:
        return self.slot_keys.due_shards if self.cluster else [self.keys.due]

    def _queue_due(self, trip: RoundTrip, due: Mapping[str, float], gone: Sequence[str]) -> None:
        """Queue scheduling ``due`` (customer -> when) and unscheduling ``gone``."""
        shard_of: Callable[[str], str] = (
            self.slot_keys.due_shard if self.cluster else lambda _: self.keys.due
        )
        times: dict[str, list[Any]] = {}
        for customer, when in due.items():
            times.setdefault(shard_of(customer), []).extend((repr(when), customer))
        removed: dict[str, list[str]] = {}
        for customer in gone:
            removed.setdefault(shard_of(customer), []).append(customer)
        for shard, pairs in times.items():
            trip.command("ZADD", shard, *pairs)
        for shard, customers in removed.items():
            trip.command("ZREM", shard, *customers)

    async def segment_counts(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        replies = (
            await self._cluster_counts() if self.cluster else await self._read_segments("counts")
        )
        for reply in replies:
            for segment, count in zip(reply[::2], reply[1::2], strict=True):
                totals[segment] += int(count)
        return {segment: count for segment, count in totals.items() if segment and count > 0}

    async def _cluster_counts(self) -> list[list[Any]]:
        """The counts of every hash slot, one call per node (node_counts.lua), which builds
        a slot's indexes first where they are missing."""
        keys = self.slot_keys
        trip = self._trip(writes=False)
        for node, slots in await self._slots_by_node():
            names = [
                name
                for slot in slots
                for name in (
                    slot,
                    keys.slot_segments(slot),
                    keys.slot_indexed(slot),
                    keys.slot_members_prefix(slot),
                )
            ]
            trip.node_script(self._node_counts, node, [keys.prefix, *names])
        replies: list[list[Any]] = await trip.execute()
        return replies

    async def ensure_indexes(self) -> None:
        if self.cluster:
            await self._cluster_counts()  # builds what is missing, slot by slot
        else:
            await self._read_segments("nothing")

    async def segment_page(self, segment: str, after: str, limit: int) -> list[str]:
        if not self.cluster:
            ids: list[str] = (await self._read_segments("page", segment, after, limit))[0]
            return ids
        # On a cluster a segment's members are paged slot by slot, each slot in id order:
        # the page after a customer goes on in that customer's slot. One call per run of
        # slots a node serves, once every slot's index is built.
        await self.ensure_indexes()
        first = slot_of(after) if after else 0
        runs: list[tuple[Any, list[int]]] = []
        cache = self.client.nodes_manager.slots_cache
        for slot in range(first, REDIS_CLUSTER_HASH_SLOTS):
            node = cache[slot][0]
            if not runs or runs[-1][0].name != node.name:
                runs.append((node, []))
            runs[-1][1].append(slot)
        page: list[str] = []
        for node, slots in runs:
            trip = self._trip(writes=False)
            names = [
                f"{self.slot_keys.slot_members_prefix(slot)}:segment:{segment}" for slot in slots
            ]
            start = after if slots[0] == first else ""
            trip.node_script(self._node_page, node, [start, limit - len(page), *names])
            (ids,) = await trip.execute()
            page.extend(ids)
            if len(page) >= limit:
                return page[:limit]
        return page

    async def _read_segments(self, what: str, *args: Any) -> list[Any]:
        """On one Redis: build the segment indexes where they are missing, then read ``what``
        of them (segment_indexes.lua): one script, so a page or a count never sees half an
        index. One reply, in a list."""
        keys = self.keys
        trip = self._trip(writes=False)
        trip.script(
            self._segment_indexes,
            [keys.segments, keys.indexed],
            [keys.state_pattern(), keys.prefix, what, *args],
        )
        return await trip.execute()

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
        if self.cluster:
            return await self._sizes_from_flows(since, until)
        days = await self._per_day(self.keys.sizes, since, until)
        return {
            day: {segment: int(size) for segment, size in fields.items()}
            for day, fields in days.items()
        }

    async def _sizes_from_flows(
        self, since: str | None, until: str | None
    ) -> dict[str, dict[str, int]]:
        """On a cluster: each day's sizes of the segments its changes touched, at its end.

        The segments' sizes now, less the changes of every later day: what one Redis keeps
        per day as it goes (a cluster keeps no such per-day key, see docs/design.md §3).
        """
        now = Counter(await self.segment_counts())
        flows = await self.flows(since, None)
        sizes: dict[str, dict[str, int]] = {}
        for day in sorted(flows, reverse=True):
            if until is None or day <= until:
                touched = {name for flow in flows[day] for name in flow[:2] if name}
                sizes[day] = {segment: now[segment] for segment in sorted(touched)}
            for (source, target, _), count in flows[day].items():
                now[target] -= count
                if source:
                    now[source] += count
        return dict(sorted(sizes.items()))

    async def _per_day(
        self, key_of: Callable[[str], str], since: str | None, until: str | None
    ) -> dict[str, dict[str, str]]:
        """The hash ``key_of(day)`` of every day with changes from ``since`` to ``until``."""
        low, high = _day_range(since, until)
        days: list[str] = await call(self.client.zrangebylex(self.keys.days, low, high))
        trip = self._trip(writes=False)
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
        if self.cluster:
            return await self._create_slot_epochs(epoch)
        await call(self.client.set(self.keys.epoch, epoch, nx=True))
        current = await self.epoch()
        assert current is not None
        return current

    async def _create_slot_epochs(self, epoch: int) -> int:
        """On a cluster: the epoch, also written in every hash slot (apply.lua checks the
        slot's). A store with a slot's epoch missing or another than the store's has lost
        part of itself (a node wiped): it gets ``epoch`` as a new store would. One call per
        node (node_epochs.lua)."""
        current = await self.epoch()
        by_node = [
            (node, [self.slot_keys.slot_epoch(slot) for slot in slots])
            for node, slots in await self._slots_by_node()
        ]
        if current is not None:
            trip = self._trip(writes=False)
            for node, names in by_node:
                trip.node_script(self._node_epochs, node, [f"check:{current}", *names])
            if not any(await trip.execute()):
                return current
        trip = self._trip()
        trip.command("SET", self.keys.epoch, epoch)
        for node, names in by_node:
            trip.node_script(self._node_epochs, node, [f"set:{epoch}", *names])
        await trip.execute()
        return epoch

    async def _slots_by_node(self) -> list[tuple[Any, list[int]]]:
        """The cluster's masters, each with the hash slots it serves, in slot order."""
        await call(self.client.initialize())
        by_node: dict[str, tuple[Any, list[int]]] = {}
        for slot, nodes in sorted(self.client.nodes_manager.slots_cache.items()):
            by_node.setdefault(nodes[0].name, (nodes[0], []))[1].append(slot)
        return list(by_node.values())

    async def has_state(self) -> bool:
        keys = self.keys
        found: int = await call(self.client.exists(keys.clock, keys.counters, keys.watermarks))
        return found > 0

    async def clock(self) -> float | None:
        value = await call(self.client.get(self.keys.clock))
        return float(value) if value is not None else None

    async def add_counters(self, counts: Mapping[str, int]) -> None:
        trip = self._trip()
        self._queue_counters(trip, counts)
        await trip.execute()

    async def counters(self) -> dict[str, int]:
        trip = self._trip(writes=False)
        for key in self.slot_keys.counter_shards if self.cluster else [self.keys.counters]:
            trip.command("HGETALL", key)
        totals: Counter[str] = Counter()
        for raw in await trip.execute():
            totals.update({name: int(value) for name, value in raw.items()})
        return dict(totals)

    async def history(self, customer_id: str) -> list[str]:
        entries: list[str] = await call(self.client.lrange(self.keys.history(customer_id), 0, -1))
        return entries

    def _state_key(self, customer_id: str) -> tuple[str]:
        return (self.keys.state(customer_id),)

    def _trip(self, writes: bool = True) -> RoundTrip:
        """A round trip; one that writes waits for the replicas (``wait_replicas``)."""
        return RoundTrip(self.client, self.replica_wait if writes else None)

    def _queue_chunks(
        self,
        trip: RoundTrip,
        script: Script,
        items: Sequence[T],
        keys_of: Callable[[T], Sequence[str]],
        args_of: Callable[[Sequence[T], int | None], Sequence[Any]] = lambda chunk, slot: (),
        leading_keys: Callable[[int | None], Sequence[str]] = lambda slot: (),
        customer_of: Callable[[T], str] | None = None,
    ) -> list[list[int]]:
        """Queue ``script`` once per chunk of ``items``; return each chunk's item indexes.

        ``keys_of`` gives each item's keys (after ``leading_keys``), ``args_of`` a chunk's
        arguments. On a cluster a chunk holds the items of one hash slot only (by
        ``customer_of``, or the item itself as a customer id), in their order; both then get
        the slot, else None. The round trip's replies then begin with the script's replies,
        one per chunk.
        """
        size = self.chunk_size
        groups: dict[int | None, list[int]] = {}
        if self.cluster:
            of = customer_of or (lambda item: str(item))
            for index, item in enumerate(items):
                groups.setdefault(slot_of(of(item)), []).append(index)
        else:
            groups[None] = list(range(len(items)))
        chunks = []
        for slot, indexes in groups.items():
            for first in range(0, len(indexes), size):
                chunk = indexes[first : first + size]
                members = [items[index] for index in chunk]
                keys = [*leading_keys(slot), *(key for item in members for key in keys_of(item))]
                trip.script(script, keys, args_of(members, slot))
                chunks.append(chunk)
        return chunks

    def _queue_counters(self, trip: RoundTrip, counts: Mapping[str, int]) -> None:
        """Queue the increments of the service-wide counters (zeros are left out); on a
        cluster into one of the counter hashes, taken at random."""
        key = random.choice(self.slot_keys.counter_shards) if self.cluster else self.keys.counters
        for name, value in counts.items():
            if value:
                trip.command("HINCRBY", key, name, value)
