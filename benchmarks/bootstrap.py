"""``rfm bootstrap``'s speed beside a bare read of the same file, in one run.

Usage: ``python benchmarks/bootstrap.py [UCI_FILE] [--customers N] [--redis-url URL
[--cluster]] [--skip-uci] [--skip-synthetic]`` (default file: ``$RFM_UCI_PATH`` or
``../shared/data/online_retail.csv.gz``).

For the UCI file, then for a synthetic history of ``--customers`` customers (default 50,000;
written to a temporary folder by :mod:`model_training.data.synth`): times a bare
``pandas.read_csv(path, dtype=str)`` of the file, then
:func:`~stream_app.service.bootstrap.load_history` into an empty Redis, and prints both in
seconds, the events per second, the ratio of the two and the customers written. Without
``--redis-url`` it does so twice: into a Redis it starts (no persistence), then into a Redis
Cluster of 3 masters it starts, and stops them after; with it, into that Redis (a cluster
with ``--cluster``), every run under a key prefix of its own (``bench-<pid>-<n>``), its keys
deleted after.

The synthetic file holds about 82 lines and 6.4 events per customer. A million customers make
some 82 million lines, which pandas (the bare read as much as the bootstrap) holds in tens of
gigabytes: pick ``--customers`` to fit the machine (50,000, 4.1 million lines, took 34 s to
generate and write and 36 s to bootstrap on a 2-core machine with 23 GB).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pandas as pd

from model_training.data.synth import generate_transactions, write_transactions
from stream_app.devtools.cluster import start_cluster
from stream_app.devtools.processes import terminate
from stream_app.devtools.servers import redis_url, start_redis
from stream_app.service.bootstrap import load_history
from stream_app.store.client import cluster_client, redis_client
from stream_app.store.keys import Keys
from stream_app.store.redis_store import RedisStore

ROOT = Path(__file__).resolve().parents[1]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
    parser.add_argument(
        "path", nargs="?", type=Path, default=Path(os.environ.get("RFM_UCI_PATH", default))
    )
    parser.add_argument("--customers", type=int, default=50_000, help="synthetic customers")
    parser.add_argument("--redis-url", default=None, help="an existing Redis to write to")
    parser.add_argument("--cluster", action="store_true", help="--redis-url is a Redis Cluster")
    parser.add_argument("--skip-uci", action="store_true", help="only the synthetic history")
    parser.add_argument("--skip-synthetic", action="store_true", help="only the UCI file")
    return parser.parse_args()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def bootstrap(url: str, cluster: bool, prefix: str, path: Path) -> tuple[float, int, int]:
    """Seconds :func:`load_history` took, events and customers written; deletes them after."""
    client = cluster_client(url) if cluster else redis_client(url)
    async with RedisStore(client, Keys(prefix)) as store:
        written = 0

        def progress(count: int) -> None:
            nonlocal written
            before, written = written, written + count
            if written // 100_000 > before // 100_000:
                log(f"  {written:,} customers written")

        started = time.perf_counter()
        columns = await load_history(store, path, on_progress=progress)
        seconds = time.perf_counter() - started
        async for names in _batches(store, f"{prefix}:*"):
            await store.client.unlink(*names)
    return seconds, columns.events, len(columns)


async def _batches(store: RedisStore, pattern: str) -> AsyncIterator[list[str]]:
    batch: list[str] = []
    async for name in store.client.scan_iter(match=pattern, count=10_000):
        batch.append(name)
        if len(batch) == 10_000:
            yield batch
            batch = []
    if batch:
        yield batch


def measure(url: str, cluster: bool, prefix: str, name: str, path: Path) -> None:
    log(f"{name}: bare read of {path}")
    started = time.perf_counter()
    pd.read_csv(path, dtype=str)
    bare = time.perf_counter() - started
    log(f"{name}: bare read {bare:.2f} s; bootstrapping")
    seconds, events, customers = asyncio.run(bootstrap(url, cluster, prefix, path))
    print(
        f"{name}: bare read_csv {bare:.2f} s; bootstrap {seconds:.2f} s "
        f"({events / seconds:,.0f} events/s, {customers:,} customers, {events:,} events); "
        f"ratio {seconds / bare:.1f}x",
        flush=True,
    )


def synthetic_file(directory: Path, customers: int) -> Path:
    log(f"synthetic: generating {customers:,} customers (about {82 * customers:,} lines)")
    started = time.perf_counter()
    frame = generate_transactions(customers=customers, seed=1)
    path = directory / "synthetic.csv.gz"
    log(f"synthetic: {len(frame):,} lines; writing {path}")
    write_transactions(frame, path)
    log(f"synthetic: generated and written in {time.perf_counter() - started:.1f} s")
    return path


def run(targets: list[tuple[str, str, bool]], options: argparse.Namespace, scratch: Path) -> None:
    """Bootstrap the files into each ``(name, url, cluster)`` target."""
    prefix = f"bench-{os.getpid()}"
    files: list[tuple[str, Path]] = []
    if not options.skip_uci:
        if not options.path.exists():
            raise SystemExit(f"no data at {options.path}: pass the UCI file or set RFM_UCI_PATH")
        files.append(("UCI", options.path))
    if not options.skip_synthetic:
        synthetic = synthetic_file(scratch, options.customers)
        files.append((f"synthetic ({options.customers:,} customers)", synthetic))
    for number, (file_name, path) in enumerate(files, start=1):
        for target, url, cluster in targets:
            measure(url, cluster, f"{prefix}-{number}", f"{file_name} into {target}", path)


def main() -> None:
    options = arguments()
    with tempfile.TemporaryDirectory() as scratch:
        if options.redis_url is not None:
            target = "the Redis Cluster" if options.cluster else "the Redis"
            run([(target, options.redis_url, options.cluster)], options, Path(scratch))
            return
        (Path(scratch) / "single").mkdir()
        server = start_redis(Path(scratch) / "single", die_with_parent=True)
        nodes = start_cluster(Path(scratch) / "cluster", 3, die_with_parent=True)
        try:
            targets = [
                ("one Redis", redis_url(server.port), False),
                ("a 3-master Redis Cluster", redis_url(nodes[0].port), True),
            ]
            run(targets, options, Path(scratch))
        finally:
            terminate([server, *nodes], timeout=10)


if __name__ == "__main__":
    main()
