"""Publish segment changes and dead letters, retrying until the broker has them.

:class:`FaustPublisher` publishes through the worker's faust app; :class:`ProducerPublisher`
through a plain aiokafka producer, for command-line tools that have no faust app. Both wait
for the broker's acknowledgement and share the retrying of :class:`RetryingPublisher`: a
publish that fails is retried with back-off, forever, so the stream pauses while the broker is
away and goes on when it is back (a change must not be lost, and a batch is acknowledged only
after its publishes succeed). A dead letter the broker finds too large is cut smaller and sent
again; a segment change too large is logged as an error on every attempt, since only a change
of the broker's limits can let it through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from faust.exceptions import ProducerSendError

from stream_app.core.events import DeadLetter
from stream_app.service.dead_letters import encoded_size, shrink
from stream_app.service.ports import ChangeMessage

__all__ = [
    "MAX_RETRY_DELAY_S",
    "RETRIED_ERRORS",
    "FaustPublisher",
    "ProducerPublisher",
    "RetryingPublisher",
    "is_too_large",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The longest pause between two attempts (the first is ``retry_delay_s``, doubling).
MAX_RETRY_DELAY_S = 5.0

#: What a failed publish raises when the broker is away or refuses (retried). Anything else
#: is a bug and propagates.
RETRIED_ERRORS = (KafkaError, ProducerSendError, OSError, asyncio.TimeoutError)

#: Errors that say the message can never fit, however often it is sent again.
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)

#: A message as sent: key and value bytes.
Message = tuple[bytes | None, bytes]


def is_too_large(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps, as faust's ProducerSendError does) says too large."""
    return isinstance(error, _TOO_LARGE) or isinstance(error.__cause__, _TOO_LARGE)


