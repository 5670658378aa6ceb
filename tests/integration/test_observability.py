"""A worker's /metrics, /ready and ``rfm status`` against a real broker, Redis and worker.

One worker serves the module, on the session's broker and a Redis of the module's own (the
last test stops and restarts it; the session's Redis is never touched).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from model_training.pipeline import train
from stream_app.cli.main import main
from stream_app.core.events import SegmentChange
from stream_app.devtools.network import free_port
from stream_app.devtools.processes import ProcessInfo, terminate
from stream_app.devtools.record import StackInfo
from stream_app.devtools.servers import redis_url, start_redis
from stream_app.exceptions import BrokerUnavailableError
from stream_app.kafka.replay import publish_events, wait_until_processed
from stream_app.kafka.status import render, stream_status
from stream_app.service.order_events import build_events
from stream_app.settings import Settings
from tests.integration.conftest import UniqueNames
from tests.integration.streaming import (
    WorkerProcess,
    counters,
    read_topic,
    running_worker,
    wait_for,
)

#: One message no schema accepts: a dead letter.
BAD = (b"x", b"{not json")


@dataclass
class Module:
    """The module's worker, its settings, its Redis and the events it replays."""

    settings: Settings
    worker: WorkerProcess
    redis: ProcessInfo
    redis_dir: Path
    events: list[tuple[bytes, bytes]]


@pytest.fixture(scope="module")
def module(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Module]:
    directory = tmp_path_factory.mktemp("observability")
    path = directory / "transactions.csv.gz"
    write_transactions(generate_transactions(customers=120, seed=11), path)
    train(path, directory / "model")
    events = build_events(load_transactions(path)).events
    (directory / "redis").mkdir()
    redis = start_redis(directory / "redis", aof=True, die_with_parent=True)
    names = UniqueNames("observability")
    settings = stack.settings(
        redis_url=redis_url(redis.port),
        **names.fields(),
        model_dir=directory / "model",
        session_timeout_s=10.0,
        retrain_interval_s=0.0,
        model_refresh_s=1.0,
    )
    servers = [redis]  # the one running at the end (the last test restarts it)
    try:
        with running_worker(settings, directory / "worker.log") as worker:
            wait_for(lambda: _ready(worker)[0] == 200, 90, "the worker to be ready")
            own = Module(settings, worker, redis, directory / "redis", events)
            yield own
            servers = [own.redis]
    finally:
        terminate(servers, timeout=10)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _ready(worker: WorkerProcess) -> tuple[int, dict[str, object]]:
    status, body = _get(worker.url("/ready"))
    return status, json.loads(body) if body else {}


