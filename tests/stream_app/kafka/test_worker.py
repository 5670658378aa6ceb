"""The worker's process: how it ends when one of our errors stops it, and its faust options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
import pytest

from stream_app.exceptions import TopicCreationError
from stream_app.kafka import worker
from stream_app.kafka.worker import faust_options
from stream_app.settings import Compression, Settings


class _CrashingWorker:
    """Stands for faust's worker: the app crashes with ``reason``, the worker exits 1."""

    reason: BaseException

    def __init__(self, app: faust.App, **options: Any) -> None:
        self.app = app

    def execute_from_commandline(self) -> None:
        self.app.crash_reason = self.reason
        raise SystemExit(1)


@pytest.mark.parametrize("ours", [True, False], ids=["our error", "another error"])
def test_a_worker_stopped_by_our_error_ends_with_it(
    ours: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reason = TopicCreationError("cannot create topic orders") if ours else KeyError("bug")
    monkeypatch.setattr(_CrashingWorker, "reason", reason, raising=False)
    monkeypatch.setattr(worker.faust, "Worker", _CrashingWorker)
    monkeypatch.setattr(worker, "shorten_fetch_wait", lambda wait_ms: None)  # process-wide
    # rfm prints our errors as one ``error:`` line; anything else keeps faust's exit code.
    expected: type[BaseException] = TopicCreationError if ours else SystemExit
    with pytest.raises(expected):
        worker.run_worker(Settings(model_dir=tmp_path, app_id="rfm-test-crash"))


def test_the_workers_producer_compresses_as_set() -> None:
    assert faust_options(Settings())["producer_compression_type"] is None
    options = faust_options(Settings(kafka_compression=Compression.LZ4))
    assert options["producer_compression_type"] == "lz4"
