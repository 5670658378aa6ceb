"""Two workers, one model registry: retrain on request, switch, roll back, survive bad models."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pandas as pd
import pytest
import redis

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from model_training.pipeline import train
from stream_app.service.order_events import build_events
from stream_app.settings import Settings
from stream_app.store.client import redis_client
from stream_app.store.coordination import Coordination
from stream_app.store.keys import Keys, keys_for
from stream_app.store.registry import ModelRegistry
from tests.integration.streaming import (
    full_states,
    last_changes,
    replay,
    running_worker,
    wait_for,
)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    directory = tmp_path_factory.mktemp("synthetic")
    path = directory / "transactions.csv.gz"
    write_transactions(generate_transactions(customers=1500, seed=5), path)
    return path, load_transactions(path)


def serving(client: redis.Redis, keys: Keys) -> dict[str, str | None]:
    raw: dict[str, str] = client.hgetall(keys.workers)  # type: ignore[assignment]
    return {worker: json.loads(value)["version"] for worker, value in raw.items()}


def test_two_workers_retrain_once_switch_together_and_roll_back(
    stack_settings: Settings, synthetic: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    path, frame = synthetic
    model_dir = tmp_path / "models"
    train(path, model_dir)
    settings = stack_settings.model_copy(
        update={
            "model_dir": model_dir,
            "model_refresh_s": 1.0,
            "retrain_check_s": 1.0,
            "retrain_interval_s": 0.0,
            "gate_max_changed_share": 1.0,
            "gate_min_silhouette": 0.0,
        }
    )
    keys = keys_for(settings)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    events = build_events(frame).events

    # The registry and the coordination keys are async: one loop (and client) for the test.
    with (
        asyncio.Runner() as loop,
        running_worker(settings, tmp_path / "a.log") as first,
        running_worker(settings, tmp_path / "b.log") as second,
    ):
        async_client = redis_client(settings.redis_url)
        registry = ModelRegistry(model_dir, async_client, keys)
        coordination = Coordination(async_client, keys)
        replay(settings, events)
        wait_for(lambda: len(serving(client, keys)) == 2, 60, "both workers to report")
        original = loop.run(registry.current_version())
        assert original is not None
        wait_for(
            lambda: set(serving(client, keys).values()) == {original},
            60,
            "both workers to serve the imported model",
        )

        # A retrain on request: one worker does it, both switch to the new version.
        loop.run(coordination.request_retrain())
        wait_for(lambda: loop.run(coordination.last_attempt()).get("version"), 120, "a retrain")
        attempt = loop.run(coordination.last_attempt())
        assert attempt["accepted"] is True, attempt
        retrained = attempt["version"]
        assert retrained != original and loop.run(registry.current_version()) == retrained
        wait_for(
            lambda: set(serving(client, keys).values()) == {retrained},
            60,
            "both workers to serve the retrained model",
        )
        logs = first.log() + second.log()
        assert logs.count("retrained: published model") == 1

        card = loop.run(registry.card(retrained))
        matrix = card["migration"]["matrix"]
        assert sum(sum(row.values()) for row in matrix.values()) == card["n_customers"]

        # Rollback brings the previous version back on both workers.
        assert loop.run(registry.rollback()) == original
        wait_for(
            lambda: set(serving(client, keys).values()) == {original},
            60,
            "both workers to serve the previous model again",
        )

        # A broken version never serves: the pointer moves, the workers keep the old model,
        # and orders keep flowing.
        broken = registry.version_dir(original).parent / "broken-1"
        broken.mkdir()
        (broken / "model.joblib").write_bytes(b"not a model")
        (broken / "model_card.json").write_text(json.dumps({"version": "broken-1"}))
        client.set(keys.model_current, "broken-1")
        time.sleep(3.0)
        assert set(serving(client, keys).values()) == {original}
        more = [
            (b"zz-new", json.dumps(event).encode())
            for event in [
                {
                    "event_id": "late-1",
                    "kind": "purchase",
                    "order_id": "late-1",
                    "customer_id": "zz-new",
                    "occurred_at": "2011-12-09T12:00:00+00:00",
                    "lines": [{"sku": "22423", "quantity": 3, "unit_price": 12.75}],
                }
            ]
        ]
        replay(settings, more)
        assert first.process.poll() is None and second.process.poll() is None
        loop.run(async_client.aclose())

    states = full_states(settings)
    assert states["zz-new"].segment is not None
    assert states["zz-new"].model_version == original
    # Every customer's last announced segment is the one stored.
    announced = last_changes(settings)
    for customer, state in states.items():
        if state.has_rfm:
            assert announced[customer].segment == state.segment, customer
    client.close()
