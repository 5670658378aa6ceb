"""``rfm serve`` as a real process against a real broker, Redis and worker.

A small synthetic shop is replayed through one worker; then every answer of the API is held
against ``rfm export`` and the segment-changes topic. The module has a Redis of its own (the
last test stops it; the session's Redis is never touched).
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import pytest
from pydantic import SecretStr

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from model_training.pipeline import train
from stream_app.core.events import SegmentChange
from stream_app.devtools.processes import ProcessInfo, terminate
from stream_app.devtools.record import StackInfo
from stream_app.devtools.servers import redis_url, start_redis
from stream_app.service.order_events import build_events
from stream_app.settings import Settings
from tests.integration.conftest import UniqueNames
from tests.integration.streaming import (
    export,
    on_store,
    read_topic,
    replay,
    running_server,
    running_worker,
    wait_for,
)

KEY = "test-key-6f1d"
AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Feed:
    """The SSE events one client received."""

    changes: list[SegmentChange] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class Module:
    settings: Settings
    base: str
    redis: ProcessInfo
    feed: Feed
    export: pd.DataFrame
    topic: list[SegmentChange]
    log: Path


def _listen(base: str, feed: Feed) -> None:
    """Collect the feed's changes until told to stop (or the server goes away)."""
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(5.0, read=30.0)) as client,
            client.stream("GET", f"{base}/v1/changes/stream", params={"key": KEY}) as response,
        ):
            assert response.status_code == 200
            feed.connected.set()
            event = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event == "change":
                    feed.changes.append(SegmentChange.model_validate_json(line[5:].strip()))
                if feed.stop.is_set():
                    return
    except httpx.HTTPError:
        if not feed.stop.is_set():
            raise


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def module(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Module]:
    directory = tmp_path_factory.mktemp("api")
    path = directory / "transactions.csv.gz"
    write_transactions(generate_transactions(customers=80, seed=23), path)
    train(path, directory / "model")
    events = build_events(load_transactions(path)).events
    (directory / "redis").mkdir()
    redis = start_redis(directory / "redis", die_with_parent=True)
    names = UniqueNames(f"api-{os.getpid()}")
    settings = stack.settings(
        redis_url=redis_url(redis.port),
        **names.fields(),
        model_dir=directory / "model",
        session_timeout_s=10.0,
        retrain_interval_s=0.0,
        api_keys=SecretStr(f"other-key,{KEY}"),
    )
    log = directory / "serve.log"
    feed = Feed()
    try:
        with running_server(settings, log) as base:
            listener = threading.Thread(target=_listen, args=(base, feed), daemon=True)
            with running_worker(settings, directory / "worker.log") as worker:
                wait_for(lambda: _ok(worker.url("/ready")), 90, "the worker to be ready")
                listener.start()
                assert feed.connected.wait(30), log.read_text()
                replay(settings, events, timeout_s=120)
                clock = on_store(settings, lambda store: store.clock())
                assert clock is not None
                topic = [
                    SegmentChange.model_validate_json(value)
                    for _, value in read_topic(settings, settings.changes_topic)
                ]
                frame = export(settings, clock, None)
            distinct = {(change.customer_id, change.sequence) for change in topic}
            wait_for(
                lambda: {(c.customer_id, c.sequence) for c in feed.changes} >= distinct,
                15,
                "the feed to carry every change",
            )
            feed.stop.set()
            yield Module(settings, base, redis, feed, frame, topic, log)
    finally:
        feed.stop.set()
        terminate([redis], timeout=10)


def _get(module: Module, path: str, **options: object) -> httpx.Response:
    headers = {**AUTH, **options.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.get(f"{module.base}{path}", headers=headers, timeout=30.0, **options)  # type: ignore[arg-type]


def test_every_customer_agrees_with_the_export(module: Module) -> None:
    frame = module.export
    assert len(frame) > 50
    with httpx.Client(base_url=module.base, headers=AUTH, timeout=30.0) as client:
        for row in frame.itertuples(index=False):
            body = client.get(f"/v1/customers/{row.customer_id}").json()
            got = (body["recency_days"], body["frequency"], body["monetary"], body["segment"])
            want = (row.recency_days, row.frequency, row.monetary, row.segment or None)
            assert got == want, row.customer_id


def test_segment_sizes_and_lists_match_the_export(module: Module) -> None:
    body = _get(module, "/v1/segments").json()
    segmented = module.export[module.export["segment"] != ""]
    assert body["customers"] == len(segmented)
    assert sum(s["customers"] for s in body["segments"]) == len(segmented)
    assert {s["name"]: s["customers"] for s in body["segments"] if s["customers"]} == dict(
        Counter(segmented["segment"])
    )
    # Every segment of the model is listed, also one nobody is in now.
    card = _get(module, f"/v1/models/{body['model_version']}").json()
    assert {s["name"] for s in body["segments"]} >= set(card["segment_names"])
    assert sum(s["revenue_share"] for s in body["segments"]) == pytest.approx(1.0)
    for name, members in segmented.groupby("segment"):
        text = _get(module, f"/v1/segments/{name}/customers.csv").text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [
            (r["customer_id"], int(r["recency_days"]), int(r["frequency"]), r["monetary"])
            for r in rows
        ] == [
            (m.customer_id, m.recency_days, m.frequency, f"{m.monetary:.2f}")
            for m in members.sort_values("customer_id").itertuples()
        ]


def test_flows_count_each_distinct_change_once(module: Module) -> None:
    # A change published twice (a worker restarted between recording and publishing it)
    # carries the same sequence number: it is one change.
    distinct = {(c.customer_id, c.sequence): c for c in module.topic}
    expected = Counter((c.previous_segment, c.segment, c.reason) for c in distinct.values())
    flows = _get(module, "/v1/flows").json()["flows"]
    got = {(f["from_segment"], f["to_segment"], f["reason"]): f["customers"] for f in flows}
    assert got == dict(expected)
    days = _get(module, "/v1/segments/daily").json()["days"]
    assert days, "no daily sizes"
    last = {k: v for k, v in days[-1]["segments"].items() if v}
    segments = _get(module, "/v1/segments").json()["segments"]
    assert last == {s["name"]: s["customers"] for s in segments if s["customers"]}


def test_the_live_feed_carried_every_change(module: Module) -> None:
    assert module.topic
    feed = {(c.customer_id, c.sequence) for c in module.feed.changes}
    assert feed == {(c.customer_id, c.sequence) for c in module.topic}


def test_keys_are_needed(module: Module) -> None:
    assert httpx.get(f"{module.base}/v1/segments", timeout=10).status_code == 401
    wrong = httpx.get(f"{module.base}/v1/segments", headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{module.base}/health", timeout=10).status_code == 200
    assert KEY not in module.log.read_text()
    stream = _get(module, "/v1/stream").json()
    assert stream["lag"] == 0 and stream["events_applied"] > 0


def test_redis_down_answers_503(module: Module) -> None:
    terminate([module.redis], timeout=10)
    answer = _get(module, "/v1/customers/anyone")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert json.loads(answer.text)["status"] == 503
