"""Follow the changes topic with a consumer group and keep each customer's current segment.

Offsets are committed after the batch they end is applied and, with a durable view (SQLite),
written: a restart reads again at most the last batch, and the sequence rule drops what was
already kept. A view in memory commits no offsets, so every start reads the topic from its
beginning (``auto_offset_reset="earliest"``) and builds the view again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.helpers import create_ssl_context

from examples.segment_subscriber.changes import InvalidChange, SegmentChange, parse_change
from examples.segment_subscriber.views import SegmentView

__all__ = ["Counts", "KafkaConfig", "follow", "make_consumer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaConfig:
    """Where the changes are and how to reach the broker: the service's ``RFM_KAFKA_*``."""

    bootstrap: str = "127.0.0.1:9092"
    topic: str = "segment-changes"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> KafkaConfig:
        """Read the variables the service reads (``RFM_KAFKA_*``, ``RFM_CHANGES_TOPIC``).

        >>> KafkaConfig.from_env({"RFM_KAFKA_BOOTSTRAP": "k1:9092"}).client_options()
        {'bootstrap_servers': 'k1:9092', 'security_protocol': 'PLAINTEXT'}
        """
        defaults = cls()
        return cls(
            bootstrap=environ.get("RFM_KAFKA_BOOTSTRAP", defaults.bootstrap),
            topic=environ.get("RFM_CHANGES_TOPIC", defaults.topic),
            security_protocol=environ.get(
                "RFM_KAFKA_SECURITY_PROTOCOL", defaults.security_protocol
            ).upper(),
            sasl_mechanism=environ.get("RFM_KAFKA_SASL_MECHANISM", defaults.sasl_mechanism),
            sasl_username=environ.get("RFM_KAFKA_SASL_USERNAME"),
            sasl_password=environ.get("RFM_KAFKA_SASL_PASSWORD"),
            ssl_cafile=environ.get("RFM_KAFKA_SSL_CAFILE"),
            ssl_certfile=environ.get("RFM_KAFKA_SSL_CERTFILE"),
            ssl_keyfile=environ.get("RFM_KAFKA_SSL_KEYFILE"),
        )

    def client_options(self) -> dict[str, Any]:
        """aiokafka's connection arguments: bootstrap servers, TLS and SASL."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            # Without a CA file the system's certificates are trusted; host names are checked.
            options["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
        if self.security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options


def make_consumer(config: KafkaConfig, group_id: str, **options: Any) -> AIOKafkaConsumer:
    """A consumer of the changes topic in ``group_id`` (not started), committing by hand.

    ``options`` go to :class:`aiokafka.AIOKafkaConsumer` (e.g. ``session_timeout_ms``).
    """
    return AIOKafkaConsumer(
        config.topic,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **config.client_options(),
        **options,
    )


@dataclass
class Counts:
    """What :func:`follow` did with the messages it read."""

    kept: int = 0
    dropped: int = 0
    invalid: int = 0


async def follow(
    consumer: AIOKafkaConsumer,
    view: SegmentView,
    *,
    on_kept: Callable[[SegmentChange], None] | None = None,
    idle_exit_s: float | None = None,
    stop: asyncio.Event | None = None,
) -> Counts:
    """Apply the changes ``consumer`` reads to ``view`` until ``stop`` is set.

    Parameters
    ----------
    consumer
        A started consumer, e.g. of :func:`make_consumer`.
    view
        Where the current segments are kept.
    on_kept
        Called with each change the view kept (not with repeats and late ones).
    idle_exit_s
        Return once partitions are assigned and nothing came for this long (a batch run).
    stop
        Return when it is set (e.g. on SIGTERM).
    """
    counts = Counts()
    quiet_since = time.monotonic()
    while not (stop is not None and stop.is_set()):
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            for record in records:
                try:
                    change = parse_change(record.value or b"")
                except InvalidChange as exc:
                    counts.invalid += 1
                    log.warning(
                        "skipped %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc
                    )
                    continue
                if view.apply(change):
                    counts.kept += 1
                    if on_kept is not None:
                        on_kept(change)
                else:
                    counts.dropped += 1  # a repeat, or a late change with a lower sequence
        if batches:
            view.commit()
            if view.durable:
                await consumer.commit()
            quiet_since = time.monotonic()
        elif not consumer.assignment():
            quiet_since = time.monotonic()  # still joining the group
        elif idle_exit_s is not None and time.monotonic() - quiet_since >= idle_exit_s:
            break
    return counts
