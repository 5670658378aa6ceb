"""The model the worker scores with: the registry's current version, followed as it changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_training.exceptions import ModelArtifactError
from model_training.model.artifact import MODEL_FILE, LoadedModel, load_model
from stream_app.exceptions import StreamError
from stream_app.service.ports import ModelVersions

__all__ = [
    "UNRECORDED_NON_PRODUCT_PATTERN",
    "ModelSource",
    "load_serving_model",
    "product_rule_mismatch",
]

log = logging.getLogger(__name__)

#: The product rule of models whose card records none: cards were written without the
#: pattern while the rule was fixed to codes made only of letters and spaces.
UNRECORDED_NON_PRODUCT_PATTERN = r"[A-Za-z ]+"


def product_rule_mismatch(card: Mapping[str, Any], pattern: str) -> str | None:
    """Say why a model trained with another product rule than ``pattern`` is suspect.

    Parameters
    ----------
    card
        The model card (``non_product_pattern`` is the rule its RFM was computed with; a card
        without it means :data:`UNRECORDED_NON_PRODUCT_PATTERN`).
    pattern
        The stream's rule, ``RFM_NON_PRODUCT_PATTERN``.

    Returns
    -------
    str or None
        A warning for the operator, or None when the rules agree.

    Examples
    --------
    >>> product_rule_mismatch({"non_product_pattern": "[A-Za-z].*"}, "[A-Za-z].*") is None
    True
    >>> print(product_rule_mismatch({"version": "v1"}, "[A-Za-z].*"))
    ... # doctest: +NORMALIZE_WHITESPACE
    model v1 was trained with the non-product pattern '[A-Za-z ]+' (its card records none:
    cards written before the pattern was recorded used that rule), but
    RFM_NON_PRODUCT_PATTERN is '[A-Za-z].*': the stream's RFM and the RFM of the model's
    training data count different stock codes as products, so segments may be assigned on
    figures the model never saw; retrain with `rfm train --non-product-pattern '[A-Za-z].*'`
    or set RFM_NON_PRODUCT_PATTERN='[A-Za-z ]+'
    """
    recorded = card.get("non_product_pattern")
    trained_with = UNRECORDED_NON_PRODUCT_PATTERN if recorded is None else str(recorded)
    if trained_with == pattern:
        return None
    origin = (
        " (its card records none: cards written before the pattern was recorded used that rule)"
        if recorded is None
        else ""
    )
    return (
        f"model {card.get('version', '?')} was trained with the non-product pattern "
        f"{trained_with!r}{origin}, but RFM_NON_PRODUCT_PATTERN is {pattern!r}: the stream's "
        "RFM and the RFM of the model's training data count different stock codes as "
        "products, so segments may be assigned on figures the model never saw; retrain with "
        f"`rfm train --non-product-pattern {pattern!r}` or set "
        f"RFM_NON_PRODUCT_PATTERN={trained_with!r}"
    )


async def load_serving_model(registry: ModelVersions, model_dir: Path) -> LoadedModel | None:
    """The model the workers serve: the registry's current version, else ``model_dir``'s.

    The model ``rfm train`` wrote into ``model_dir`` is what a worker registers when the
    registry has none yet; it is loaded here without registering it.

    Returns
    -------
    LoadedModel or None
        None while there is no model at all.

    Raises
    ------
    ModelArtifactError
        The model there does not load.
    StoreUnavailableError
        Redis failed.
    """
    model = await registry.load_current()
    if model is None and await asyncio.to_thread((model_dir / MODEL_FILE).exists):
        model = await asyncio.to_thread(load_model, model_dir)
    return model


class ModelSource:
    """Holds the current model and follows the registry's pointer.

    When the registry has no version yet and ``RFM_MODEL_DIR`` holds a model written by
    ``rfm train``, that model is imported as the first version. A version that fails to load
    leaves the current model serving; the reason is logged once per failing version. Given the
    stream's ``non_product_pattern``, switching to a model trained with another product rule
    logs a warning (:func:`product_rule_mismatch`), at start-up as later.
    """

    def __init__(
        self, registry: ModelVersions, model_dir: Path, non_product_pattern: str | None = None
    ) -> None:
        self.registry = registry
        self.model_dir = model_dir
        self.non_product_pattern = non_product_pattern
        self._model: LoadedModel | None = None
        self._failed: str | None = None
        self._said_missing = False
        self.last_error: str | None = None
        #: Whether the last look found no version registered and no model to import.
        self.none_trained = False
        # The start-up task and the refresh timer may both look: one switch, not two.
        self._refreshing = asyncio.Lock()

    def current(self) -> LoadedModel | None:
        """The model to score with, or None while there is none."""
        return self._model

    def known(self) -> bool:
        """Whether the model state is known: a model is served, or none is trained yet.

        False before the first look at the registry, and while a version exists that cannot
        be loaded (or the registry cannot be read) and nothing is served.
        """
        return self._model is not None or self.none_trained

    async def refresh(self) -> bool:
        """Switch to the registry's current version if it changed; True if switched.

        Loading a version (unpickling it and checking it) runs in a thread: the stream goes
        on meanwhile, scoring with the model served until then.
        """
        async with self._refreshing:
            return await self._refresh()

    async def _refresh(self) -> bool:
        try:
            version = await self.registry.current_version()
            if version is None and await asyncio.to_thread((self.model_dir / MODEL_FILE).exists):
                version = await self.registry.import_dir(self.model_dir)
                log.info("registered the model in %s as version %s", self.model_dir, version)
        except (StreamError, ModelArtifactError) as exc:
            self._note_failure(None, str(exc))
            return False
        self.none_trained = version is None
        if version is None:
            if not self._said_missing:
                self._said_missing = True
                self.last_error = f"no model in {self.model_dir} yet"
                log.warning(
                    "no model in %s yet: keeping RFM state current, segments come once "
                    "`rfm train` writes one",
                    self.model_dir,
                )
            return False
        if self._model is not None and version == self._model.version:
            return False
        if version == self._failed:
            return False
        try:
            model = await self.registry.load(version)
        except ModelArtifactError as exc:
            self._note_failure(version, str(exc))
            return False
        previous = self._model.version if self._model else None
        self._model = model
        self._failed = None
        self.last_error = None
        log.info("serving model %s (was %s)", model.version, previous)
        if self.non_product_pattern is not None:
            mismatch = product_rule_mismatch(model.card, self.non_product_pattern)
            if mismatch is not None:
                log.warning(mismatch)
        return True

    def _note_failure(self, version: str | None, reason: str) -> None:
        self._failed = version
        self.last_error = reason
        serving = self._model.version if self._model else None
        log.error("cannot load model %s: %s; serving %s", version, reason, serving)
