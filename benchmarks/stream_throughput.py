"""End-to-end throughput and latency of the stream, beside a bare faust agent, in one run.

Usage: ``python benchmarks/stream_throughput.py [UCI_FILE] [--runs N]`` (default file:
``$RFM_UCI_PATH`` or ``../shared/data/online_retail.csv.gz``). Starts its own broker and Redis,
trains a model on the file, then:

1. a bare faust agent that only counts events: seconds from first publish to lag 0;
2. ``rfm worker``: the same, for the full replay, with the Redis round trips per batch it
   made (from its counters); (1) and (2) alternate ``--runs`` times (default 3), and the
   medians are compared;
3. two ``rfm worker`` processes in one consumer group: the same (scale-out on this machine);
4. ``rfm worker`` at a steady 500 events/s: latency from publish to segment-change event.

Figures are printed; the CPU ratio of (2) to (1) is the one to watch on a noisy machine. Each
run prints the CPU time its process spent during the replay: lag is read from committed
offsets, and the bare agent commits on faust's interval timer, so its elapsed time moves by up
to that interval from run to run while its CPU time does not. Where the worker's own time goes
per event: ``benchmarks/worker_profile.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from model_training.pipeline import train
from stream_app.core.events import SegmentChange
from stream_app.devtools.network import free_port
from stream_app.devtools.stack import LocalStack
from stream_app.kafka import connection
from stream_app.kafka.admin import ensure_stream_topics
from stream_app.kafka.replay import publish_events, wait_until_processed
from stream_app.service.order_events import plan_replay
from stream_app.settings import Settings
from stream_app.store.redis_store import RedisStore

ROOT = Path(__file__).resolve().parents[1]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
    parser.add_argument(
        "path", nargs="?", type=Path, default=Path(os.environ.get("RFM_UCI_PATH", default))
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of the bare agent and worker")
    return parser.parse_args()


def round_trips_per_batch(settings: Settings) -> float:
    """Redis round trips per batch of orders, from the worker's counters."""

    async def read() -> dict[str, int]:
        async with RedisStore.from_settings(settings) as store:
            return await store.counters()

    counters = asyncio.run(read())
    return counters.get("batch_round_trips", 0) / max(counters.get("batches", 0), 1)


