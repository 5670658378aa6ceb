"""The customer-state store: one seam, a Redis implementation and an in-memory one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from stream_app.core.effects import OrderEffect
from stream_app.core.state import CustomerState, apply_effect

__all__ = ["CustomerStore", "MemoryStore", "SegmentUpdate"]


@dataclass(frozen=True, slots=True)
class SegmentUpdate:
    """Record that a customer is now in ``segment`` (after the change event was published)."""

    customer_id: str
    segment: str
    previous_segment: str | None
    since: float
    model_version: str
    sequence: int
    history_entry: str  # the published change, JSON
    rfm: tuple[int, int, float] | None = None  # the RFM the segment was assigned at


class CustomerStore(Protocol):
    """Where per-customer RFM state lives. Every method batches its round trips."""

    async def apply(self, effects: Sequence[OrderEffect]) -> list[bool]:
        """Apply each event once, atomically per event, in order.

        Returns, for each event, whether it was applied now (False: it had been before).
        """
        ...

    async def record_each(self, updates: Sequence[SegmentUpdate]) -> list[bool]:
        """Store new segments, skipping an update whose ``previous_segment`` or sequence is
        stale; say for each update whether it was stored.

        A stored change is marked unannounced until :meth:`mark_announced`.
        """
        ...

    async def mark_announced(self, customer_ids: Sequence[str]) -> None:
        """Clear the unannounced mark: the customers' last changes are published."""
        ...

    async def last_changes(self, customer_ids: Sequence[str]) -> list[str | None]:
        """Each customer's last recorded change (JSON), or None."""
        ...

    async def get(self, customer_id: str) -> CustomerState | None:
        """The full state of one customer (items and applied event ids included)."""
        ...

    async def load(self, customer_ids: Sequence[str]) -> list[CustomerState | None]:
        """Several customers' states (without items and event ids), in one round trip."""
        ...

    async def schedule(self, due: Mapping[str, float]) -> None:
        """Set when (stream clock) each customer's segment is next due to change."""
        ...

    async def pop_due(self, now: float, limit: int, lease_s: float = 3600.0) -> list[str]:
        """Take up to ``limit`` customers due by ``now``; each is taken by one caller only.

        Taken customers come due again at ``now + lease_s`` unless rescheduled (or
        unscheduled) before: a caller that dies loses nobody.
        """
        ...

    async def unschedule(self, customer_ids: Sequence[str]) -> None:
        """Forget the due times of these customers."""
        ...

    async def due_count(self, until: float | None = None) -> int:
        """How many customers are scheduled (due by ``until``, if given)."""
        ...

    def scan(self, batch_size: int = 1000) -> AsyncIterator[list[CustomerState]]:
        """Every customer's state, in batches, without items and event ids."""
        ...

    async def put(self, states: Sequence[CustomerState]) -> None:
        """Write whole states (items and applied event ids included), replacing what is there."""
        ...

    async def advance_clock(self, event_time: float) -> float:
        """Move the event-time clock forward to ``event_time`` (never back); return it."""
        ...

    async def clock(self) -> float | None:
        """The event-time clock: the largest event time seen, or None."""
        ...

    async def add_counters(self, counts: Mapping[str, int]) -> None:
        """Add to the service-wide counters."""
        ...

    async def counters(self) -> dict[str, int]:
        """The service-wide counters."""
        ...

    async def history(self, customer_id: str) -> list[str]:
        """The customer's recent segment changes, newest first, as JSON texts."""
        ...


class MemoryStore:
    """In-process store for unit tests and tools; the same behaviour as the Redis store."""

    def __init__(self, max_history: int = 50) -> None:
        self._states: dict[str, CustomerState] = {}
        self._history: dict[str, list[str]] = {}
        self._clock: float | None = None
        self._due: dict[str, float] = {}
        self._counters: dict[str, int] = {}
        self._max_history = max_history

    async def apply(self, effects: Sequence[OrderEffect]) -> list[bool]:
        results = []
        for effect in effects:
            before = self._states.get(effect.customer_id) or CustomerState(effect.customer_id)
            after, applied = apply_effect(before, effect)
            self._states[effect.customer_id] = after
            results.append(applied)
        return results

    async def mark_announced(self, customer_ids: Sequence[str]) -> None:
        for customer in customer_ids:
            state = self._states.get(customer)
            if state is not None:
                self._states[customer] = replace(state, unannounced=False)

    async def last_changes(self, customer_ids: Sequence[str]) -> list[str | None]:
        entries = [self._history.get(customer) for customer in customer_ids]
        return [history[0] if history else None for history in entries]

    async def record_each(self, updates: Sequence[SegmentUpdate]) -> list[bool]:
        stored: list[bool] = []
        for update in updates:
            state = self._states.get(update.customer_id) or CustomerState(update.customer_id)
            if state.segment != update.previous_segment or update.sequence <= state.sequence:
                stored.append(False)
                continue
            self._states[update.customer_id] = replace(
                state,
                segment=update.segment,
                segment_since=update.since,
                model_version=update.model_version,
                sequence=update.sequence,
                segment_rfm=update.rfm if update.rfm is not None else state.segment_rfm,
                unannounced=True,
            )
            entries = self._history.setdefault(update.customer_id, [])
            entries.insert(0, update.history_entry)
            del entries[self._max_history :]
            stored.append(True)
        return stored

    async def get(self, customer_id: str) -> CustomerState | None:
        return self._states.get(customer_id)

    async def load(self, customer_ids: Sequence[str]) -> list[CustomerState | None]:
        found = [self._states.get(customer) for customer in customer_ids]
        return [
            None if state is None else replace(state, items={}, orders=frozenset())
            for state in found
        ]

    async def schedule(self, due: Mapping[str, float]) -> None:
        self._due.update(due)

    async def pop_due(self, now: float, limit: int, lease_s: float = 3600.0) -> list[str]:
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

    async def scan(self, batch_size: int = 1000) -> AsyncIterator[list[CustomerState]]:
        states = [replace(state, items={}, orders=frozenset()) for state in self._states.values()]
        for start in range(0, len(states), batch_size):
            yield states[start : start + batch_size]

    async def put(self, states: Sequence[CustomerState]) -> None:
        for state in states:
            self._states[state.customer_id] = state

    async def advance_clock(self, event_time: float) -> float:
        if self._clock is None or event_time > self._clock:
            self._clock = event_time
        return self._clock

    async def clock(self) -> float | None:
        return self._clock

    async def add_counters(self, counts: Mapping[str, int]) -> None:
        for name, value in counts.items():
            self._counters[name] = self._counters.get(name, 0) + value

    async def counters(self) -> dict[str, int]:
        return dict(self._counters)

    async def history(self, customer_id: str) -> list[str]:
        return list(self._history.get(customer_id, []))
