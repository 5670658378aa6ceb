"""The model artifact: ``model.joblib`` plus ``model_card.json``, and their checks on load.

``model.joblib`` holds a dict (format :data:`ARTIFACT_FORMAT`): the fitted
:class:`~model_training.segmenter.RFMSegmenter`, the library versions it was built with, the
feature order, the segment names and the version id. ``model_card.json`` describes the model
for people and for the stream's quality gates.

Loading checks, before anything is unpickled, that the card is readable and that scikit-learn
(major.minor) and numpy (major) match the running ones: a pickled estimator is only trustworthy
with the library versions that wrote it. Then it checks the artifact against the card (version
id, feature order, segment names). Every failure is a
:class:`~model_training.exceptions.ModelArtifactError` naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd
import sklearn
from sklearn.exceptions import InconsistentVersionWarning

from model_training.exceptions import ModelArtifactError
from model_training.model.features import FEATURES
from model_training.model.segmenter import RFMSegmenter

__all__ = [
    "ARTIFACT_FORMAT",
    "CARD_FILE",
    "MODEL_FILE",
    "MOVED_MODULES",
    "LoadedModel",
    "library_versions",
    "load_model",
    "make_version",
    "save_model",
]

MODEL_FILE = "model.joblib"
CARD_FILE = "model_card.json"
ARTIFACT_FORMAT = 1

#: Modules that artifacts written by earlier releases name, and where their classes live now.
#: A pickle names each class by module path; the estimator moved with the package layout.
MOVED_MODULES = {"model_training.segmenter": "model_training.model.segmenter"}


def _alias_moved_modules() -> None:
    """Let artifacts that name a module's earlier path find its classes where they are now."""
    for old, new in MOVED_MODULES.items():
        sys.modules.setdefault(old, importlib.import_module(new))


_REQUIRED_CARD_KEYS = (
    "version",
    "method",
    "trained_at",
    "t_ref",
    "n_customers",
    "n_segments",
    "silhouette",
    "classifier_accuracy",
    "segments",
    "features",
)


def library_versions() -> dict[str, str]:
    """Versions of the libraries a pickled model depends on."""
    return {
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "joblib": joblib.__version__,
    }


def make_version(t_ref: datetime, fingerprint: bytes) -> str:
    """Build a version id: ``t_ref`` in UTC ISO form plus a short hash of the training input.

    Parameters
    ----------
    t_ref
        The reference time of the RFM the model was trained on (naive means UTC).
    fingerprint
        Bytes identifying the training data and parameters.

    Examples
    --------
    >>> make_version(datetime(2011, 12, 10), b"data")
    '2011-12-10T00:00:00Z-3a6e'
    """
    stamp = pd.Timestamp(t_ref)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    digest = hashlib.sha256(fingerprint).hexdigest()[:4]
    return f"{stamp.strftime('%Y-%m-%dT%H:%M:%S')}Z-{digest}"


