"""The worker's core loop body: one batch of raw order messages in, state and changes out.

It knows nothing of faust: the faust agent hands it batches of :class:`RawMessage` and a
:class:`Publisher`, so the same code runs under tests with an in-memory store and publisher.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from model_training.data.rules import DEFAULT_RULE, ProductRule
from stream_app.core.effects import OrderEffect, order_effect
from stream_app.core.events import ClockEvent, DeadLetter, InvalidEvent, SegmentChange, parse_event
from stream_app.core.limits import DEFAULT_LIMITS, Limits
from stream_app.core.scoring import Reason, SegmentModel, score
from stream_app.core.state import CustomerState
from stream_app.exceptions import StoreDataError, StoreLostError, StoreUnavailableError
from stream_app.service import dead_letters
from stream_app.service.ports import (
    AppliedBatch,
    ChangeMessage,
    CustomerStore,
    Publisher,
    RawMessage,
    SegmentUpdate,
)
from stream_app.service.telemetry import NoTelemetry, Telemetry
from stream_app.settings import Clock

__all__ = ["BatchOutcome", "BatchProcessor", "DecodedBatch", "new_epoch"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class DecodedBatch:
    """A batch after validation: effects to apply, clock moves, and dead letters.

    ``sources`` holds each effect's message (a store that refuses the event dead-letters it);
    ``watermarks`` the largest valid event time per partition.
    """

    events: int
    effects: list[OrderEffect] = field(default_factory=list)
    sources: list[RawMessage] = field(default_factory=list)
    clock_times: list[float] = field(default_factory=list)
    watermarks: dict[str, float] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: ``topic:partition`` -> the offset after the batch's last message there.
    next_offsets: dict[str, int] = field(default_factory=dict)


@dataclass
class BatchOutcome:
    """What one batch did, for logs and counters."""

    events: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    conflicts: int = 0
    clock_events: int = 0
    changes: int = 0
    skipped_lines: dict[str, int] = field(default_factory=dict)
    #: Store calls (each one round trip) the batch made.
    round_trips: int = 0
    #: Publishes retried (by this batch or since the last batch) after the broker failed.
    publish_retries: int = 0
    #: Orders read again from Kafka because the store had lost their writes.
    caught_up: int = 0

    def counts(self) -> dict[str, int]:
        """The service-wide counters this batch adds to."""
        return {
            "events": self.events,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "dead_letters": self.dead_letters,
            "conflicts": self.conflicts,
            "clock_events": self.clock_events,
            "segment_changes": self.changes,
            "batches": 1,
            "batch_round_trips": self.round_trips,
            **({"publish_retries": self.publish_retries} if self.publish_retries else {}),
            **({"caught_up": self.caught_up} if self.caught_up else {}),
            **self.skipped_lines,
        }

    def log_fields(self) -> dict[str, int]:
        """The batch's numbers as fields of its log line (``extra=``; keys in JSON logs)."""
        fields = {name: value for name, value in vars(self).items() if isinstance(value, int)}
        return {**fields, **self.skipped_lines}


