"""A resubmission file is validated line by line as the worker would, all or nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from model_training.data.rules import DEFAULT_RULE
from stream_app.cli.main import cli
from stream_app.core.limits import Limits
from stream_app.service.dead_letters import dead_letter
from stream_app.service.ports import RawMessage
from stream_app.service.resubmission import read_resubmission
from tests.fakes import order_event

NOW = datetime(2024, 5, 1, tzinfo=UTC).timestamp()
WHEN = datetime(2011, 6, 1, tzinfo=UTC)


def exported(value: bytes, max_payload: int = 64 * 1024) -> str:
    """The line ``rfm dlq export`` writes for a refused message."""
    message = RawMessage(b"c1", value, "orders", 0, 9)
    return dead_letter(message, "bad", max_payload, datetime.now(tz=UTC)).model_dump_json()


def read(*lines: str, limits: Limits | None = None) -> tuple[list[int], list[tuple[int, str]]]:
    result = read_resubmission(lines, DEFAULT_RULE, limits or Limits(), NOW)
    return [event.line for event in result.events], result.problems


def test_dead_letters_and_bare_events_are_both_taken() -> None:
    bare = order_event("e1", "c1", WHEN).decode()
    result = read_resubmission(
        [exported(order_event("e2", "c2", WHEN)), "", bare], DEFAULT_RULE, Limits(), NOW
    )
    assert [(e.line, e.event_id, e.key) for e in result.events] == [
        (1, "e2", b"c2"),
        (3, "e1", b"c1"),
    ]
    assert result.events[1].value == bare.encode()
    assert not result.problems


def test_every_invalid_line_is_reported() -> None:
    lines, problems = read(
        order_event("e1", "c1", WHEN).decode(),
        exported(b'{"event_id": '),  # a dead letter nobody fixed
        "not json",
        "[1]",
        json.dumps({"kind": "clock", "occurred_at": "2011-06-01T00:00:00Z"}),
        order_event("e2", "c1", datetime(2030, 1, 1, tzinfo=UTC)).decode(),  # ahead of now
        exported(b"{" + b" " * 5000, max_payload=1024),
        json.dumps({"payload": "{}", "reason": "bad"}),
    )
    assert lines == [1]
    assert [line for line, _ in problems] == [2, 3, 4, 5, 6, 7, 8]
    reasons = dict(problems)
    assert reasons[2].startswith("not JSON")
    assert reasons[4] == "not a JSON object"
    assert "clock event" in reasons[5]
    assert "wall clock" in reasons[6]
    assert "keeps only 1022 of 5001 bytes" in reasons[7]
    assert reasons[8].startswith("not a dead letter: topic")


def test_the_limits_of_the_settings_apply() -> None:
    line = order_event("e1", "c1", WHEN, lines=[{"sku": "A1", "quantity": 50, "unit_price": 1.0}])
    _, problems = read(line.decode(), limits=Limits(max_quantity=10))
    assert "quantity" in problems[0][1]


def test_resubmit_publishes_nothing_when_a_line_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "fixed.jsonl"
    path.write_text(order_event("e1", "c1", WHEN).decode() + "\n" + "{oops\n" + "[]\n")
    # Nothing listens there: publishing would fail differently.
    env = {"RFM_KAFKA_BOOTSTRAP": "127.0.0.1:9", "RFM_REDIS_URL": "redis://127.0.0.1:9/0"}
    result = CliRunner().invoke(cli, ["dlq", "resubmit", "--input", str(path)], env=env)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {path}:2: not JSON: key must be a string at line 1 column 2",
        f"error: {path}:3: not a JSON object",
    ]
