"""Recency decay at scale: customers re-scored per clock step for a large population.

Usage: ``python benchmarks/decay.py [--customers 1000000] [--steps 14]``. Starts its own
Redis, trains a model on synthetic transactions, writes a synthetic population of customer
states with their due times, then moves the event-time clock one day at a time and runs the
worker's decay step. Each step prints how many customers were due and re-scored and how long
it took: the work follows the customers due, not the population.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from model_training.data.synth import generate_transactions, write_transactions
from model_training.model.artifact import load_model
from model_training.pipeline import train
from stream_app.core.events import DeadLetter
from stream_app.core.scoring import next_change_times, rfm_matrix
from stream_app.core.state import CustomerState
from stream_app.devtools.stack import LocalStack
from stream_app.service.ports import ChangeMessage
from stream_app.service.processor import BatchProcessor
from stream_app.store.redis_store import RedisStore

DAY = 86_400.0
NOW = datetime(2011, 12, 10, tzinfo=UTC).timestamp()


class CountingPublisher:
    def __init__(self) -> None:
        self.changes = 0

    async def publish_changes(self, changes: Sequence[ChangeMessage]) -> None:
        self.changes += len(changes)

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        pass


def population(size: int, seed: int = 0) -> list[CustomerState]:
    rng = np.random.default_rng(seed)
    recency = np.minimum(rng.exponential(90, size), 370).astype(np.int64)
    frequency = 1 + rng.geometric(0.3, size)
    monetary = np.round(rng.lognormal(6.0, 1.2, size) * frequency / 2, 2)
    last = NOW - recency * DAY - rng.uniform(0, DAY, size)
    return [
        CustomerState(
            customer_id=f"b{n}",
            frequency=int(frequency[n]),
            spent=float(monetary[n]),
            first_purchase=float(last[n] - 30 * DAY),
            last_purchase=float(last[n]),
            last_order=f"o{n}",
        )
        for n in range(size)
    ]


async def run(customers: int, steps: int, work: Path, redis_url: str) -> None:
    data = work / "synth.csv.gz"
    write_transactions(generate_transactions(customers=2000, seed=1), data)
    train(data, work / "model")
    model = load_model(work / "model")
    store = RedisStore.from_url(redis_url, prefix="bench")
    publisher = CountingPublisher()
    processor = BatchProcessor(store, publisher, lambda: model)

    print(f"writing {customers:,} customers' states and due times ...")
    started = time.perf_counter()
    states = population(customers)
    chunk = 20_000
    for first in range(0, customers, chunk):
        block = states[first : first + chunk]
        segments = model.predict_segments(rfm_matrix(block, NOW))
        block = [
            replace(state, segment=str(name), segment_since=NOW, model_version=model.version)
            for state, name in zip(block, segments, strict=True)
        ]
        await store.put(block)
        due = next_change_times(block, model, NOW)
        await store.schedule(
            {s.customer_id: t for s, t in zip(block, due, strict=True) if t is not None}
        )
    await store.advance_clock(NOW)
    print(f"  {time.perf_counter() - started:.1f}s")

    print(
        f"\n{'clock':<12} {'due':>8} {'re-scored':>10} {'changed':>8} {'seconds':>8} "
        f"{'share of population':>20}"
    )
    for step in range(1, steps + 1):
        now = NOW + step * DAY
        await store.advance_clock(now)
        due_now = await store.due_count(now)
        before = publisher.changes
        started = time.perf_counter()
        rescored = await processor.decay(limit=5000, max_rounds=10_000)
        seconds = time.perf_counter() - started
        changed = publisher.changes - before
        day = datetime.fromtimestamp(now, tz=UTC).date()
        print(
            f"{day!s:<12} {due_now:>8,} {rescored:>10,} {changed:>8,} {seconds:>8.2f} "
            f"{rescored / customers:>20.2%}"
        )

    # A model switch re-scores everyone: read every state, predict, compare, reschedule.
    started = time.perf_counter()
    changed = await processor.rescore_all("retrain", batch_size=5000)
    seconds = time.perf_counter() - started
    print(
        f"\nfull re-score of {customers:,} customers: {seconds:.1f}s = "
        f"{customers / seconds:,.0f} customers/s ({changed:,} moved; target >= 50,000/s)"
    )
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=14)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rfm-decay-"))
    with LocalStack(work / "stack") as stack:
        asyncio.run(run(args.customers, args.steps, work, stack.redis_url))


if __name__ == "__main__":
    main()