def save_model(model_dir: Path, segmenter: RFMSegmenter, card: dict[str, Any]) -> None:
    """Write ``model.joblib`` and ``model_card.json`` into ``model_dir``.

    Parameters
    ----------
    model_dir
        Target folder (created if missing).
    segmenter
        A fitted model on the features :data:`~model_training.features.FEATURES`.
    card
        The model card; needs at least a ``version``. The library versions, feature list and
        segment names are added (or overwritten) from the model itself so they cannot drift.
    """
    if "version" not in card:
        raise ValueError("the model card needs a 'version'")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    names = [segmenter.segment_names_[label] for label in sorted(segmenter.segment_names_)]
    full_card = {
        **card,
        "features": list(FEATURES),
        "segment_names": names,
        "libraries": library_versions(),
    }
    payload = {
        "format": ARTIFACT_FORMAT,
        "version": str(card["version"]),
        "estimator": segmenter,
        "libraries": library_versions(),
        "features": list(FEATURES),
        "segment_names": names,
    }
    joblib.dump(payload, model_dir / MODEL_FILE)
    text = json.dumps(_jsonable(full_card), indent=2, allow_nan=False) + "\n"
    (model_dir / CARD_FILE).write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class LoadedModel:
    """A checked model, ready to score customers.

    Attributes
    ----------
    version
        The version id (as in the card and in segment-change events).
    segmenter
        The fitted estimator.
    card
        The model card.
    segment_names
        Segment names by label.
    """

    version: str
    segmenter: RFMSegmenter
    card: dict[str, Any] = field(repr=False)
    segment_names: list[str]

    def predict_segments(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
        """Return the segment name of each row ``[recency_days, frequency, monetary]``.

        Parameters
        ----------
        X
            Float64 array of shape ``(n, 3)``.

        Returns
        -------
        numpy.ndarray of str
            One name per row.
        """
        return self.segmenter.predict_segments(X)


def load_model(model_dir: Path) -> LoadedModel:
    """Load and check the model in ``model_dir``.

    Parameters
    ----------
    model_dir
        A folder written by :func:`save_model`.

    Returns
    -------
    LoadedModel
        The checked model.

    Raises
    ------
    ModelArtifactError
        A file is missing, unreadable or corrupt, the libraries differ (scikit-learn
        major.minor, numpy major), or the artifact disagrees with its card or with the
        expected feature order.
    """
    model_dir = Path(model_dir)
    model_path = model_dir / MODEL_FILE
    card = _read_card(model_dir / CARD_FILE)
    _check_libraries(card.get("libraries"), str(model_dir / CARD_FILE))
    if not model_path.is_file():
        raise ModelArtifactError(f"{model_path}: no model file; run `rfm train` first")
    try:
        with warnings.catch_warnings():
            # Versions were checked above; scikit-learn's own patch-level warning adds nothing.
            warnings.simplefilter("ignore", category=InconsistentVersionWarning)
            _alias_moved_modules()
            payload = joblib.load(model_path)
    except Exception as exc:  # unpickling a damaged file raises almost any type
        raise ModelArtifactError(
            f"{model_path}: corrupt model file ({type(exc).__name__}: {exc}); retrain"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
        raise ModelArtifactError(
            f"{model_path}: not a model artifact of format {ARTIFACT_FORMAT}; retrain"
        )
    _check_libraries(payload.get("libraries"), str(model_path))
    segmenter = payload.get("estimator")
    if not isinstance(segmenter, RFMSegmenter) or not hasattr(segmenter, "segment_names_"):
        raise ModelArtifactError(f"{model_path}: holds no fitted RFMSegmenter; retrain")
    version = payload.get("version")
    if version != card["version"]:
        raise ModelArtifactError(
            f"{model_dir}: model version {version!r} does not match the card's "
            f"{card['version']!r}; the folder mixes two trainings, retrain"
        )
    for source, features in (("model", payload.get("features")), ("card", card["features"])):
        if features != list(FEATURES):
            raise ModelArtifactError(
                f"{model_dir}: the {source} expects features {features!r}, this code "
                f"provides {list(FEATURES)!r}; retrain"
            )
    names = [segmenter.segment_names_[label] for label in sorted(segmenter.segment_names_)]
    if payload.get("segment_names") != names or card.get("segment_names") != names:
        raise ModelArtifactError(
            f"{model_dir}: segment names of the model {names!r} differ from the artifact's "
            f"record; the files were edited or mixed, retrain"
        )
    return LoadedModel(version=str(version), segmenter=segmenter, card=card, segment_names=names)


def _read_card(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelArtifactError(f"{path}: no model card; run `rfm train` first")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"{path}: unreadable model card ({exc}); retrain") from exc
    if not isinstance(card, dict):
        raise ModelArtifactError(f"{path}: the model card is not a JSON object; retrain")
    missing = [key for key in _REQUIRED_CARD_KEYS if key not in card]
    if missing:
        raise ModelArtifactError(f"{path}: the model card lacks {', '.join(missing)}; retrain")
    return card


def _check_libraries(saved: object, where: str) -> None:
    if not isinstance(saved, dict):
        raise ModelArtifactError(f"{where}: no library versions recorded; retrain")
    running = library_versions()
    checks = (("sklearn", "scikit-learn", 2), ("numpy", "numpy", 1))
    for key, label, parts in checks:
        theirs = str(saved.get(key, "?"))
        if _release(theirs, parts) != _release(running[key], parts):
            raise ModelArtifactError(
                f"{where}: built with {label} {theirs}, running {running[key]}; "
                f"retrain with `rfm train` or install {label} {theirs}"
            )


def _release(version: str, parts: int) -> tuple[str, ...]:
    return tuple(version.split(".")[:parts])


def _jsonable(value: Any) -> Any:
    """Turn numpy/pandas scalars into JSON types; NaN becomes null."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    return value
