"""The live feed of segment changes: one consumer per server process, fanned out.

The consumer reads the changes topic from its end, in no consumer group (it commits nothing
and takes no partition from anyone), and hands each change's JSON to every connected client's
queue. A client too slow to keep up loses its oldest changes, not the others' speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from stream_app.exceptions import BrokerUnavailableError
from stream_app.kafka import connection
from stream_app.settings import Settings

__all__ = ["QUEUE_SIZE", "ChangeFeed"]

log = logging.getLogger(__name__)

#: Changes held for one client before its oldest are dropped.
QUEUE_SIZE = 1000

#: Seconds between looks for the changes topic's partitions (it may not exist yet).
_RETRY_S = 2.0


class ChangeFeed:
    """Segment changes published from now on, for any number of clients.

    The consumer starts with the first client and keeps running until :meth:`close`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._queues: set[asyncio.Queue[str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._positioned = asyncio.Event()

    @contextlib.asynccontextmanager
    async def subscribe(self, wait_s: float = 10.0) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue of the changes published after the feed reached the topic's end.

        Waits (up to ``wait_s``) until the consumer is at the end of the topic, so that a
        change published once this returns is delivered.
        """
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="change-feed")
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._positioned.wait(), wait_s)
            yield queue
        finally:
            self._queues.discard(queue)

    @property
    def clients(self) -> int:
        """Clients connected now."""
        return len(self._queues)

    async def close(self) -> None:
        """Stop the consumer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _hand_out(self, payload: str) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()  # the slow client loses its oldest change
            queue.put_nowait(payload)

    async def _run(self) -> None:
        topic = self.settings.changes_topic
        while True:
            consumer = connection.consumer(self.settings, group_id=None, enable_auto_commit=False)
            try:
                await connection.started(self.settings, consumer)
                await self._follow(consumer, topic)
            except (BrokerUnavailableError, KafkaError) as exc:
                log.warning("change feed: cannot read %s (%s); trying again", topic, exc)
            finally:
                with contextlib.suppress(KafkaError):
                    await consumer.stop()
            self._positioned.clear()
            await asyncio.sleep(_RETRY_S)

    async def _follow(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        assigned: set[int] = set()
        while True:
            numbers = consumer.partitions_for_topic(topic) or set()
            if not numbers:
                await consumer._client.force_metadata_update()
                numbers = consumer.partitions_for_topic(topic) or set()
            if numbers - assigned:
                new = [TopicPartition(topic, n) for n in sorted(numbers - assigned)]
                consumer.assign([TopicPartition(topic, n) for n in sorted(numbers)])
                await consumer.seek_to_end(*new)
                for tp in new:
                    await consumer.position(tp)  # resolve the end now, not at the next fetch
                assigned = set(numbers)
            if assigned:
                self._positioned.set()
            else:
                await asyncio.sleep(_RETRY_S)
                continue
            batches = await consumer.getmany(timeout_ms=1000)
            for messages in batches.values():
                for message in messages:
                    if message.value:
                        self._hand_out(message.value.decode("utf-8", errors="replace"))
