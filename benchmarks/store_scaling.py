"""The state store's cost per event on one Redis and on a Redis Cluster, in one run.

Usage: ``python benchmarks/store_scaling.py [UCI_FILE] [--events N]`` (default file:
``$RFM_UCI_PATH`` or ``../shared/data/online_retail.csv.gz``; default: every event of the
file). Starts its own servers: one redis-server, a Redis Cluster of 3 masters, and one of 3
masters with a replica each (the worker then waits for a replica, ``WAIT``, before it stores
offsets). Into each it feeds the file's events, in the worker's batches, to the worker's
:class:`BatchProcessor` (no model: the RFM state only; scoring costs the same wherever the
state is), and prints per event:

- the worker's own CPU (this process: building commands, parsing replies),
- the Redis CPU, summed over the masters (``INFO cpu``, user + system),
- the wall time, and events per second,

and the ratios of the cluster runs to the single Redis. docs/sizing.md is computed from
these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from replaying import BATCH, feed  # benchmarks/replaying.py, beside this script

from stream_app.devtools.cluster import start_cluster
from stream_app.devtools.processes import ProcessInfo, terminate
from stream_app.devtools.servers import redis_url, start_redis
from stream_app.service.order_events import plan_replay
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
    parser.add_argument("--events", type=int, default=0, help="events to feed (0: all)")
    return parser.parse_args()


def redis_cpu(nodes: Sequence[ProcessInfo]) -> float:
    """CPU seconds the masters among ``nodes`` have used so far."""
    total = 0.0
    for node in nodes:
        info = subprocess.run(
            ["redis-cli", "-p", str(node.port), "info", "cpu"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        role = subprocess.run(
            ["redis-cli", "-p", str(node.port), "role"], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        if role != "master":
            continue
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        total += float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])
    return total


async def feed_and_close(store: RedisStore, events: list[tuple[bytes, bytes]]) -> None:
    async with store:
        await feed(store, events)


def measure(
    name: str, store: RedisStore, nodes: Sequence[ProcessInfo], events: list[tuple[bytes, bytes]]
) -> dict[str, float]:
    cpu_redis = redis_cpu(nodes)
    cpu_ours = time.process_time()
    started = time.perf_counter()
    asyncio.run(feed_and_close(store, events))
    wall = time.perf_counter() - started
    figures = {
        "ours": (time.process_time() - cpu_ours) / len(events),
        "redis": (redis_cpu(nodes) - cpu_redis) / len(events),
        "wall": wall / len(events),
    }
    ours, redis, per_event = (figures[kind] * 1e6 for kind in ("ours", "redis", "wall"))
    print(
        f"{name:<28} {len(events) / wall:8,.0f} events/s   worker CPU {ours:5.0f} us"
        f"   Redis CPU {redis:5.0f} us   wall {per_event:5.0f} us per event"
    )
    return figures


def main() -> None:
    args = arguments()
    if not args.path.is_file():
        raise SystemExit(f"no UCI file at {args.path}: pass its path or set RFM_UCI_PATH")
    events = plan_replay(args.path).events
    if args.events:
        events = events[: args.events]
    work = Path(tempfile.mkdtemp(prefix="rfm-scaling-"))
    print(f"{len(events):,} events in batches of {BATCH} (servers in {work})")
    (work / "single").mkdir()
    single = start_redis(work / "single")
    plain = start_cluster(work / "cluster", 3, 0)
    replicated = start_cluster(work / "replicated", 3, 1)
    try:
        base = measure(
            "one Redis",
            RedisStore(redis_client(redis_url(single.port)), Keys("bench")),
            [single],
            events,
        )
        for name, nodes, wait in (
            ("cluster, 3 masters", plain, 0),
            ("cluster, 3 masters + replicas", replicated, 1),
        ):
            store = RedisStore(
                cluster_client(redis_url(nodes[0].port)), Keys("bench"), wait_replicas=wait
            )
            figures = measure(name, store, nodes, events)
            ratios = {kind: figures[kind] / base[kind] for kind in figures}
            print(
                f"{'':<28} vs one Redis: worker CPU {ratios['ours']:.2f}x,"
                f" Redis CPU {ratios['redis']:.2f}x, wall {ratios['wall']:.2f}x"
            )
    finally:
        terminate([single, *plain, *replicated], timeout=10)


if __name__ == "__main__":
    main()
