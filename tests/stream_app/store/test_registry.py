"""The shared model registry against a real Redis, and the ``rfm models`` commands."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner

import stream_app.store.model_files as model_files_module
from model_training.exceptions import ModelArtifactError
from model_training.model.artifact import CARD_FILE, MODEL_FILE, save_model
from model_training.model.segmenter import RFMSegmenter
from stream_app.cli.main import cli
from stream_app.exceptions import ModelUnavailableError
from stream_app.store.client import redis_client
from stream_app.store.coordination import Coordination
from stream_app.store.keys import Keys
from stream_app.store.model_files import STAGING_DIR
from stream_app.store.registry import ModelRegistry
from tests.fakes import V1, V2, V3, fitted_segmenter, model_card

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def keys() -> Keys:
    return Keys(f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def registry(tmp_path: Path, async_client: aioredis.Redis, keys: Keys) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry", async_client, keys)


async def test_publish_sets_current_and_lists_versions(registry: ModelRegistry) -> None:
    assert await registry.current_version() is None
    assert await registry.versions() == []
    assert await registry.load_current() is None

    assert await registry.publish(fitted_segmenter(), model_card(V1)) == V1
    assert await registry.current_version() == V1
    assert await registry.publish(fitted_segmenter(1), model_card(V2, trained_from="stream")) == V2
    assert await registry.current_version() == V2
    assert await registry.history() == [V1]

    rows = await registry.versions()
    assert [row["version"] for row in rows] == [V1, V2]
    assert [row["current"] for row in rows] == [False, True]
    assert [row["trained_from"] for row in rows] == ["batch", "stream"]
    assert rows[1]["method"] == "kmeans" and rows[1]["n_segments"] == 4
    assert rows[1]["silhouette"] == 0.3 and rows[1]["error"] is None
    assert (await registry.card(V2))["trained_from"] == "stream"
    loaded = await registry.load(V2)
    assert loaded.version == V2
    assert (registry.versions_dir / V2 / MODEL_FILE).is_file()
    assert not any((registry.root / STAGING_DIR).iterdir())


async def test_publishing_the_current_version_again_changes_nothing(
    registry: ModelRegistry,
) -> None:
    await registry.publish(fitted_segmenter(), model_card(V1))
    await registry.publish(fitted_segmenter(), model_card(V1))
    assert await registry.current_version() == V1
    assert await registry.history() == []


async def test_promote_and_rollback(registry: ModelRegistry) -> None:
    for seed, version in enumerate((V1, V2, V3)):
        await registry.publish(fitted_segmenter(seed), model_card(version))
    assert await registry.history() == [V2, V1]

    assert await registry.promote(V1) == V3
    assert await registry.current_version() == V1
    assert await registry.history() == [V3, V2, V1]

    assert await registry.rollback() == V3
    assert await registry.rollback() == V2
    assert await registry.rollback() == V1
    assert await registry.current_version() == V1
    with pytest.raises(ModelUnavailableError, match="no previous model version"):
        await registry.rollback()
    assert await registry.current_version() == V1


async def test_every_pointer_move_opens_a_rescore_job(
    registry: ModelRegistry, async_client: aioredis.Redis, keys: Keys
) -> None:
    coordination = Coordination(async_client, keys)
    await registry.publish(fitted_segmenter(), model_card(V1))
    job = await coordination.rescore_progress(V1)
    assert job is not None and job.cursor == "0" and not job.done
    assert await coordination.take_rescore(V1, "w", 60.0) is not None
    assert await coordination.advance_rescore(V1, "w", "0", 5, 1, 60.0) is True
    await registry.publish(fitted_segmenter(), model_card(V1))  # already current: nothing new
    assert (await coordination.rescore_progress(V1)).done  # type: ignore[union-attr]

    await registry.publish(fitted_segmenter(1), model_card(V2))
    assert not (await coordination.rescore_progress(V2)).done  # type: ignore[union-attr]
    await async_client.set(keys.rescore_claim(V1), "rfm-segments")  # from an older release
    assert await registry.rollback() == V1  # customers are on V2's segments: again from 0
    again = await coordination.rescore_progress(V1)
    assert again is not None and not again.done and again.customers == 0
    assert await async_client.exists(keys.rescore_claim(V1)) == 0
    assert await registry.promote(V2) == V1
    assert not (await coordination.rescore_progress(V2)).done  # type: ignore[union-attr]


async def test_promote_refuses_a_missing_or_broken_version(registry: ModelRegistry) -> None:
    await registry.publish(fitted_segmenter(), model_card(V1))
    await registry.publish(fitted_segmenter(1), model_card(V2))
    with pytest.raises(ModelArtifactError, match="not in the registry"):
        await registry.promote(V3)
    with pytest.raises(ModelArtifactError, match="not a model version id"):
        await registry.promote("../escape")

    (registry.versions_dir / V1 / MODEL_FILE).write_bytes(b"\x80\x04 this is not a pickle")
    with pytest.raises(ModelArtifactError, match="corrupt model file"):
        await registry.promote(V1)
    assert await registry.current_version() == V2
    # The rollback target is the broken version: refused, nothing moves.
    with pytest.raises(ModelArtifactError, match="corrupt model file"):
        await registry.rollback()
    assert await registry.current_version() == V2
    assert await registry.history() == [V1]
    # Publishing that id again does not point at the damaged copy either.
    with pytest.raises(ModelArtifactError):
        await registry.publish(fitted_segmenter(), model_card(V1))
    assert await registry.current_version() == V2


async def test_incompatible_library_versions_are_refused(registry: ModelRegistry) -> None:
    await registry.publish(fitted_segmenter(), model_card(V1))
    await registry.publish(fitted_segmenter(1), model_card(V2))
    card_path = registry.versions_dir / V1 / CARD_FILE
    card = json.loads(card_path.read_text())
    card["libraries"]["sklearn"] = "0.1.0"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelArtifactError, match=r"built with scikit-learn 0\.1\.0"):
        await registry.promote(V1)
    assert await registry.current_version() == V2


async def test_unreadable_card_shows_in_the_listing(registry: ModelRegistry) -> None:
    await registry.publish(fitted_segmenter(), model_card(V1))
    (registry.versions_dir / V1 / CARD_FILE).write_text("{not json")
    (row,) = await registry.versions()
    assert row["version"] == V1 and row["current"] is True
    assert "unreadable model card" in row["error"]


async def test_failed_publish_leaves_no_partial_version(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    await registry.publish(fitted_segmenter(), model_card(V1))

    def half_written(model_dir: Path, segmenter: RFMSegmenter, card: dict[str, Any]) -> None:
        (model_dir / MODEL_FILE).write_bytes(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_files_module, "save_model", half_written)
    with pytest.raises(ModelArtifactError, match="No space left"):
        await registry.publish(fitted_segmenter(1), model_card(V2))
    assert not (registry.versions_dir / V2).exists()
    assert [row["version"] for row in await registry.versions()] == [V1]
    assert not any((registry.root / STAGING_DIR).iterdir())
    assert await registry.current_version() == V1


async def test_file_work_runs_off_the_event_loop(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real_load, real_save = model_files_module.load_model, model_files_module.save_model

    def load(model_dir: Path) -> Any:
        threads.append(threading.get_ident())
        return real_load(model_dir)

    def save(model_dir: Path, segmenter: RFMSegmenter, card: dict[str, Any]) -> None:
        threads.append(threading.get_ident())
        real_save(model_dir, segmenter, card)

    monkeypatch.setattr(model_files_module, "load_model", load)
    monkeypatch.setattr(model_files_module, "save_model", save)
    await registry.publish(fitted_segmenter(), model_card(V1))
    await registry.load_current()
    await registry.promote(V1)
    assert len(threads) >= 4
    assert threading.get_ident() not in threads


async def test_two_workers_see_one_current_version(
    tmp_path: Path, private_redis_url: str, keys: Keys
) -> None:
    clients = [redis_client(private_redis_url) for _ in range(2)]
    try:
        one, two = (ModelRegistry(tmp_path / "shared", c, keys) for c in clients)
        await one.publish(fitted_segmenter(), model_card(V1))
        assert await two.current_version() == V1
        loaded = await two.load_current()
        assert loaded is not None and loaded.version == V1
        await two.publish(fitted_segmenter(1), model_card(V2))
        assert await one.current_version() == V2
        await one.rollback()
        assert await two.current_version() == V1
    finally:
        for connection in clients:
            await connection.aclose()


async def test_import_dir_registers_an_rfm_train_output(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    trained = tmp_path / "model"
    save_model(trained, fitted_segmenter(), model_card(V1))
    assert await registry.import_dir(trained) == V1
    assert await registry.current_version() == V1

    save_model(trained, fitted_segmenter(1), model_card(V2))
    assert await registry.import_dir(trained) == V2
    assert await registry.current_version() == V1  # importing never replaces a serving model
    assert [row["version"] for row in await registry.versions()] == [V1, V2]
    assert await registry.import_dir(trained) == V2  # again: no-op

    broken = tmp_path / "broken"
    save_model(broken, fitted_segmenter(), model_card(V3))
    (broken / MODEL_FILE).write_bytes(b"garbage")
    with pytest.raises(ModelArtifactError, match="corrupt model file"):
        await registry.import_dir(broken)
    with pytest.raises(ModelArtifactError, match="missing"):
        await registry.import_dir(tmp_path / "nothing")
    assert not (registry.versions_dir / V3).exists()
    assert not any((registry.root / STAGING_DIR).iterdir())


# ------------------------------------------------------------------ CLI


@pytest.fixture
def env(tmp_path: Path, private_redis_url: str, keys: Keys) -> dict[str, str]:
    return {
        "RFM_REDIS_URL": private_redis_url,
        "RFM_MODEL_DIR": str(tmp_path / "registry"),
        "RFM_KEY_PREFIX": keys.prefix,
    }


def test_models_commands(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "no model versions yet" in run("models", "list")
    save_model(tmp_path / "a", fitted_segmenter(), model_card(V1))
    save_model(
        tmp_path / "b",
        fitted_segmenter(1),
        model_card(
            V2,
            trained_from="stream",
            gates={"passed": True, "reasons": [], "silhouette": 0.3, "min_silhouette": 0.15},
            migration={
                "from_version": V1,
                "matrix": {"lost": {"lost": 5, "new": 2}, "new": {"new": 3}},
                "changed": 2,
                "changed_share": 0.2,
            },
        ),
    )
    assert f"registered {V1}: current" in run("models", "import", str(tmp_path / "a"))
    assert f"registered {V2}: not current (serving {V1})" in run(
        "models", "import", str(tmp_path / "b")
    )
    listing = run("models", "list")
    assert V1 in listing and V2 in listing and "*" in listing
    assert f"serving {V2} (was {V1})" in run("models", "promote", V2)
    shown = run("models", "show")
    assert f"{V2}  (current)" in shown
    assert "gates       passed" in shown
    assert f"migration   from {V1}: 2 customers change segment (20.00%)" in shown
    assert f"serving {V1} (was {V2})" in run("models", "rollback")
    assert "(current)" not in run("models", "show", V2)

    output = run("retrain")
    assert "retrain requested" in output and "last attempt" not in output

    async def take_and_record() -> bool:
        client = redis_client(env["RFM_REDIS_URL"])
        try:
            coordination = Coordination(client, Keys(env["RFM_KEY_PREFIX"]))
            request = await coordination.retrain_request()
            await coordination.record_attempt(
                {"accepted": False, "reasons": ["too few"], "version": None}
            )
            return request is not None and await coordination.clear_retrain_request(request)
        finally:
            await client.aclose()

    assert asyncio.run(take_and_record()) is True
    assert "rejected, version -: too few" in run("retrain")

    failed = runner.invoke(cli, ["models", "promote", V3], env=env)
    assert isinstance(failed.exception, ModelArtifactError)


def test_unreachable_redis_is_one_error_line(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RFM_")}
    environment.update(RFM_REDIS_URL="redis://127.0.0.1:9/0", RFM_MODEL_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "stream_app", "models", "list"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach Redis" in errors[0]
