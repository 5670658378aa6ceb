"""The shared model registry against a real Redis, and the ``rfm models`` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

import stream_app.store.registry as registry_module
from model_training.exceptions import ModelArtifactError
from model_training.model.artifact import CARD_FILE, MODEL_FILE, save_model
from model_training.model.segmenter import RFMSegmenter
from stream_app.cli.main import cli
from stream_app.exceptions import ModelUnavailableError
from stream_app.store.keys import Keys
from stream_app.store.registry import STAGING_DIR, ModelRegistry
from tests.fakes import V1, V2, V3, fitted_segmenter, model_card

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def keys() -> Keys:
    return Keys(f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def registry(tmp_path: Path, client: redis.Redis, keys: Keys) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry", client, keys)


def test_publish_sets_current_and_lists_versions(registry: ModelRegistry) -> None:
    assert registry.current_version() is None
    assert registry.versions() == []
    assert registry.load_current() is None

    assert registry.publish(fitted_segmenter(), model_card(V1)) == V1
    assert registry.current_version() == V1
    assert registry.publish(fitted_segmenter(1), model_card(V2, trained_from="stream")) == V2
    assert registry.current_version() == V2
    assert registry.history() == [V1]

    rows = registry.versions()
    assert [row["version"] for row in rows] == [V1, V2]
    assert [row["current"] for row in rows] == [False, True]
    assert [row["trained_from"] for row in rows] == ["batch", "stream"]
    assert rows[1]["method"] == "kmeans" and rows[1]["n_segments"] == 4
    assert rows[1]["silhouette"] == 0.3 and rows[1]["error"] is None
    assert registry.card(V2)["trained_from"] == "stream"
    loaded = registry.load(V2)
    assert loaded.version == V2
    assert (registry.versions_dir / V2 / MODEL_FILE).is_file()
    assert not any((registry.root / STAGING_DIR).iterdir())


def test_publishing_the_current_version_again_changes_nothing(registry: ModelRegistry) -> None:
    registry.publish(fitted_segmenter(), model_card(V1))
    registry.publish(fitted_segmenter(), model_card(V1))
    assert registry.current_version() == V1
    assert registry.history() == []


def test_promote_and_rollback(registry: ModelRegistry) -> None:
    for seed, version in enumerate((V1, V2, V3)):
        registry.publish(fitted_segmenter(seed), model_card(version))
    assert registry.history() == [V2, V1]

    assert registry.promote(V1) == V3
    assert registry.current_version() == V1
    assert registry.history() == [V3, V2, V1]

    assert registry.rollback() == V3
    assert registry.rollback() == V2
    assert registry.rollback() == V1
    assert registry.current_version() == V1
    with pytest.raises(ModelUnavailableError, match="no previous model version"):
        registry.rollback()
    assert registry.current_version() == V1


def test_promote_refuses_a_missing_or_broken_version(registry: ModelRegistry) -> None:
    registry.publish(fitted_segmenter(), model_card(V1))
    registry.publish(fitted_segmenter(1), model_card(V2))
    with pytest.raises(ModelArtifactError, match="not in the registry"):
        registry.promote(V3)
    with pytest.raises(ModelArtifactError, match="not a model version id"):
        registry.promote("../escape")

    (registry.versions_dir / V1 / MODEL_FILE).write_bytes(b"\x80\x04 this is not a pickle")
    with pytest.raises(ModelArtifactError, match="corrupt model file"):
        registry.promote(V1)
    assert registry.current_version() == V2
    # The rollback target is the broken version: refused, nothing moves.
    with pytest.raises(ModelArtifactError, match="corrupt model file"):
        registry.rollback()
    assert registry.current_version() == V2
    assert registry.history() == [V1]
    # Publishing that id again does not point at the damaged copy either.
    with pytest.raises(ModelArtifactError):
        registry.publish(fitted_segmenter(), model_card(V1))
    assert registry.current_version() == V2


def test_incompatible_library_versions_are_refused(registry: ModelRegistry) -> None:
    registry.publish(fitted_segmenter(), model_card(V1))
    registry.publish(fitted_segmenter(1), model_card(V2))
    card_path = registry.versions_dir / V1 / CARD_FILE
    card = json.loads(card_path.read_text())
    card["libraries"]["sklearn"] = "0.1.0"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelArtifactError, match=r"built with scikit-learn 0\.1\.0"):
        registry.promote(V1)
    assert registry.current_version() == V2


def test_unreadable_card_shows_in_the_listing(registry: ModelRegistry) -> None:
    registry.publish(fitted_segmenter(), model_card(V1))
    (registry.versions_dir / V1 / CARD_FILE).write_text("{not json")
    (row,) = registry.versions()
    assert row["version"] == V1 and row["current"] is True
    assert "unreadable model card" in row["error"]


def test_failed_publish_leaves_no_partial_version(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.publish(fitted_segmenter(), model_card(V1))

    def half_written(model_dir: Path, segmenter: RFMSegmenter, card: dict[str, Any]) -> None:
        (model_dir / MODEL_FILE).write_bytes(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry_module, "save_model", half_written)
    with pytest.raises(ModelArtifactError, match="No space left"):
        registry.publish(fitted_segmenter(1), model_card(V2))
    assert not (registry.versions_dir / V2).exists()
    assert [row["version"] for row in registry.versions()] == [V1]
    assert not any((registry.root / STAGING_DIR).iterdir())
    assert registry.current_version() == V1


def test_two_workers_see_one_current_version(
    tmp_path: Path, private_redis_url: str, keys: Keys
) -> None:
    clients = [redis.Redis.from_url(private_redis_url, decode_responses=True) for _ in range(2)]
    try:
        one, two = (ModelRegistry(tmp_path / "shared", c, keys) for c in clients)
        one.publish(fitted_segmenter(), model_card(V1))
        assert two.current_version() == V1
        loaded = two.load_current()
        assert loaded is not None and loaded.version == V1
        two.publish(fitted_segmenter(1), model_card(V2))
        assert one.current_version() == V2
        one.rollback()
        assert two.current_version() == V1
    finally:
        for connection in clients:
            connection.close()


def test_import_dir_registers_an_rfm_train_output(registry: ModelRegistry, tmp_path: Path) -> None:
    trained = tmp_path / "model"
    save_model(trained, fitted_segmenter(), model_card(V1))
    assert registry.import_dir(trained) == V1
    assert registry.current_version() == V1

    save_model(trained, fitted_segmenter(1), model_card(V2))
    assert registry.import_dir(trained) == V2
    assert registry.current_version() == V1  # importing never replaces a serving model
    assert [row["version"] for row in registry.versions()] == [V1, V2]
    assert registry.import_dir(trained) == V2  # again: no-op

    broken = tmp_path / "broken"
    save_model(broken, fitted_segmenter(), model_card(V3))
    (broken / MODEL_FILE).write_bytes(b"garbage")
    with pytest.raises(ModelArtifactError, match="corrupt model file"):
        registry.import_dir(broken)
    with pytest.raises(ModelArtifactError, match="missing"):
        registry.import_dir(tmp_path / "nothing")
    assert not (registry.versions_dir / V3).exists()
    assert not any((registry.root / STAGING_DIR).iterdir())


def test_retrain_request_is_taken_once(registry: ModelRegistry) -> None:
    assert registry.take_retrain_request() is False
    registry.request_retrain()
    registry.request_retrain()
    assert registry.take_retrain_request() is True
    assert registry.take_retrain_request() is False


def test_last_attempt_round_trip(registry: ModelRegistry) -> None:
    assert registry.last_attempt() == {}
    registry.record_attempt(
        {"accepted": False, "reasons": ["silhouette 0.100 is below 0.150"], "version": V2}
    )
    last = registry.last_attempt()
    assert last["accepted"] is False
    assert last["reasons"] == ["silhouette 0.100 is below 0.150"]
    assert last["version"] == V2
    assert isinstance(last["time"], str)
    registry.record_attempt({"time": "2024-03-01T00:00:00+00:00", "accepted": True, "version": V3})
    assert registry.last_attempt() == {
        "time": "2024-03-01T00:00:00+00:00",
        "accepted": True,
        "version": V3,
    }


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
    client = redis.Redis.from_url(env["RFM_REDIS_URL"], decode_responses=True)
    registry = ModelRegistry(Path(env["RFM_MODEL_DIR"]), client, Keys(env["RFM_KEY_PREFIX"]))
    try:
        assert registry.take_retrain_request() is True
        registry.record_attempt({"accepted": False, "reasons": ["too few"], "version": None})
    finally:
        client.close()
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
