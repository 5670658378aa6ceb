"""Outages of Redis and of the broker pause a running worker; it resumes by itself.

Each test starts its own Redis (with AOF) and its own broker on free ports, so that it can
kill, stall and restart them without touching the session's stack. The worker process is
never restarted by the test: it must outlast the outage, and the state it ends with must be
the one a bootstrap of the same events gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from aiokafka import TopicPartition

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from model_training.pipeline import train
from stream_app.core.state import CustomerState
from stream_app.devtools.processes import ProcessInfo, terminate
from stream_app.devtools.servers import (
    find_redis_server,
    find_tansu,
    kafka_bootstrap,
    redis_url,
    start_redis,
    start_server,
)
from stream_app.exceptions import StackError, StreamError
from stream_app.kafka import connection
from stream_app.kafka.replay import publish_events, wait_until_processed
from stream_app.service.bootstrap import bootstrap_states
from stream_app.service.order_events import build_events
from stream_app.settings import Settings
from tests.integration.conftest import UniqueNames
from tests.integration.streaming import (
    WorkerProcess,
    assert_same_states,
    counters,
    full_states,
    last_changes,
    running_worker,
    wait_for,
)

#: Events per second the tests publish at, so that an outage lands mid-replay.
RATE = 250.0


@dataclass
class Shop:
    """A small synthetic shop: its events, the state they must give, and a trained model."""

    events: list[tuple[bytes, bytes]]
    expected: dict[str, CustomerState]
    model_dir: Path


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    directory = tmp_path_factory.mktemp("shop")
    path = directory / "transactions.csv.gz"
    write_transactions(generate_transactions(customers=300, seed=3), path)
    frame: pd.DataFrame = load_transactions(path)
    plan = build_events(frame)
    train(path, directory / "model")
    expected = {state.customer_id: state for state in bootstrap_states(frame)}
    return Shop(plan.events, expected, directory / "model")


@dataclass
class Servers:
    """A Redis (AOF on) and a broker of one test's own, which the test may kill and restart."""

    directory: Path
    redis: ProcessInfo
    kafka: ProcessInfo
    stopped: list[ProcessInfo] = field(default_factory=list)

    def kill_redis(self) -> None:
        os.kill(self.redis.pid, signal.SIGKILL)
        _wait_gone(self.redis)

    def restart_redis(self) -> None:
        """Start Redis again on its port, from its append-only file."""
        self.redis = start_redis(
            self.directory / "redis", port=self.redis.port, aof=True, die_with_parent=True
        )

    def kill_kafka(self) -> None:
        os.kill(self.kafka.pid, signal.SIGKILL)
        _wait_gone(self.kafka)

    def restart_kafka(self) -> None:
        """Start the broker again on its port: in-memory storage, so with no topic at all."""
        self.kafka = start_server(
            "kafka", self.directory / "kafka", port=self.kafka.port, die_with_parent=True
        )


def _wait_gone(proc: ProcessInfo) -> None:
    # The servers are our children: reap them so that the port and pid are free.
    terminate([proc], timeout=10)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    try:
        find_tansu()
        find_redis_server()
    except StackError as exc:
        pytest.skip(f"local servers unavailable: {exc}")
    for name in ("redis", "kafka"):
        (tmp_path / name).mkdir()
    redis = start_redis(tmp_path / "redis", aof=True, die_with_parent=True)
    try:
        kafka = start_server("kafka", tmp_path / "kafka", die_with_parent=True)
    except BaseException:
        terminate([redis], timeout=10)
        raise
    own = Servers(tmp_path, redis, kafka)
    try:
        yield own
    finally:
        for proc in (own.redis, own.kafka):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
        terminate([own.redis, own.kafka], timeout=10)


def _settings(servers: Servers, shop: Shop) -> Settings:
    names = UniqueNames("outage")
    return Settings(
        kafka_bootstrap=kafka_bootstrap(servers.kafka.port),
        redis_url=redis_url(servers.redis.port),
        **names.fields(),
        model_dir=shop.model_dir,
        session_timeout_s=10.0,
        batch_size=50,
        # The timers run often, so that they too meet the outage.
        decay_interval_s=0.5,
        model_refresh_s=1.0,
        retrain_check_s=1.0,
        retrain_interval_s=0.0,
    )


