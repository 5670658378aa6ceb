"""The worker's batch step with an in-memory store, publisher and model: no broker, no Redis."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from stream_app.core.events import SegmentChange
from stream_app.core.scoring import SegmentModel
from stream_app.exceptions import StoreUnavailableError
from stream_app.service.ports import ChangeMessage, SegmentUpdate
from stream_app.service.processor import BatchProcessor
from stream_app.settings import Clock
from stream_app.store.memory import MemoryStore
from tests.fakes import FrequencyModel, MemoryPublisher, messages, order_event

DAY = 86_400


class FlakyStore(MemoryStore):
    """A memory store whose ``record_each`` fails the first ``failures`` times."""

    def __init__(self, failures: int = 1, error: Exception | None = None) -> None:
        super().__init__()
        self.failures = failures
        self.error = error or StoreUnavailableError("redis went away")
        self.record_calls = 0

    async def record_each(
        self, updates: Sequence[SegmentUpdate], due: Mapping[str, float | None] | None = None
    ) -> list[bool]:
        self.record_calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return await super().record_each(updates, due)


def when(day: int, hour: int = 10) -> datetime:
    return datetime(2011, 6, day, hour, tzinfo=UTC)


def order(
    event_id: str,
    customer: str,
    day: int,
    *,
    kind: str = "purchase",
    hour: int = 10,
    lines: list[dict[str, Any]] | None = None,
) -> bytes:
    return order_event(event_id, customer, when(day, hour), kind=kind, lines=lines)


batch = messages


def make(
    store: MemoryStore | None = None, model: SegmentModel | None = None
) -> tuple[BatchProcessor, MemoryStore, MemoryPublisher]:
    store = store if store is not None else MemoryStore()
    publisher = MemoryPublisher()
    chosen = model if model is not None else FrequencyModel()
    processor = BatchProcessor(
        store, publisher, model=lambda: chosen, clock=Clock.EVENT, retry_delay_s=0.001
    )
    return processor, store, publisher


async def test_valid_events_apply_and_publish_first_segments() -> None:
    processor, store, publisher = make()
    outcome = await processor.handle(batch(order("1", "a", 1), order("2", "b", 2)))
    assert (outcome.events, outcome.applied, outcome.duplicates, outcome.changes) == (2, 2, 0, 2)
    assert {(c.customer_id, c.previous_segment, c.segment) for c in publisher.changes} == {
        ("a", None, "new"),
        ("b", None, "new"),
    }
    state = await store.get("a")
    assert state is not None
    assert (state.frequency, state.monetary, state.segment) == (1, 10.0, "new")


async def test_invalid_messages_become_dead_letters_and_the_rest_applies() -> None:
    processor, store, publisher = make()
    messages = batch(
        order("1", "a", 1),
        b"not json",
        order("2", "b", 1, lines=[{"sku": "85123A", "quantity": 0, "unit_price": 1.0}]),
        order("3", "c", 2),
        first_offset=40,
    )
    outcome = await processor.handle(messages)
    assert (outcome.events, outcome.applied, outcome.dead_letters) == (4, 2, 2)
    assert [letter.offset for letter in publisher.letters] == [41, 42]
    bad_json, bad_quantity = publisher.letters
    assert (bad_json.topic, bad_json.partition) == ("orders", 3)
    assert bad_json.reason.startswith("not JSON")
    assert bad_json.payload == "not json"
    assert bad_json.key == "k"
    assert "lines.0.quantity" in bad_quantity.reason
    assert bad_quantity.key == "b"
    assert json.loads(bad_quantity.payload)["event_id"] == "2"
    assert bad_quantity.failed_at.tzinfo is not None
    assert await store.get("a") is not None
    assert await store.get("b") is None
    assert await store.get("c") is not None
    counters = await store.counters()
    assert (counters["events"], counters["applied"], counters["dead_letters"]) == (4, 2, 2)


async def test_only_bad_messages_publish_no_change() -> None:
    processor, store, publisher = make()
    outcome = await processor.handle(batch(b"[]", b"{}"))
    assert (outcome.dead_letters, outcome.applied, outcome.changes) == (2, 0, 0)
    assert publisher.changes == []
    assert publisher.calls == ["dead_letters"]
    assert await store.clock() is None


async def test_duplicates_are_counted_and_change_nothing() -> None:
    processor, store, publisher = make()
    first = await processor.handle(batch(order("1", "a", 1), order("1", "a", 1)))
    assert (first.applied, first.duplicates) == (1, 1)
    again = await processor.handle(batch(order("1", "a", 1)))
    assert (again.applied, again.duplicates, again.changes) == (0, 1, 0)
    state = await store.get("a")
    assert state is not None
    assert (state.frequency, state.monetary) == (1, 10.0)
    counters = await store.counters()
    assert (counters["events"], counters["applied"], counters["duplicates"]) == (3, 1, 2)
    assert len(publisher.changes) == 1


async def test_skipped_lines_are_counted() -> None:
    processor, store, _ = make()
    lines = [
        {"sku": "85123A", "quantity": 1, "unit_price": 3.0},
        {"sku": "POST", "quantity": 1, "unit_price": 18.0},
        {"sku": "BANK CHARGES", "quantity": 1, "unit_price": 15.0},
        {"sku": "22423", "quantity": 4, "unit_price": 0.0},
    ]
    outcome = await processor.handle(batch(order("1", "a", 1, lines=lines)))
    assert outcome.skipped_lines == {
        "skipped_non_product_lines": 2,
        "skipped_zero_price_lines": 1,
    }
    counters = await store.counters()
    assert counters["skipped_non_product_lines"] == 2
    assert counters["skipped_zero_price_lines"] == 1
    state = await store.get("a")
    assert state is not None
    assert state.monetary == 3.0


async def test_event_clock_moves_to_the_latest_event_and_sets_recency() -> None:
    processor, store, publisher = make()
    await processor.handle(batch(order("1", "a", 1, hour=9), order("2", "b", 11, hour=8)))
    assert await store.clock() == when(11, 8).timestamp()
    by_customer = {change.customer_id: change for change in publisher.changes}
    # a bought on day 1 at 09:00; now is day 11 at 08:00: 9 whole days.
    assert by_customer["a"].rfm.recency_days == 9
    assert by_customer["b"].rfm.recency_days == 0
    assert by_customer["a"].occurred_at == when(11, 8)


async def test_event_clock_never_moves_back() -> None:
    processor, store, publisher = make()
    await processor.handle(batch(order("1", "a", 20)))
    await processor.handle(batch(order("2", "b", 5)))
    assert await store.clock() == when(20).timestamp()
    [change_b] = [change for change in publisher.changes if change.customer_id == "b"]
    assert change_b.rfm.recency_days == 15
    assert change_b.occurred_at == when(20)


async def test_changes_are_recorded_before_they_are_published() -> None:
    store = MemoryStore()
    seen_at_publish: list[str | None] = []

    class CheckingPublisher(MemoryPublisher):
        async def publish_changes(self, changes: Sequence[ChangeMessage]) -> None:
            for message in changes:
                state = await store.get(message.change.customer_id)
                assert state is not None
                seen_at_publish.append(state.segment)
            await super().publish_changes(changes)

    publisher = CheckingPublisher()
    processor = BatchProcessor(store, publisher, model=FrequencyModel, retry_delay_s=0.001)
    await processor.handle(batch(order("1", "a", 1)))
    await processor.handle(batch(order("2", "a", 2)))
    # What consumers are told is what the store already holds.
    assert seen_at_publish == ["new", "loyal"]
    state = await store.get("a")
    assert state is not None
    assert (state.segment, state.sequence, state.model_version) == ("loyal", 2, "v-freq")
    assert not state.unannounced
    assert state.segment_since == when(2).timestamp()
    history = [SegmentChange.model_validate_json(entry) for entry in await store.history("a")]
    assert history == list(reversed(publisher.changes))
    assert [(c.previous_segment, c.segment, c.sequence) for c in publisher.changes] == [
        (None, "new", 1),
        ("new", "loyal", 2),
    ]


async def test_redelivered_batch_publishes_nothing_once_recorded() -> None:
    processor, _, publisher = make()
    messages = batch(order("1", "a", 1), order("2", "a", 3), order("3", "b", 2))
    await processor.handle(messages)
    published = list(publisher.changes)
    assert len(published) == 2
    outcome = await processor.handle(messages)
    assert (outcome.applied, outcome.duplicates, outcome.changes) == (0, 3, 0)
    assert publisher.changes == published


async def test_store_failure_while_recording_is_retried() -> None:
    store = FlakyStore(failures=2)
    processor, _, publisher = make(store=store)
    outcome = await processor.handle(batch(order("1", "a", 1)))
    assert outcome.changes == 1
    assert store.record_calls == 3
    # Retrying the record does not publish again.
    assert len(publisher.changes) == 1
    state = await store.get("a")
    assert state is not None
    assert (state.segment, state.sequence) == ("new", 1)


async def test_change_recorded_but_not_published_is_published_on_redelivery() -> None:
    # A crash between recording and publishing: the batch is not acknowledged.
    class CrashingPublisher(MemoryPublisher):
        crashes = 1

        async def publish_changes(self, changes: Sequence[ChangeMessage]) -> None:
            if self.crashes:
                self.crashes -= 1
                raise RuntimeError("worker killed")
            await super().publish_changes(changes)

    store = MemoryStore()
    publisher = CrashingPublisher()
    processor = BatchProcessor(store, publisher, model=FrequencyModel, retry_delay_s=0.001)
    messages = batch(order("1", "a", 1))
    with pytest.raises(RuntimeError, match="worker killed"):
        await processor.handle(messages)
    assert publisher.changes == []
    state = await store.get("a")
    assert state is not None
    assert (state.segment, state.sequence, state.unannounced) == ("new", 1, True)

    outcome = await processor.handle(messages)
    assert (outcome.applied, outcome.duplicates, outcome.changes) == (0, 1, 0)
    [change] = publisher.changes
    assert (change.customer_id, change.previous_segment, change.segment, change.sequence) == (
        "a",
        None,
        "new",
        1,
    )
    state = await store.get("a")
    assert state is not None and not state.unannounced

    await processor.handle(messages)
    assert len(publisher.changes) == 1


async def test_pending_changes_are_published_at_start_up() -> None:
    store = MemoryStore()
    crashing = BatchProcessor(store, MemoryPublisher(), model=FrequencyModel)
    await crashing.handle(batch(order("1", "a", 1)))
    # As if the worker died after recording: mark the change unannounced again.
    state = await store.get("a")
    assert state is not None
    await store.put([replace(state, unannounced=True)])

    publisher = MemoryPublisher()
    restarted = BatchProcessor(store, publisher, model=FrequencyModel)
    assert await restarted.announce_pending() == 1
    assert [c.segment for c in publisher.changes] == ["new"]
    assert await restarted.announce_pending() == 0


async def test_without_a_model_state_is_kept_and_nothing_is_published() -> None:
    store = MemoryStore()
    publisher = MemoryPublisher()
    processor = BatchProcessor(store, publisher, model=lambda: None, retry_delay_s=0.001)
    outcome = await processor.handle(batch(order("1", "a", 1), order("2", "a", 2)))
    assert (outcome.applied, outcome.changes) == (2, 0)
    assert publisher.changes == []
    state = await store.get("a")
    assert state is not None
    assert (state.frequency, state.monetary, state.segment) == (2, 20.0, None)
    assert await store.clock() == when(2).timestamp()
    counters = await store.counters()
    assert counters.get("segment_changes", 0) == 0


async def test_model_arriving_later_scores_on_the_next_event() -> None:
    current: list[SegmentModel | None] = [None]
    store = MemoryStore()
    publisher = MemoryPublisher()
    processor = BatchProcessor(store, publisher, model=lambda: current[0], retry_delay_s=0.001)
    await processor.handle(batch(order("1", "a", 1)))
    assert publisher.changes == []
    current[0] = FrequencyModel()
    await processor.handle(batch(order("2", "a", 2)))
    [change] = publisher.changes
    assert (change.previous_segment, change.segment, change.rfm.frequency) == (None, "loyal", 2)


async def test_wall_clock_uses_the_machine_time() -> None:
    store = MemoryStore()
    publisher = MemoryPublisher()
    processor = BatchProcessor(
        store, publisher, model=FrequencyModel, clock=Clock.WALL, retry_delay_s=0.001
    )
    await processor.handle(batch(order("1", "a", 1)))
    [change] = publisher.changes
    expected = (datetime.now(tz=UTC) - when(1)).days
    assert change.rfm.recency_days in (expected - 1, expected)
    # The event clock is left alone.
    assert await store.clock() is None


async def test_a_batch_is_three_store_calls_and_counts_them() -> None:
    processor, store, publisher = make()
    first = await processor.handle(batch(order("1", "a", 1), order("2", "b", 1)))
    assert (first.changes, first.round_trips) == (2, 3)  # apply, record, mark announced
    quiet = await processor.handle(
        batch(order("3", "c", 1, lines=[{"sku": "POST", "quantity": 1, "unit_price": 5.0}]))
    )
    assert (quiet.changes, quiet.round_trips) == (0, 2)  # no RFM: nothing to record
    clock_only = await processor.handle(
        batch(json.dumps({"kind": "clock", "occurred_at": when(3).isoformat()}).encode())
    )
    assert clock_only.round_trips == 2  # apply (the clock), counters
    counters = await store.counters()
    assert counters["batches"] == 3
    assert counters["batch_round_trips"] == 3 + 2 + 2
    assert counters["clock_events"] == 1
    assert len(publisher.payloads) == 2


async def test_each_change_is_serialised_once_for_history_and_topic() -> None:
    processor, store, publisher = make()
    await processor.handle(batch(order("1", "a", 1)))
    assert publisher.payloads == await store.history("a")
    assert [
        SegmentChange.model_validate_json(text) for text in publisher.payloads
    ] == publisher.changes


async def test_a_batch_with_nothing_to_record_counts_two_round_trips() -> None:
    processor, _, _ = make()
    # A return from a customer the store has never seen: no RFM, nothing to score or schedule.
    outcome = await processor.handle(batch(order("C1", "z", 1, kind="return")))
    assert (outcome.applied, outcome.changes, outcome.round_trips) == (1, 0, 2)
