"""Follow the segment-changes topic: ``rfm watch``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from stream_app.core.events import SegmentChange
from stream_app.exceptions import BrokerUnavailableError
from stream_app.kafka.admin import ensure_topics
from stream_app.kafka.connection import consumer, started
from stream_app.settings import Settings

__all__ = ["follow_changes"]


async def follow_changes(
    settings: Settings,
    on_change: Callable[[SegmentChange], None],
    *,
    from_beginning: bool = False,
    limit: int | None = None,
    idle_timeout_s: float | None = None,
) -> int:
    """Call ``on_change`` for each segment change until stopped; return how many were seen.

    Stops after ``limit`` changes, or after ``idle_timeout_s`` seconds without one.
    Each watcher reads every partition on its own (no consumer group), so several can run.
    """
    await ensure_topics(settings, [settings.changes_topic], settings.topic_partitions)
    reader = consumer(
        settings,
        settings.changes_topic,
        group_id=None,
        client_id=f"rfm-watch-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    seen = 0
    try:
        await started(settings, reader)
        quiet_since = time.monotonic()
        while limit is None or seen < limit:
            batches = await reader.getmany(timeout_ms=500)
            if not batches:
                if idle_timeout_s is not None and time.monotonic() - quiet_since > idle_timeout_s:
                    break
                continue
            quiet_since = time.monotonic()
            for messages in batches.values():
                for message in messages:
                    try:
                        change = SegmentChange.model_validate_json(message.value or b"")
                    except ValidationError:
                        continue  # not ours; a watcher shows what it understands
                    on_change(change)
                    seen += 1
                    if limit is not None and seen >= limit:
                        return seen
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot read {settings.changes_topic}: {exc}") from exc
    finally:
        await reader.stop()
    return seen