def start(command: list[str], settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        return subprocess.Popen(
            command,
            # Each worker a web port of its own: several run on this machine at once.
            env={**os.environ, **settings.to_env(), "RFM_WEB_PORT": str(free_port())},
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )


def wait_ready(log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while "Worker]: Ready" not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise SystemExit(f"worker not ready after {timeout_s}s: see {log}")
        time.sleep(0.2)
    time.sleep(1.0)  # partitions assigned and fetchers running


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a running process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed_replay(settings: Settings, events: list[tuple[bytes, bytes]]) -> float:
    started = time.monotonic()
    targets = await publish_events(settings, events)
    await wait_until_processed(settings, targets, timeout_s=600, poll_s=0.1)
    return time.monotonic() - started


def run_throughput(
    name: str,
    command: list[str],
    settings: Settings,
    events: list[tuple[bytes, bytes]],
    work: Path,
    processes: int = 1,
) -> tuple[float, float]:
    """Replay ``events`` into ``command``; return events/s and CPU seconds per event."""
    logs = [work / f"{name}-{number}.log" for number in range(processes)]
    started = [start(command, settings, log) for log in logs]
    try:
        for log in logs:
            wait_ready(log)
        if processes > 1:
            time.sleep(2 * settings.session_timeout_s)  # the group's rebalance settles
        cpu_before = sum(cpu_seconds(process.pid) for process in started)
        seconds = asyncio.run(timed_replay(settings, events))
        cpu = sum(cpu_seconds(process.pid) for process in started) - cpu_before
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=30)
    rate = len(events) / seconds
    print(
        f"{name:<12} {len(events):,} events in {seconds:6.2f} s = {rate:8,.0f} events/s"
        f"   (process CPU {cpu:5.2f} s = {cpu / len(events) * 1e6:4.0f} us/event)"
    )
    return rate, cpu / len(events)


async def latency_run(
    settings: Settings, events: list[tuple[bytes, bytes]], rate: float
) -> list[float]:
    await ensure_stream_topics(settings)
    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    consumer = connection.consumer(
        settings,
        settings.changes_topic,
        auto_offset_reset="latest",
        group_id=None,
        # As short a fetch wait as the worker's: aiokafka's default (500 ms) would add up to
        # that much to every change measured, as a marketing tool tuned for latency would not.
        fetch_max_wait_ms=settings.fetch_wait_ms,
    )
    await consumer.start()
    await asyncio.sleep(1.0)
    done = asyncio.Event()

    async def receive() -> None:
        while not done.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for messages in batches.values():
                for message in messages:
                    change = SegmentChange.model_validate_json(message.value or b"")
                    if change.reason == "order" and message.key in sent:
                        latencies.append(now - sent[message.key])

    receiver = asyncio.create_task(receive())
    producer = connection.producer(settings, linger_ms=0)
    await producer.start()
    started = time.monotonic()
    for number, (key, value) in enumerate(events):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[key] = time.monotonic()
        await producer.send(settings.orders_topic, value, key=key)
    await producer.stop()
    await asyncio.sleep(3.0)
    done.set()
    await receiver
    await consumer.stop()
    return latencies


def main() -> None:
    args = arguments()
    path = args.path
    if not path.is_file():
        raise SystemExit(f"no UCI file at {path}: pass its path or set RFM_UCI_PATH")
    work = Path(tempfile.mkdtemp(prefix="rfm-bench-"))
    print(f"reading {path} and training a model (work dir {work}) ...")
    plan = plan_replay(path)
    train(path, work / "model")
    events = plan.events
    worker = [sys.executable, "-m", "stream_app", "worker", "--loglevel", "info"]
    bare = [sys.executable, str(ROOT / "benchmarks" / "bare_agent.py")]

    with LocalStack(work / "stack") as stack:

        def settings(name: str) -> Settings:
            return stack.settings(
                app_id=f"bench-{name}",
                orders_topic=f"orders-{name}",
                changes_topic=f"changes-{name}",
                dlq_topic=f"dlq-{name}",
                key_prefix=f"bench-{name}",
                model_dir=work / "model",
                session_timeout_s=6.0,
            )

        print("\nthroughput, first publish to lag 0 (worker up and joined before publishing):")
        bare_runs, worker_runs, trips = [], [], []
        for run in range(args.runs):
            bare_runs.append(
                run_throughput("bare agent", bare, settings(f"bare{run}"), events, work)
            )
            ours = settings(f"worker{run}")
            worker_runs.append(run_throughput("rfm worker", worker, ours, events, work))
            trips.append(round_trips_per_batch(ours))
            print(f"             Redis round trips per batch of orders: {trips[-1]:.2f}")
        ceiling = statistics.median(rate for rate, _ in bare_runs)
        rate = statistics.median(rate for rate, _ in worker_runs)
        bare_cpu = statistics.median(cpu for _, cpu in bare_runs)
        worker_cpu = statistics.median(cpu for _, cpu in worker_runs)
        print(f"medians of {args.runs} runs:")
        print(f"  Redis round trips per batch   {statistics.median(trips):.2f} (target <= 3)")
        print(
            f"  CPU per event                 bare agent {bare_cpu * 1e6:.0f} us, worker"
            f" {worker_cpu * 1e6:.0f} us: {worker_cpu / bare_cpu:.2f}x (target <= 1.4x)"
        )
        print(f"  throughput                    {rate / ceiling:.2f} of the bare agent")
        pair, _ = run_throughput("2 workers", worker, settings("pair"), events, work, processes=2)
        print(f"ratio        {pair / ceiling:.2f} of one bare agent (same consumer group)")

        print("\nlatency at a steady 500 events/s, publish to segment-change event:")
        latency_settings = settings("latency")
        log = work / "latency.log"
        process = start(worker, latency_settings, log)
        try:
            wait_ready(log)
            latencies = asyncio.run(latency_run(latency_settings, events[:5000], 500.0))
        finally:
            process.terminate()
            process.wait(timeout=30)
        values = np.array(latencies) * 1000
        print(
            f"{len(values):,} changes: p50 {np.percentile(values, 50):.0f} ms, "
            f"p99 {np.percentile(values, 99):.0f} ms, max {values.max():.0f} ms"
        )


if __name__ == "__main__":
    main()
