"""Publish segment changes and dead letters through the faust app's producer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import faust

from stream_app.core.events import DeadLetter
from stream_app.service.ports import ChangeMessage

__all__ = ["FaustPublisher"]


class FaustPublisher:
    """Publish through the faust app's producer and wait for the broker's acknowledgement.

    Messages go straight to the producer (already encoded JSON bytes): faust's per-message
    topic machinery would cost more than the producer itself. Each topic is created, if
    missing, before the first message goes to it.
    """

    def __init__(self, app: faust.App, changes: Any, dead_letters: Any) -> None:
        self.app = app
        self.changes = changes
        self.dead_letters = dead_letters
        self._declared: set[str] = set()

    async def publish_changes(self, changes: Sequence[ChangeMessage]) -> None:
        # Serialised once, when recorded: the history entry and the message are the same text.
        await self._send(
            self.changes, [(message.change.customer_id, message.payload) for message in changes]
        )

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        await self._send(
            self.dead_letters, [(letter.key, letter.model_dump_json()) for letter in letters]
        )

    async def _send(self, topic: Any, messages: Sequence[tuple[str | None, str]]) -> None:
        if not messages:
            return
        name = topic.get_topic_name()
        if name not in self._declared:
            # Once per topic and process: faust's declare asks the broker to create the topic
            # every time it is called (an admin request per batch, and a log line).
            await topic.maybe_declare()
            self._declared.add(name)
        send = self.app.producer.send
        # Send all, then wait for every acknowledgement (the producer batches meanwhile).
        futures = [
            await send(
                name,
                key.encode() if key else None,
                payload.encode(),
                None,  # partition: by key
                None,  # timestamp: now
                None,  # headers
            )
            for key, payload in messages
        ]
        await asyncio.gather(*futures)
