"""Where the worker's own time goes per event, without faust: decode, then store/score/publish.

Usage: ``python benchmarks/worker_profile.py [UCI_FILE]`` (default: ``$RFM_UCI_PATH`` or
``../shared/data/online_retail.csv.gz``). Starts its own Redis, trains a model on the file and
feeds the full replay, in the worker's batches, to the same :class:`BatchProcessor` the worker
runs, with a publisher that serialises nothing more than the worker's does. Prints CPU
microseconds per event for decoding (validation and reduction to per-stock-code effects) and
for processing (Redis client work, scoring, recording, publishing), the Redis round trips per
batch, and the functions that cost most, per event.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from model_training.model.artifact import load_model
from model_training.pipeline import train
from stream_app.core.events import DeadLetter
from stream_app.devtools.stack import LocalStack
from stream_app.kafka.worker import settle_garbage_collector
from stream_app.service.order_events import plan_replay
from stream_app.service.ports import ChangeMessage, RawMessage
from stream_app.service.processor import BatchProcessor
from stream_app.settings import Settings
from stream_app.store.redis_store import RedisStore

ROOT = Path(__file__).resolve().parents[1]
BATCH = Settings().batch_size


class EncodingPublisher:
    """Does what the faust publisher does to a message before the producer: encode it."""

    def __init__(self) -> None:
        self.sent = 0

    async def publish_changes(self, changes: Sequence[ChangeMessage]) -> None:
        self.sent += sum(len(message.payload.encode()) > 0 for message in changes)

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        self.sent += sum(len(letter.model_dump_json().encode()) > 0 for letter in letters)


def uci_path() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    default = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
    return Path(os.environ.get("RFM_UCI_PATH", default))


async def run(redis_url: str, model_dir: Path, events: list[tuple[bytes, bytes]]) -> None:
    model = load_model(model_dir)
    batches = [
        [
            RawMessage(key, value, "orders", 0, offset)
            for offset, (key, value) in enumerate(events[first : first + BATCH], start=first)
        ]
        for first in range(0, len(events), BATCH)
    ]
    async with RedisStore.from_url(redis_url, prefix="profile") as store:
        processor = BatchProcessor(store, EncodingPublisher(), lambda: model)
        decode_cpu = process_cpu = 0.0
        trips = 0
        profile = cProfile.Profile(time.process_time)
        settle_garbage_collector()  # as the worker does after start-up
        for messages in batches:
            started = time.process_time()
            decoded = processor.decode(messages)
            decode_cpu += time.process_time() - started
            started = time.process_time()
            profile.enable()
            outcome = await processor.process(decoded)
            profile.disable()
            process_cpu += time.process_time() - started
            trips += outcome.round_trips
    count = len(events)
    print(f"{count:,} events in {len(batches)} batches of up to {BATCH}")
    print(f"decode (validate + reduce)     {decode_cpu / count * 1e6:6.1f} us/event")
    print(f"process (store, score, publish) {process_cpu / count * 1e6:5.1f} us/event")
    print(f"Redis round trips per batch    {trips / len(batches):6.2f}")
    stats = pstats.Stats(profile)
    print("\nprocessing by step (CPU us/event with what each calls; profiler overhead included):")
    steps = {
        "score": "scoring (model calls, change events)",
        "predict_segments": "  of which model predictions",
        "apply": "store: apply (encode, send, decode states)",
        "record_each": "store: record changes and due times",
        "mark_announced": "store: clear marks, add counters",
        "publish_changes": "publish changes",
        "of": "serialise changes",
    }
    cumulative: dict[str, float] = {}
    for (path, _line, name), (_, _, _, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        if name in steps and (
            "stream_app" in path or "model_training" in path or "benchmarks" in path
        ):
            cumulative[name] = max(cumulative.get(name, 0.0), cum)
    for name, label in steps.items():
        print(f"  {cumulative.get(name, 0.0) / count * 1e6:6.2f}  {label}")
    print(
        "\nprocessing, most costly functions (own CPU time, us/event, profiler overhead included):"
    )
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    for (path, line, name), (_, calls, own, _cumulative, _) in rows[:15]:
        where = f"{Path(path).name}:{line}" if line else path
        print(f"  {own / count * 1e6:6.2f}  {calls:>9,} calls  {name} ({where})")


def main() -> None:
    path = uci_path()
    if not path.is_file():
        raise SystemExit(f"no UCI file at {path}: pass its path or set RFM_UCI_PATH")
    work = Path(tempfile.mkdtemp(prefix="rfm-profile-"))
    print(f"reading {path} and training a model (work dir {work}) ...")
    events = plan_replay(path).events
    train(path, work / "model")
    with LocalStack(work / "stack") as stack:
        asyncio.run(run(stack.redis_url, work / "model", events))


if __name__ == "__main__":
    main()
