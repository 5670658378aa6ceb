"""The faust-streaming worker: ``rfm worker``.

One agent consumes the orders topic in batches (``take_events``) and decodes each batch; the
:class:`~stream_app.processor.BatchProcessor` then stores, scores and publishes it in the
background (:class:`~stream_app.inflight.InOrder`) while the agent reads the next. A batch's
messages are acknowledged only after the processor returns, i.e. after state, changes and dead
letters are stored and published, and batches finish in order, so an offset is never committed
past an event still in flight (the trap of faust-streaming issue #606 with concurrency > 1).
Scale out with more workers in the same consumer group.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import aiokafka
import faust

from model_training.exceptions import RFMError
from model_training.model.refit import QualityGates
from stream_app.exceptions import BrokerUnavailableError, StoreUnavailableError
from stream_app.kafka.admin import ensure_stream_topics
from stream_app.kafka.connection import check_broker, faust_credentials
from stream_app.kafka.publisher import FaustPublisher
from stream_app.kafka.read_again import behind_committed, committed_positions, read_range
from stream_app.kafka.web import WorkerViews
from stream_app.logs import logging_config
from stream_app.observability.metrics import WorkerMetrics
from stream_app.service.inflight import InOrder
from stream_app.service.model_source import ModelSource
from stream_app.service.outages import outlast
from stream_app.service.ports import RawMessage
from stream_app.service.processor import BatchProcessor, DecodedBatch
from stream_app.service.rescoring import ModelRescore
from stream_app.service.retraining import Retrainer
from stream_app.settings import Settings
from stream_app.store.client import configured_client
from stream_app.store.coordination import Coordination
from stream_app.store.keys import keys_for
from stream_app.store.redis_store import RedisStore
from stream_app.store.registry import ModelRegistry

__all__ = [
    "check_access",
    "create_app",
    "faust_options",
    "raw_topic",
    "run_worker",
    "settle_garbage_collector",
]

log = logging.getLogger(__name__)

#: Allocations between two collections of the youngest generation (CPython's default: 700).
GC_THRESHOLD = 50_000

#: The fetch wait faust-streaming 0.15 hard-codes for its consumer.
FAUST_FETCH_MAX_WAIT_MS = 1500

#: How often a worker checks that the stream's topics exist (and creates those missing).
TOPIC_CHECK_S = 5.0


def faust_options(settings: Settings) -> dict[str, Any]:
    """The faust app's configuration for these settings (shared with the benchmark's agent)."""
    return {
        "broker": settings.kafka_url,
        "broker_credentials": faust_credentials(settings),
        "store": "memory://",
        "topic_partitions": settings.topic_partitions,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": min(3.0, settings.session_timeout_s / 3),
        "consumer_auto_offset_reset": "earliest",
        # /metrics, /health and /ready (stream_app.kafka.web).
        "web_enabled": True,
        "web_bind": settings.web_host,
        "web_port": settings.web_port,
        # State lives in Redis; faust's own data directory only holds scratch files.
        "datadir": str(Path(tempfile.gettempdir()) / f"rfm-worker-{settings.app_id}"),
        "producer_acks": -1,
        "producer_compression_type": settings.compression_type,
        # faust's default is 2.8 s: lag would read as non-zero that long after the work is done.
        "broker_commit_interval": settings.commit_interval_s,
    }


def raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    """A topic of raw bytes keys and values (the processor decodes and validates)."""
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


def create_app(settings: Settings, metrics: WorkerMetrics | None = None) -> faust.App:
    """Build the faust app with its agent, timers and web views (nothing runs until a worker
    starts); ``metrics`` gets what the worker does (default: a registry of its own)."""
    metrics = metrics or WorkerMetrics()
    app = faust.App(settings.app_id, **faust_options(settings))
    orders = raw_topic(app, settings.orders_topic, settings.topic_partitions)
    changes = raw_topic(app, settings.changes_topic, settings.topic_partitions)
    dead_letters = raw_topic(app, settings.dlq_topic, settings.topic_partitions)

    store = RedisStore.from_settings(settings)
    keys = keys_for(settings)
    # The model pointer and the coordination keys; the customer state has the store's client.
    client = configured_client(settings)
    registry = ModelRegistry(settings.model_dir, client, keys)
    coordination = Coordination(client, keys)
    models = ModelSource(registry, settings.model_dir, settings.non_product_pattern)
    publisher = FaustPublisher(app, changes, dead_letters)
    processor = BatchProcessor(
        store,
        publisher,
        models.current,
        clock=settings.clock,
        rule=settings.product_rule,
        limits=settings.limits,
        dlq_max_payload=settings.dlq_max_payload,
        telemetry=metrics,
    )
    publisher.on_retry = processor.count_publish_retry  # counted in rfm:counters
    processor.read_again = partial(read_range, settings)
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    retrainer = Retrainer(
        registry,
        coordination,
        store,
        models.current,
        processor.current_time,
        interval_s=settings.retrain_interval_s,
        min_events=settings.retrain_min_events,
        gates=QualityGates(
            min_silhouette=settings.gate_min_silhouette,
            min_segment_share=settings.gate_min_segment_share,
            max_changed_share=settings.gate_max_changed_share,
        ),
        lock_ttl_s=settings.retrain_lock_s,
        worker_id=worker_id,
        non_product_pattern=settings.non_product_pattern,
        telemetry=metrics,
    )
    rescore = ModelRescore(
        processor,
        coordination,
        lease_s=settings.rescore_lease_s,
        batch_size=settings.rescore_batch_size,
    )

    # Orders wait for the start-up below: the model loads in a thread now, and an order scored
    # before it is there would get no segment and no due time until the customer's next order.
    started = asyncio.Event()
    # Waits out an outage, counting it.
    wait_out = partial(outlast, on_outage=metrics.outage)
    WorkerViews(
        app,
        settings,
        store,
        models,
        processor.processed_offsets,
        started.is_set,
        metrics,
    ).install()

    async def start_up() -> None:
        await store.ping()
        committed = await _committed(settings)
        # Before any order: a store that lost everything must not be written on.
        await processor.open_epoch(any(offset > 0 for offset in committed.values()))
        # The segment counts and member indexes, built once if the store has none (one
        # written by an older release), so that every change from now on keeps them.
        await store.ensure_indexes()
        # Orders committed while their writes were lost (Redis restarted without its last
        # writes while no worker ran) are read again before the stream goes on.
        lost = behind_committed(await store.offsets(), committed)
        if lost:
            read = await processor.catch_up(lost)
            log.warning(
                "read %d order(s) again whose writes the store had lost",
                read,
                extra={"caught_up": read},
            )
        await models.refresh()
        # Changes recorded by a worker that died before publishing them.
        pending = await processor.announce_pending()
        if pending:
            log.info("published %d pending segment change(s)", pending, extra={"changes": pending})

    @app.task
    async def on_start() -> None:
        try:
            # Every step may be done again: a Redis away at start-up is waited for.
            await wait_out(start_up, what="starting up")
            settle_garbage_collector()
        finally:
            started.set()

    @app.timer(interval=settings.model_refresh_s)
    async def refresh_model() -> None:
        await models.refresh()
        serving = models.current()
        # Say which version this worker serves, for operators.
        version = serving.version if serving else None
        await wait_out(coordination.heartbeat, worker_id, version, what="the heartbeat")
        if serving is not None:
            # Every worker switches; one at a time re-scores everyone with the version, and
            # another goes on from where it stopped if it dies (its lease lapses). A Redis
            # failing gives the lease up; the next look goes on.
            await rescore.resume(serving.version)

    @app.timer(interval=settings.retrain_check_s)
    async def retrain() -> None:
        # Safe to start over: the lock is ours by its token, and a refit is only a refit.
        await wait_out(retrainer.maybe_retrain, what="the retrain check")

    @app.timer(interval=settings.decay_interval_s)
    async def decay() -> None:
        # Customers whose segment changes with time passing, taken from the due set.
        rescored = await wait_out(processor.decay, what="the decay step")
        if rescored:
            log.info(
                "re-scored %d customer(s) whose segment was due to change",
                rescored,
                extra={"rescored": rescored},
            )

    @app.timer(interval=TOPIC_CHECK_S)
    async def keep_topics() -> None:
        # A broker back without its topics (Tansu's in-memory storage restarted, a cluster
        # rebuilt) would leave the consumer waiting and the publishes failing, silently. A
        # broker that refuses to create them stops the worker (TopicCreationError).
        try:
            created = await ensure_stream_topics(settings)
        except BrokerUnavailableError as exc:
            metrics.broker_error("unavailable")
            log.warning("cannot check the stream's topics, trying again soon: %s", exc)
            return
        if created:
            log.warning("created the missing topic(s) %s", ", ".join(created))

    # Batch N is stored and published in the background while batch N+1 is read and decoded.
    in_flight: InOrder[DecodedBatch] = InOrder(processor.process, on_error=app.crash)
    acknowledge = partial(_acknowledge, app, metrics)

    @app.agent(orders, concurrency=1)
    async def apply_orders(stream: Any) -> None:
        await started.wait()
        async for events in stream.take_events(settings.batch_size, within=settings.batch_window_s):
            for event in events:
                # take_events acknowledges the batch when this body returns; the extra
                # reference defers the final acknowledgement (and the offset commit) until
                # the batch is processed.
                event.message.incref()
            batch = processor.decode(
                [
                    RawMessage(
                        key=event.message.key,
                        value=event.message.value,
                        topic=event.message.topic,
                        partition=event.message.partition,
                        offset=event.message.offset,
                        # Kafka's timestamp (publish time, by default): the latency's start.
                        timestamp=event.message.timestamp,
                    )
                    for event in events
                ]
            )
            await in_flight.submit(batch, partial(acknowledge, events))

    return app


async def _committed(settings: Settings) -> dict[str, int]:
    """The group's committed offsets on the orders topic; none when the broker is away.

    Without them the store is taken as it is: a store without an epoch counts as new, and
    nothing is read again.
    """
    try:
        return await committed_positions(settings)
    except BrokerUnavailableError as exc:
        log.warning(
            "cannot read the committed offsets (%s): whether orders were consumed before, "
            "and whether the store lost some, is not checked",
            exc,
        )
        return {}


def settle_garbage_collector() -> None:
    """Keep the collector off the long-lived start-up objects and run it less often.

    The hot path allocates many small short-lived objects. Freezing what start-up loaded
    (libraries, the model) keeps collections from walking it again and again, and a larger
    youngest generation means fewer collections: together ~10 % less CPU per event in
    ``benchmarks/stream_throughput.py`` here (either alone gives about half of that).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def _acknowledge(app: faust.App, metrics: WorkerMetrics, events: Sequence[Any]) -> None:
    """Acknowledge a processed batch and commit its offsets now.

    Committing after each batch (rather than only every ``commit_interval_s``) makes lag read
    0 as soon as the work is done, and leaves at most the batches in flight to be delivered
    again after a crash. A commit already running covers this one or the next covers it.
    """
    for event in events:
        event.ack()
    commit = asyncio.ensure_future(app.consumer.commit())
    _commits.add(commit)
    commit.add_done_callback(partial(_commit_finished, metrics))


