"""Turn an Online Retail file into order events and publish them: ``rfm replay``.

One event per invoice (``C`` invoices become returns), keyed by customer, in invoice-time
order. The lines published are the batch pipeline's attributable lines (rules 1 and 2 of
:mod:`model_training.data.cleaning`); lines an event cannot carry (a quantity whose sign disagrees
with the invoice kind, a negative price) are dropped and counted, exactly as the batch
pipeline drops them.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from aiokafka import TopicPartition

from model_training.data.cleaning import attributable_lines, inconsistent_quantity, return_mask
from model_training.data.loading import load_transactions
from stream_app.exceptions import ReplayTimeoutError
from stream_app.kafka.admin import committed_offsets, stream_producer
from stream_app.settings import Settings

__all__ = ["ReplayPlan", "build_events", "plan_replay", "publish_events", "wait_until_processed"]


@dataclass(frozen=True)
class ReplayPlan:
    """The events to publish, as ``(key, value)`` byte pairs, with what was dropped."""

    events: list[tuple[bytes, bytes]]
    counts: dict[str, int] = field(default_factory=dict)


def plan_replay(path: str | Path, shuffle_seed: int | None = None) -> ReplayPlan:
    """Load ``path`` and build its events (shuffled with ``shuffle_seed`` if given)."""
    return build_events(load_transactions(path), shuffle_seed=shuffle_seed)


def build_events(frame: pd.DataFrame, shuffle_seed: int | None = None) -> ReplayPlan:
    """Build one order event per invoice from a loaded transactions frame."""
    lines, counts = attributable_lines(frame)
    is_return = return_mask(lines)
    unusable = inconsistent_quantity(lines, is_return)
    negative = lines["unit_price"] < 0
    counts["inconsistent_quantity"] = int(unusable.sum())
    counts["negative_price"] = int((negative & ~unusable).sum())
    lines = lines[~(unusable | negative)].sort_values(["invoice_time", "invoice"], kind="stable")

    invoices = lines["invoice"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, invoices[1:] != invoices[:-1]])
    ends = np.r_[starts[1:], len(invoices)]
    customers = lines["customer_id"].to_numpy(dtype=object)
    countries = lines["country"].to_numpy(dtype=object)
    times = lines["invoice_time"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_numpy(dtype=object)
    skus = lines["sku"].to_numpy(dtype=object)
    descriptions = lines["description"].to_numpy(dtype=object)
    quantities = np.abs(lines["quantity"].to_numpy()).tolist()
    prices = lines["unit_price"].to_numpy().tolist()
    returns = is_return.loc[lines.index].to_numpy()

    events: list[tuple[bytes, bytes]] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        invoice = str(invoices[start])
        customer = str(customers[start])
        country = countries[start]
        event = {
            "event_id": invoice,
            "kind": "return" if returns[start] else "purchase",
            "order_id": invoice,
            "customer_id": customer,
            "occurred_at": times[start],
            "country": None if country is pd.NA else str(country),
            "lines": [
                {
                    "sku": str(skus[row]),
                    "description": str(descriptions[row]),
                    "quantity": quantities[row],
                    "unit_price": prices[row],
                }
                for row in range(start, end)
            ],
        }
        events.append((customer.encode(), json.dumps(event, separators=(",", ":")).encode()))
    counts["events"] = len(events)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(events)
    return ReplayPlan(events=events, counts=counts)


async def publish_events(
    settings: Settings,
    events: list[tuple[bytes, bytes]],
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    chunk: int = 2000,
) -> dict[TopicPartition, int]:
    """Publish events to the orders topic; return, per partition, the offset after the last.

    With ``rate`` (events per second) the events are paced; otherwise they go as fast as the
    broker takes them, batched by the producer.
    """
    ends: dict[TopicPartition, int] = {}
    async with stream_producer(
        settings, linger_ms=5, max_batch_size=256 * 1024, enable_idempotence=False
    ) as producer:
        started = time.monotonic()
        for first in range(0, len(events), chunk):
            block = events[first : first + chunk]
            if rate:
                futures = []
                for number, (key, value) in enumerate(block, start=first):
                    delay = started + number / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    futures.append(await producer.send(settings.orders_topic, value, key=key))
            else:
                futures = [
                    await producer.send(settings.orders_topic, value, key=key)
                    for key, value in block
                ]
            for metadata in await asyncio.gather(*futures):
                partition = TopicPartition(metadata.topic, metadata.partition)
                ends[partition] = max(ends.get(partition, 0), metadata.offset + 1)
            if on_progress is not None:
                on_progress(len(block))
    return ends


async def wait_until_processed(
    settings: Settings,
    targets: Mapping[TopicPartition, int],
    timeout_s: float,
    poll_s: float = 0.5,
) -> float:
    """Wait until the workers' group has committed every target offset (lag 0).

    Returns the seconds waited. Raises :class:`ReplayTimeoutError` after ``timeout_s``.
    """
    started = time.monotonic()
    while True:
        committed = await committed_offsets(settings.kafka_bootstrap, settings.app_id, targets)
        behind = {tp: end - committed[tp] for tp, end in targets.items() if committed[tp] < end}
        if not behind:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            lag = sum(behind.values())
            raise ReplayTimeoutError(
                f"the workers are still {lag} event(s) behind after {timeout_s:.0f}s"
            )
        await asyncio.sleep(poll_s)
