"""Redis memory per customer, by kind of key, beside the bytes the state must hold.

Usage: ``python benchmarks/state_memory.py [UCI_FILE] [--model DIR] [--synthetic N] [--chunk C]
[--hash-max-listpack-entries E]`` (default file: ``$RFM_UCI_PATH`` or
``../shared/data/online_retail.csv.gz``).

Starts its own Redis (as ``rfm stack`` starts it: :func:`~stream_app.devtools.servers.start_redis`,
with its encoding limits; ``--hash-max-listpack-entries`` sets another limit for the run), then
builds the state:

- by default, of the UCI file: its full replay, in the worker's batches, fed to the worker's
  :class:`BatchProcessor` (no model: state only; with ``--model DIR``, a model `rfm train`
  wrote, scored as the worker scores, so that the segment history, the due set and the
  segment member index are there too and measured); it also prints the time Redis spent in
  the scripts per event (``INFO commandstats``), what the encoding limits cost in speed;
- with ``--synthetic N``, of N synthetic customers (:mod:`model_training.data.synth`),
  generated ``--chunk`` customers at a time (default 20,000; each chunk's ids shifted so that
  they do not collide) and written by ``rfm bootstrap``'s bulk write, which leaves the state a
  replay would. A million customers took 16 minutes here (2 cores, shared) and 1.2 GB of
  Redis memory.

Then it reads ``MEMORY USAGE`` of every per-customer key and prints, per kind of key
(``state``, ``items``, ``digests``, ``orders`` from older releases, ...), the keys, the bytes
per customer and the share of the total, plus ``used_memory`` per customer. The floor table
that follows gives the raw bytes the state must hold for exact return matching, per customer:
per stock code held its code and units bought (4 bytes), and for returned ones the units and
value returned (4 + 8 bytes); every applied event id, and its 8-byte digest; the RFM fields
(frequency 4 bytes, spent, matched returns and the two purchase times 8 bytes each, the last
order's id and the country). The ``digests`` row is the idempotency record, and what catching
conflicting redeliveries costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from replaying import BATCH, feed  # benchmarks/replaying.py, beside this script

from model_training.data.loading import load_transactions, normalise_frame
from model_training.data.synth import generate_transactions
from model_training.model.artifact import LoadedModel, load_model
from stream_app.core.columns import StateColumns
from stream_app.core.effects import DIGEST_BYTES
from stream_app.devtools.processes import terminate
from stream_app.devtools.servers import redis_url, start_redis
from stream_app.service.bootstrap import history_columns
from stream_app.service.order_events import build_events
from stream_app.store.redis_store import RedisStore

ROOT = Path(__file__).resolve().parents[1]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
    parser.add_argument(
        "path", nargs="?", type=Path, default=Path(os.environ.get("RFM_UCI_PATH", default))
    )
    parser.add_argument("--model", type=Path, default=None, help="score with this model")
    parser.add_argument("--synthetic", type=int, default=0, help="synthetic customers instead")
    parser.add_argument("--chunk", type=int, default=20_000, help="synthetic customers at once")
    parser.add_argument(
        "--hash-max-listpack-entries", type=int, default=None, help="another Redis limit"
    )
    return parser.parse_args()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def floor(columns: StateColumns) -> Counter[str]:
    """The raw bytes of the states, by part (see the module's docstring)."""
    skus = sum(len(sku.encode()) for sku in columns.skus)
    returned = int((columns.returned > 0).sum())
    text = sum(len(value.encode()) for value in (*columns.last_order, *columns.country))
    return Counter(
        {
            "items": skus + 4 * len(columns.skus) + 12 * returned,
            "event ids": sum(len(event.encode()) for event in columns.event_ids),
            "digests": DIGEST_BYTES * sum(1 for digest in columns.digests if digest),
            "rfm fields": (4 + 4 * 8) * len(columns) + text,
        }
    )


async def replay(
    store: RedisStore, events: list[tuple[bytes, bytes]], model: LoadedModel | None
) -> None:
    def progress(done: int) -> None:
        if done // BATCH % 20 == 1:
            log(f"  {done:,} of {len(events):,} events replayed")

    await feed(store, events, model, progress)


def synthetic_chunk(index: int, customers: int) -> pd.DataFrame:
    """``customers`` synthetic customers; ids shifted past the earlier chunks' ids."""
    frame = generate_transactions(customers=customers, seed=index)
    ids = frame["CustomerID"]
    present = ids.notna()
    shift = index * max(6_000, 3 * customers)
    numbers = ids[present].str.removesuffix(".0").astype(np.int64) + shift
    frame.loc[present, "CustomerID"] = numbers.astype(str) + ".0"
    return normalise_frame(frame.astype(str), f"synthetic chunk {index}")


async def build(url: str, options: argparse.Namespace) -> tuple[Counter[str], int]:
    """Build the state; return its floor by part and the events applied."""
    async with RedisStore.from_url(url) as store:
        if options.hash_max_listpack_entries is not None:
            await store.client.config_set(
                "hash-max-listpack-entries", options.hash_max_listpack_entries
            )
        if not options.synthetic:
            frame = load_transactions(options.path)
            events = build_events(frame).events
            model = None if options.model is None else load_model(options.model)
            await replay(store, events, model)
            if model is not None:
                await store.ensure_indexes()  # as a worker builds them at start
            columns, _ = history_columns(frame)
            return floor(columns), len(events)
        raw: Counter[str] = Counter()
        applied = 0
        for index, first in enumerate(range(0, options.synthetic, options.chunk)):
            size = min(options.chunk, options.synthetic - first)
            columns, _ = history_columns(synthetic_chunk(index, size))
            for block in columns.blocks(2_000):
                await store.put_columns(block)
            raw += floor(columns)
            applied += columns.events
            log(f"  {first + size:,} of {options.synthetic:,} customers written")
        return raw, applied


async def report(url: str, raw: Counter[str], events: int, replayed: bool) -> None:
    async with RedisStore.from_url(url) as store:
        client = store.client
        usage: Counter[str] = Counter()
        keys: Counter[str] = Counter()
        names: list[str] = []

        async def measure() -> None:
            trip = client.pipeline(transaction=False)
            for name in names:
                trip.memory_usage(name, samples=0)
            for name, size in zip(names, await trip.execute(), strict=True):
                kind = name.rsplit(":", 1)[1] if name.startswith("rfm:{") else name.split(":")[1]
                usage[kind] += size or 0
                keys[kind] += 1
            names.clear()

        async for name in client.scan_iter(match="rfm:{*}:*", count=5_000):
            names.append(name)
            if len(names) == 5_000:
                await measure()
        await measure()
        # The service-wide structures with an entry per customer (with a model only).
        async for name in client.scan_iter(match="rfm:segment:*", count=5_000):
            names.append(name)
        await measure()
        if await client.exists("rfm:due"):
            names.append("rfm:due")
        await measure()
        customers = keys["state"]
        info = await client.info("memory")
        stats = await client.info("commandstats")
        limit = (await client.config_get("hash-max-listpack-entries"))["hash-max-listpack-entries"]
    total = sum(usage.values())
    print(f"{events:,} events, {customers:,} customers; hash-max-listpack-entries {limit}")
    print(f"{'key':<10} {'keys':>10} {'bytes/customer':>15} {'share':>7}")
    for kind, size in usage.most_common():
        print(f"{kind:<10} {keys[kind]:>10,} {size / customers:>15,.0f} {size / total:>7.1%}")
    print(f"{'total':<10} {sum(keys.values()):>10,} {total / customers:>15,.0f}")
    print(f"used_memory per customer: {info['used_memory'] / customers:,.0f} bytes")
    if replayed and "cmdstat_evalsha" in stats:
        scripts = stats["cmdstat_evalsha"]
        print(f"Redis time in scripts: {scripts['usec'] / events:.1f} µs per event")
    floor_total = sum(raw.values())
    # Each part of the floor beside the keys that hold it.
    parts = {
        "items": (raw["items"], usage["items"]),
        "event ids + digests": (
            raw["event ids"] + raw["digests"],
            usage["digests"] + usage["orders"],
        ),
        "rfm fields": (raw["rfm fields"], usage["state"]),
    }
    print(f"{'floor':<20} {'bytes/customer':>15} {'stored':>8} {'stored/floor':>13}")
    for part, (size, kept) in parts.items():
        print(
            f"{part:<20} {size / customers:>15,.0f} {kept / customers:>8,.0f} {kept / size:>13.1f}"
        )
    print(
        f"{'total':<20} {floor_total / customers:>15,.0f} {total / customers:>8,.0f} "
        f"{total / floor_total:>13.1f}"
    )


def main() -> None:
    options = arguments()
    if not options.synthetic and not options.path.exists():
        raise SystemExit(f"no data at {options.path}: pass the UCI file or set RFM_UCI_PATH")
    with tempfile.TemporaryDirectory() as scratch:
        server = start_redis(Path(scratch), die_with_parent=True)
        try:
            url = redis_url(server.port)
            raw, events = asyncio.run(build(url, options))
            asyncio.run(report(url, raw, events, replayed=not options.synthetic))
        finally:
            terminate([server], timeout=10)


if __name__ == "__main__":
    main()