#: Commits still running (asyncio keeps only weak references to tasks).
_commits: set[asyncio.Future[bool]] = set()


def _commit_finished(metrics: WorkerMetrics, commit: asyncio.Future[bool]) -> None:
    _commits.discard(commit)
    if not commit.cancelled() and commit.exception() is not None:
        metrics.broker_error("commit")
        # The interval commit retries; say why this one failed.
        log.warning("committing offsets failed: %s", commit.exception())


def shorten_fetch_wait(wait_ms: int) -> None:
    """Make faust's consumer wait at most ``wait_ms`` for new messages per fetch request.

    faust-streaming creates its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no
    setting to change it. A broker that holds a fetch that long when little is flowing (Tansu
    does) delays every event by up to 1.5 s at low rates. This process-wide patch changes
    only consumers created with faust's value; call it before the worker starts.
    """
    original = aiokafka.AIOKafkaConsumer.__init__
    if getattr(original, "_rfm_fetch_wait", None) is not None:
        return

    def init(self: aiokafka.AIOKafkaConsumer, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("fetch_max_wait_ms") == FAUST_FETCH_MAX_WAIT_MS:
            kwargs["fetch_max_wait_ms"] = wait_ms
        original(self, *args, **kwargs)

    init._rfm_fetch_wait = wait_ms  # type: ignore[attr-defined]
    aiokafka.AIOKafkaConsumer.__init__ = init  # type: ignore[method-assign]


def check_access(settings: Settings) -> None:
    """Stop before the worker starts when Kafka or Redis refuses this client.

    A wrong password or an untrusted certificate would otherwise be retried for ever, as
    an outage is. A broker or a Redis that does not answer yet is waited for later, as usual.

    Raises
    ------
    BrokerAccessError, StoreAccessError
        The message names the settings to fix.
    """

    async def check() -> None:
        try:
            await check_broker(settings)
        except BrokerUnavailableError as exc:
            log.warning("%s; waiting for it", exc)
        store = RedisStore.from_settings(settings)
        try:
            await store.ping()
        except StoreUnavailableError as exc:
            log.warning("%s; waiting for it", exc)
        finally:
            await store.close()

    # A loop of its own, closed before faust sets up the worker's.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(check())
    finally:
        loop.close()


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run a worker until it is stopped (SIGINT/SIGTERM)."""
    check_access(settings)
    shorten_fetch_wait(settings.fetch_wait_ms)
    app = create_app(settings)
    # faust configures logging as the worker starts: RFM_LOG_FORMAT=json hands it ours, which
    # takes faust's and aiokafka's records too; text keeps faust's own lines.
    json_logs = logging_config(loglevel.upper()) if settings.log_format == "json" else None
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, logging_config=json_logs)
    try:
        worker.execute_from_commandline()
    except SystemExit:
        # A worker stopped by one of our errors (a topic the broker will not create) ends
        # with that error, which ``rfm`` prints as one ``error:`` line.
        if isinstance(app.crash_reason, RFMError):
            raise app.crash_reason from None
        raise
