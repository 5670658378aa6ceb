"""Redis memory per customer, by kind of key, after the whole UCI file.

Usage: ``python benchmarks/state_memory.py [UCI_FILE]`` (default: ``$RFM_UCI_PATH`` or
``../shared/data/online_retail.csv.gz``). Starts its own Redis, feeds the full replay, in the
worker's batches, to the worker's :class:`BatchProcessor` (no model: state only), then reads
``MEMORY USAGE`` of every key and prints, per kind of per-customer key (``state``, ``orders``,
``items``, ``digests``, ...), the bytes per customer and the share of the total, plus
``used_memory`` per customer. The ``digests`` row is what catching conflicting redeliveries
costs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from stream_app.core.events import DeadLetter
from stream_app.devtools.processes import terminate
from stream_app.devtools.servers import redis_url, start_redis
from stream_app.service.order_events import plan_replay
from stream_app.service.ports import ChangeMessage, RawMessage
from stream_app.service.processor import BatchProcessor
from stream_app.settings import Settings
from stream_app.store.redis_store import RedisStore

ROOT = Path(__file__).resolve().parents[1]
BATCH = Settings().batch_size


class NoPublisher:
    async def publish_changes(self, changes: Sequence[ChangeMessage]) -> None:
        return None

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        return None


def uci_path() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    default = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
    return Path(os.environ.get("RFM_UCI_PATH", default))


async def measure(url: str, events: list[tuple[bytes, bytes]]) -> None:
    async with RedisStore.from_url(url) as store:
        processor = BatchProcessor(store, NoPublisher(), lambda: None)
        for first in range(0, len(events), BATCH):
            block = events[first : first + BATCH]
            await processor.handle(
                [
                    RawMessage(key, value, "orders", 0, first + n)
                    for n, (key, value) in enumerate(block)
                ]
            )
        client = store.client
        usage: Counter[str] = Counter()
        keys: Counter[str] = Counter()
        async for name in client.scan_iter(match="rfm:{*}:*", count=1000):
            kind = name.rsplit(":", 1)[1]
            usage[kind] += await client.memory_usage(name, samples=0) or 0
            keys[kind] += 1
        customers = keys["state"]
        info = await client.info("memory")
    total = sum(usage.values())
    print(f"{len(events):,} events, {customers:,} customers")
    print(f"{'key':<10} {'keys':>7} {'bytes/customer':>15} {'share':>7}")
    for kind, size in usage.most_common():
        print(f"{kind:<10} {keys[kind]:>7,} {size / customers:>15,.0f} {size / total:>7.1%}")
    print(f"{'total':<10} {sum(keys.values()):>7,} {total / customers:>15,.0f}")
    print(f"used_memory per customer: {info['used_memory'] / customers:,.0f} bytes")


def main() -> None:
    path = uci_path()
    if not path.exists():
        raise SystemExit(f"no data at {path}: pass the UCI file or set RFM_UCI_PATH")
    events = plan_replay(path).events
    with tempfile.TemporaryDirectory() as scratch:
        server = start_redis(Path(scratch), die_with_parent=True)
        try:
            asyncio.run(measure(redis_url(server.port), events))
        finally:
            terminate([server], timeout=10)


if __name__ == "__main__":
    main()
