"""Redis wiped under a running worker: it stops taking orders, and goes on after a bootstrap.

The worker, never restarted, notices the lost store (its epoch is gone), takes no order until
``rfm bootstrap`` rebuilds the state from the history, then applies what waited. A consumer of
segment changes that keeps the highest sequence per customer ends with every customer's
segment as the store holds it: the rebuilt store numbers its changes above the lost one's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from model_training.pipeline import train
from stream_app.devtools.processes import terminate
from stream_app.devtools.servers import redis_url, start_redis
from stream_app.service.bootstrap import bootstrap_states
from stream_app.service.order_events import build_events
from stream_app.settings import Settings
from tests.integration.streaming import (
    assert_same_states,
    full_states,
    last_changes,
    on_store,
    replay,
    running_worker,
    wait_for,
)


def test_a_wiped_store_stops_the_worker_until_a_bootstrap(
    stack_settings: Settings, tmp_path: Path
) -> None:
    whole = generate_transactions(customers=400, seed=21)
    times = pd.to_datetime(whole["InvoiceDate"])
    cutoff = times.quantile(0.8).normalize()
    history, live = tmp_path / "history.csv", tmp_path / "all.csv"
    write_transactions(whole[times < cutoff], history)
    write_transactions(whole, live)
    frame = load_transactions(live)
    before = load_transactions(history)
    model_dir = tmp_path / "model"
    train(history, model_dir, method="seed")
    history_events = build_events(before).events
    later_events = [event for event in build_events(frame).events if event not in history_events]
    assert later_events

    data = tmp_path / "redis"
    data.mkdir()
    server = start_redis(data, die_with_parent=True)
    settings = stack_settings.model_copy(
        update={"redis_url": redis_url(server.port), "model_dir": model_dir}
    )
    env = {**os.environ, **settings.to_env()}
    try:
        with running_worker(settings, tmp_path / "worker.log") as worker:
            replay(settings, history_events, timeout_s=120)
            on_store(settings, lambda store: store.client.flushall())

            # Orders keep coming; none is applied on the empty store.
            waiting = subprocess.Popen(
                [sys.executable, "-m", "stream_app", "replay", "--input", str(live), "--wait",
                 "--timeout", "180"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            wait_for(
                lambda: "state store was lost" in worker.log(),
                timeout_s=60,
                what="the worker to say the store was lost",
            )
            time.sleep(2.0)
            assert full_states(settings) == {}
            assert worker.process.poll() is None, worker.log()

            rebuilt = subprocess.run(
                [sys.executable, "-m", "stream_app", "bootstrap", "--input", str(history),
                 "--score"],
                env=env, capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert rebuilt.returncode == 0, rebuilt.stderr
            _, errors = waiting.communicate(timeout=240)
            assert waiting.returncode == 0, errors
            assert worker.process.poll() is None, worker.log()
            states = full_states(settings)
            heard = last_changes(settings)
    finally:
        terminate([server], timeout=10)

    expected = {state.customer_id: state for state in bootstrap_states(frame)}
    assert_same_states(states, expected)
    scored = [customer for customer, state in states.items() if state.has_rfm]
    wrong = [c for c in scored if c not in heard or heard[c].segment != states[c].segment]
    assert not wrong, f"{len(wrong)} customers heard another segment: {wrong[:5]}"