class Publishing:
    """Publish events at :data:`RATE` in a thread; remember how far it got and why it stopped."""

    def __init__(self, settings: Settings, events: list[tuple[bytes, bytes]]) -> None:
        self.settings = settings
        self.events = events
        self.error: BaseException | None = None
        self.ends: dict[object, int] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.ends = dict(asyncio.run(publish_events(self.settings, self.events, rate=RATE)))
        except (StreamError, OSError) as exc:
            self.error = exc

    def join(self, timeout_s: float) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "publishing did not finish"


def _topics(settings: Settings) -> set[str]:
    async def run() -> set[str]:
        admin = connection.admin_client(settings)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(run())


def _publish_orders(settings: Settings, events: list[tuple[bytes, bytes]]) -> None:
    """Publish to the orders topic as a shop's backend would: no topic created on the way."""

    async def run() -> None:
        targets: dict[TopicPartition, int] = {}
        producer = connection.producer(settings, acks="all")
        await producer.start()
        try:
            futures = [
                await producer.send(settings.orders_topic, value, key=key) for key, value in events
            ]
            for sent in await asyncio.gather(*futures):
                partition = TopicPartition(sent.topic, sent.partition)
                targets[partition] = max(targets.get(partition, 0), sent.offset + 1)
        finally:
            await producer.stop()
        await wait_until_processed(settings, targets, timeout_s=90)

    asyncio.run(run())


def _processed(settings: Settings) -> int:
    return counters(settings).get("events", 0)


def _alive(worker: WorkerProcess) -> None:
    assert worker.process.poll() is None, worker.log()[-4000:]


def _assert_exact(settings: Settings, shop: Shop, *, changes: bool) -> None:
    states = full_states(settings)
    assert_same_states(states, shop.expected)
    scored = [customer for customer, state in states.items() if state.has_rfm]
    assert all(states[customer].segment is not None for customer in scored)
    if changes:
        announced = last_changes(settings)
        for customer in scored:
            assert announced[customer].segment == states[customer].segment, customer


@pytest.mark.parametrize("outage", ["kill", "stall"], ids=["SIGKILL", "SIGSTOP-20s"])
def test_a_redis_outage_mid_replay_pauses_the_worker_and_it_resumes(
    outage: str, servers: Servers, shop: Shop, tmp_path: Path
) -> None:
    settings = _settings(servers, shop)
    total = len(shop.events)
    with running_worker(settings, tmp_path / "worker.log") as worker:
        publishing = Publishing(settings, shop.events)
        wait_for(lambda: _processed(settings) > total // 3, 90, "a third of the events")
        if outage == "kill":
            servers.kill_redis()
            time.sleep(5.0)  # long enough for every timer and the batch path to meet it
            _alive(worker)
            servers.restart_redis()
        else:
            os.kill(servers.redis.pid, signal.SIGSTOP)
            time.sleep(20.0)
            _alive(worker)
            os.kill(servers.redis.pid, signal.SIGCONT)
        publishing.join(60)
        assert publishing.error is None, publishing.error
        before = _processed(settings)
        assert before < total, "the replay was over before the outage"
        asyncio.run(wait_until_processed(settings, publishing.ends, timeout_s=90))  # type: ignore[arg-type]
        _alive(worker)
        time.sleep(1.0)  # a decay step in progress records after it pops
    assert worker.process.returncode == 0, worker.log()[-4000:]
    _assert_exact(settings, shop, changes=True)


def test_a_broker_restarted_without_its_topics_is_waited_out(
    servers: Servers, shop: Shop, tmp_path: Path
) -> None:
    settings = _settings(servers, shop)
    total = len(shop.events)
    with running_worker(settings, tmp_path / "worker.log") as worker:
        publishing = Publishing(settings, shop.events)
        wait_for(lambda: _processed(settings) > total // 3, 90, "a third of the events")
        servers.kill_kafka()
        publishing.join(60)  # it fails: the broker is gone
        assert _processed(settings) < total, "the replay was over before the outage"
        time.sleep(3.0)
        _alive(worker)
        servers.restart_kafka()
        stream_topics = {settings.orders_topic, settings.changes_topic, settings.dlq_topic}
        wait_for(lambda: stream_topics <= _topics(settings), 30, "the worker to recreate topics")
        _alive(worker)
        # The broker lost every message: publish them all again (applied ones are duplicates).
        _publish_orders(settings, shop.events)
        _alive(worker)
        time.sleep(1.0)
    assert worker.process.returncode == 0, worker.log()[-4000:]
    # The changes published before the broker died went with it: the state alone is compared.
    _assert_exact(settings, shop, changes=False)
