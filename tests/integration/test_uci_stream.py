"""The whole UCI file through a real broker, real Redis and real worker processes.

The stream must agree with the batch pipeline for every customer, stay the same when the
file is replayed again or shuffled, match a bootstrap, and survive a SIGKILL or a SIGTERM
mid-replay.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from aiokafka import TopicPartition

from model_training.data.loading import load_transactions
from model_training.model.artifact import LoadedModel, load_model
from model_training.pipeline import train
from stream_app.core.events import DeadLetter
from stream_app.core.state import CustomerState
from stream_app.kafka.admin import stream_producer
from stream_app.kafka.clock_events import publish_clock_event
from stream_app.kafka.replay import wait_until_processed
from stream_app.service.bootstrap import bootstrap_states, load_history
from stream_app.service.order_events import ReplayPlan, build_events
from stream_app.settings import Settings
from stream_app.store.redis_store import RedisStore
from tests.fakes import order_event
from tests.integration.streaming import (
    assert_same_states,
    counters,
    export,
    full_states,
    last_changes,
    on_store,
    read_topic,
    replay,
    running_worker,
    wait_for,
)

pytestmark = pytest.mark.uci

T_REF = datetime(2011, 12, 10, tzinfo=UTC)
LATER = datetime(2012, 6, 1, tzinfo=UTC)


def clock_and_due(settings: Settings, until: float) -> tuple[float | None, int]:
    async def read(store: RedisStore) -> tuple[float | None, int]:
        return await store.clock(), await store.due_count(until)

    return on_store(settings, read)


@pytest.fixture(scope="module")
def uci_frame(uci_path: Path) -> pd.DataFrame:
    return load_transactions(uci_path)


@pytest.fixture(scope="module")
def plan(uci_frame: pd.DataFrame) -> ReplayPlan:
    return build_events(uci_frame)


@pytest.fixture(scope="module")
def expected_states(uci_frame: pd.DataFrame) -> dict[str, CustomerState]:
    return {state.customer_id: state for state in bootstrap_states(uci_frame)}


@pytest.fixture(scope="module")
def trained(uci_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    output = tmp_path_factory.mktemp("model")
    train(uci_path, output, t_ref=T_REF.replace(tzinfo=None))
    return output, pd.read_csv(output / "rfm.csv", dtype={"customer_id": str})


def _model(model_dir: Path) -> LoadedModel:
    return load_model(model_dir)


def assert_segments_follow_model(
    states: dict[str, CustomerState], model: LoadedModel, moment: datetime
) -> list[str]:
    """Every stored segment is what ``model`` assigns at ``moment``; return those scored."""
    scored = sorted(c for c, state in states.items() if state.has_rfm)
    rfm = np.array([states[c].rfm(moment.timestamp()) for c in scored])
    expected = dict(zip(scored, model.predict_segments(rfm), strict=True))
    wrong = {
        c: (states[c].segment, expected[c]) for c in scored if states[c].segment != expected[c]
    }
    assert not wrong, (
        f"{len(wrong)} customers not in their {moment:%Y-%m-%d} segment: {list(wrong.items())[:5]}"
    )
    return scored


def test_replay_equals_batch_and_replaying_again_changes_nothing(
    stack_settings: Settings,
    plan: ReplayPlan,
    trained: tuple[Path, pd.DataFrame],
    tmp_path: Path,
) -> None:
    model_dir, batch = trained
    settings = stack_settings.model_copy(update={"model_dir": model_dir})
    with running_worker(settings, tmp_path / "worker.log") as worker:
        replay(settings, plan.events)
        first = export(settings, T_REF.timestamp(), _model(model_dir))
        states_once = full_states(settings)
        applied_once = counters(settings)["applied"]

        replay(settings, plan.events)
        assert worker.process.poll() is None, worker.log()

        # Time passes without orders: every stored segment follows the model at the new date.
        asyncio.run(publish_clock_event(settings, LATER))
        wait_for(
            lambda: clock_and_due(settings, LATER.timestamp()) == (LATER.timestamp(), 0),
            timeout_s=120,
            what="the clock to reach 2012-06-01 and the due customers to be re-scored",
        )
        time.sleep(1.0)  # the last decay step records after it pops
        later_states = full_states(settings)

    assert len(first) == len(batch) == 4334
    merged = batch.merge(first, on="customer_id", suffixes=("_batch", "_stream"))
    assert len(merged) == 4334
    assert (merged["recency_days_batch"] == merged["recency_days_stream"]).all()
    assert (merged["frequency_batch"] == merged["frequency_stream"]).all()
    assert (merged["monetary_batch"] - merged["monetary_stream"]).abs().max() <= 0.01
    assert (merged["segment_batch"] == merged["segment_stream"]).all()

    assert applied_once == len(plan.events)
    again = counters(settings)
    assert again["applied"] == applied_once
    assert again["duplicates"] == len(plan.events)
    assert_same_states(full_states(settings), states_once)

    # At 2012-06-01 every stored segment is what the model assigns then, and the changes
    # that got customers there came with reason "recency".
    scored = assert_segments_follow_model(later_states, _model(model_dir), LATER)

    announced = last_changes(settings)
    recency_moves = [c for c in announced.values() if c.reason == "recency"]
    assert recency_moves, "no customer moved with time passing"
    assert all(change.driver == "recency" for change in recency_moves)
    for customer in scored:
        assert announced[customer].segment == later_states[customer].segment


def test_shuffled_replay_and_bootstrap_give_the_same_state(
    stack_settings: Settings,
    plan: ReplayPlan,
    uci_path: Path,
    expected_states: dict[str, CustomerState],
    tmp_path: Path,
) -> None:
    shuffled = list(plan.events)
    random.Random(11).shuffle(shuffled)
    settings = stack_settings.model_copy(update={"model_dir": tmp_path / "no-model"})
    with running_worker(settings, tmp_path / "worker.log"):
        replay(settings, shuffled)
    assert_same_states(full_states(settings), expected_states)

    booted = settings.model_copy(update={"key_prefix": settings.key_prefix + "b"})

    on_store(booted, lambda store: load_history(store, uci_path))
    assert_same_states(full_states(booted), expected_states)


@pytest.mark.parametrize("stop", ["kill", "stop"], ids=["SIGKILL", "SIGTERM"])
def test_worker_stopped_mid_replay_recovers_exactly(
    stop: str,
    stack_settings: Settings,
    plan: ReplayPlan,
    trained: tuple[Path, pd.DataFrame],
    expected_states: dict[str, CustomerState],
    tmp_path: Path,
) -> None:
    model_dir, _ = trained
    settings = stack_settings.model_copy(update={"model_dir": model_dir, "batch_size": 200})
    log = tmp_path / "worker.log"
    total = len(plan.events)
    with running_worker(settings, log) as worker:
        from stream_app.kafka.replay import publish_events

        targets = asyncio.run(publish_events(settings, plan.events))
        wait_for(
            lambda: counters(settings).get("events", 0) > total // 3,
            timeout_s=120,
            what="a third of the events to be processed",
        )
        # SIGKILL: a crash, nothing cleaned up. SIGTERM: a clean stop while batches are in
        # flight, which must neither acknowledge what is not done nor hang.
        getattr(worker, stop)()
        # A clean stop exits 0 by itself (stop() falls back to SIGKILL after 30 s).
        assert worker.process.returncode == (-signal.SIGKILL if stop == "kill" else 0)
    processed_before_stop = counters(settings)["events"]
    assert processed_before_stop < total, "the worker finished before it could be stopped"

    with running_worker(settings, log):
        from stream_app.kafka.replay import wait_until_processed

        asyncio.run(wait_until_processed(settings, targets, timeout_s=180))
        # Every order is in; the last batches moved the clock, and the customers due by it
        # are re-scored after them: let that finish before the clean stop.
        _wait_until_settled(settings)

    states = full_states(settings)
    assert_same_states(states, expected_states)
    announced = last_changes(settings)
    for customer, state in states.items():
        if state.has_rfm:
            assert state.segment is not None, customer
            assert announced[customer].segment == state.segment, customer


def _unannounced(settings: Settings) -> int:
    """How many customers have a change recorded but not yet published."""

    async def count(store: RedisStore) -> int:
        return sum([state.unannounced async for batch in store.scan() for state in batch])

    return on_store(settings, count)


def _wait_until_settled(settings: Settings) -> None:
    """Wait until nobody is due by the clock and every recorded change is published."""
    clock = clock_and_due(settings, 0)[0]
    assert clock is not None
    wait_for(
        lambda: clock_and_due(settings, clock)[1] == 0 and not _unannounced(settings),
        timeout_s=120,
        what="the customers due by the clock to be re-scored and their changes published",
    )
    time.sleep(1.5)  # a decay step in flight records after it pops


def _publish_on(settings: Settings, messages: list[tuple[int, bytes, bytes]]) -> None:
    """Publish ``(partition, key, value)`` messages to the orders topic and wait for the workers."""

    async def run() -> None:
        targets: dict[TopicPartition, int] = {}
        async with stream_producer(settings) as producer:
            for partition, key, value in messages:
                sent = await producer.send_and_wait(
                    settings.orders_topic, value, key=key, partition=partition
                )
                targets[TopicPartition(sent.topic, sent.partition)] = sent.offset + 1
        await wait_until_processed(settings, targets, timeout_s=120)

    asyncio.run(run())


def _segments(settings: Settings) -> dict[str, str | None]:
    return {customer: state.segment for customer, state in full_states(settings).items()}


def test_orders_dated_ahead_move_no_clock_and_a_wrong_clock_is_set_back(
    stack_settings: Settings,
    plan: ReplayPlan,
    trained: tuple[Path, pd.DataFrame],
    tmp_path: Path,
) -> None:
    model_dir, _ = trained
    settings = stack_settings.model_copy(update={"model_dir": model_dir})
    customers = ["12347", "12348", "12349", "12350"]
    with running_worker(settings, tmp_path / "worker.log") as worker:
        replay(settings, plan.events)
        clock = clock_and_due(settings, 0)[0]
        assert clock is not None
        # The last batches moved the clock: the customers due by it are re-scored first.
        _wait_until_settled(settings)
        states, segments = full_states(settings), _segments(settings)

        # Dated 2030 and 2099: first all on one partition, then on every partition.
        future = [
            order_event(f"F{n}", customer, moment, lines=[{"sku": "85123A", "quantity": 1,
                                                           "unit_price": 2.55}])
            for n, (customer, moment) in enumerate(
                [(customers[0], datetime(2030, 1, 1, tzinfo=UTC)),
                 (customers[1], datetime(2099, 6, 1, tzinfo=UTC))]
                + [(customer, datetime(2099, 6, 1, tzinfo=UTC)) for customer in customers]
            )
        ]  # fmt: skip
        _publish_on(settings, [(0, b"12347", future[0]), (0, b"12348", future[1])])
        _publish_on(settings, [(p, c.encode(), v) for p, (c, v) in
                               enumerate(zip(customers, future[2:], strict=True))])  # fmt: skip
        assert clock_and_due(settings, 0)[0] == clock
        assert _segments(settings) == segments
        after = full_states(settings)
        for customer in customers:
            assert after[customer].orders == states[customer].orders, customer
            assert after[customer].frequency == states[customer].frequency, customer
        letters = [
            DeadLetter.model_validate_json(value)
            for _, value in read_topic(settings, settings.dlq_topic)
        ]
        ahead = [letter for letter in letters if "after the wall clock" in letter.reason]
        assert len(ahead) == len(future)

        # A clock advanced too far, then set back: every segment is the model's at that time.
        too_far = datetime(2013, 1, 1, tzinfo=UTC)
        asyncio.run(publish_clock_event(settings, too_far))
        wait_for(
            lambda: clock_and_due(settings, too_far.timestamp()) == (too_far.timestamp(), 0),
            timeout_s=120,
            what="the clock to reach 2013-01-01 and the due customers to be re-scored",
        )
        time.sleep(1.0)  # the last decay step records after it pops
        advanced = _segments(settings)
        assert advanced != segments
        repaired = datetime.fromtimestamp(clock, tz=UTC)
        done = subprocess.run(
            [sys.executable, "-m", "stream_app", "clock", "set", "--to", repaired.isoformat()],
            env={**os.environ, **settings.to_env()},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert clock_and_due(settings, 0)[0] == clock
        time.sleep(1.0)
        assert worker.process.poll() is None, worker.log()
        final = full_states(settings)

    scored = assert_segments_follow_model(final, _model(model_dir), repaired)
    announced = last_changes(settings)
    # Those the wrong clock had moved came back with a change of `rfm clock set`.
    moved_back = [c for c in scored if advanced[c] != final[c].segment]
    assert moved_back
    assert all(announced[c].reason == "recency" for c in moved_back)
    assert all(announced[c].occurred_at == repaired for c in moved_back)
