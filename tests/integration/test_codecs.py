"""Orders compressed by another client library, in every standard codec, are applied.

The orders come from librdkafka (through confluent-kafka), not from the aiokafka the worker
consumes with, so the worker reads batches another client compressed. The worker's own output
uses ``RFM_KAFKA_COMPRESSION``; the changes topic's record batches are read raw to check it.
"""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from stream_app.kafka.admin import ensure_stream_topics
from stream_app.kafka.connection import client_options
from stream_app.kafka.replay import wait_until_processed
from stream_app.service.bootstrap import bootstrap_states
from stream_app.service.order_events import build_events
from stream_app.settings import Compression, Settings
from tests.integration.streaming import (
    assert_same_states,
    counters,
    full_states,
    publish_model,
    read_topic,
    running_worker,
)

confluent_kafka = pytest.importorskip("confluent_kafka", reason="confluent-kafka not installed")

CODECS = ("gzip", "snappy", "lz4", "zstd")
#: The record-batch attribute bits of each codec (Kafka protocol).
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def _publish(settings: Settings, events: list[tuple[bytes, bytes]]) -> dict[TopicPartition, int]:
    """Publish each customer's events with one of the codecs (by customer), from librdkafka."""
    ends: dict[TopicPartition, int] = {}

    def delivered(error: object, message: object) -> None:
        assert error is None, error
        partition = TopicPartition(message.topic(), message.partition())  # type: ignore[attr-defined]
        ends[partition] = max(ends.get(partition, 0), message.offset() + 1)  # type: ignore[attr-defined]

    for number, codec in enumerate(CODECS):
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "compression.type": codec,
                "linger.ms": 20,
                "acks": "all",
            }
        )
        mine = [(key, value) for key, value in events if zlib.crc32(key) % len(CODECS) == number]
        assert mine, codec
        for key, value in mine:
            producer.produce(settings.orders_topic, value=value, key=key, on_delivery=delivered)
            producer.poll(0)
        assert producer.flush(30) == 0, f"{codec}: messages left unsent"
    return ends


async def _batch_codecs(settings: Settings, topic: str) -> set[int]:
    """The codec of every record batch stored on ``topic`` (read raw, not decompressed)."""
    client = AIOKafkaClient(**client_options(settings))
    await client.bootstrap()
    try:
        await client.force_metadata_update()
        found: set[int] = set()
        for partition in sorted(client.cluster.partitions_for_topic(topic) or ()):
            leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
            request = FetchRequest(100, 1, 4 << 20, 0, [(topic, [(partition, 0, 4 << 20)])])
            response = await client.send(leader, request)
            for _, partitions in response.topics:
                for data in partitions:
                    records = MemoryRecords(data[-1])
                    while (batch := records.next_batch()) is not None:
                        found.add(batch.compression_type)
        return found
    finally:
        await client.close()


def test_orders_in_every_codec_are_applied_and_output_uses_the_setting(
    stack_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "transactions.csv.gz"
    write_transactions(generate_transactions(customers=300, seed=5), path)
    frame = load_transactions(path)
    events = build_events(frame).events
    settings = stack_settings.model_copy(
        update={"model_dir": tmp_path / "models", "kafka_compression": Compression.LZ4}
    )

    asyncio.run(ensure_stream_topics(settings))
    publish_model(settings)
    with running_worker(settings, tmp_path / "worker.log") as worker:
        targets = _publish(settings, events)
        asyncio.run(wait_until_processed(settings, targets, timeout_s=120))
        assert worker.process.poll() is None, worker.log()
        assert "UnsupportedCodecError" not in worker.log()

    expected = {state.customer_id: state for state in bootstrap_states(frame)}
    assert_same_states(full_states(settings), expected)
    assert counters(settings)["applied"] == len(events)
    changes = read_topic(settings, settings.changes_topic)
    assert changes, "no segment changes published"
    assert asyncio.run(_batch_codecs(settings, settings.changes_topic)) == {CODEC_IDS["lz4"]}
