"""The worker's views without a broker: gauges read at scrape time, and the readiness facts."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from stream_app.devtools.network import free_port
from stream_app.kafka.web import WorkerViews
from stream_app.observability.metrics import WorkerMetrics
from stream_app.service.model_source import ModelSource
from stream_app.service.ports import SegmentUpdate
from stream_app.settings import Clock, Settings
from stream_app.store.memory import MemoryStore
from tests.fakes import purchase_effect


def views(settings: Settings, store: MemoryStore, tmp_path: Path) -> WorkerViews:
    # An app whose consumer is not started: no partition is assigned.
    app = SimpleNamespace()
    models = ModelSource(None, tmp_path)  # type: ignore[arg-type]
    return WorkerViews(app, settings, store, models, dict, lambda: True, WorkerMetrics())  # type: ignore[arg-type]


async def test_a_scrape_reads_the_clock_due_customers_and_segments(tmp_path: Path) -> None:
    store = MemoryStore()
    await store.apply([purchase_effect("e1", 1.0e9, ("A", 1, 1.0), customer="c1")], 1.0e9)
    await store.record_each([SegmentUpdate("c1", "new", None, 1.0e9, "v1", 1, '"1"')])
    await store.schedule({"c1": 2.0e9})
    event_time = views(Settings(), store, tmp_path)
    await event_time.refresh_gauges()
    registry = event_time.metrics.registry
    assert registry.get_sample_value("rfm_stream_clock_seconds") == 1.0e9
    assert registry.get_sample_value("rfm_customers_due") == 1
    assert registry.get_sample_value("rfm_segment_customers", {"segment": "new"}) == 1
    assert registry.get_sample_value("rfm_model_info", {"version": ""}) == 1

    # On the wall clock the stream's now is the machine's.
    wall = views(Settings(clock=Clock.WALL), store, tmp_path)
    await wall.refresh_gauges()
    clock = wall.metrics.registry.get_sample_value("rfm_stream_clock_seconds")
    assert clock is not None and abs(clock - time.time()) < 60


async def test_ready_names_the_first_missing_fact(tmp_path: Path, private_redis_url: str) -> None:
    away = views(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"), MemoryStore(), tmp_path)
    answer = await away.readiness()
    assert (answer.status, answer.reason.startswith("Redis does not answer")) == (503, True)
    await away.close()

    up = views(Settings(redis_url=private_redis_url), MemoryStore(), tmp_path)
    answer = await up.readiness()
    assert (answer.status, answer.reason) == (503, "no partition of the orders topic is assigned")
    await up.close()
