"""The Prometheus adapter: every metric there from the start, fed by a real batch processor."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from stream_app.exceptions import BrokerUnavailableError, StoreUnavailableError
from stream_app.observability.metrics import WorkerMetrics
from stream_app.service.processor import BatchProcessor
from stream_app.settings import Clock
from stream_app.store.memory import MemoryStore
from tests.fakes import FrequencyModel, MemoryPublisher, messages, order_event

#: Every family a worker exports (as the parser names them: counters without ``_total``), besides
#: the ``_created`` gauges prometheus-client adds to counters and histograms.
FAMILIES = {
    "rfm_events": "counter",
    "rfm_lines_skipped": "counter",
    "rfm_segment_changes": "counter",
    "rfm_batch_seconds": "histogram",
    "rfm_change_latency_seconds": "histogram",
    "rfm_consumer_lag": "gauge",
    "rfm_stream_clock_seconds": "gauge",
    "rfm_stream_clock_behind_seconds": "gauge",
    "rfm_customers_due": "gauge",
    "rfm_segment_customers": "gauge",
    "rfm_model_info": "gauge",  # an Info, in the text format
    "rfm_retrain_attempts": "counter",
    "rfm_redis_errors": "counter",
    "rfm_redis_retries": "counter",
    "rfm_kafka_errors": "counter",
    "rfm_kafka_publish_retries": "counter",
}


def families(metrics: WorkerMetrics) -> dict[str, str]:
    text = metrics.exposition().decode()
    return {
        family.name: family.type
        for family in text_string_to_metric_families(text)
        if not family.name.endswith("_created")
    }


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_every_metric_is_registered_when_built() -> None:
    metrics = WorkerMetrics()
    assert families(metrics) == FAMILIES
    assert sample(metrics, "rfm_events_total", outcome="dead_lettered") == 0.0
    assert sample(metrics, "rfm_model_info", version="") == 1.0


def exported_names(metrics: WorkerMetrics) -> set[str]:
    """Every sample name the registry may write, labelled series without a child yet too."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "info": ("_info",),
        "gauge": ("",),
    }
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in suffixes[family.type]
    }


def test_the_grafana_dashboard_asks_only_for_metrics_a_worker_exports() -> None:
    dashboard = Path(__file__).parents[3] / "deploy" / "grafana" / "dashboards"
    (path,) = dashboard.glob("*.json")
    asked = set(re.findall(r"\brfm_[a-z_]+", path.read_text()))
    assert asked
    assert asked <= exported_names(WorkerMetrics())


def test_two_workers_in_one_process_keep_their_own_registries() -> None:
    first, second = WorkerMetrics(), WorkerMetrics()
    first.store_retry()
    assert sample(first, "rfm_redis_retries_total") == 1.0
    assert sample(second, "rfm_redis_retries_total") == 0.0


WALL = datetime(2011, 6, 30, tzinfo=UTC).timestamp()


async def test_a_batch_is_counted_by_outcome_rule_reason_and_latency() -> None:
    metrics = WorkerMetrics()
    publisher = MemoryPublisher()
    processor = BatchProcessor(
        MemoryStore(),
        publisher,
        FrequencyModel,
        clock=Clock.EVENT,
        wall_clock=lambda: WALL,
        telemetry=metrics,
    )
    at = datetime(2011, 6, 1, tzinfo=UTC)
    lines = [
        {"sku": "85123A", "quantity": 2, "unit_price": 5.0},
        {"sku": "POST", "quantity": 1, "unit_price": 18.0},
    ]
    sent = messages(
        order_event("1", "a", at, lines=lines),
        order_event("2", "b", at),
        order_event("1", "a", at, lines=lines),  # a redelivery
        b"{not json",
    )
    # Published to Kafka 2 s and 3 s before the wall clock of the processor.
    published = [WALL - 2.0, WALL - 3.0, WALL - 1.0, WALL - 1.0]
    sent = [replace(m, timestamp=t) for m, t in zip(sent, published, strict=True)]
    outcome = await processor.handle(sent)

    assert sample(metrics, "rfm_events_total", outcome="applied") == outcome.applied == 2
    assert sample(metrics, "rfm_events_total", outcome="duplicate") == outcome.duplicates == 1
    assert sample(metrics, "rfm_events_total", outcome="dead_lettered") == 1
    assert sample(metrics, "rfm_lines_skipped_total", rule="non_product") == 2
    assert sample(metrics, "rfm_segment_changes_total", reason="order", segment="new") == 2
    assert len(publisher.changes) == 2
    assert sample(metrics, "rfm_batch_seconds_count") == 1
    # Customer a's first order (2 s) and b's (3 s): the redelivery does not start a's clock.
    assert sample(metrics, "rfm_change_latency_seconds_count") == 2
    assert sample(metrics, "rfm_change_latency_seconds_sum") == 5.0
    assert sample(metrics, "rfm_change_latency_seconds_bucket", le="2.5") == 1


async def test_messages_without_a_timestamp_give_no_latency() -> None:
    metrics = WorkerMetrics()
    processor = BatchProcessor(MemoryStore(), MemoryPublisher(), FrequencyModel, telemetry=metrics)
    await processor.handle(messages(order_event("1", "a", datetime(2011, 6, 1, tzinfo=UTC))))
    assert sample(metrics, "rfm_segment_changes_total", reason="order", segment="new") == 1
    assert sample(metrics, "rfm_change_latency_seconds_count") == 0


def test_outages_are_counted_by_system() -> None:
    metrics = WorkerMetrics()
    metrics.outage(StoreUnavailableError("gone"))
    metrics.outage(BrokerUnavailableError("gone"))
    metrics.outage(BrokerUnavailableError("gone"))
    assert sample(metrics, "rfm_redis_errors_total", kind="unavailable") == 1
    assert sample(metrics, "rfm_redis_retries_total") == 1
    assert sample(metrics, "rfm_kafka_errors_total", kind="unavailable") == 2


def test_gauges_follow_what_is_set_and_drop_what_is_gone() -> None:
    metrics = WorkerMetrics()
    metrics.set_lag({("orders", 0): 5, ("orders", 1): 0})
    metrics.set_lag({("orders", 1): 3})
    assert sample(metrics, "rfm_consumer_lag", topic="orders", partition="0") is None
    assert sample(metrics, "rfm_consumer_lag", topic="orders", partition="1") == 3
    metrics.set_segments({"new": 4, "loyal": 1})
    metrics.set_segments({"loyal": 2})
    assert sample(metrics, "rfm_segment_customers", segment="new") is None
    assert sample(metrics, "rfm_segment_customers", segment="loyal") == 2
    metrics.set_clock(None, WALL)
    clock = sample(metrics, "rfm_stream_clock_seconds")
    assert clock is not None and math.isnan(clock)
    metrics.set_clock(WALL - 60, WALL)
    assert sample(metrics, "rfm_stream_clock_behind_seconds") == 60
    metrics.set_due(7)
    assert sample(metrics, "rfm_customers_due") == 7
    metrics.set_model("v3")
    assert sample(metrics, "rfm_model_info", version="v3") == 1
    assert sample(metrics, "rfm_model_info", version="") is None