def new_epoch(wall_now: float) -> int:
    """The epoch of a store created at ``wall_now``: its time in seconds, shifted 20 bits.

    Sequence numbers given under it start above it, and above any earlier epoch's (up to
    about a million changes per customer and epoch), within JSON's exact integers until 2106.

    >>> new_epoch(1_764_547_200.0) > new_epoch(1_764_547_199.0) + 2**19
    True
    """
    return int(wall_now) << 20


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
        ``event``: now is the lowest partition watermark; ``wall``: the machine's clock.
    retry_delay_s
        First pause before retrying a store call that failed (doubles up to 5 s).
    rule
        Which stock codes are products.
    limits
        The sanity bounds of lines, orders and event times.
    wall_clock
        Returns the wall clock (epoch seconds) events are judged by.
    dlq_max_payload
        Bytes of JSON a dead letter keeps of the refused message's value.
    telemetry
        Told what each batch did, each change published and each retry (for metrics).
    """

    def __init__(
        self,
        store: CustomerStore,
        publisher: Publisher,
        model: Callable[[], SegmentModel | None],
        clock: Clock = Clock.EVENT,
        retry_delay_s: float = 0.1,
        rule: ProductRule = DEFAULT_RULE,
        limits: Limits = DEFAULT_LIMITS,
        wall_clock: Callable[[], float] = time.time,
        *,
        dlq_max_payload: int = 64 * 1024,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.telemetry: Telemetry = telemetry or NoTelemetry()
        self.store = store
        self.publisher = publisher
        self.model = model
        self.clock = clock
        self.retry_delay_s = retry_delay_s
        self.rule = rule
        self.limits = limits
        self.wall_clock = wall_clock
        #: The store epoch this processor works in (None: not checked; see :meth:`open_epoch`).
        self.epoch: int | None = None
        #: Seconds between two looks for a rebuilt store while the store is lost.
        self.lost_poll_s = 2.0
        #: Reads a partition's messages again, ``(topic:partition, first, end)``: how orders
        #: whose writes the store lost come back (None: they cannot).
        self.read_again: Callable[[str, int, int], Awaitable[list[RawMessage]]] | None = None
        #: Events per batch when orders are read again.
        self.catch_up_batch = 500
        # The next offset this processor stored per partition, to notice a store that lost it.
        self._written: dict[str, int] = {}
        self.dlq_max_payload = dlq_max_payload
        self._publish_retries = 0
        # Orders, decay and re-scoring read-then-write a customer's segment: one at a time.
        self._scoring = asyncio.Lock()

    async def handle(self, messages: Sequence[RawMessage]) -> BatchOutcome:
        """Process one batch. Returns only when its effects are stored and published."""
        return await self.process(self.decode(messages))

    def decode(self, messages: Sequence[RawMessage]) -> DecodedBatch:
        """Validate a batch and reduce its events to their effects (no I/O).

        The worker decodes the next batch while the previous one waits on Redis and Kafka.
        An event that breaks the schema or the sanity bounds (dated too far after the wall
        clock, a line or an order beyond the limits) becomes a dead letter and moves nothing.
        """
        batch = DecodedBatch(events=len(messages))
        wall_now = self.wall_clock()
        limits, rule = self.limits, self.rule
        watermarks = batch.watermarks
        next_offsets = batch.next_offsets
        for message in messages:
            source = f"{message.topic}:{message.partition}"
            if message.offset >= next_offsets.get(source, 0):
                next_offsets[source] = message.offset + 1
            try:
                event = parse_event(message.value)
                if isinstance(event, ClockEvent):
                    when = event.occurred_at.timestamp()
                    if problem := limits.time_problem(when, wall_now):
                        raise InvalidEvent(problem)
                    batch.clock_times.append(when)
                    continue
                effect = order_effect(event, rule, limits, wall_now)
            except InvalidEvent as exc:
                batch.dead_letters.append(self.dead_letter(message, exc.reason))
                continue
            batch.effects.append(effect)
            batch.sources.append(message)
            partition = str(message.partition)
            if effect.occurred_at > watermarks.get(partition, -math.inf):
                watermarks[partition] = effect.occurred_at
        return batch

    def dead_letter(self, message: RawMessage, reason: str) -> DeadLetter:
        """The dead letter of ``message``, which could not be used for ``reason``.

        Its payload is cut to ``dlq_max_payload`` bytes of JSON, so that it fits the broker.
        """
        return dead_letters.dead_letter(message, reason, self.dlq_max_payload, datetime.now(tz=UTC))

    async def process(self, batch: DecodedBatch) -> BatchOutcome:
        """Store, score and publish a decoded batch; return what it did.

        Bad events go to the dead-letter topic. Infrastructure errors are retried here rather
        than raised: the batch is acknowledged once this returns. In steady state a batch is
        three round trips to the store: apply (which moves the clock and reads the touched
        customers back, with the next offsets the store holds), record the changes with the
        due times, and, once the changes are published, clear their unannounced marks with the
        counters and store the batch's next offsets. A store found behind the offsets this
        processor stored (Redis restarted without its last writes) first gets the orders in
        between again, read from Kafka (:attr:`read_again`).
        """
        async with self._scoring:
            return await self._process(batch)

    async def _process(self, batch: DecodedBatch) -> BatchOutcome:
        """:meth:`process`, with the scoring lock held."""
        started = time.perf_counter()
        effects, letters = batch.effects, list(batch.dead_letters)
        outcome = BatchOutcome(events=batch.events, clock_events=len(batch.clock_times))
        for effect in effects:
            for name, count in (
                ("skipped_non_product_lines", effect.skipped_non_product),
                ("skipped_zero_price_lines", effect.skipped_zero_price),
            ):
                if count:
                    outcome.skipped_lines[name] = outcome.skipped_lines.get(name, 0) + count
        event_time = self.clock is Clock.EVENT
        clock_time = max(batch.clock_times) if batch.clock_times and event_time else None
        watermarks = batch.watermarks if event_time else {}
        announced: list[str] = []
        # Applied under the lock too: a decay step may move a customer at any other time, and
        # scoring must see the state this batch left.
        if effects or clock_time is not None or watermarks:
            result, trips = await self._apply(
                effects, clock_time, watermarks, list(batch.next_offsets)
            )
            outcome.round_trips += trips
            outcome.applied = sum(result.applied)
            outcome.duplicates = result.duplicates
            outcome.conflicts = len(result.conflicts)
            letters.extend(self._refused(batch, result))
            behind = self._behind(result.stored_offsets)
            if behind:
                outcome.caught_up = await self._catch_up(behind)
                # The events read again changed some of these customers: score them as now.
                loaded = await self._retry(self.store.load, [s.customer_id for s in result.states])
                result = replace(result, states=[state for state in loaded if state is not None])
            if effects:
                now = self.wall_clock() if result.clock is None else result.clock
                announced, trips = await self._rescore(
                    result.states, now, "order", published_at=_published_at(batch)
                )
                outcome.changes = len(announced)
                outcome.round_trips += trips
        outcome.dead_letters = len(letters)
        if letters:
            await self.publisher.publish_dead_letters(letters)
            log.warning(
                "sent %d event(s) to the dead-letter topic",
                len(letters),
                extra=outcome.log_fields(),
            )
        outcome.round_trips += 1  # the call below
        outcome.publish_retries, self._publish_retries = self._publish_retries, 0
        await self._retry(
            self.store.mark_announced, announced, outcome.counts(), batch.next_offsets
        )
        self._written.update(batch.next_offsets)
        self.telemetry.batch_processed(
            {
                "applied": outcome.applied,
                "duplicate": outcome.duplicates,
                "dead_lettered": outcome.dead_letters,
                "clock": outcome.clock_events,
            },
            {
                name.removeprefix("skipped_").removesuffix("_lines"): count
                for name, count in outcome.skipped_lines.items()
            },
            time.perf_counter() - started,
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "batch of %d event(s): %d applied, %d duplicate(s), %d dead-lettered, %d change(s)",
                outcome.events,
                outcome.applied,
                outcome.duplicates,
                outcome.dead_letters,
                outcome.changes,
                extra=outcome.log_fields(),
            )
        return outcome

    def _behind(self, stored: dict[str, int | None]) -> dict[str, tuple[int, int]]:
        """Partitions whose stored next offset is below what this processor stored there.

        Redis lost those writes (restarted from files missing their end): the orders between
        the two offsets are read again from Kafka. ``{partition: (stored, written)}``.
        """
        behind = {}
        for name, offset in stored.items():
            written = self._written.get(name)
            if written is not None and (offset is None or offset < written):
                behind[name] = (offset or 0, written)
        return behind

    async def catch_up(self, behind: dict[str, tuple[int, int]]) -> int:
        """Read again and apply the orders of these offset ranges; return how many were read.

        ``behind`` maps ``topic:partition`` to ``(first offset, offset after the last)``. Used
        at start-up for partitions whose committed offset is ahead of the one the store holds.
        """
        async with self._scoring:
            return await self._catch_up(behind)

    async def _catch_up(self, behind: dict[str, tuple[int, int]]) -> int:
        if self.read_again is None:
            log.error("the store lost the writes of %s and nothing can read them again", behind)
            return 0
        read = 0
        for name, (first, end) in behind.items():
            log.warning(
                "the store lost the writes of %s offsets %d..%d: reading them again",
                name,
                first,
                end - 1,
            )
            # Below what is read again now: the batches read back do not count as behind.
            self._written[name] = first
            messages = await self.read_again(name, first, end)
            read += len(messages)
            for start in range(0, len(messages), self.catch_up_batch):
                await self._process(self.decode(messages[start : start + self.catch_up_batch]))
            if len(messages) < end - first:
                log.error(
                    "only %d of the %d orders of %s could be read again (the topic no longer "
                    "holds them)",
                    len(messages),
                    end - first,
                    name,
                )
        return read

    async def _apply(
        self,
        effects: list[OrderEffect],
        clock_time: float | None,
        watermarks: dict[str, float],
        offsets: Sequence[str] = (),
    ) -> tuple[AppliedBatch, int]:
        """Apply a batch in one call; return what it did and the store calls made.

        Should the store refuse the call for what it carries (not for being unreachable),
        the events go one by one, so that only the one that causes it is refused.
        """
        try:
            return await self._apply_in_epoch(effects, clock_time, watermarks, offsets), 1
        except StoreDataError as exc:
            self.telemetry.store_error("refused")
            log.error("the store refused a batch, applying its events one by one: %s", exc)
        result = AppliedBatch([], [], None)
        states: dict[str, CustomerState] = {}
        for index, effect in enumerate(effects):
            try:
                one = await self._apply_in_epoch([effect], None, {}, ())
            except StoreDataError as exc:
                result.rejected[index] = str(exc)
                result.applied.append(False)
                continue
            result.applied.extend(one.applied)
            result.conflicts.update((index, digest) for digest in one.conflicts.values())
            result.rejected.update((index, why) for why in one.rejected.values())
            states.update((state.customer_id, state) for state in one.states)
        result.states.extend(states.values())
        clock = None
        if clock_time is not None or watermarks:
            clock = (await self._apply_in_epoch([], clock_time, watermarks, ())).clock
        return replace(result, clock=clock), len(effects) + 1

    async def _apply_in_epoch(
        self,
        effects: list[OrderEffect],
        clock_time: float | None,
        watermarks: dict[str, float],
        offsets: Sequence[str],
    ) -> AppliedBatch:
        """Apply in the store epoch this processor works in; wait out a lost store."""
        while True:
            try:
                return await self._retry(
                    self.store.apply, effects, clock_time, watermarks, self.epoch, offsets
                )
            except StoreLostError as exc:
                self.telemetry.store_error("lost")
                await self._wait_for_rebuilt_store(exc)

    async def open_epoch(self, consumed_before: bool) -> int:
        """Find the store epoch to work in, writing one for a new store; return it.

        ``consumed_before`` says whether the workers' consumer group has consumed orders
        before. A store without an epoch is new (nothing consumed), from a release that kept
        none (it holds state: it gets epoch 0, so its sequence numbers carry on), or lost
        (orders were consumed but nothing is left): then this waits until the store is rebuilt
        (``rfm bootstrap`` writes a new epoch), logging why.
        """
        epoch = await self._retry(self.store.epoch)
        if epoch is None and await self._retry(self.store.has_state):
            epoch = await self._retry(self.store.create_epoch, 0)
        elif epoch is None and not consumed_before:
            epoch = await self._retry(self.store.create_epoch, new_epoch(self.wall_clock()))
        if epoch is None:
            await self._wait_for_rebuilt_store(
                StoreLostError("orders were consumed, but the store holds nothing of them")
            )
        else:
            self.epoch = epoch
        assert self.epoch is not None
        return self.epoch

    async def _wait_for_rebuilt_store(self, exc: StoreLostError) -> None:
        """Wait until the store has a new epoch (a rebuilt store), then work in that one."""
        lost = self.epoch
        log.error(
            "the state store was lost (%s): no order is taken until it is rebuilt with "
            "`rfm bootstrap --input FILE` (or the consumer group is reset to the beginning)",
            exc,
        )
        waited = 0.0
        while True:
            epoch = await self._retry(self.store.epoch)
            if epoch is not None and epoch != lost:
                log.warning("the state store was rebuilt (epoch %d): taking orders again", epoch)
                self.epoch = epoch
                return
            await asyncio.sleep(self.lost_poll_s)
            waited += self.lost_poll_s
            if waited >= 60:
                log.error("still waiting for the state store to be rebuilt")
                waited = 0.0

    def _refused(self, batch: DecodedBatch, result: AppliedBatch) -> list[DeadLetter]:
        """Dead letters for the events the store did not apply: conflicts and refusals."""
        letters = []
        for index, stored in sorted(result.conflicts.items()):
            effect = batch.effects[index]
            letters.append(
                self.dead_letter(
                    batch.sources[index],
                    f"conflict: event {effect.event_id} was applied with content digest "
                    f"{stored}; this one has {effect.digest}",
                )
            )
        for index, why in sorted(result.rejected.items()):
            letters.append(
                self.dead_letter(batch.sources[index], f"the store refused the event: {why}")
            )
        return letters

    def processed_offsets(self) -> dict[str, int]:
        """The next offset processed (stored) per ``topic:partition`` by this processor."""
        return dict(self._written)

    def count_publish_retry(self) -> None:
        """Count a publish the publisher retried; the next batch adds it to the counters."""
        self._publish_retries += 1
        self.telemetry.broker_error("publish")
        self.telemetry.publish_retry()

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
                # Scored customers get their next due time; the rest have none any more.
                announced, _ = await self._rescore(states, now, "recency", forget=due)
                await self._retry(
                    self.store.mark_announced, announced, {"segment_changes": len(announced)}
                )
            rescored += len(states)
        return rescored

    async def rescore_all(
        self,
        reason: Reason = "retrain",
        batch_size: int = 2000,
        *,
        cursor: str = "0",
        progress: Callable[[str, int, int], Awaitable[bool]] | None = None,
    ) -> int:
        """Re-score every customer; return how many changed segment.

        Run after a model switch (``retrain``) and after the clock was set (``recency``).
        Every customer gets their next due time anew, or none. ``cursor`` starts from where
        an earlier run stopped (a cursor ``progress`` was given; ``"0"``: the beginning).
        ``progress``, if given, is awaited after each batch is re-scored and its changes
        published, with the cursor to go on from (``"0"`` after the last batch), the customers
        of the batch and how many changed; returning False stops the run there.
        """
        if self.model() is None:
            return 0
        now = await self.current_time()
        if now is None:
            return 0
        changed = 0
        async for after, batch in self.store.scan_from(cursor, batch_size):
            # A state changed by an order since the scan read it fails the compare-and-set
            # when recorded; that order's own scoring already used the new model.
            announced: list[str] = []
            if batch:
                async with self._scoring:
                    announced, _ = await self._rescore(
                        [state for state in batch if state.has_rfm],
                        now,
                        reason,
                        forget=[state.customer_id for state in batch],
                    )
                    await self._retry(
                        self.store.mark_announced, announced, {"segment_changes": len(announced)}
                    )
            changed += len(announced)
            if progress is not None and not await progress(after, len(batch), len(announced)):
                break
        return changed

    async def current_time(self) -> float | None:
        """Now on the configured clock (None before the first event in event-time mode)."""
        if self.clock is Clock.WALL:
            return self.wall_clock()
        return await self._retry(self.store.clock)

    async def _rescore(
        self,
        states: list[CustomerState],
        now: float,
        reason: Reason,
        forget: Sequence[str] = (),
        published_at: Mapping[str, float] | None = None,
    ) -> tuple[list[str], int]:
        """Record, then publish, the segment changes of ``states`` at ``now``; schedule decay.

        Returns the customers whose change was published (the caller clears their
        unannounced marks) and the store calls made. A change is published only once it is
        recorded (compare-and-set on the sequence), so what consumers see is what the store
        holds. A recorded change stays marked unannounced until the caller clears the mark; a
        crash in between leaves it, and the next scoring of that customer (a redelivered order,
        the decay step, a re-score) publishes it again, with the same sequence number, so
        consumers can drop the repeat. Customers in ``forget`` that get no due time are
        unscheduled. ``published_at`` holds, per customer, when the order that moved them was
        published to Kafka (epoch seconds), for the change latency reported.
        """
        model = self.model()
        if model is None:
            return [], 0
        trips = await self._announce_pending([state for state in states if state.unannounced])
        changes, due = score(states, model, now, reason, self.epoch or 0)
        messages = [ChangeMessage.of(change) for change in changes]
        updates = [
            SegmentUpdate(
                customer_id=change.customer_id,
                segment=change.segment,
                previous_segment=change.previous_segment,
                since=now,
                model_version=change.model_version,
                sequence=change.sequence,
                history_entry=message.payload,
                rfm=(change.rfm.recency_days, change.rfm.frequency, change.rfm.monetary),
                reason=change.reason,
            )
            for message in messages
            for change in (message.change,)
        ]
        schedule: dict[str, float | None] = dict.fromkeys(forget)
        schedule.update(
            (state.customer_id, when)
            for state, when in zip(states, due, strict=True)
            if when is not None
        )
        stored = await self._retry(self.store.record_each, updates, schedule)
        # A change not stored lost a race with another writer, who publishes its own.
        published = [message for message, ok in zip(messages, stored, strict=True) if ok]
        if published:
            await self.publisher.publish_changes(published)
            done = self.wall_clock()
            self.telemetry.changes_published(
                reason,
                [message.change.segment for message in published],
                [
                    done - published_at[message.change.customer_id]
                    for message in published
                    if published_at and message.change.customer_id in published_at
                ],
            )
        # Nothing to record and nobody to schedule sends nothing.
        sent = 1 if updates or schedule else 0
        return [message.change.customer_id for message in published], trips + sent

    async def _announce_pending(self, states: list[CustomerState]) -> int:
        """Publish the recorded-but-unpublished last change of these customers.

        Returns the store calls made (none when nothing is pending, as in steady state).
        """
        if not states:
            return 0
        ids = [state.customer_id for state in states]
        entries = await self._retry(self.store.last_changes, ids)
        messages = [
            ChangeMessage(SegmentChange.model_validate_json(entry), entry)
            for entry in entries
            if entry
        ]
        if messages:
            await self.publisher.publish_changes(messages)
            log.info("published %d change(s) recorded before a restart", len(messages))
        await self._retry(self.store.mark_announced, ids)
        return 2

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

    async def _retry(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        delay = self.retry_delay_s
        while True:
            try:
                return await call(*args)
            except StoreUnavailableError as exc:
                self.telemetry.store_error("unavailable")
                log.error("store unavailable, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self.telemetry.store_retry()


def _published_at(batch: DecodedBatch) -> dict[str, float]:
    """Per customer of the batch, when their first order in it was published to Kafka.

    The first: the change published for the batch is the one that order waited for longest.
    """
    published: dict[str, float] = {}
    for effect, source in zip(batch.effects, batch.sources, strict=True):
        if source.timestamp is not None:
            customer = effect.customer_id
            published[customer] = min(published.get(customer, source.timestamp), source.timestamp)
    return published
