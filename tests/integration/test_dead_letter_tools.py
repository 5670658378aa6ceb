"""A huge invalid message cannot stop the worker; dead letters can be listed, fixed and resubmitted.

Through the real broker (Tansu) and Redis: a 2 MB invalid message, which escaped whole would
be far above the producer's 1 MB request limit, becomes a cut dead letter and the worker goes
on to the next event; ``rfm dlq`` then lists and exports the dead letters, and a fixed event
resubmitted is applied once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import TopicPartition
from click.testing import CliRunner, Result

from stream_app.cli.main import cli
from stream_app.core.events import DeadLetter
from stream_app.kafka.admin import stream_producer
from stream_app.kafka.replay import wait_until_processed
from stream_app.settings import Settings
from tests.fakes import order_event
from tests.integration.streaming import counters, full_states, running_worker, wait_for

WHEN = datetime(2011, 3, 1, 10, tzinfo=UTC)
MAX_PAYLOAD = 32 * 1024

#: 2 MiB of quotes, control characters and multi-byte UTF-8: about 6 MB once JSON-escaped.
HUGE = ('{"event_id": "' + '"\x00\x01\n é€😀' * 140_000).encode()[: 2 * 1024 * 1024]


def publish_in_order(settings: Settings, values: list[bytes]) -> dict[TopicPartition, int]:
    """Publish to partition 0, in this order (so the worker meets them in this order)."""

    async def run() -> dict[TopicPartition, int]:
        async with stream_producer(settings, max_request_size=4 * 1024 * 1024) as producer:
            last = None
            for value in values:
                last = await producer.send_and_wait(
                    settings.orders_topic, value, key=b"k", partition=0
                )
        assert last is not None
        return {TopicPartition(settings.orders_topic, 0): last.offset + 1}

    return asyncio.run(run())


def rfm(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=settings.to_env(), catch_exceptions=False)


def test_a_huge_invalid_message_is_cut_and_a_fixed_event_resubmitted(
    stack_settings: Settings, tmp_path: Path
) -> None:
    settings = stack_settings.model_copy(
        update={"model_dir": tmp_path / "no-model", "dlq_max_payload": MAX_PAYLOAD}
    )
    bad_line = [{"sku": "22423", "quantity": -3, "unit_price": 5.0}]
    values = [
        order_event("g1", "good1", WHEN),
        order_event("b1", "fixme", WHEN, lines=bad_line),
        HUGE,
        order_event("g2", "good2", WHEN),
    ]
    with running_worker(settings, tmp_path / "worker.log") as worker:
        targets = publish_in_order(settings, values)
        asyncio.run(wait_until_processed(settings, targets, timeout_s=60))
        assert worker.process.poll() is None, worker.log()
        assert set(full_states(settings)) == {"good1", "good2"}

        listed = rfm(settings, "dlq", "list")
        assert listed.exit_code == 0, listed.output
        rows = [line.split("\t") for line in listed.stdout.splitlines()]
        assert len(rows) == 2, listed.output
        (quantity,) = [row for row in rows if "quantity" in row[1]]
        (huge,) = [row for row in rows if row[1].startswith("not JSON")]
        assert quantity[2] == f"{settings.orders_topic}/0/1" and quantity[3] == "k"
        assert huge[2] == f"{settings.orders_topic}/0/2"
        assert huge[4:] == [f"{len(HUGE)} B cut", hashlib.sha256(HUGE).hexdigest()]
        only = rfm(settings, "dlq", "list", "--reason", "QUANTITY", "--since", "2020-01-01")
        assert only.stdout.count("\n") == 1 and "quantity" in only.stdout

        export = tmp_path / "dead.jsonl"
        assert rfm(settings, "dlq", "export", "--output", str(export)).exit_code == 0
        letters = [DeadLetter.model_validate_json(line) for line in export.read_text().splitlines()]
        cut = next(letter for letter in letters if letter.truncated)
        assert len(json.dumps(cut.payload, ensure_ascii=False).encode()) <= MAX_PAYLOAD
        assert HUGE.decode("utf-8", "replace").startswith(cut.payload)

        # The whole export cannot go back: the cut one is refused, and nothing is published.
        refused = rfm(settings, "dlq", "resubmit", "--input", str(export))
        assert refused.exit_code == 2
        assert f"error: {export}:" in refused.output and "keeps only" in refused.output

        # A person fixes the quantity of the other one and resubmits it, twice.
        letter = next(letter for letter in letters if not letter.truncated)
        event = json.loads(letter.payload)
        event["lines"][0]["quantity"] = 3
        fixed = tmp_path / "fixed.jsonl"
        fixed.write_text(
            letter.model_copy(update={"payload": json.dumps(event)}).model_dump_json() + "\n"
        )
        for duplicates in (0, 1):
            resubmitted = rfm(settings, "dlq", "resubmit", "--input", str(fixed))
            assert resubmitted.exit_code == 0, resubmitted.output
            assert "published 1 order event(s)" in resubmitted.output
            wait_for(
                lambda duplicates=duplicates: (
                    counters(settings).get("duplicates", 0) == duplicates
                    and counters(settings).get("applied", 0) == 3
                ),
                timeout_s=30,
                what="the resubmitted event",
            )
        assert worker.process.poll() is None, worker.log()

    states = full_states(settings)
    assert set(states) == {"good1", "good2", "fixme"}
    assert (states["fixme"].frequency, states["fixme"].monetary) == (1, 15.0)
    final = counters(settings)
    assert (final["dead_letters"], final["applied"], final["duplicates"]) == (2, 3, 1)
    assert final.get("publish_retries", 0) == 0
    assert "Traceback" not in worker.log()
