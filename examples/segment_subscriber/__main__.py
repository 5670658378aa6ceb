"""``python -m examples.segment_subscriber``: print each customer's segment as it changes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from examples.segment_subscriber.changes import SegmentChange
from examples.segment_subscriber.subscriber import KafkaConfig, follow, make_consumer
from examples.segment_subscriber.views import MemoryView, SegmentView, SqliteView


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.segment_subscriber",
        description="Follow the segment changes and keep each customer's current segment. "
        "The broker and topic come from RFM_KAFKA_* and RFM_CHANGES_TOPIC, as for the service.",
    )
    parser.add_argument("--group", default="segment-subscriber", help="Kafka consumer group")
    parser.add_argument(
        "--db", type=Path, help="SQLite file to keep the segments in (default: memory)"
    )
    parser.add_argument(
        "--idle-exit",
        type=float,
        metavar="SECONDS",
        help="stop once nothing came for this long, and print every customer's segment",
    )
    return parser.parse_args()


def _show(change: SegmentChange) -> None:
    before = change.previous_segment or "(new)"
    print(
        f"{change.customer_id}: {before} -> {change.segment} "
        f"(sequence {change.sequence}, {change.reason})",
        flush=True,
    )


async def _run(arguments: argparse.Namespace) -> None:
    config = KafkaConfig.from_env(os.environ)
    view: SegmentView = SqliteView(arguments.db) if arguments.db else MemoryView()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    consumer = make_consumer(config, arguments.group)
    await consumer.start()
    try:
        counts = await follow(
            consumer, view, on_kept=_show, idle_exit_s=arguments.idle_exit, stop=stop
        )
        print(f"kept {counts.kept}, dropped {counts.dropped}, invalid {counts.invalid}")
        for customer_id, change in sorted(view.current().items()):
            print(f"{customer_id}\t{change.segment}\t{change.sequence}")
    finally:
        await consumer.stop()
        view.close()


def main() -> None:
    """Parse the arguments and follow the changes until stopped (Ctrl-C)."""
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_run(_arguments()))


if __name__ == "__main__":
    main()
