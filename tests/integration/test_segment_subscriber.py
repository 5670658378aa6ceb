"""The example subscriber through a real broker: its view is the one the sequence rule gives.

Segment changes are published here directly (no worker), with repeats and out-of-order
ones, as a restarted worker and two workers racing would publish them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from examples.segment_subscriber import (
    Counts,
    KafkaConfig,
    MemoryView,
    SegmentView,
    SqliteView,
    follow,
    make_consumer,
)
from stream_app.core.events import RFMValues, SegmentChange
from stream_app.kafka.admin import stream_producer
from stream_app.settings import Settings
from tests.integration.conftest import UniqueNames
from tests.integration.streaming import last_changes

T0 = datetime(2011, 12, 1, tzinfo=UTC)

#: (customer, sequence, segment) in the order published.
FIRST = [
    ("c1", 1, "new"),
    ("c1", 2, "promising"),
    ("c1", 3, "loyal"),
    ("c1", 3, "loyal"),  # repeated after a restart
    ("c2", 2, "at_risk"),
    ("c2", 1, "promising"),  # late, from another worker
    ("c2", 2, "at_risk"),
    ("c3", 3, "champions"),
    ("c3", 1, "new"),
    ("c3", 2, "loyal"),
    ("c4", 1, "new"),
]
#: Published after the first run of a subscriber.
SECOND = [
    ("c2", 3, "hibernating"),
    ("c1", 2, "promising"),  # late again
    ("c5", 1, "new"),
]


def _change(customer: str, sequence: int, segment: str) -> SegmentChange:
    return SegmentChange(
        customer_id=customer,
        previous_segment=None if sequence == 1 else "before",
        segment=segment,
        reason="order",
        rfm=RFMValues(recency_days=sequence, frequency=sequence, monetary=10.0 * sequence),
        model_version="v1",
        occurred_at=T0 + timedelta(days=sequence),
        sequence=sequence,
        driver=None if sequence == 1 else "frequency",
    )


def _publish(settings: Settings, changes: list[tuple[str, int, str]]) -> None:
    async def run() -> None:
        async with stream_producer(settings) as producer:
            for customer, sequence, segment in changes:
                value = _change(customer, sequence, segment).model_dump_json().encode()
                await producer.send_and_wait(settings.changes_topic, value, key=customer.encode())

    asyncio.run(run())


def _subscribe(settings: Settings, view: SegmentView, group: str) -> Counts:
    """Run the example's consumer, configured as the service is, until the topic is read."""
    config = KafkaConfig.from_env(settings.to_env())

    async def run() -> Counts:
        # A short session: the local broker makes a joining member wait about half of it.
        consumer = make_consumer(config, group, session_timeout_ms=3000, heartbeat_interval_ms=1000)
        await consumer.start()
        try:
            return await follow(consumer, view, idle_exit_s=1.0)
        finally:
            await consumer.stop()

    return asyncio.run(run())


def _segments(view: SegmentView) -> dict[str, tuple[str, int]]:
    return {c: (change.segment, change.sequence) for c, change in view.current().items()}


def _expected(settings: Settings) -> dict[str, tuple[str, int]]:
    return {c: (change.segment, change.sequence) for c, change in last_changes(settings).items()}


def test_memory_view_equals_the_highest_sequences(
    stack_settings: Settings, unique_names: UniqueNames
) -> None:
    _publish(stack_settings, FIRST)
    view = MemoryView()
    counts = _subscribe(stack_settings, view, unique_names.topic("subscriber"))
    assert _segments(view) == {
        "c1": ("loyal", 3),
        "c2": ("at_risk", 2),
        "c3": ("champions", 3),
        "c4": ("new", 1),
    }
    assert _segments(view) == _expected(stack_settings)
    # Kept: c1 three times, c2 and c3 once each (later ones are lower), c4 once.
    assert (counts.kept, counts.dropped, counts.invalid) == (6, 5, 0)


def test_sqlite_view_resumes_from_the_group_offsets(
    stack_settings: Settings, unique_names: UniqueNames, tmp_path: Path
) -> None:
    group = unique_names.topic("subscriber")
    _publish(stack_settings, FIRST)
    view = SqliteView(tmp_path / "segments.db")
    _subscribe(stack_settings, view, group)
    view.close()

    _publish(stack_settings, SECOND)
    view = SqliteView(tmp_path / "segments.db")
    counts = _subscribe(stack_settings, view, group)
    # Only what came after the committed offsets is read again.
    assert (counts.kept, counts.dropped) == (2, 1)
    assert _segments(view) == {
        "c1": ("loyal", 3),
        "c2": ("hibernating", 3),
        "c3": ("champions", 3),
        "c4": ("new", 1),
        "c5": ("new", 1),
    }
    assert _segments(view) == _expected(stack_settings)
    view.close()
