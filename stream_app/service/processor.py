"""The worker's core loop body: one batch of raw order messages in, state and changes out.

It knows nothing of faust: the faust agent hands it batches of :class:`RawMessage` and a
:class:`Publisher`, so the same code runs under tests with an in-memory store and publisher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from stream_app.core.effects import OrderEffect, order_effect
from stream_app.core.events import (
    ClockEvent,
    DeadLetter,
    InvalidEvent,
    SegmentChange,
    parse_event,
)
from stream_app.core.scoring import Reason, SegmentModel, score
from stream_app.core.state import CustomerState
from stream_app.exceptions import StoreUnavailableError
from stream_app.settings import Clock
from stream_app.store.memory import CustomerStore, SegmentUpdate

__all__ = ["BatchOutcome", "BatchProcessor", "DecodedBatch", "Publisher", "RawMessage"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message from the orders topic, as the broker delivered it."""

    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int


class Publisher(Protocol):
    """Where segment changes and dead letters go. Returns once the broker has them."""

    async def publish_changes(self, changes: Sequence[SegmentChange]) -> None:
        """Publish segment changes keyed by customer id."""
        ...

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Publish dead letters keyed like their source message."""
        ...


@dataclass
class DecodedBatch:
    """A batch after validation: effects to apply, clock moves, and dead letters."""

    events: int
    effects: list[OrderEffect] = field(default_factory=list)
    clock_times: list[float] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


@dataclass
class BatchOutcome:
    """What one batch did, for logs and counters."""

    events: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    changes: int = 0
    skipped_lines: dict[str, int] = field(default_factory=dict)


class BatchProcessor:
    """Apply batches of order messages to the store and publish the segment changes.

    Parameters
    ----------
    store
        The customer-state store.
    publisher
        Where changes and dead letters go.
    model
        Returns the model to score with, or None while there is none.
    clock
        ``event``: now is the largest event time seen; ``wall``: the machine's clock.
    retry_delay_s
        First pause before retrying a store call that failed (doubles up to 5 s).
    """

    def __init__(
        self,
        store: CustomerStore,
        publisher: Publisher,
        model: Callable[[], SegmentModel | None],
        clock: Clock = Clock.EVENT,
        retry_delay_s: float = 0.1,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.model = model
        self.clock = clock
        self.retry_delay_s = retry_delay_s
        # Orders, decay and re-scoring read-then-write a customer's segment: one at a time.
        self._scoring = asyncio.Lock()

    async def handle(self, messages: Sequence[RawMessage]) -> BatchOutcome:
        """Process one batch. Returns only when its effects are stored and published."""
        return await self.process(self.decode(messages))

    @staticmethod
    def decode(messages: Sequence[RawMessage]) -> DecodedBatch:
        """Validate a batch and reduce its events to their effects (no I/O).

        The worker decodes the next batch while the previous one waits on Redis and Kafka.
        """
        batch = DecodedBatch(events=len(messages))
        for message in messages:
            try:
                event = parse_event(message.value)
            except InvalidEvent as exc:
                batch.dead_letters.append(
                    DeadLetter(
                        reason=exc.reason,
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        key=message.key.decode("utf-8", "replace") if message.key else None,
                        payload=message.value.decode("utf-8", "replace"),
                        failed_at=datetime.now(tz=UTC),
                    )
                )
                continue
            if isinstance(event, ClockEvent):
                batch.clock_times.append(event.occurred_at.timestamp())
            else:
                batch.effects.append(order_effect(event))
        return batch

    async def process(self, batch: DecodedBatch) -> BatchOutcome:
        """Store, score and publish a decoded batch; return what it did.

        Bad events go to the dead-letter topic. Infrastructure errors are retried here rather
        than raised: the batch is acknowledged once this returns.
        """
        effects, clock_times, letters = batch.effects, batch.clock_times, batch.dead_letters
        outcome = BatchOutcome(events=batch.events)
        outcome.dead_letters = len(letters)
        if letters:
            await self.publisher.publish_dead_letters(letters)
            log.warning("sent %d invalid event(s) to the dead-letter topic", len(letters))

        if effects:
            applied = await self._retry(self.store.apply, effects)
            outcome.applied = sum(applied)
            outcome.duplicates = len(applied) - outcome.applied
            for effect in effects:
                for name, count in (
                    ("skipped_non_product_lines", effect.skipped_non_product),
                    ("skipped_zero_price_lines", effect.skipped_zero_price),
                ):
                    if count:
                        outcome.skipped_lines[name] = outcome.skipped_lines.get(name, 0) + count
            now = await self._now([effect.occurred_at for effect in effects] + clock_times)
            async with self._scoring:
                # Read under the lock: a decay step may move a customer at any other time.
                touched = list(dict.fromkeys(effect.customer_id for effect in effects))
                fresh = await self._retry(self.store.load, touched)
                states = [state for state in fresh if state is not None]
                outcome.changes = await self._rescore(states, now, "order")
        elif clock_times:
            await self._now(clock_times)

        await self._retry(
            self.store.add_counters,
            {
                "events": outcome.events,
                "applied": outcome.applied,
                "duplicates": outcome.duplicates,
                "dead_letters": outcome.dead_letters,
                "clock_events": len(clock_times),
                "segment_changes": outcome.changes,
                **outcome.skipped_lines,
            },
        )
        return outcome

    async def decay(self, limit: int = 1000, max_rounds: int = 100) -> int:
        """Re-score the customers whose segment is due to change by now; return how many.

        Only customers in the due set are read, so the work follows the customers due, not
        the population. Each is scheduled again for its next change; the due set leases them
        while they are being re-scored, so a worker dying here loses nobody.
        """
        model = self.model()
        if model is None:
            return 0
        now = await self.current_time()
        if now is None:
            return 0
        rescored = 0
        for _ in range(max_rounds):
            async with self._scoring:
                due = await self._retry(self.store.pop_due, now, limit)
                if not due:
                    break
                loaded = await self._retry(self.store.load, due)
                states = [state for state in loaded if state is not None and state.has_rfm]
                changes = await self._rescore(states, now, "recency")
                # Scored customers got their next due time; the rest have none any more.
                scored = {state.customer_id for state in states}
                await self._retry(
                    self.store.unschedule, [customer for customer in due if customer not in scored]
                )
            rescored += len(states)
            if changes:
                await self._retry(self.store.add_counters, {"segment_changes": changes})
        return rescored

    async def rescore_all(self, reason: Reason = "retrain", batch_size: int = 2000) -> int:
        """Re-score every customer (after a model switch); return how many changed segment."""
        if self.model() is None:
            return 0
        now = await self.current_time()
        if now is None:
            return 0
        changed = 0
        async for batch in self.store.scan(batch_size):
            # A state changed by an order since the scan read it fails the compare-and-set
            # when recorded; that order's own scoring already used the new model.
            async with self._scoring:
                changed += await self._rescore(
                    [state for state in batch if state.has_rfm], now, reason
                )
        return changed

    async def current_time(self) -> float | None:
        """Now on the configured clock (None before the first event in event-time mode)."""
        if self.clock is Clock.WALL:
            return time.time()
        return await self._retry(self.store.clock)

    async def _rescore(self, states: list[CustomerState], now: float, reason: Reason) -> int:
        """Record, then publish, the segment changes of ``states`` at ``now``; schedule decay.

        A change is published only once it is recorded (compare-and-set on the sequence), so
        what consumers see is what the store holds. A recorded change stays marked
        unannounced until published; a crash in between leaves the mark, and the next scoring
        of that customer (a redelivered order, the decay step, a re-score) publishes it again,
        with the same sequence number, so consumers can drop the repeat.
        """
        model = self.model()
        if model is None or not states:
            return 0
        await self._announce_pending([state for state in states if state.unannounced])
        changes, due = score(states, model, now, reason)
        published: list[SegmentChange] = []
        if changes:
            updates = [
                SegmentUpdate(
                    customer_id=change.customer_id,
                    segment=change.segment,
                    previous_segment=change.previous_segment,
                    since=now,
                    model_version=change.model_version,
                    sequence=change.sequence,
                    history_entry=change.model_dump_json(),
                    rfm=(
                        change.rfm.recency_days,
                        change.rfm.frequency,
                        change.rfm.monetary,
                    ),
                )
                for change in changes
            ]
            stored = await self._retry(self.store.record_each, updates)
            # A change not stored lost a race with another writer, who publishes its own.
            published = [change for change, ok in zip(changes, stored, strict=True) if ok]
            if published:
                await self.publisher.publish_changes(published)
                await self._retry(
                    self.store.mark_announced, [change.customer_id for change in published]
                )
        schedule = {
            state.customer_id: when
            for state, when in zip(states, due, strict=True)
            if when is not None
        }
        await self._retry(self.store.schedule, schedule)
        return len(published)

    async def _announce_pending(self, states: list[CustomerState]) -> None:
        """Publish the recorded-but-unpublished last change of these customers."""
        if not states:
            return
        ids = [state.customer_id for state in states]
        entries = await self._retry(self.store.last_changes, ids)
        changes = [SegmentChange.model_validate_json(entry) for entry in entries if entry]
        if changes:
            await self.publisher.publish_changes(changes)
            log.info("published %d change(s) recorded before a restart", len(changes))
        await self._retry(self.store.mark_announced, ids)

    async def announce_pending(self, batch_size: int = 5000) -> int:
        """Publish every change recorded but not yet published (run at start-up)."""
        count = 0
        async for batch in self.store.scan(batch_size):
            pending = [state for state in batch if state.unannounced]
            if pending:
                async with self._scoring:
                    await self._announce_pending(pending)
                count += len(pending)
        return count

    async def _now(self, times: Sequence[float]) -> float:
        if self.clock is Clock.WALL:
            return time.time()
        return await self._retry(self.store.advance_clock, max(times))

    async def _retry(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        delay = self.retry_delay_s
        while True:
            try:
                return await call(*args)
            except StoreUnavailableError as exc:
                log.error("store unavailable, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
