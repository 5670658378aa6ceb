"""Helpers for the stream's integration tests: worker processes, replays, state snapshots."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from aiokafka import TopicPartition

from model_training.model.artifact import LoadedModel
from stream_app.core.events import SegmentChange
from stream_app.core.state import CustomerState
from stream_app.devtools.network import free_port
from stream_app.kafka import connection
from stream_app.kafka.replay import publish_events, wait_until_processed
from stream_app.service.export import export_frame
from stream_app.settings import Settings
from stream_app.store.client import configured_client
from stream_app.store.keys import keys_for
from stream_app.store.redis_store import RedisStore
from stream_app.store.registry import ModelRegistry
from tests.fakes import V1, fitted_segmenter, model_card

T = TypeVar("T")


@dataclass
class WorkerProcess:
    """An ``rfm worker`` running as a child process, its web server on ``web_port``."""

    process: subprocess.Popen[bytes]
    log_path: Path
    web_port: int

    def url(self, path: str) -> str:
        """The address of one of the worker's web views (``/metrics``, ``/ready``)."""
        return f"http://127.0.0.1:{self.web_port}{path}"

    def kill(self) -> None:
        """Stop it hard, as a crash would (SIGKILL: no clean-up, no offset commit)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop it cleanly."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_worker(settings: Settings, log_path: Path) -> Iterator[WorkerProcess]:
    """Start ``python -m stream_app worker`` with ``settings``; stop it at exit.

    The worker's web server gets a free port of its own (``settings.web_port`` is not used),
    so that workers started side by side do not collide.
    """
    web_port = free_port()
    env = {**os.environ, **settings.to_env(), "RFM_WEB_PORT": str(web_port)}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream_app", "worker", "--loglevel", "info"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    worker = WorkerProcess(process, log_path, web_port)
    try:
        yield worker
    finally:
        worker.stop()


def replay(settings: Settings, events: list[tuple[bytes, bytes]], timeout_s: float = 180) -> None:
    """Publish events and wait until the workers have processed all of them."""

    async def run() -> None:
        targets = await publish_events(settings, events)
        await wait_until_processed(settings, targets, timeout_s=timeout_s)

    asyncio.run(run())


def on_store(settings: Settings, work: Callable[[RedisStore], Awaitable[T]]) -> T:
    """Run ``work`` on the settings' store and return its result."""

    async def run() -> T:
        async with RedisStore.from_settings(settings) as store:
            return await work(store)

    return asyncio.run(run())


def export(settings: Settings, t_ref: float, model: object | None) -> pd.DataFrame:
    """The ``rfm export`` frame of the settings' state."""
    return on_store(settings, lambda store: export_frame(store, t_ref, model))  # type: ignore[arg-type]


def full_states(settings: Settings) -> dict[str, CustomerState]:
    """Every customer's whole state (items and applied event ids included)."""

    async def read(store: RedisStore) -> dict[str, CustomerState]:
        ids = [state.customer_id async for batch in store.scan() for state in batch]
        states = {}
        for customer in ids:
            state = await store.get(customer)
            assert state is not None
            states[customer] = state
        return states

    return on_store(settings, read)


def counters(settings: Settings) -> dict[str, int]:
    return on_store(settings, lambda store: store.counters())


