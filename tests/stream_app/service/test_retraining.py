"""Retraining inside the stream: when it runs, that one worker runs it, and failures are safe."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

import stream_app.service.retraining as retraining_module
from model_training.model.refit import QualityGates
from stream_app.core.effects import ItemDelta, OrderEffect
from stream_app.observability.metrics import RETRAIN_OUTCOMES, WorkerMetrics
from stream_app.service.retraining import Retrainer
from stream_app.service.snapshot import rfm_snapshot
from stream_app.store.coordination import Coordination
from stream_app.store.keys import Keys
from stream_app.store.memory import MemoryStore
from stream_app.store.registry import ModelRegistry
from tests.fakes import V1, fitted_segmenter, model_card

NOW = datetime(2011, 12, 10, tzinfo=UTC).timestamp()


@pytest.fixture
async def store() -> MemoryStore:
    memory = MemoryStore()
    rng = np.random.default_rng(3)
    effects = []
    for number in range(300):
        day = float(rng.integers(1, 360))
        for order in range(int(rng.integers(1, 6))):
            effects.append(
                OrderEffect.of(
                    customer_id=f"c{number}",
                    event_id=f"{number}-{order}",
                    is_return=False,
                    occurred_at=NOW - (day + 30 * order) * 86_400,
                    country="UK",
                    items=(ItemDelta("A", 2, float(rng.gamma(2.0, 40.0))),),
                )
            )
    await memory.apply(effects)
    await memory.advance_clock(NOW)
    return memory


def attempts(metrics: WorkerMetrics) -> dict[str, float]:
    """The retrain attempts the metrics counted, by outcome (outcomes not met left out)."""
    counted = {
        outcome: metrics.registry.get_sample_value(
            "rfm_retrain_attempts_total", {"outcome": outcome}
        )
        or 0.0
        for outcome in RETRAIN_OUTCOMES
    }
    return {outcome: count for outcome, count in counted.items() if count}


async def make_retrainer(
    tmp_path: Path, client: aioredis.Redis, store: MemoryStore, **options: Any
) -> tuple[Retrainer, ModelRegistry, Coordination]:
    keys = Keys(f"t{np.random.default_rng().integers(1 << 30)}")
    registry = ModelRegistry(tmp_path / "models", client, keys)
    coordination = Coordination(client, keys)
    await registry.publish(fitted_segmenter(), model_card(V1))
    serving = await registry.load_current()
    settings: dict[str, Any] = {
        "interval_s": 0.0,
        "min_events": 0,
        "gates": QualityGates(min_silhouette=0.0, max_changed_share=1.0),
    }
    settings.update(options)
    retrainer = Retrainer(registry, coordination, store, lambda: serving, store.clock, **settings)
    return retrainer, registry, coordination


async def test_snapshot_holds_every_customer_with_rfm(store: MemoryStore) -> None:
    frame = await rfm_snapshot(store, NOW)
    assert len(frame) == 300
    assert list(frame.columns) == ["recency_days", "frequency", "monetary"]
    assert (frame["frequency"] >= 1).all()


async def test_nothing_happens_unless_asked_or_due(
    tmp_path: Path, async_client: aioredis.Redis, store: MemoryStore
) -> None:
    retrainer, registry, _ = await make_retrainer(tmp_path, async_client, store)
    assert await retrainer.maybe_retrain() is None
    assert await registry.current_version() == V1


async def test_a_requested_retrain_publishes_and_records(
    tmp_path: Path, async_client: aioredis.Redis, store: MemoryStore
) -> None:
    metrics = WorkerMetrics()
    retrainer, registry, coordination = await make_retrainer(
        tmp_path, async_client, store, telemetry=metrics
    )
    await coordination.request_retrain()
    version = await retrainer.maybe_retrain()
    assert version is not None and await registry.current_version() == version
    assert attempts(metrics) == {"accepted": 1}
    attempt = await coordination.last_attempt()
    assert attempt["accepted"] is True and attempt["version"] == version
    assert attempt["customers"] == 300 and attempt["previous"] == V1


async def test_a_retrained_card_records_the_streams_product_rule(
    tmp_path: Path, async_client: aioredis.Redis, store: MemoryStore
) -> None:
    retrainer, registry, coordination = await make_retrainer(
        tmp_path, async_client, store, non_product_pattern="BANK.*"
    )
    await coordination.request_retrain()
    assert await retrainer.maybe_retrain() is not None
    model = await registry.load_current()
    assert model is not None and model.card["non_product_pattern"] == "BANK.*"


async def test_only_the_lock_holder_retrains(
    tmp_path: Path, async_client: aioredis.Redis, store: MemoryStore
) -> None:
    retrainer, registry, coordination = await make_retrainer(tmp_path, async_client, store)
    await async_client.set(registry.keys.retrain_lock, "another worker")
    await coordination.request_retrain()
    assert await retrainer.maybe_retrain() is None
    assert await registry.current_version() == V1
    assert await coordination.retrain_request() is not None  # kept, for when the lock is free


async def test_a_crash_midway_keeps_the_current_model(
    tmp_path: Path,
    async_client: aioredis.Redis,
    store: MemoryStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise MemoryError("out of memory while fitting")

    monkeypatch.setattr(retraining_module, "retrain", crash)
    metrics = WorkerMetrics()
    retrainer, registry, coordination = await make_retrainer(
        tmp_path, async_client, store, telemetry=metrics
    )
    await coordination.request_retrain()
    assert await retrainer.maybe_retrain() is None
    assert attempts(metrics) == {"failed": 1}
    assert await registry.current_version() == V1
    attempt = await coordination.last_attempt()
    assert attempt["accepted"] is False
    assert "out of memory" in attempt["reasons"][0]
    lock = registry.keys.retrain_lock
    assert await async_client.get(lock) is None  # released for the next attempt


async def test_a_refused_model_is_not_published(
    tmp_path: Path, async_client: aioredis.Redis, store: MemoryStore
) -> None:
    metrics = WorkerMetrics()
    retrainer, registry, coordination = await make_retrainer(
        tmp_path, async_client, store, gates=QualityGates(min_silhouette=0.99), telemetry=metrics
    )
    await coordination.request_retrain()
    assert await retrainer.maybe_retrain() is None
    assert attempts(metrics) == {"refused": 1}
    assert await registry.current_version() == V1
    attempt = await coordination.last_attempt()
    assert attempt["accepted"] is False and "silhouette" in " ".join(attempt["reasons"])


async def test_the_interval_counts_from_a_baseline(
    tmp_path: Path, async_client: aioredis.Redis, store: MemoryStore
) -> None:
    await store.add_counters({"applied": 5000})
    retrainer, registry, coordination = await make_retrainer(
        tmp_path, async_client, store, interval_s=3600.0
    )
    assert await retrainer.maybe_retrain() is None  # first look: baseline only
    assert (await coordination.last_attempt())["baseline"] is True
    assert await retrainer.maybe_retrain() is None  # an hour has not passed
    assert await registry.current_version() == V1


async def test_the_loop_keeps_running_while_a_model_fits(
    tmp_path: Path,
    async_client: aioredis.Redis,
    store: MemoryStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_retrain = retraining_module.retrain

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)  # blocks its thread, as fitting does
        return real_retrain(*args, **kwargs)

    monkeypatch.setattr(retraining_module, "retrain", slow)
    retrainer, registry, coordination = await make_retrainer(tmp_path, async_client, store)
    await coordination.request_retrain()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        version = await retrainer.maybe_retrain()
    finally:
        ticker.cancel()
    assert version is not None and await registry.current_version() == version
    assert ticks >= 20  # ~50 while the fit sleeps; none if it ran on the loop


class Killed(BaseException):
    """The worker dies here: nothing after it runs."""


async def test_a_request_outlives_a_worker_killed_while_retraining(
    tmp_path: Path,
    async_client: aioredis.Redis,
    store: MemoryStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_retrain = retraining_module.retrain

    def killed(*args: object, **kwargs: object) -> None:
        raise Killed

    monkeypatch.setattr(retraining_module, "retrain", killed)
    retrainer, registry, coordination = await make_retrainer(tmp_path, async_client, store)
    request = await coordination.request_retrain()
    with pytest.raises(Killed):
        await retrainer.maybe_retrain()
    assert await coordination.last_attempt() == {}  # nothing recorded...
    assert await coordination.retrain_request() == request  # ...so the request stays

    monkeypatch.setattr(retraining_module, "retrain", real_retrain)
    version = await retrainer.maybe_retrain()  # the next look (here or elsewhere) retrains
    assert version is not None and await registry.current_version() == version
    assert (await coordination.last_attempt())["requested"] is True
    assert await coordination.retrain_request() is None  # cleared once recorded


async def test_a_refused_or_failed_attempt_clears_its_request(
    tmp_path: Path,
    async_client: aioredis.Redis,
    store: MemoryStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    retrainer, _, coordination = await make_retrainer(
        tmp_path, async_client, store, gates=QualityGates(min_silhouette=0.99)
    )
    await coordination.request_retrain()
    assert await retrainer.maybe_retrain() is None
    assert (await coordination.last_attempt())["accepted"] is False
    assert await coordination.retrain_request() is None

    def crash(*args: object, **kwargs: object) -> None:
        raise ValueError("bad input")

    monkeypatch.setattr(retraining_module, "retrain", crash)
    await coordination.request_retrain()
    assert await retrainer.maybe_retrain() is None
    assert "bad input" in (await coordination.last_attempt())["reasons"][0]
    assert await coordination.retrain_request() is None


async def test_a_request_made_while_a_model_fits_is_kept_for_the_next_attempt(
    tmp_path: Path,
    async_client: aioredis.Redis,
    private_redis_url: str,
    store: MemoryStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_retrain = retraining_module.retrain
    retrainer, _, coordination = await make_retrainer(tmp_path, async_client, store)
    asked_again = redis.Redis.from_url(private_redis_url, decode_responses=True)

    def asked_meanwhile(*args: Any, **kwargs: Any) -> Any:
        asked_again.set(coordination.keys.retrain_requested, "again")  # `rfm retrain` again
        return real_retrain(*args, **kwargs)

    monkeypatch.setattr(retraining_module, "retrain", asked_meanwhile)
    await coordination.request_retrain()
    try:
        assert await retrainer.maybe_retrain() is not None
    finally:
        asked_again.close()
    assert await coordination.retrain_request() == "again"


async def test_the_lock_is_renewed_while_a_model_fits(
    tmp_path: Path,
    async_client: aioredis.Redis,
    store: MemoryStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_retrain = retraining_module.retrain

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)  # three times the lock's expiry
        return real_retrain(*args, **kwargs)

    monkeypatch.setattr(retraining_module, "retrain", slow)
    retrainer, registry, coordination = await make_retrainer(
        tmp_path, async_client, store, lock_ttl_s=0.3
    )
    await coordination.request_retrain()
    fitting = asyncio.create_task(retrainer.maybe_retrain())
    await asyncio.sleep(0.8)
    assert await async_client.get(registry.keys.retrain_lock) == retrainer.token
    assert await coordination.take_retrain_lock("another worker", 60.0) is False
    assert await fitting is not None
    assert await async_client.get(registry.keys.retrain_lock) is None
