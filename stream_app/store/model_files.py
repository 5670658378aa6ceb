"""The model versions on disk: write, import, check and read them (synchronous file work).

Layout
------
Versions live in a shared directory (``RFM_MODEL_DIR``)::

    root/versions/<version>/model.joblib
    root/versions/<version>/model_card.json
    root/.incoming/<random>/            (staging, never read)

A version is written into a staging directory inside ``root`` and then renamed into
``versions/`` in one ``os.rename`` (same file system, so atomic): a reader never sees a
half-written version, and a crash mid-write leaves only staging debris. Versions are immutable
once installed; a version id is a hash of its training input, so installing an id that exists
already is a no-op. Every version is loaded and checked
(:func:`~model_training.model.artifact.load_model`) before it is installed.

Everything here blocks on the disk or on joblib: the async
:class:`~stream_app.store.registry.ModelRegistry` calls it in a thread.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from model_training.exceptions import ModelArtifactError
from model_training.model.artifact import CARD_FILE, MODEL_FILE, LoadedModel, load_model, save_model
from model_training.model.segmenter import RFMSegmenter

__all__ = ["STAGING_DIR", "VERSIONS_DIR", "ModelFiles", "checked_version_id"]

VERSIONS_DIR = "versions"
STAGING_DIR = ".incoming"
# Version ids are `make_version`'s `2011-12-10T00:00:00Z-3f2a`; anything with a path separator
# or a leading dot could escape the versions directory, so it is refused.
_VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._+-]{0,127}")


def checked_version_id(version: str) -> str:
    """Return ``version`` if it is a well-formed version id.

    Raises
    ------
    ModelArtifactError
        It is not (it could name a path outside the versions directory).

    Examples
    --------
    >>> checked_version_id("2011-12-10T00:00:00Z-3f2a")
    '2011-12-10T00:00:00Z-3f2a'
    """
    if not _VERSION_PATTERN.fullmatch(version):
        raise ModelArtifactError(
            f"{version!r} is not a model version id (like 2011-12-10T00:00:00Z-3f2a)"
        )
    return version


class ModelFiles:
    """The versions stored under one registry root.

    Parameters
    ----------
    root
        The shared directory (``RFM_MODEL_DIR``); created on first write.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def versions_dir(self) -> Path:
        """Directory holding one sub-directory per version."""
        return self.root / VERSIONS_DIR

    def version_dir(self, version: str) -> Path:
        """Directory of one version (whether or not it exists)."""
        return self.versions_dir / checked_version_id(version)

    def save(self, segmenter: RFMSegmenter, card: Mapping[str, Any]) -> str:
        """Store a fitted model as a version (a no-op if that version is installed already).

        Parameters
        ----------
        segmenter
            The fitted model.
        card
            Its model card (needs a ``version``).

        Returns
        -------
        str
            The version id.

        Raises
        ------
        ModelArtifactError
            The version cannot be written, or does not load back (also when installed
            before: never point at a damaged copy).
        """
        version = checked_version_id(str(card.get("version", "")))
        if self.version_dir(version).is_dir():
            self.load(version)
            return version
        with self._staging() as staging:
            try:
                save_model(staging, segmenter, dict(card))
            except OSError as exc:
                raise ModelArtifactError(
                    f"cannot write model {version} into {self.root}: {exc}"
                ) from exc
            load_model(staging)  # the checks every worker will run, before it is visible
            self._install(staging, version)
        return version

    def import_dir(self, path: Path) -> str:
        """Copy a directory written by ``rfm train`` in as a version.

        Parameters
        ----------
        path
            A directory holding ``model.joblib`` and ``model_card.json``.

        Returns
        -------
        str
            The version id.

        Raises
        ------
        ModelArtifactError
            The directory holds no loadable model; nothing is installed.
        """
        source = Path(path)
        for name in (MODEL_FILE, CARD_FILE):
            if not (source / name).is_file():
                raise ModelArtifactError(f"{source / name}: missing; run `rfm train` first")
        with self._staging() as staging:
            try:
                for name in (MODEL_FILE, CARD_FILE):
                    shutil.copy2(source / name, staging / name)
            except OSError as exc:
                raise ModelArtifactError(f"cannot copy {source} into {self.root}: {exc}") from exc
            # Checking the copy, not the source, catches `rfm train` rewriting it meanwhile.
            version = checked_version_id(load_model(staging).version)
            if not self.version_dir(version).is_dir():
                self._install(staging, version)
        return version

    def load(self, version: str) -> LoadedModel:
        """Load and check one version.

        Raises
        ------
        ModelArtifactError
            The version is not installed, or its files are missing, corrupt, built with
            incompatible libraries, or belong to another version.
        """
        directory = self.version_dir(version)
        if not directory.is_dir():
            raise ModelArtifactError(
                f"model version {version!r} is not in the registry {self.versions_dir}; "
                "see `rfm models list`"
            )
        loaded = load_model(directory)
        if loaded.version != version:
            raise ModelArtifactError(
                f"{directory}: holds model {loaded.version!r}, not {version!r}; the registry "
                "directory was edited by hand, import the model again"
            )
        return loaded

    def card(self, version: str) -> dict[str, Any]:
        """The model card of one version (without unpickling the model).

        Raises
        ------
        ModelArtifactError
            No such version, or its card is unreadable.
        """
        path = self.version_dir(version) / CARD_FILE
        if not path.is_file():
            raise ModelArtifactError(
                f"model version {version!r} has no card in {self.versions_dir}; "
                "see `rfm models list`"
            )
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelArtifactError(f"{path}: unreadable model card ({exc})") from exc
        if not isinstance(card, dict):
            raise ModelArtifactError(f"{path}: the model card is not a JSON object")
        return card

    def versions(self, current: str | None) -> list[dict[str, Any]]:
        """Summaries of every stored version, oldest first.

        Parameters
        ----------
        current
            The version the workers serve (marked ``current``), or None.

        Returns
        -------
        list of dict
            Keys ``version``, ``trained_at``, ``method``, ``n_segments``, ``silhouette``,
            ``current``, ``trained_from`` (``stream`` or ``batch``) and ``error`` (why the
            card cannot be read, else None).
        """
        rows: list[dict[str, Any]] = []
        if not self.versions_dir.is_dir():
            return rows
        for directory in self.versions_dir.iterdir():
            if not directory.is_dir() or not _VERSION_PATTERN.fullmatch(directory.name):
                continue
            row: dict[str, Any] = {
                "version": directory.name,
                "trained_at": None,
                "method": None,
                "n_segments": None,
                "silhouette": None,
                "current": directory.name == current,
                "trained_from": None,
                "error": None,
            }
            try:
                card = self.card(directory.name)
            except ModelArtifactError as exc:
                row["error"] = str(exc)
            else:
                row.update(
                    trained_at=card.get("trained_at"),
                    method=card.get("method"),
                    n_segments=card.get("n_segments"),
                    silhouette=card.get("silhouette"),
                    trained_from=card.get("trained_from", "batch"),
                )
            rows.append(row)
        rows.sort(key=lambda row: (str(row["trained_at"] or ""), row["version"]))
        return rows

    @contextmanager
    def _staging(self) -> Iterator[Path]:
        staging = self.root / STAGING_DIR / uuid.uuid4().hex
        try:
            staging.mkdir(parents=True)
        except OSError as exc:
            raise ModelArtifactError(f"cannot write into the registry {self.root}: {exc}") from exc
        try:
            yield staging
        finally:
            # After a successful install the directory is gone already; otherwise it is debris.
            shutil.rmtree(staging, ignore_errors=True)

    def _install(self, staging: Path, version: str) -> None:
        target = self.version_dir(version)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, target)
        except OSError as exc:
            # Another worker installed the same id first: ids hash the training input, so
            # the content is the same and theirs is as good as ours.
            if not target.is_dir():
                raise ModelArtifactError(
                    f"cannot install model {version} into {self.versions_dir}: {exc}"
                ) from exc
