"""Time the Profile API on a 100,000-customer segment: the CSV, and customer lookups.

Usage: ``python benchmarks/api.py [--customers N] [--requests N] [--concurrency N]``.
Starts a redis-server of its own on a free port, writes N customers in one segment (whole
states, as ``rfm bootstrap`` writes them; the member index is then built once, timed), starts
``rfm serve`` on a free loopback port, streams ``/v1/segments/champions/customers.csv``
and times it, then sends ``GET /v1/customers/{id}`` for random customers from a bounded
number of concurrent clients and prints the latency's p50 and p99.
Targets: the CSV under 5 s; exit code 1 if missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from stream_app.core.state import CustomerState
from stream_app.devtools.network import free_port
from stream_app.devtools.processes import terminate
from stream_app.devtools.servers import redis_url, start_redis
from stream_app.store.redis_store import RedisStore

__all__ = ["main"]

_CSV_TARGET_S = 5.0
_START = 1.30e9  # 2011-03-12


async def _fill(url: str, customers: int) -> float:
    """Write the customers; return the seconds building the member index took."""
    async with RedisStore.from_url(url) as store:
        rng = random.Random(7)
        batch = 5000
        for first in range(0, customers, batch):
            await store.put(
                [
                    CustomerState(
                        f"C{number:07d}",
                        frequency=rng.randint(1, 40),
                        spent=round(rng.uniform(10, 5000), 2),
                        first_purchase=_START - 200 * 86_400,
                        last_purchase=_START - rng.randint(0, 90) * 86_400,
                        last_order=f"o{number}",
                        country="United Kingdom",
                        segment="champions",
                        segment_since=_START,
                        model_version="bench",
                        sequence=1,
                    )
                    for number in range(first, min(first + batch, customers))
                ]
            )
        await store.set_clock(_START)
        started = time.perf_counter()
        await store.ensure_indexes()
        return time.perf_counter() - started


async def _lookups(base: str, customers: int, requests: int, concurrency: int) -> list[float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    rng = random.Random(11)
    ids = [f"C{rng.randrange(customers):07d}" for _ in range(requests)]
    queue = iter(ids)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:

        async def worker() -> None:
            for customer in queue:
                started = time.perf_counter()
                answer = await client.get(f"/v1/customers/{customer}")
                latencies.append(time.perf_counter() - started)
                answer.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def _wait(base: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("rfm serve did not answer")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rfm-bench-api-") as directory:
        redis = start_redis(Path(directory), die_with_parent=True)
        server: subprocess.Popen[bytes] | None = None
        try:
            url = redis_url(redis.port)
            started = time.perf_counter()
            index_s = asyncio.run(_fill(url, args.customers))
            print(f"wrote {args.customers:,} customers in {time.perf_counter() - started:.1f} s")
            print(f"member index built once (older store) in {index_s:.2f} s")
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            env = {**os.environ, "RFM_REDIS_URL": url, "RFM_MODEL_DIR": directory}
            server = subprocess.Popen(
                [sys.executable, "-m", "stream_app", "serve", "--port", str(port)], env=env
            )
            _wait(base)
            started = time.perf_counter()
            lines = 0
            with httpx.stream(
                "GET", f"{base}/v1/segments/champions/customers.csv", timeout=60.0
            ) as answer:
                answer.raise_for_status()
                for chunk in answer.iter_bytes():
                    lines += chunk.count(b"\n")
            csv_s = time.perf_counter() - started
            print(f"CSV of {lines - 1:,} customers streamed in {csv_s:.2f} s")
            started = time.perf_counter()
            latencies = np.array(
                asyncio.run(_lookups(base, args.customers, args.requests, args.concurrency))
            )
            elapsed = time.perf_counter() - started
            p50, p99 = np.percentile(latencies * 1000, [50, 99])
            print(
                f"GET /v1/customers/{{id}}: {len(latencies):,} requests, {args.concurrency} "
                f"concurrent: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                f"({len(latencies) / elapsed:,.0f} requests/s)"
            )
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=15)
            terminate([redis], timeout=10)
    if lines - 1 != args.customers:
        print(f"error: the CSV had {lines - 1} customers, not {args.customers}")
        return 1
    return 0 if csv_s < _CSV_TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
