"""The model the worker scores with, reloaded when ``rfm train`` writes a new one."""

from __future__ import annotations

import logging
from pathlib import Path

from model_training.exceptions import ModelArtifactError
from stream_app.scoring import SegmentModel

__all__ = ["ModelSource"]

log = logging.getLogger(__name__)

CARD_NAME = "model_card.json"
ARTIFACT_NAME = "model.joblib"


class ModelSource:
    """Holds the current model of a model directory.

    ``refresh()`` loads the directory's model when its files changed; a model that fails to
    load leaves the current one serving, and the reason is logged (once per failing version).
    """

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self._model: SegmentModel | None = None
        self._seen: tuple[float, float] | None = None
        self.last_error: str | None = None

    def current(self) -> SegmentModel | None:
        """The model to score with, or None while there is none."""
        return self._model

    def refresh(self) -> bool:
        """Load the directory's model if it changed since the last look; True if switched."""
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            if stamp is None and self._seen is None and self.last_error is None:
                self.last_error = f"no model in {self.model_dir} yet"
                log.warning(
                    "no model in %s yet: keeping RFM state current, segments come once "
                    "`rfm train` writes one",
                    self.model_dir,
                )
            return False
        self._seen = stamp
        from model_training.artifact import load_model  # scikit-learn loads only when needed

        try:
            model = load_model(self.model_dir)
        except ModelArtifactError as exc:
            self.last_error = str(exc)
            if self._model is None:
                log.error("cannot load the model in %s: %s", self.model_dir, exc)
            else:
                log.error(
                    "cannot load the new model in %s, model %s keeps serving: %s",
                    self.model_dir,
                    self._model.version,
                    exc,
                )
            return False
        previous = self._model.version if self._model else None
        self._model = model
        self.last_error = None
        if previous != model.version:
            log.info("serving model %s (was %s)", model.version, previous)
        return previous != model.version

    def _stamp(self) -> tuple[float, float] | None:
        try:
            card = (self.model_dir / CARD_NAME).stat().st_mtime
            artifact = (self.model_dir / ARTIFACT_NAME).stat().st_mtime
        except FileNotFoundError:
            return None
        return card, artifact