def read_topic(settings: Settings, topic: str, idle_s: float = 3.0) -> list[tuple[bytes, bytes]]:
    """Every message of ``topic`` from the beginning, in partition order."""

    async def run() -> list[tuple[bytes, bytes]]:
        consumer = connection.consumer(
            settings,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
            await consumer.seek_to_beginning()
            messages: list[tuple[bytes, bytes]] = []
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < idle_s:
                batches = await consumer.getmany(timeout_ms=500)
                for batch in batches.values():
                    messages.extend((m.key or b"", m.value or b"") for m in batch)
                    quiet_since = time.monotonic()
            return messages
        finally:
            await consumer.stop()

    return asyncio.run(run())


def last_changes(settings: Settings) -> dict[str, SegmentChange]:
    """Per customer, the change a consumer ends with: the highest sequence number.

    That is the rule the events are made for: a consumer drops a change whose sequence it
    has already seen (a repeat after a restart) or passed (a late one from another worker).
    """
    last: dict[str, SegmentChange] = {}
    for _, value in read_topic(settings, settings.changes_topic):
        change = SegmentChange.model_validate_json(value)
        seen = last.get(change.customer_id)
        if seen is None or change.sequence > seen.sequence:
            last[change.customer_id] = change
        elif change.sequence == seen.sequence:
            assert change.segment == seen.segment, (seen, change)  # repeats are identical
    return last


def wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def assert_same_states(
    actual: dict[str, CustomerState], expected: dict[str, CustomerState]
) -> None:
    """Assert two customer states agree field by field (money to a micro-unit)."""
    assert actual.keys() == expected.keys()
    for customer, want in expected.items():
        got = actual[customer]
        assert got.orders == want.orders, customer
        assert got.digests == want.digests, customer
        assert got.frequency == want.frequency, customer
        assert (got.first_purchase, got.last_purchase) == (
            want.first_purchase,
            want.last_purchase,
        ), customer
        assert (got.country, got.last_order) == (want.country, want.last_order), customer
        assert math.isclose(got.monetary, want.monetary, abs_tol=1e-6), customer
        assert got.items.keys() == want.items.keys(), customer
        for sku, totals in want.items.items():
            mine = got.items[sku]
            assert (mine.bought, mine.returned) == (totals.bought, totals.returned)
            assert math.isclose(mine.returned_value, totals.returned_value, abs_tol=1e-6)


@contextmanager
def running_server(settings: Settings, log_path: Path) -> Iterator[str]:
    """Start ``python -m stream_app serve`` on a free port; yield its base URL; stop it at exit."""
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream_app", "serve", "--port", str(port)],
            env={**os.environ, **settings.to_env()},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"rfm serve exited:\n{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2):
                return True
        except (urllib.error.URLError, ConnectionError):
            return False

    try:
        wait_for(answers, 60, "rfm serve to answer")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def publish_model(settings: Settings) -> None:
    """Publish the test model :data:`tests.fakes.V1` as the current version, as
    ``rfm models`` would after a training."""

    async def run() -> None:
        client = configured_client(settings)
        try:
            registry = ModelRegistry(settings.model_dir, client, keys_for(settings))
            await registry.publish(fitted_segmenter(0), model_card(V1))
        finally:
            await client.aclose()

    asyncio.run(run())


#: The UCI tests' reference date (as `rfm train --t-ref`), and a date long after the file.
T_REF = datetime(2011, 12, 10, tzinfo=UTC)
LATER = datetime(2012, 6, 1, tzinfo=UTC)


def clock_and_due(settings: Settings, until: float) -> tuple[float | None, int]:
    async def read(store: RedisStore) -> tuple[float | None, int]:
        return await store.clock(), await store.due_count(until)

    return on_store(settings, read)


def assert_segments_follow_model(
    states: dict[str, CustomerState], model: LoadedModel, moment: datetime
) -> list[str]:
    """Every stored segment is what ``model`` assigns at ``moment``; return those scored."""
    scored = sorted(c for c, state in states.items() if state.has_rfm)
    rfm = np.array([states[c].rfm(moment.timestamp()) for c in scored])
    expected = dict(zip(scored, model.predict_segments(rfm), strict=True))
    wrong = {
        c: (states[c].segment, expected[c]) for c in scored if states[c].segment != expected[c]
    }
    assert not wrong, (
        f"{len(wrong)} customers not in their {moment:%Y-%m-%d} segment: {list(wrong.items())[:5]}"
    )
    return scored


def unannounced(settings: Settings) -> int:
    """How many customers have a change recorded but not yet published."""

    async def count(store: RedisStore) -> int:
        return sum([state.unannounced async for batch in store.scan() for state in batch])

    return on_store(settings, count)


def wait_until_settled(settings: Settings) -> None:
    """Wait until nobody is due by the clock and every recorded change is published."""
    clock = clock_and_due(settings, 0)[0]
    assert clock is not None
    wait_for(
        lambda: clock_and_due(settings, clock)[1] == 0 and not unannounced(settings),
        timeout_s=120,
        what="the customers due by the clock to be re-scored and their changes published",
    )
    time.sleep(1.5)  # a decay step in flight records after it pops
