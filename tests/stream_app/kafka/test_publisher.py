"""Publishing retries with back-off until the broker has every message, and never gives up."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from stream_app.core.events import DeadLetter, RFMValues, SegmentChange
from stream_app.kafka.publisher import FaustPublisher, ProducerPublisher, is_too_large
from stream_app.service.dead_letters import dead_letter, encoded_size
from stream_app.service.ports import ChangeMessage, RawMessage


class FlakyProducer:
    """An aiokafka-like producer: its first ``failures`` sends fail, as chosen.

    ``fail_at`` says where a failure shows: ``send`` (raised when handed over) or ``ack``
    (the acknowledgement fails). ``max_size`` refuses larger values as the broker would.
    """

    def __init__(
        self,
        failures: int = 0,
        error: Exception | None = None,
        fail_at: str = "ack",
        max_size: int | None = None,
    ) -> None:
        self.failures = failures
        self.error = error or KafkaConnectionError("broker went away")
        self.fail_at = fail_at
        self.max_size = max_size
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.attempts = 0

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        self.attempts += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.max_size is not None and len(value) > self.max_size:
            error: Exception | None = MessageSizeTooLargeError()
        elif self.failures > 0:
            self.failures -= 1
            error = self.error
        else:
            error = None
        if error is not None and self.fail_at == "send":
            raise error
        if error is not None:
            future.set_exception(error)
        else:
            self.sent.append((topic, key, value))
            future.set_result(None)
        return future


def change(customer: str, sequence: int = 1) -> ChangeMessage:
    return ChangeMessage.of(
        SegmentChange(
            customer_id=customer,
            previous_segment=None,
            segment="new",
            reason="order",
            rfm=RFMValues(recency_days=0, frequency=1, monetary=10.0),
            model_version="v",
            occurred_at=datetime(2011, 6, 1, tzinfo=UTC),
            sequence=sequence,
        )
    )


def letter(size: int) -> DeadLetter:
    value = b'"\x00' * (size // 2)
    message = RawMessage(b"k", value, "orders", 0, 5)
    return dead_letter(message, "not JSON", 64 * 1024, datetime(2024, 1, 1, tzinfo=UTC))


def publisher(producer: FlakyProducer, **options: Any) -> ProducerPublisher:
    return ProducerPublisher(
        producer,  # type: ignore[arg-type]
        "segment-changes",
        "orders.dlq",
        retry_delay_s=0.001,
        **options,
    )


@pytest.mark.parametrize("fail_at", ["send", "ack"])
async def test_a_change_is_retried_until_the_broker_takes_it(fail_at: str) -> None:
    producer = FlakyProducer(failures=3, fail_at=fail_at)
    retried: list[None] = []
    target = publisher(producer, on_retry=lambda: retried.append(None))
    await target.publish_changes([change("a")])
    assert [(topic, key) for topic, key, _ in producer.sent] == [("segment-changes", b"a")]
    assert producer.attempts == 4
    assert target.publish_retries == 3 and len(retried) == 3


async def test_only_the_failed_messages_are_sent_again() -> None:
    producer = FlakyProducer(failures=1)  # the first message of the batch fails
    target = publisher(producer)
    await target.publish_changes([change("a"), change("b"), change("c")])
    assert [key for _, key, _ in producer.sent] == [b"b", b"c", b"a"]
    assert target.publish_retries == 1


async def test_the_back_off_doubles_up_to_five_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []

    async def sleep(delay: float) -> None:
        pauses.append(delay)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    producer = FlakyProducer(failures=8, error=KafkaTimeoutError())
    target = ProducerPublisher(producer, "c", "d", retry_delay_s=0.1)  # type: ignore[arg-type]
    await target.publish_changes([change("a")])
    assert pauses == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


async def test_every_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="stream_app.kafka.publisher"):
        await publisher(FlakyProducer(failures=2)).publish_changes([change("a")])
    failures = [r for r in caplog.records if "publishing 1 segment change(s)" in r.message]
    assert len(failures) == 2
    assert "KafkaConnectionError" in failures[0].message


async def test_a_dead_letter_too_large_is_cut_smaller_until_it_fits() -> None:
    producer = FlakyProducer(max_size=10_000)
    big = letter(60_000)
    assert len(big.model_dump_json()) > 10_000
    await publisher(producer).publish_dead_letters([big])
    ((topic, key, value),) = producer.sent
    assert (topic, key) == ("orders.dlq", b"k")
    sent = DeadLetter.model_validate_json(value)
    assert sent.truncated and len(value) <= 10_000
    assert (sent.payload_bytes, sent.payload_sha256) == (big.payload_bytes, big.payload_sha256)
    assert big.payload.startswith(sent.payload) and encoded_size(sent.payload) > 2


async def test_a_change_too_large_is_logged_as_such_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = FlakyProducer(failures=2, error=MessageSizeTooLargeError())
    with caplog.at_level(logging.ERROR, logger="stream_app.kafka.publisher"):
        await publisher(producer).publish_changes([change("a")])
    assert len(producer.sent) == 1
    assert sum("can never be published" in r.message for r in caplog.records) == 2


async def test_a_bug_is_not_retried() -> None:
    producer = FlakyProducer(failures=1, error=TypeError("not bytes"))
    with pytest.raises(TypeError):
        await publisher(producer).publish_changes([change("a")])


class FaustTopic:
    def __init__(self, name: str, failures: int = 0) -> None:
        self.name = name
        self.failures = failures
        self.declared = 0

    def get_topic_name(self) -> str:
        return self.name

    async def maybe_declare(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise KafkaConnectionError("no broker")
        self.declared += 1


async def test_the_faust_publisher_retries_declaring_and_sending() -> None:
    producer = FlakyProducer(failures=2, error=ProducerSendError("Error while sending"))

    async def send(topic: str, key: bytes | None, value: bytes, *_: object) -> Any:
        return await producer.send(topic, value, key=key)

    changes, letters = FaustTopic("segment-changes", failures=1), FaustTopic("orders.dlq")
    app = SimpleNamespace(producer=SimpleNamespace(send=send))
    target = FaustPublisher(app, changes, letters, retry_delay_s=0.001)  # type: ignore[arg-type]
    await target.publish_changes([change("a")])
    await target.publish_changes([change("b", sequence=2)])
    await target.publish_dead_letters([letter(100)])
    assert [(topic, key) for topic, key, _ in producer.sent] == [
        ("segment-changes", b"a"),
        ("segment-changes", b"b"),
        ("orders.dlq", b"k"),
    ]
    assert (changes.declared, letters.declared) == (1, 1)
    assert target.publish_retries == 3


def test_a_size_error_wrapped_by_faust_is_seen_as_too_large() -> None:
    wrapped = ProducerSendError("Error while sending")
    wrapped.__cause__ = MessageSizeTooLargeError()
    assert is_too_large(wrapped) and is_too_large(MessageSizeTooLargeError())
    assert not is_too_large(ProducerSendError("no leader"))
