"""A worker's Prometheus metrics: one registry of its own, fed by the service's telemetry.

:class:`WorkerMetrics` implements :class:`~stream_app.service.telemetry.Telemetry` (counters
and histograms the service reports as it works) and has setters for the gauges the worker reads
when it is scraped (consumer lag, stream clock, due customers, segment sizes, model served).
Every metric is registered when the class is built, so the exposition always has the same
names; counters with a known set of labels start at 0 for each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from stream_app.core.scoring import Reason
from stream_app.exceptions import BrokerUnavailableError, StoreUnavailableError

__all__ = [
    "CONTENT_TYPE",
    "EVENT_OUTCOMES",
    "RETRAIN_OUTCOMES",
    "SKIP_RULES",
    "WorkerMetrics",
]

#: The ``Content-Type`` of :meth:`WorkerMetrics.exposition`.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: ``rfm_events_total{outcome}``: what became of each event of a batch.
EVENT_OUTCOMES = ("applied", "duplicate", "dead_lettered", "clock")
#: ``rfm_lines_skipped_total{rule}``: why an order line counted for nothing.
SKIP_RULES = ("non_product", "zero_price")
#: ``rfm_retrain_attempts_total{outcome}``.
RETRAIN_OUTCOMES = ("accepted", "refused", "failed", "store_unavailable")
REDIS_ERROR_KINDS = ("unavailable", "refused", "lost")
KAFKA_ERROR_KINDS = ("publish", "commit", "unavailable")

#: Seconds from an order's publish to its change's: a few ms in steady state, minutes in a
#: replay of a backlog.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    """The metrics of one worker, in :attr:`registry` (not prometheus-client's global one).

    Examples
    --------
    >>> metrics = WorkerMetrics()
    >>> metrics.batch_processed({"applied": 3, "duplicate": 1}, {"non_product": 2}, 0.01)
    >>> metrics.registry.get_sample_value("rfm_events_total", {"outcome": "applied"})
    3.0
    >>> b"rfm_lines_skipped_total{rule=\\"non_product\\"} 2.0" in metrics.exposition()
    True
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.events = Counter(
            "rfm_events", "Order-topic events by outcome", ["outcome"], registry=registry
        )
        self.lines_skipped = Counter(
            "rfm_lines_skipped",
            "Order lines that count for nothing, by the rule that skipped them",
            ["rule"],
            registry=registry,
        )
        self.segment_changes = Counter(
            "rfm_segment_changes",
            "Segment changes published, by cause and by the segment moved to",
            ["reason", "segment"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "rfm_batch_seconds",
            "Time to store, score and publish one batch of order events",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.change_latency = Histogram(
            "rfm_change_latency_seconds",
            "From an order's Kafka publish timestamp to its segment change being published",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "rfm_consumer_lag",
            "Messages of an assigned orders partition not processed yet (high watermark - "
            "next offset processed)",
            ["topic", "partition"],
            registry=registry,
        )
        self.stream_clock = Gauge(
            "rfm_stream_clock_seconds", "The stream clock (epoch seconds)", registry=registry
        )
        self.stream_clock_behind = Gauge(
            "rfm_stream_clock_behind_seconds",
            "Wall clock minus stream clock",
            registry=registry,
        )
        self.customers_due = Gauge(
            "rfm_customers_due",
            "Customers scheduled for a re-score as time passes",
            registry=registry,
        )
        self.segment_customers = Gauge(
            "rfm_segment_customers", "Customers per segment now", ["segment"], registry=registry
        )
        self.model = Info("rfm_model", "The model version this worker serves", registry=registry)
        self.retrain_attempts = Counter(
            "rfm_retrain_attempts",
            "Retrain attempts of this worker by outcome",
            ["outcome"],
            registry=registry,
        )
        self.redis_errors = Counter(
            "rfm_redis_errors", "Failed Redis calls by kind", ["kind"], registry=registry
        )
        self.redis_retries = Counter(
            "rfm_redis_retries", "Redis calls made again after failing", registry=registry
        )
        self.kafka_errors = Counter(
            "rfm_kafka_errors", "Failed broker calls by kind", ["kind"], registry=registry
        )
        self.kafka_publish_retries = Counter(
            "rfm_kafka_publish_retries",
            "Publishes sent again after the broker failed them",
            registry=registry,
        )
        for counter, labels in (
            (self.events, EVENT_OUTCOMES),
            (self.lines_skipped, SKIP_RULES),
            (self.retrain_attempts, RETRAIN_OUTCOMES),
            (self.redis_errors, REDIS_ERROR_KINDS),
            (self.kafka_errors, KAFKA_ERROR_KINDS),
        ):
            for label in labels:
                counter.labels(label)
        self.model.info({"version": ""})
        self._segments: set[str] = set()
        self._partitions: set[tuple[str, str]] = set()

    # The service's telemetry.

    def batch_processed(
        self,
        outcomes: Mapping[str, int],
        skipped_lines: Mapping[str, int],
        seconds: float,
    ) -> None:
        for outcome, count in outcomes.items():
            if count:
                self.events.labels(outcome).inc(count)
        for rule, count in skipped_lines.items():
            if count:
                self.lines_skipped.labels(rule).inc(count)
        self.batch_seconds.observe(seconds)

    def changes_published(
        self, reason: Reason, segments: Sequence[str], latencies_s: Sequence[float] = ()
    ) -> None:
        counts: dict[str, int] = {}
        for segment in segments:
            counts[segment] = counts.get(segment, 0) + 1
        for segment, count in counts.items():
            self.segment_changes.labels(reason, segment).inc(count)
        for latency in latencies_s:
            self.change_latency.observe(max(latency, 0.0))

    def retrain_attempted(self, outcome: str) -> None:
        self.retrain_attempts.labels(outcome).inc()

    def store_error(self, kind: str) -> None:
        self.redis_errors.labels(kind).inc()

    def store_retry(self) -> None:
        self.redis_retries.inc()

    def broker_error(self, kind: str) -> None:
        self.kafka_errors.labels(kind).inc()

    def publish_retry(self) -> None:
        self.kafka_publish_retries.inc()

    def outage(self, error: Exception) -> None:
        """Count an outage the worker waits out (``outlast``): the call is made again."""
        if isinstance(error, StoreUnavailableError):
            self.store_error("unavailable")
            self.store_retry()
        elif isinstance(error, BrokerUnavailableError):
            self.broker_error("unavailable")

    # Gauges, set when scraped.

    def set_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        """Set the lag of each assigned ``(topic, partition)``; drop partitions no longer held."""
        now = {(topic, str(partition)): value for (topic, partition), value in lag.items()}
        for gone in self._partitions - now.keys():
            self.consumer_lag.remove(*gone)
        for labels, value in now.items():
            self.consumer_lag.labels(*labels).set(max(value, 0))
        self._partitions = set(now)

    def set_clock(self, clock: float | None, wall_now: float) -> None:
        """Set the stream clock gauges (both stay unset, NaN, before the first event)."""
        if clock is None:
            self.stream_clock.set(float("nan"))
            self.stream_clock_behind.set(float("nan"))
        else:
            self.stream_clock.set(clock)
            self.stream_clock_behind.set(wall_now - clock)

    def set_due(self, customers: int) -> None:
        self.customers_due.set(customers)

    def set_segments(self, counts: Mapping[str, int]) -> None:
        """Set the customers per segment; a segment no longer held drops out."""
        for gone in self._segments - counts.keys():
            self.segment_customers.remove(gone)
        for segment, count in counts.items():
            self.segment_customers.labels(segment).set(count)
        self._segments = set(counts)

    def set_model(self, version: str | None) -> None:
        """Say which model version is served (an empty version: none yet)."""
        self.model.info({"version": version or ""})

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
