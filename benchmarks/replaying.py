"""Feeding a replay to the worker's batch processor without a broker, for the benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from model_training.model.artifact import LoadedModel
from stream_app.core.events import DeadLetter
from stream_app.service.ports import ChangeMessage, RawMessage
from stream_app.service.processor import BatchProcessor
from stream_app.settings import Settings
from stream_app.store.redis_store import RedisStore

#: The worker's batch size.
BATCH = Settings().batch_size


class NoPublisher:
    """Publishes nothing: the benchmarks measure the state, not the broker."""

    async def publish_changes(self, changes: Sequence[ChangeMessage]) -> None:
        return None

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        return None


async def feed(
    store: RedisStore,
    events: list[tuple[bytes, bytes]],
    model: LoadedModel | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Hand ``events`` to a :class:`BatchProcessor` on ``store`` in the worker's batches,
    scoring with ``model`` (None: the state only); ``on_batch`` gets the events fed so far."""
    processor = BatchProcessor(store, NoPublisher(), lambda: model)
    for first in range(0, len(events), BATCH):
        block = events[first : first + BATCH]
        await processor.handle(
            [RawMessage(key, value, "orders", 0, first + n) for n, (key, value) in enumerate(block)]
        )
        if on_batch is not None:
            on_batch(first + len(block))
