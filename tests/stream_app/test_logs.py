"""``RFM_LOG_FORMAT=json``: every log line on stderr is one JSON object, faust's included."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner

from stream_app.cli.main import main
from stream_app.service.processor import BatchProcessor
from stream_app.settings import Clock
from stream_app.store.memory import MemoryStore
from tests.fakes import FrequencyModel, MemoryPublisher, messages, order_event

REPO = Path(__file__).resolve().parents[2]
KEYS = {"time", "level", "logger", "message"}
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def start_rfm(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """``rfm ARGS`` with JSON logs, against a broker and a Redis that do not answer."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("RFM_")}
    env |= {
        "RFM_LOG_FORMAT": "json",
        "RFM_KAFKA_BOOTSTRAP": "127.0.0.1:9",
        "RFM_REDIS_URL": "redis://127.0.0.1:9/0",
        "RFM_MODEL_DIR": str(tmp_path / "model"),
        "RFM_APP_ID": f"json-logs-{os.getpid()}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "stream_app", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def json_lines(lines: list[str]) -> list[dict[str, object]]:
    records = [json.loads(line) for line in lines]
    for record in records:
        assert isinstance(record, dict) and record.keys() >= KEYS, record
    return records


def test_a_worker_logs_json_lines(tmp_path: Path) -> None:
    # It stops by itself on the broker that does not answer.
    worker = start_rfm(tmp_path, "worker")
    try:
        _, stderr = worker.communicate(timeout=90)
    finally:
        worker.kill()
    # A worker's stderr is all log lines: faust's, aiokafka's, ours.
    records = json_lines(stderr.splitlines())
    loggers = {str(record["logger"]) for record in records}
    assert "faust.worker" in loggers and "aiokafka" in loggers, loggers
    assert any("exc_info" in record for record in records)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as it was after a command configured it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logging.captureWarnings(False)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_a_command_logs_json_lines(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text(
        f"{HEADER}\n536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
    )
    env = {"RFM_LOG_FORMAT": "json", "RFM_KAFKA_BOOTSTRAP": "127.0.0.1:9"}
    runner = CliRunner()
    argv = ["rfm", "replay", "--input", str(history)]
    with runner.isolation(env=env) as (_, err, _), mock.patch.object(sys, "argv", argv):
        with pytest.raises(SystemExit):
            main()
        lines = err.getvalue().decode().splitlines()
    # The command's own messages stay plain; its log lines (aiokafka's) are JSON.
    assert lines[-1].startswith("error: Kafka at 127.0.0.1:9")
    logged = json_lines([line for line in lines if line.startswith("{")])
    assert {str(record["logger"]) for record in logged} == {"aiokafka"}
    assert not [line for line in lines if "Unable connect" in line and line[0] != "{"]


async def test_the_batch_counts_are_fields_of_the_batch_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor = BatchProcessor(
        MemoryStore(), MemoryPublisher(), model=FrequencyModel, clock=Clock.EVENT
    )
    good = order_event("1", "a", datetime(2011, 6, 1, tzinfo=UTC))
    with caplog.at_level(logging.DEBUG, logger="stream_app.service.processor"):
        outcome = await processor.handle(messages(good, good, b"not json"))
    warning, batch = [r for r in caplog.records if r.name == "stream_app.service.processor"]
    assert warning.getMessage() == "sent 1 event(s) to the dead-letter topic"
    assert batch.getMessage() == (
        "batch of 3 event(s): 1 applied, 1 duplicate(s), 1 dead-lettered, 1 change(s)"
    )
    for name, value in outcome.log_fields().items():
        assert getattr(batch, name) == value, name
    fields = outcome.log_fields()
    assert (fields["events"], fields["applied"], fields["duplicates"]) == (3, 1, 1)
    assert (fields["dead_letters"], fields["changes"]) == (1, 1)
