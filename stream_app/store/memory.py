"""The customer-state store in memory, for unit tests and tools: the Redis store's behaviour."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from stream_app.core.columns import StateColumns
from stream_app.core.effects import OrderEffect
from stream_app.core.state import CustomerState, apply_effect, conflicting_digest
from stream_app.exceptions import StoreLostError
from stream_app.service.ports import DUE_LEASE_S, AppliedBatch, SegmentUpdate

__all__ = ["MemoryStore"]

T = TypeVar("T")


class MemoryStore:
    """In-process store for unit tests and tools; the same behaviour as the Redis store."""

    def __init__(self, max_history: int = 50) -> None:
        self._states: dict[str, CustomerState] = {}
        self._history: dict[str, list[str]] = {}
        self._clock: float | None = None
        self._epoch: int | None = None
        self._offsets: dict[str, int] = {}
        self._watermarks: dict[str, float] = {}
        self._due: dict[str, float] = {}
        self._counters: dict[str, int] = {}
        self._max_history = max_history
        #: Per day: (from, to, reason) -> changes; segment -> size after its last change.
        self._flows: dict[str, dict[tuple[str, str, str], int]] = {}
        self._sizes: dict[str, dict[str, int]] = {}

    async def apply(
        self,
        effects: Sequence[OrderEffect],
        clock_time: float | None = None,
        watermarks: Mapping[str, float] | None = None,
        epoch: int | None = None,
        offsets: Sequence[str] = (),
    ) -> AppliedBatch:
        if epoch is not None and epoch != self._epoch and effects:
            raise StoreLostError(f"the store epoch is not {epoch}")
        result = AppliedBatch([], [], None)
        result.stored_offsets.update((name, self._offsets.get(name)) for name in offsets)
        for index, effect in enumerate(effects):
            before = self._states.get(effect.customer_id) or CustomerState(effect.customer_id)
            conflict = conflicting_digest(before, effect)
            if conflict is not None:
                result.conflicts[index] = conflict
                result.applied.append(False)
                continue
            after, new = apply_effect(before, effect)
            self._states[effect.customer_id] = after
            result.applied.append(new)
        touched = dict.fromkeys(effect.customer_id for effect in effects)
        result.states.extend(_bare(self._states[customer]) for customer in touched)
        if clock_time is None and not watermarks:
            return result
        for partition, when in (watermarks or {}).items():
            self._watermarks[partition] = max(when, self._watermarks.get(partition, when))
        if clock_time is not None:
            for partition, when in self._watermarks.items():
                self._watermarks[partition] = max(when, clock_time)
        lowest = min(self._watermarks.values(), default=clock_time)
        if lowest is not None and (self._clock is None or lowest > self._clock):
            self._clock = lowest
        return replace(result, clock=self._clock)

    async def mark_announced(
        self,
        customer_ids: Sequence[str],
        counts: Mapping[str, int] | None = None,
        offsets: Mapping[str, int] | None = None,
    ) -> None:
        self._offsets.update(offsets or {})
        for customer in customer_ids:
            state = self._states.get(customer)
            if state is not None:
                self._states[customer] = replace(state, unannounced=False)
        if counts:
            await self.add_counters(counts)

    async def last_changes(self, customer_ids: Sequence[str]) -> list[str | None]:
        entries = [self._history.get(customer) for customer in customer_ids]
        return [history[0] if history else None for history in entries]

    async def record_each(
        self, updates: Sequence[SegmentUpdate], due: Mapping[str, float | None] | None = None
    ) -> list[bool]:
        stored: list[bool] = []
        counts = await self.segment_counts()
        for update in updates:
            state = self._states.get(update.customer_id) or CustomerState(update.customer_id)
            history = self._history.get(update.customer_id)
            if (
                (update.sequence, update.segment) == (state.sequence, state.segment)
                and history
                and history[0] == update.history_entry
            ):
                stored.append(True)  # recorded already by this very update
                continue
            if state.segment != update.previous_segment or update.sequence <= state.sequence:
                stored.append(False)
                continue
            day = datetime.fromtimestamp(update.since, tz=UTC).date().isoformat()
            flow = (state.segment or "", update.segment, update.reason)
            flows = self._flows.setdefault(day, {})
            flows[flow] = flows.get(flow, 0) + 1
            self._states[update.customer_id] = replace(
                state,
                segment=update.segment,
                segment_since=update.since,
                model_version=update.model_version,
                sequence=update.sequence,
                segment_rfm=update.rfm if update.rfm is not None else state.segment_rfm,
                unannounced=True,
            )
            if state.segment is not None:
                counts[state.segment] -= 1
            counts[update.segment] = counts.get(update.segment, 0) + 1
            sizes = self._sizes.setdefault(day, {})
            for segment in filter(None, (state.segment, update.segment)):
                sizes[segment] = counts[segment]
            entries = self._history.setdefault(update.customer_id, [])
            entries.insert(0, update.history_entry)
            del entries[self._max_history :]
            stored.append(True)
        for customer, when in (due or {}).items():
            if when is None:
                self._due.pop(customer, None)
            else:
                self._due[customer] = when
        return stored

    async def get(self, customer_id: str) -> CustomerState | None:
        return self._states.get(customer_id)

    async def load(self, customer_ids: Sequence[str]) -> list[CustomerState | None]:
        found = [self._states.get(customer) for customer in customer_ids]
        return [None if state is None else _bare(state) for state in found]

    async def load_rfm(self, customer_ids: Sequence[str]) -> list[CustomerState | None]:
        return await self.load(customer_ids)

    async def schedule(self, due: Mapping[str, float]) -> None:
        self._due.update(due)

    async def pop_due(self, now: float, limit: int, lease_s: float = DUE_LEASE_S) -> list[str]:
        ready = sorted((time, customer) for customer, time in self._due.items() if time <= now)
        taken = [customer for _, customer in ready[:limit]]
        for customer in taken:
            self._due[customer] = now + lease_s
        return taken

    async def unschedule(self, customer_ids: Sequence[str]) -> None:
        for customer in customer_ids:
            self._due.pop(customer, None)

    async def due_count(self, until: float | None = None) -> int:
        return sum(1 for time in self._due.values() if until is None or time <= until)

    async def segment_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for state in self._states.values():
            if state.segment is not None:
                counts[state.segment] = counts.get(state.segment, 0) + 1
        return counts

    async def ensure_indexes(self) -> None:
        pass  # computed from the states when read

    async def segment_page(self, segment: str, after: str, limit: int) -> list[str]:
        members = sorted(
            customer
            for customer, state in self._states.items()
            if state.segment == segment and customer > after
        )
        return members[:limit]

    async def flows(
        self, since: str | None = None, until: str | None = None
    ) -> dict[str, dict[tuple[str, str, str], int]]:
        return {day: dict(counts) for day, counts in _between(self._flows, since, until)}

    async def daily_sizes(
        self, since: str | None = None, until: str | None = None
    ) -> dict[str, dict[str, int]]:
        return {day: dict(sizes) for day, sizes in _between(self._sizes, since, until)}

    async def scan(self, batch_size: int = 1000) -> AsyncIterator[list[CustomerState]]:
        states = [_bare(state) for state in self._states.values()]
        for start in range(0, len(states), batch_size):
            yield states[start : start + batch_size]

    async def scan_from(
        self, cursor: str = "0", batch_size: int = 1000
    ) -> AsyncIterator[tuple[str, list[CustomerState]]]:
        # The cursor is a position in insertion order: customers are added, never removed,
        # so one stored before the scan keeps its position.
        start = int(cursor)
        while True:
            states = list(self._states.values())
            end = start + batch_size
            after = str(end) if end < len(states) else "0"
            yield after, [_bare(state) for state in states[start:end]]
            if after == "0":
                return
            start = end

    async def put(self, states: Sequence[CustomerState]) -> None:
        for state in states:
            self._states[state.customer_id] = state

    async def put_columns(self, columns: StateColumns) -> None:
        await self.put(columns.states())

    async def advance_clock(self, event_time: float) -> float:
        clock = (await self.apply([], clock_time=event_time)).clock
        assert clock is not None
        return clock

    async def set_clock(self, event_time: float) -> float:
        for partition, when in self._watermarks.items():
            self._watermarks[partition] = min(when, event_time)
        self._clock = event_time
        return event_time

    async def watermarks(self) -> dict[str, float]:
        """Each orders-topic partition's largest event time seen (epoch seconds)."""
        return dict(self._watermarks)

    async def offsets(self) -> dict[str, int]:
        return dict(self._offsets)

    async def epoch(self) -> int | None:
        return self._epoch

    async def create_epoch(self, epoch: int) -> int:
        if self._epoch is None:
            self._epoch = epoch
        return self._epoch

    async def has_state(self) -> bool:
        return bool(self._states or self._counters or self._clock is not None)

    async def clock(self) -> float | None:
        return self._clock

    async def add_counters(self, counts: Mapping[str, int]) -> None:
        for name, value in counts.items():
            if value:
                self._counters[name] = self._counters.get(name, 0) + value

    async def counters(self) -> dict[str, int]:
        return dict(self._counters)

    async def history(self, customer_id: str) -> list[str]:
        return list(self._history.get(customer_id, []))


def _between(days: Mapping[str, T], since: str | None, until: str | None) -> list[tuple[str, T]]:
    """The days from ``since`` to ``until`` (inclusive; None: no bound), in order."""
    return [
        (day, value)
        for day, value in sorted(days.items())
        if (since is None or day >= since) and (until is None or day <= until)
    ]


def _bare(state: CustomerState) -> CustomerState:
    """A state as ``load`` and ``scan`` give it: without items, event ids and digests."""
    return replace(state, items={}, orders=frozenset(), digests={})
