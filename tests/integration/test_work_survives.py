"""Work that survives its worker: a re-score after a promote, and a requested retrain.

A worker is killed (SIGKILL) in the middle of each; the work is finished by the worker that
comes next, through the real broker and Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from model_training.model.artifact import LoadedModel
from stream_app.core.state import CustomerState
from stream_app.service.order_events import build_events
from stream_app.settings import Settings
from stream_app.store.client import redis_client
from stream_app.store.coordination import Coordination
from stream_app.store.keys import Keys, keys_for
from stream_app.store.registry import ModelRegistry
from tests.fakes import V1, V2, fitted_segmenter, model_card
from tests.integration.streaming import full_states, last_changes, replay, running_worker, wait_for

CUSTOMERS = 2500


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, bytes]]:
    path = tmp_path_factory.mktemp("shop") / "transactions.csv.gz"
    write_transactions(generate_transactions(customers=CUSTOMERS, seed=11), path)
    return build_events(load_transactions(path)).events


@pytest.fixture
def loop() -> Iterator[asyncio.Runner]:
    """One event loop for the test's async Redis calls (registry, coordination)."""
    with asyncio.Runner() as runner:
        yield runner


def following(states: dict[str, CustomerState], model: LoadedModel, now: float) -> list[bool]:
    """For each customer with RFM, whether their stored segment is ``model``'s at ``now``."""
    scored = [state for state in states.values() if state.has_rfm]
    expected = model.predict_segments(np.array([state.rfm(now) for state in scored]))
    return [state.segment == name for state, name in zip(scored, expected, strict=True)]


def _serving_v1(
    settings: Settings, loop: asyncio.Runner
) -> tuple[Keys, redis.Redis, Any, ModelRegistry, Coordination]:
    """Clients of the test's Redis, with model V1 published as the current version."""
    keys = keys_for(settings)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    async_client = redis_client(settings.redis_url)
    registry = ModelRegistry(settings.model_dir, async_client, keys)
    coordination = Coordination(async_client, keys)
    loop.run(registry.publish(fitted_segmenter(0), model_card(V1)))
    return keys, client, async_client, registry, coordination


def test_a_rescore_killed_midway_is_finished_by_the_next_worker(
    stack_settings: Settings,
    events: list[tuple[bytes, bytes]],
    tmp_path: Path,
    loop: asyncio.Runner,
) -> None:
    settings = stack_settings.model_copy(
        update={
            "model_dir": tmp_path / "models",
            "model_refresh_s": 0.5,
            # Small steps and a short lease: the kill lands mid-way and the next worker
            # does not wait a minute for the lease.
            "rescore_batch_size": 100,
            "rescore_lease_s": 3.0,
        }
    )
    keys, client, async_client, registry, coordination = _serving_v1(settings, loop)
    loop.run(asyncio.to_thread(registry.files.save, fitted_segmenter(7), model_card(V2)))
    new_model = loop.run(registry.load(V2))
    job = keys.rescore_job(V2)
    try:
        with running_worker(settings, tmp_path / "first.log") as first:
            replay(settings, events)
            wait_for(lambda: client.hget(keys.rescore_job(V1), "done"), 60, "the first re-score")
            assert loop.run(registry.promote(V2)) == V1  # as `rfm models promote` does
            wait_for(lambda: int(client.hget(job, "customers") or 0) > 0, 30, "the re-score")
            first.kill()
        at_kill = client.hgetall(job)
        assert "done" not in at_kill and at_kill["cursor"] != "0", at_kill
        clock = float(client.get(keys.clock) or 0)
        left = following(full_states(settings), new_model, clock).count(False)
        assert left > 0, "the kill came after the re-score"  # customers still on V1's segments
        killed_at = time.monotonic()

        with running_worker(settings, tmp_path / "second.log") as second:
            wait_for(lambda: client.hget(job, "done"), 60, "the re-score to be finished")
            finished_in = time.monotonic() - killed_at
            assert second.process.poll() is None
        progress = loop.run(coordination.rescore_progress(V2))
        assert progress is not None and progress.done and progress.leases == 2
        # It went on from the cursor: the customers re-scored twice are at most the batches
        # in flight at the kill, not everyone again.
        assert CUSTOMERS <= progress.customers < CUSTOMERS + 200, progress
        states = full_states(settings)
        assert all(following(states, new_model, float(client.get(keys.clock) or 0)))
        announced = last_changes(settings)
        for customer, state in states.items():
            if state.has_rfm:
                assert announced[customer].segment == state.segment, customer
        print(
            f"\n{left} customers left on the old model at the kill; finished "
            f"{finished_in:.1f} s after it (lease {settings.rescore_lease_s} s)"
        )
    finally:
        loop.run(async_client.aclose())
        client.close()


def test_a_retrain_killed_midway_is_retried_after_the_lock_lapses(
    stack_settings: Settings,
    events: list[tuple[bytes, bytes]],
    tmp_path: Path,
    loop: asyncio.Runner,
) -> None:
    settings = stack_settings.model_copy(
        update={
            "model_dir": tmp_path / "models",
            "retrain_check_s": 0.2,
            "retrain_lock_s": 4.0,
            "gate_min_silhouette": 0.0,
            "gate_max_changed_share": 1.0,
        }
    )
    keys, client, async_client, registry, coordination = _serving_v1(settings, loop)
    try:
        with running_worker(settings, tmp_path / "first.log") as first:
            replay(settings, events)
            request = loop.run(coordination.request_retrain())
            wait_for(lambda: client.exists(keys.retrain_lock), 30, "a worker to take the lock")
            first.kill()
        assert client.hgetall(keys.retrain_last) == {}, "the retrain ended before the kill"
        assert client.get(keys.retrain_requested) == request  # kept: nothing was recorded
        lock_left_s = client.pttl(keys.retrain_lock) / 1000
        assert 0 < lock_left_s <= settings.retrain_lock_s  # the dead worker's lock lapses
        killed_at = time.monotonic()

        with running_worker(settings, tmp_path / "second.log"):
            wait_for(lambda: client.hexists(keys.retrain_last, "version"), 90, "a retrain")
            retried_in = time.monotonic() - killed_at
        attempt = loop.run(coordination.last_attempt())
        assert attempt["requested"] is True and attempt["accepted"] is True, attempt
        assert not str(attempt["worker"]).endswith(f"-{first.process.pid}")  # the next one
        assert client.get(keys.retrain_requested) is None  # cleared once recorded
        assert loop.run(registry.current_version()) == attempt["version"]
        print(
            f"\nretrain retried and finished {retried_in:.1f} s after the kill (lock "
            f"{lock_left_s:.1f} s left at the kill, the attempt took {attempt['seconds']} s)"
        )
    finally:
        loop.run(async_client.aclose())
        client.close()