def _scrape(worker: WorkerProcess) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``/metrics`` parsed: sample name -> labels -> value."""
    status, body = _get(worker.url("/metrics"))
    assert status == 200, body
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def _total(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> float:
    return sum(samples.get(name, {}).values())


def _one(
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str
) -> float:
    return samples[name][tuple(sorted(labels.items()))]


@pytest.fixture(scope="module")
def replayed(module: Module) -> list[dict[str, dict[tuple[tuple[str, str], ...], float]]]:
    """Replay the events and a dead letter, paced; return the scrapes taken meanwhile."""
    settings, worker = module.settings, module.worker
    ends: dict[object, int] = {}

    def publish() -> None:
        # Paced over about 4 s, so that scrapes happen while it runs.
        rate = len(module.events) / 4
        ends.update(asyncio.run(publish_events(settings, [*module.events, BAD], rate=rate)))

    thread = threading.Thread(target=publish)
    thread.start()
    during = []
    while thread.is_alive():
        during.append(_scrape(worker))
        time.sleep(0.5)
    thread.join()
    asyncio.run(wait_until_processed(settings, ends, timeout_s=90))  # type: ignore[arg-type]
    return during


def test_metrics_count_what_the_worker_did(
    module: Module, replayed: list[dict[str, dict[tuple[tuple[str, str], ...], float]]]
) -> None:
    settings, worker = module.settings, module.worker
    # Scraped while the replay ran: the count of applied events only grows, and never
    # passes what was published.
    assert len(replayed) >= 2, "too few scrapes while the replay ran"
    applied = [_one(scrape, "rfm_events_total", outcome="applied") for scrape in replayed]
    assert applied == sorted(applied)
    assert applied[-1] <= len(module.events)

    # Lag reaches 0 on every assigned partition once the replay is processed.
    def caught_up() -> bool:
        lag = _scrape(worker).get("rfm_consumer_lag", {})
        return len(lag) == settings.topic_partitions and not any(lag.values())

    wait_for(caught_up, 30, "the lag to reach 0")

    after = _scrape(worker)
    held = counters(settings)
    assert _one(after, "rfm_events_total", outcome="applied") == held["applied"]
    assert held["applied"] == len(module.events)  # each event once: no duplicate in a replay
    assert _one(after, "rfm_events_total", outcome="dead_lettered") == 1
    assert _total(after, "rfm_events_total") == held["events"] == len(module.events) + 1
    assert _total(after, "rfm_lines_skipped_total") == sum(
        count for name, count in held.items() if name.startswith("skipped_")
    )
    assert _total(after, "rfm_batch_seconds_count") == held["batches"]
    assert _one(after, "rfm_model_info", version=_served(module)) == 1
    assert _total(after, "rfm_segment_customers") > 0

    # The changes counted by reason are those on the topic, repeats aside (a change published
    # again after a retry has the same sequence number). The decay step may add some
    # meanwhile: compare a count that held still while the topic was read.
    def changes_agree() -> bool:
        counted = _total(_scrape(worker), "rfm_segment_changes_total")
        published = _distinct_changes(settings)
        return counted == published == _total(_scrape(worker), "rfm_segment_changes_total")

    wait_for(changes_agree, 30, "the changes counted to match the topic")
    latencies = _total(after, "rfm_change_latency_seconds_count")
    assert 0 < latencies <= _total(after, "rfm_segment_changes_total")


def _distinct_changes(settings: Settings) -> int:
    changes = (
        SegmentChange.model_validate_json(value)
        for _, value in read_topic(settings, settings.changes_topic, idle_s=1.5)
    )
    return len({(change.customer_id, change.sequence) for change in changes})


def _served(module: Module) -> str:
    (beat,) = asyncio.run(stream_status(module.settings)).workers.values()
    return str(beat["version"])


def _status_command(settings: Settings) -> tuple[int, str, str]:
    """Run ``rfm status --json`` in-process with these settings: exit code, stdout, stderr."""
    runner = CliRunner()
    argv = ["rfm", "status", "--json"]
    with (
        runner.isolation(env=settings.to_env()) as streams,
        mock.patch.object(sys, "argv", argv),
    ):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return code, streams[0].getvalue().decode(), streams[1].getvalue().decode()


def test_rfm_status_shows_the_stream(module: Module, replayed: object) -> None:
    settings = module.settings
    code, stdout, stderr = _status_command(settings)
    assert code == 0, stderr
    status = json.loads(stdout)
    assert status["total_lag"] == 0, status["lag"]
    assert len(status["lag"]) == settings.topic_partitions
    assert sum(part["end"] for part in status["lag"]) == len(module.events) + 1
    assert status["dead_letters"] == 1
    assert status["model"] is not None
    assert [beat["version"] for beat in status["workers"].values()] == [status["model"]]
    assert status["clock"] is not None

    text = render(asyncio.run(stream_status(settings)))
    assert f"serves {status['model']}" in text
    assert "consumer lag    0" in text

    unreachable = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    with pytest.raises(BrokerUnavailableError, match=r"Kafka at .* does not answer"):
        asyncio.run(stream_status(unreachable))


def test_ready_says_503_while_redis_is_away_and_200_when_it_is_back(module: Module) -> None:
    worker = module.worker
    assert _ready(worker) == (200, {"ready": True})
    os.kill(module.redis.pid, signal.SIGKILL)
    terminate([module.redis], timeout=10)
    try:
        wait_for(lambda: _ready(worker)[0] == 503, 20, "/ready to say 503")
        _, body = _ready(worker)
        assert body["ready"] is False
        assert "Redis" in str(body["reason"])
        assert _get(worker.url("/health"))[0] == 200  # alive all the same
    finally:
        module.redis = start_redis(
            module.redis_dir, port=module.redis.port, aof=True, die_with_parent=True
        )
    wait_for(lambda: _ready(worker)[0] == 200, 30, "/ready to say 200 again")
    assert worker.process.poll() is None, worker.log()[-4000:]
