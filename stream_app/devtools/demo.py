"""``rfm demo``: the whole story on the embedded synthetic data, no Docker needed.

Synthesise a year of a shop's transactions, train and explain a model, start a local broker
and Redis, start a worker, replay the year as order events while watching segment changes
arrive, then show the segment table and check that the stream agrees with the batch pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from model_training.model.artifact import load_model
from model_training.model.naming import label_for
from model_training.pipeline import train
from stream_app.core.events import SegmentChange
from stream_app.devtools.network import free_port
from stream_app.devtools.servers import find_tansu
from stream_app.devtools.stack import LocalStack
from stream_app.kafka.clock_events import publish_clock_event
from stream_app.kafka.replay import publish_events, wait_until_processed
from stream_app.kafka.watch import follow_changes
from stream_app.service.export import export_frame, segment_counts, write_export
from stream_app.service.order_events import build_events
from stream_app.settings import Settings
from stream_app.store.client import redacted_url
from stream_app.store.redis_store import RedisStore

__all__ = ["run_demo"]

Echo = Callable[[str], None]
SHOWN_CHANGES = 12
LATER_DAYS = 90


def run_demo(output: Path, customers: int, seed: int, echo: Echo) -> bool:
    """Run the demo, writing everything under ``output``; True when stream and batch agree."""
    find_tansu()  # the local broker is an extra: say so before minutes of work
    started = time.monotonic()
    output.mkdir(parents=True, exist_ok=True)

    def stage(text: str) -> None:
        echo(f"\n[{time.monotonic() - started:5.1f}s] {text}")

    stage(f"1/6 synthesising {customers:,} customers' transactions (seed {seed})")
    data = output / "transactions.csv.gz"
    frame = generate_transactions(customers=customers, seed=seed)
    write_transactions(frame, data)
    echo(f"      {len(frame):,} lines -> {data}")

    stage("2/6 training the segmentation model")
    model_dir = output / "model"
    result = train(data, model_dir)
    echo(
        f"      {result.method}, k={result.n_segments}, silhouette "
        f"{(result.silhouette or 0):.3f}; report: {model_dir / 'report.html'}"
    )
    batch = pd.read_csv(model_dir / "rfm.csv", dtype={"customer_id": str})
    t_ref = datetime.fromisoformat(str(result.card["t_ref"]).replace("Z", "+00:00"))
    if t_ref.tzinfo is None:
        t_ref = t_ref.replace(tzinfo=UTC)

    stage("3/6 starting a local Kafka-protocol broker (Tansu) and Redis")
    with LocalStack(output / "stack", die_with_parent=True) as stack:
        settings = stack.settings(
            model_dir=model_dir,
            app_id="rfm-demo",
            key_prefix="demo",
            session_timeout_s=6.0,
            # Not 6066: a worker already running on this machine keeps its port.
            web_port=free_port(),
        )
        echo(f"      kafka {settings.kafka_bootstrap}, redis {redacted_url(settings.redis_url)}")
        echo(f"      worker metrics at http://{settings.web_host}:{settings.web_port}/metrics")
        stage("4/6 starting a worker")
        log_path = output / "worker.log"
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "stream_app", "worker", "--loglevel", "warning"],
                env={**os.environ, **settings.to_env()},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            plan = build_events(load_transactions(data))
            stage(f"5/6 replaying {len(plan.events):,} order events; live segment changes:")
            later = t_ref + timedelta(days=LATER_DAYS)
            reasons = asyncio.run(_replay_and_watch(settings, plan.events, later, echo))
            if worker.poll() is not None:
                echo(f"the worker stopped; see {log_path}")
                return False
            echo(f"      {sum(reasons.values()):,} segment changes: {dict(reasons)}")

            stage(f"6/6 the segments on {later:%Y-%m-%d}")
            agree = asyncio.run(_summarise(settings, batch, t_ref, output, echo))
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
    stage("done: broker and Redis stopped")
    return agree


async def _replay_and_watch(
    settings: Settings, events: list[tuple[bytes, bytes]], later: datetime, echo: Echo
) -> Counter[str]:
    reasons: Counter[str] = Counter()

    def show(change: SegmentChange) -> None:
        reasons[change.reason] += 1
        if sum(reasons.values()) <= SHOWN_CHANGES:
            echo(
                f"      {change.occurred_at:%Y-%m-%d}  customer {change.customer_id:<6} "
                f"{label_for(change.previous_segment or '(new)'):>20} -> "
                f"{label_for(change.segment):<20} "
                f"R={change.rfm.recency_days}d F={change.rfm.frequency} "
                f"M={change.rfm.monetary:,.2f}"
            )
        elif sum(reasons.values()) == SHOWN_CHANGES + 1:
            echo("      ...")

    watcher = asyncio.create_task(
        follow_changes(settings, show, from_beginning=True, idle_timeout_s=None)
    )
    published = time.monotonic()
    targets = await publish_events(settings, events)
    await wait_until_processed(settings, targets, timeout_s=300)
    echo(f"      the worker caught up {time.monotonic() - published:.1f}s after publishing began")
    await asyncio.sleep(1.0)  # let the watcher drain the last changes
    before = reasons["recency"]
    echo(f"      {LATER_DAYS} days pass without orders: rfm clock advance --to {later:%Y-%m-%d}")
    await publish_clock_event(settings, later)
    async with RedisStore.from_settings(settings) as store:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            clock = await store.clock()
            caught_up = clock is not None and clock >= later.timestamp()
            if caught_up and await store.due_count(later.timestamp()) == 0:
                break
            await asyncio.sleep(0.5)
    await asyncio.sleep(1.5)  # the decay step publishes, then the watcher reads
    echo(f"      {reasons['recency'] - before:,} customers moved with time passing (recency)")
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    return reasons


async def _summarise(
    settings: Settings, batch: pd.DataFrame, t_ref: datetime, output: Path, echo: Echo
) -> bool:
    async with RedisStore.from_settings(settings) as store:
        counts = await segment_counts(store)
        model = load_model(settings.model_dir)
        stream = await export_frame(store, t_ref.timestamp(), model)
    total = sum(counts.values())
    echo(f"      {'segment':<20} {'customers':>9} {'share':>7}   action")
    actions = {str(s["name"]): str(s.get("action", "")) for s in model.card.get("segments", [])}
    for name, count in counts.most_common():
        echo(
            f"      {label_for(name):<20} {count:>9,} {count / total:>7.1%}   "
            f"{actions.get(name, '')}"
        )
    write_export(stream, output / "rfm_stream.csv")
    merged = batch.merge(stream, on="customer_id", suffixes=("_batch", "_stream"))
    agree = (
        len(merged) == len(batch) == len(stream)
        and bool((merged["recency_days_batch"] == merged["recency_days_stream"]).all())
        and bool((merged["frequency_batch"] == merged["frequency_stream"]).all())
        and bool(((merged["monetary_batch"] - merged["monetary_stream"]).abs() <= 0.01).all())
        and bool((merged["segment_batch"] == merged["segment_stream"]).all())
    )
    verdict = "agree" if agree else "DISAGREE"
    echo(
        f"      stream and batch {verdict} on {len(merged):,} of {len(batch):,} customers "
        f"(RFM and segment at {t_ref:%Y-%m-%d}); stream export: {output / 'rfm_stream.csv'}"
    )
    return agree
