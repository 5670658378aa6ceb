"""Model artifact: round trip and refusal of missing, corrupt or incompatible files."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from model_training.exceptions import ModelArtifactError
from model_training.model.artifact import (
    CARD_FILE,
    MODEL_FILE,
    MOVED_MODULES,
    library_versions,
    load_model,
    make_version,
    save_model,
)
from model_training.model.segmenter import RFMSegmenter

VERSION = "2011-12-10T00:00:00Z-3f2a"


def _card() -> dict[str, Any]:
    return {
        "version": VERSION,
        "method": "kmeans",
        "trained_at": "2024-01-01T00:00:00Z",
        "t_ref": "2011-12-10T00:00:00",
        "n_customers": 300,
        "n_segments": 4,
        "silhouette": 0.3,
        "classifier_accuracy": None,
        "segments": [],
        "quality": {"davies_bouldin": float("nan")},
    }


@pytest.fixture(scope="module")
def segmenter() -> RFMSegmenter:
    rng = np.random.default_rng(1)
    x = np.column_stack(
        [rng.integers(0, 370, 300), rng.geometric(0.3, 300), rng.lognormal(6, 1, 300)]
    ).astype(np.float64)
    return RFMSegmenter(n_clusters=4).fit(x)


@pytest.fixture
def saved(tmp_path: Path, segmenter: RFMSegmenter) -> Path:
    save_model(tmp_path, segmenter, _card())
    return tmp_path


def _edit_card(model_dir: Path, **changes: object) -> None:
    path = model_dir / CARD_FILE
    card = json.loads(path.read_text())
    card.update(changes)
    path.write_text(json.dumps(card))


def test_round_trip(saved: Path, segmenter: RFMSegmenter) -> None:
    loaded = load_model(saved)
    assert loaded.version == VERSION
    assert loaded.segment_names == [segmenter.segment_names_[i] for i in range(4)]
    assert loaded.card["features"] == ["recency_days", "frequency", "monetary"]
    assert loaded.card["libraries"] == library_versions()
    assert loaded.card["quality"]["davies_bouldin"] is None  # NaN is not JSON
    x = np.array([[3.0, 5.0, 900.0], [300.0, 1.0, 20.0]])
    np.testing.assert_array_equal(loaded.predict_segments(x), segmenter.predict_segments(x))
    payload = joblib.load(saved / MODEL_FILE)
    assert payload["version"] == VERSION and payload["libraries"]["sklearn"]


def test_missing_files(tmp_path: Path, saved: Path) -> None:
    with pytest.raises(ModelArtifactError, match="no model card"):
        load_model(tmp_path / "nowhere")
    (saved / MODEL_FILE).unlink()
    with pytest.raises(ModelArtifactError, match="no model file"):
        load_model(saved)


def test_corrupt_model_file(saved: Path) -> None:
    (saved / MODEL_FILE).write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(ModelArtifactError, match="corrupt model file"):
        load_model(saved)


def test_corrupt_card(saved: Path) -> None:
    (saved / CARD_FILE).write_text("{not json")
    with pytest.raises(ModelArtifactError, match="unreadable model card"):
        load_model(saved)


def test_wrong_feature_order(saved: Path) -> None:
    _edit_card(saved, features=["frequency", "recency_days", "monetary"])
    with pytest.raises(ModelArtifactError, match="expects features"):
        load_model(saved)


def test_wrong_feature_order_in_model(saved: Path) -> None:
    payload = joblib.load(saved / MODEL_FILE)
    payload["features"] = ["monetary", "frequency", "recency_days"]
    joblib.dump(payload, saved / MODEL_FILE)
    with pytest.raises(ModelArtifactError, match="the model expects features"):
        load_model(saved)


def test_sklearn_minor_version_mismatch(saved: Path) -> None:
    libraries = library_versions()
    major, minor = libraries["sklearn"].split(".")[:2]
    libraries["sklearn"] = f"{major}.{int(minor) + 1}.0"
    _edit_card(saved, libraries=libraries)
    with pytest.raises(ModelArtifactError, match="built with scikit-learn"):
        load_model(saved)


def test_patch_version_difference_is_accepted(saved: Path) -> None:
    libraries = library_versions()
    major, minor = libraries["sklearn"].split(".")[:2]
    libraries["sklearn"] = f"{major}.{minor}.99"
    libraries["pandas"] = "0.1"
    _edit_card(saved, libraries=libraries)
    assert load_model(saved).version == VERSION


def test_mixed_trainings_are_refused(saved: Path) -> None:
    _edit_card(saved, version="2011-12-11T00:00:00Z-0000")
    with pytest.raises(ModelArtifactError, match="does not match"):
        load_model(saved)


def test_edited_segment_names_are_refused(saved: Path) -> None:
    _edit_card(saved, segment_names=["a", "b", "c", "d"])
    with pytest.raises(ModelArtifactError, match="segment names"):
        load_model(saved)


def test_not_an_artifact(saved: Path) -> None:
    joblib.dump({"hello": "world"}, saved / MODEL_FILE)
    with pytest.raises(ModelArtifactError, match="not a model artifact"):
        load_model(saved)


def test_version_id_format() -> None:
    version = make_version(datetime(2011, 12, 10), b"abc")
    assert version.startswith("2011-12-10T00:00:00Z-") and len(version.split("-")[-1]) == 4
    assert version == make_version(datetime(2011, 12, 10), b"abc")
    assert version != make_version(datetime(2011, 12, 10), b"abd")


def test_an_artifact_naming_the_segmenter_s_earlier_module_loads(
    tmp_path: Path, segmenter: RFMSegmenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Releases before the package layout pickled the estimator as model_training.segmenter.
    current = sys.modules[RFMSegmenter.__module__]
    monkeypatch.setitem(sys.modules, "model_training.segmenter", current)
    monkeypatch.setattr(RFMSegmenter, "__module__", "model_training.segmenter")
    save_model(tmp_path, segmenter, _card())
    assert b"model_training.segmenter" in (tmp_path / MODEL_FILE).read_bytes()
    monkeypatch.undo()
    sys.modules.pop("model_training.segmenter", None)
    assert set(MOVED_MODULES) == {"model_training.segmenter"}
    loaded = load_model(tmp_path)
    assert isinstance(loaded.segmenter, RFMSegmenter)
    assert loaded.segmenter.segment_names_ == segmenter.segment_names_
