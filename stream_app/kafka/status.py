"""The stream at a glance, for ``rfm status``: workers, model, lag, due, dead letters, clock.

Read from Redis (heartbeats, the model pointer, the due set, the last retrain attempt, the
stream clock) and from the broker (the group's committed offsets against the end offsets of
the orders topic, and the messages the dead-letter topic holds). Nothing is written.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from stream_app.exceptions import BrokerUnavailableError, StoreUnavailableError
from stream_app.kafka import connection
from stream_app.kafka.admin import committed_offsets
from stream_app.settings import Clock, Settings
from stream_app.store.client import configured_client, redacted_url, redis_errors
from stream_app.store.coordination import Coordination
from stream_app.store.keys import keys_for
from stream_app.store.redis_store import RedisStore
from stream_app.store.registry import ModelRegistry

__all__ = ["PartitionLag", "StreamStatus", "render", "stream_status"]


@dataclass(frozen=True)
class PartitionLag:
    """One orders partition: the group's committed offset (None: none yet) and the end."""

    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        """Messages after the committed offset (all of them when nothing is committed)."""
        return self.end - (self.committed or 0)


@dataclass
class StreamStatus:
    """What ``rfm status`` shows."""

    #: Worker id -> ``version`` served (None: no model) and ``at`` (last heartbeat, epoch s).
    workers: dict[str, dict[str, Any]]
    #: The version every worker should serve (the registry's pointer), or None.
    model: str | None
    #: The stream clock (epoch seconds; the machine's on ``RFM_CLOCK=wall``), or None before
    #: the first event.
    clock: float | None
    due: int
    #: The last retrain attempt as recorded (empty: none yet).
    last_retrain: dict[str, Any]
    orders_topic: str
    group: str
    lag: list[PartitionLag] = field(default_factory=list)
    dlq_topic: str = ""
    dead_letters: int = 0
    #: Why the broker's part (lag, dead letters) is missing (only with ``broker_optional``).
    broker_problem: str | None = None
    #: The service-wide counters (``events``, ``applied``, ...).
    counters: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The status as JSON-ready data (``rfm status --json``)."""
        data = asdict(self)
        for internal in ("broker_problem", "counters"):
            del data[internal]
        data["lag"] = [{**asdict(part), "lag": part.lag} for part in self.lag]
        data["total_lag"] = sum(part.lag for part in self.lag)
        return data


async def stream_status(settings: Settings, *, broker_optional: bool = False) -> StreamStatus:
    """Read the status of the stream these settings describe.

    With ``broker_optional``, a broker that does not answer leaves the lag and the dead
    letters out (``broker_problem`` says why) instead of raising.

    Raises
    ------
    StoreUnavailableError
        Redis does not answer.
    BrokerUnavailableError
        The broker does not answer.
    """
    keys = keys_for(settings)
    client = configured_client(settings)
    store = RedisStore(client, keys)
    try:
        try:
            with redis_errors():
                await client.ping()
        except StoreUnavailableError as exc:
            raise StoreUnavailableError(
                f"cannot reach Redis at {redacted_url(settings.redis_url)} ({exc}); "
                "check RFM_REDIS_URL"
            ) from exc
        coordination = Coordination(client, keys)
        status = StreamStatus(
            workers=await coordination.workers(),
            model=await ModelRegistry(settings.model_dir, client, keys).current_version(),
            clock=time.time() if settings.clock is Clock.WALL else await store.clock(),
            due=await store.due_count(),
            last_retrain=await coordination.last_attempt(),
            orders_topic=settings.orders_topic,
            group=settings.app_id,
            dlq_topic=settings.dlq_topic,
            counters=await store.counters(),
        )
    finally:
        await client.aclose()
    try:
        status.lag, status.dead_letters = await _offsets(settings)
    except BrokerUnavailableError as exc:
        if not broker_optional:
            raise
        status.broker_problem = str(exc)
    return status


async def _offsets(settings: Settings) -> tuple[list[PartitionLag], int]:
    """The lag of the group per orders partition, and the messages the DLQ topic holds."""
    consumer = connection.consumer(settings, group_id=None, enable_auto_commit=False)
    try:
        await connection.started(settings, consumer)
        orders = _partitions(consumer, settings.orders_topic)
        letters = _partitions(consumer, settings.dlq_topic)
        committed = await committed_offsets(settings, settings.app_id, orders)
        firsts = await consumer.beginning_offsets(orders + letters) if orders or letters else {}
        starts = {tp: max(committed.get(tp, -1), firsts[tp]) for tp in orders + letters}
        ends = await _high_watermarks(consumer, starts)
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"cannot reach Kafka at {settings.kafka_bootstrap} ({exc}); check RFM_KAFKA_BOOTSTRAP"
        ) from exc
    finally:
        await consumer.stop()
    lag = [
        PartitionLag(tp.partition, None if committed[tp] < 0 else committed[tp], ends[tp])
        for tp in orders
    ]
    return lag, sum(ends[tp] - firsts[tp] for tp in letters)


async def _high_watermarks(
    consumer: AIOKafkaConsumer, starts: dict[TopicPartition, int], wait_s: float = 5.0
) -> dict[TopicPartition, int]:
    """The high watermark of each partition, as a fetch from ``starts`` reports it.

    Not ``end_offsets``: Tansu answers that request with a wrong offset once several records
    share a batch, while its fetch responses carry the right high watermark.
    """
    if not starts:
        return {}
    consumer.assign(list(starts))
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    deadline = time.monotonic() + wait_s
    while True:
        await consumer.getmany(timeout_ms=200, max_records=1)
        known = {tp: consumer.highwater(tp) for tp in starts}
        if all(value is not None for value in known.values()):
            return {tp: int(value) for tp, value in known.items()}
        if time.monotonic() > deadline:
            missing = ", ".join(f"{tp.topic}:{tp.partition}" for tp in starts if known[tp] is None)
            raise BrokerUnavailableError(f"no fetch answer for {missing} in {wait_s:g} s")


def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    numbers = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, number) for number in sorted(numbers)]


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def render(status: StreamStatus, now: float | None = None) -> str:
    """The status as plain text, one fact a line.

    >>> print(render(StreamStatus({}, None, None, 0, {}, "orders", "rfm"), now=0.0))
    ... # doctest: +NORMALIZE_WHITESPACE
    workers         none (no heartbeat)
    model           none trained yet
    stream clock    - (no event yet)
    due customers   0
    dead letters    0 in
    last retrain    none yet
    consumer lag    0 (group rfm on orders: no partition)
    """
    now = time.time() if now is None else now
    lines = []
    if status.workers:
        lines.append(f"{'workers':<15} {len(status.workers)}")
        for worker, beat in sorted(status.workers.items()):
            served = beat.get("version") or "no model"
            seen = _ago(now - float(beat.get("at", now)))
            lines.append(f"  {worker:<30} serves {served}, seen {seen}")
    else:
        lines.append(f"{'workers':<15} none (no heartbeat)")
    lines.append(f"{'model':<15} {status.model or 'none trained yet'}")
    if status.clock is None:
        lines.append(f"{'stream clock':<15} - (no event yet)")
    else:
        behind = (now - status.clock) / 86_400
        lines.append(f"{'stream clock':<15} {_when(status.clock)} ({behind:.1f} days behind)")
    lines.append(f"{'due customers':<15} {status.due}")
    lines.append(f"{'dead letters':<15} {status.dead_letters} in {status.dlq_topic}")
    last = status.last_retrain
    if last:
        verdict = "accepted" if last.get("accepted") else "refused"
        detail = f", version {last['version']}" if last.get("version") else ""
        reasons = "; ".join(map(str, last.get("reasons") or []))
        lines.append(
            f"{'last retrain':<15} {last.get('time', '-')} {verdict}{detail}"
            + (f" ({reasons})" if reasons else "")
        )
    else:
        lines.append(f"{'last retrain':<15} none yet")
    total = sum(part.lag for part in status.lag)
    where = f"group {status.group} on {status.orders_topic}"
    if not status.lag:
        lines.append(f"{'consumer lag':<15} {total} ({where}: no partition)")
    else:
        lines.append(f"{'consumer lag':<15} {total} ({where})")
        for part in status.lag:
            committed = "-" if part.committed is None else str(part.committed)
            lines.append(
                f"  partition {part.partition:<4} committed {committed:>8}  end {part.end:>8}"
                f"  lag {part.lag}"
            )
    return "\n".join(lines)
