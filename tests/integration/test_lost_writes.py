"""Redis restarted without its last writes: the orders whose writes it lost come back from Kafka.

A host crash under ``appendfsync everysec`` loses up to a second of writes Redis had
acknowledged, while the worker already committed the offsets past them. Here Redis is killed
and the end of its append-only file cut off before it starts again; the worker, never
restarted, notices that the offsets Redis holds are behind the ones it stored, reads the orders
in between again, and the state ends exact.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from stream_app.devtools.processes import spawn, terminate
from stream_app.devtools.servers import redis_url, start_redis
from stream_app.exceptions import StoreUnavailableError
from stream_app.service.bootstrap import bootstrap_states
from stream_app.service.order_events import build_events
from stream_app.settings import Settings
from tests.integration.streaming import (
    assert_same_states,
    counters,
    full_states,
    on_store,
    replay,
    running_worker,
    wait_for,
)


def _aof_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.incr.aof"))


def _answers(settings: Settings) -> bool:
    try:
        on_store(settings, lambda store: store.ping())
    except StoreUnavailableError:
        return False
    return True


def test_writes_redis_lost_are_read_again(stack_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    write_transactions(generate_transactions(customers=300, seed=11), path)
    frame: pd.DataFrame = load_transactions(path)
    events = build_events(frame).events
    thirds = [events[: len(events) // 3], events[len(events) // 3 : 2 * len(events) // 3]]
    thirds.append(events[2 * len(events) // 3 :])

    data = tmp_path / "redis"
    data.mkdir()
    server = start_redis(data, aof=True, die_with_parent=True)
    port = server.port
    settings = stack_settings.model_copy(
        update={
            "redis_url": redis_url(port),
            "model_dir": tmp_path / "no-model",
            "decay_interval_s": 3600.0,
            "model_refresh_s": 3600.0,
        }
    )
    try:
        with running_worker(settings, tmp_path / "worker.log") as worker:
            replay(settings, thirds[0], timeout_s=120)
            [aof] = _aof_files(data)
            kept = aof.stat().st_size
            replay(settings, thirds[1], timeout_s=120)
            assert aof.stat().st_size > kept

            # The host "crashes": Redis dies, and its file loses everything after the first
            # third, although the worker had its offsets committed past the second.
            os.kill(server.pid, signal.SIGKILL)
            terminate([server], timeout=10)  # reaps it
            with aof.open("r+b") as handle:
                handle.truncate(kept)
            # Started as before, on its port (the port check would wait out TIME_WAIT).
            server = spawn("redis", port, server.argv, server.log, cwd=data, die_with_parent=True)
            wait_for(lambda: _answers(settings), timeout_s=30, what="Redis to answer again")

            replay(settings, thirds[2], timeout_s=180)
            assert worker.process.poll() is None, worker.log()
            log = worker.log()
            assert "lost the writes of" in log, log[-3000:]
            states = full_states(settings)
            caught_up = counters(settings).get("caught_up", 0)
    finally:
        terminate([server], timeout=10)

    assert caught_up >= len(thirds[1])
    expected = {state.customer_id: state for state in bootstrap_states(frame)}
    assert_same_states(states, expected)


pytestmark = pytest.mark.timeout(300)
