"""The model a worker serves: following the registry's pointer, and what the CLI reads."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

import stream_app.store.model_files as model_files_module
from model_training.model.artifact import LoadedModel, save_model
from stream_app.service.model_source import (
    UNRECORDED_NON_PRODUCT_PATTERN,
    ModelSource,
    load_serving_model,
    product_rule_mismatch,
)
from stream_app.store.keys import Keys
from stream_app.store.registry import ModelRegistry
from tests.fakes import V1, V2, fitted_segmenter, model_card


@pytest.fixture
def registry(tmp_path: Path, async_client: aioredis.Redis) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry", async_client, Keys(f"t{uuid.uuid4().hex[:8]}"))


async def test_the_trained_model_is_registered_and_served(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    source = ModelSource(registry, tmp_path / "registry")
    assert await source.refresh() is False
    assert source.current() is None and source.last_error is not None

    save_model(tmp_path / "registry", fitted_segmenter(), model_card(V1))
    assert await source.refresh() is True
    serving = source.current()
    assert serving is not None and serving.version == V1
    assert await registry.current_version() == V1
    assert await source.refresh() is False  # nothing new


async def test_the_pointer_is_followed_and_a_broken_version_never_serves(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    await registry.publish(fitted_segmenter(), model_card(V1))
    source = ModelSource(registry, tmp_path / "registry")
    assert await source.refresh() is True
    await registry.publish(fitted_segmenter(1), model_card(V2))
    assert await source.refresh() is True
    serving = source.current()
    assert serving is not None and serving.version == V2

    (registry.version_dir(V1) / "model.joblib").write_bytes(b"garbage")
    await registry.client.set(registry.keys.model_current, V1)
    assert await source.refresh() is False
    assert source.current() is serving
    assert source.last_error is not None and "corrupt model file" in source.last_error


async def test_concurrent_refreshes_switch_once(
    tmp_path: Path, registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    await registry.publish(fitted_segmenter(), model_card(V1))
    real_load = model_files_module.load_model

    def slow_load(path: Path) -> LoadedModel:
        time.sleep(0.2)  # a large model: the start-up task and the timer overlap
        return real_load(path)

    monkeypatch.setattr(model_files_module, "load_model", slow_load)
    source = ModelSource(registry, tmp_path / "registry")
    switched = await asyncio.gather(source.refresh(), source.refresh(), source.refresh())
    assert sorted(switched) == [False, False, True]


async def test_the_cli_reads_the_trained_model_without_registering_it(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    trained = tmp_path / "model"
    assert await load_serving_model(registry, trained) is None
    save_model(trained, fitted_segmenter(), model_card(V1))
    model = await load_serving_model(registry, trained)
    assert model is not None and model.version == V1
    assert await registry.current_version() is None
    assert await registry.versions() == []

    await registry.publish(fitted_segmenter(1), model_card(V2))
    model = await load_serving_model(registry, trained)
    assert model is not None and model.version == V2  # the registry's current comes first


NEW_RULE = r"[A-Za-z].*"


def test_the_same_product_rule_is_no_mismatch() -> None:
    assert product_rule_mismatch(model_card(V1, non_product_pattern=NEW_RULE), NEW_RULE) is None


def test_another_product_rule_names_both_patterns_and_what_it_means() -> None:
    warning = product_rule_mismatch(model_card(V1, non_product_pattern=r"POST|D|M"), NEW_RULE)
    assert warning is not None
    assert V1 in warning
    assert "'POST|D|M'" in warning and repr(NEW_RULE) in warning
    assert "RFM of the model's training data" in warning
    assert "records none" not in warning


def test_a_card_without_a_pattern_means_the_old_rule_and_says_so() -> None:
    card = model_card(V1)
    assert "non_product_pattern" not in card
    warning = product_rule_mismatch(card, NEW_RULE)
    assert warning is not None
    assert repr(UNRECORDED_NON_PRODUCT_PATTERN) in warning and "records none" in warning
    assert product_rule_mismatch(card, UNRECORDED_NON_PRODUCT_PATTERN) is None


async def test_serving_a_model_of_another_product_rule_logs_a_warning(
    tmp_path: Path, registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    await registry.publish(fitted_segmenter(), model_card(V1))
    source = ModelSource(registry, tmp_path / "registry", NEW_RULE)
    with caplog.at_level(logging.WARNING, logger="stream_app.service.model_source"):
        assert await source.refresh() is True
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "records none" in warnings[0]

    caplog.clear()
    await registry.publish(fitted_segmenter(1), model_card(V2, non_product_pattern=NEW_RULE))
    with caplog.at_level(logging.WARNING, logger="stream_app.service.model_source"):
        assert await source.refresh() is True
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