class RetryingPublisher:
    """A :class:`~stream_app.service.ports.Publisher` that retries until the broker has it.

    Subclasses say how one batch of messages is sent (:meth:`send`).

    Parameters
    ----------
    changes_topic, dead_letter_topic
        Topic names.
    retry_delay_s
        First pause after a failed attempt; it doubles up to :data:`MAX_RETRY_DELAY_S`.
    on_retry
        Called once per retried attempt (the worker counts them in ``publish_retries``).

    Attributes
    ----------
    publish_retries
        Attempts retried since this publisher was made.
    """

    def __init__(
        self,
        changes_topic: str,
        dead_letter_topic: str,
        *,
        retry_delay_s: float = 0.1,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self.changes_topic = changes_topic
        self.dead_letter_topic = dead_letter_topic
        self.retry_delay_s = retry_delay_s
        self.on_retry = on_retry
        self.publish_retries = 0

    async def send(self, topic: str, messages: Sequence[Message]) -> list[BaseException | None]:
        """Send ``messages`` to ``topic``; per message, the error it failed with or None."""
        raise NotImplementedError

    async def publish_changes(self, changes: Sequence[ChangeMessage]) -> None:
        """Publish segment changes keyed by customer id (returns once the broker has all)."""
        # Serialised once, when recorded: the history entry and the message are the same text.
        await self._deliver(
            self.changes_topic,
            list(changes),
            lambda message: (message.change.customer_id.encode(), message.payload.encode()),
            "segment change",
            smaller=None,
        )

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Publish dead letters keyed like their source message (cut smaller if too large)."""
        await self._deliver(
            self.dead_letter_topic,
            list(letters),
            lambda letter: (
                letter.key.encode() if letter.key else None,
                letter.model_dump_json().encode(),
            ),
            "dead letter",
            smaller=_halved,
        )

    async def _deliver(
        self,
        topic: str,
        items: list[T],
        encode: Callable[[T], Message],
        what: str,
        smaller: Callable[[T], T | None] | None,
    ) -> None:
        """Send ``items`` until every one is acknowledged; only failed ones are sent again."""
        delay = self.retry_delay_s
        while items:
            errors = await self.send(topic, [encode(item) for item in items])
            failed = [(item, error) for item, error in zip(items, errors, strict=True) if error]
            if not failed:
                return
            items = []
            for item, error in failed:
                if is_too_large(error):
                    cut = smaller(item) if smaller is not None else None
                    if cut is not None:
                        log.warning("a %s is too large for %s: sending it cut smaller", what, topic)
                        item = cut
                    else:
                        log.error(
                            "a %s can never be published to %s as it is (%s): raise the "
                            "broker's message size limit (message.max.bytes); retrying",
                            what,
                            topic,
                            error,
                        )
                items.append(item)
            first = failed[0][1]
            log.error(
                "publishing %d %s(s) to %s failed (%s: %s), retrying in %.1fs",
                len(failed),
                what,
                topic,
                type(first).__name__,
                first,
                delay,
            )
            self.publish_retries += 1
            if self.on_retry is not None:
                self.on_retry()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY_S)


def _halved(letter: DeadLetter) -> DeadLetter | None:
    """``letter`` with half its payload's bytes, or None once the payload is empty."""
    size = encoded_size(letter.payload)
    if size <= 2:  # nothing left to cut ("")
        return None
    return shrink(letter, max(2, size // 2))


async def _gathered(
    start: Callable[[bytes | None, bytes], Awaitable[Awaitable[Any]]],
    messages: Sequence[Message],
) -> list[BaseException | None]:
    """Start every send, then wait for every acknowledgement; per message, its error or None.

    ``start(key, value)`` hands a message to the producer and returns its acknowledgement.
    The producer batches messages meanwhile, so a batch costs about one broker round trip.
    """
    futures: list[Awaitable[Any] | BaseException] = []
    for key, value in messages:
        try:
            futures.append(await start(key, value))
        except RETRIED_ERRORS as exc:
            futures.append(exc)
    errors: list[BaseException | None] = []
    for future in futures:
        if isinstance(future, BaseException):
            errors.append(future)
            continue
        try:
            await future
        except RETRIED_ERRORS as exc:
            errors.append(exc)
        else:
            errors.append(None)
    return errors


class FaustPublisher(RetryingPublisher):
    """Publish through the faust app's producer and wait for the broker's acknowledgement.

    Messages go straight to the producer (already encoded JSON bytes): faust's per-message
    topic machinery would cost more than the producer itself. Each topic is created, if
    missing, before the first message goes to it.
    """

    def __init__(
        self,
        app: faust.App,
        changes: Any,
        dead_letters: Any,
        *,
        retry_delay_s: float = 0.1,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            changes.get_topic_name(),
            dead_letters.get_topic_name(),
            retry_delay_s=retry_delay_s,
            on_retry=on_retry,
        )
        self.app = app
        self._topics = {topic.get_topic_name(): topic for topic in (changes, dead_letters)}
        self._declared: set[str] = set()

    async def send(self, topic: str, messages: Sequence[Message]) -> list[BaseException | None]:
        if not messages:
            return []
        if topic not in self._declared:
            # Once per topic and process: faust's declare asks the broker to create the topic
            # every time it is called (an admin request per batch, and a log line).
            try:
                await self._topics[topic].maybe_declare()
            except RETRIED_ERRORS as exc:
                return [exc] * len(messages)
            self._declared.add(topic)
        producer = self.app.producer

        def start(key: bytes | None, value: bytes) -> Awaitable[Awaitable[Any]]:
            # Partition by key, timestamp now, no headers.
            return producer.send(topic, key, value, None, None, None)  # type: ignore[no-any-return]

        return await _gathered(start, messages)


class ProducerPublisher(RetryingPublisher):
    """Publish through a started aiokafka producer (e.g. :func:`~stream_app.kafka.admin.
    stream_producer`'s), for tools that publish changes without a faust app."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        changes_topic: str,
        dead_letter_topic: str,
        *,
        retry_delay_s: float = 0.1,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            changes_topic, dead_letter_topic, retry_delay_s=retry_delay_s, on_retry=on_retry
        )
        self.producer = producer

    async def send(self, topic: str, messages: Sequence[Message]) -> list[BaseException | None]:
        producer = self.producer

        def start(key: bytes | None, value: bytes) -> Awaitable[Awaitable[Any]]:
            return producer.send(topic, value, key=key)  # type: ignore[no-any-return]

        return await _gathered(start, messages)
