"""The model registry every worker shares: versions on disk, the current pointer in Redis.

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
already is a no-op.

Which version serves is a pointer in Redis (``Keys.model_current``); the versions served before
are on ``Keys.model_history``, newest first, for rollback. The pointer moves only by one Lua
script (push the old current, set the new), so every worker that reads it sees one consistent
story, and it moves only to a version that has just loaded and passed the artifact checks
(:func:`~model_training.artifact.load_model`): a broken or incompatible artifact never becomes
current. The retrain coordination keys (request flag, last attempt) are here too, so the
workers and ``rfm retrain`` speak through one class.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import redis

from model_training.exceptions import ModelArtifactError
from model_training.model.artifact import CARD_FILE, MODEL_FILE, LoadedModel, load_model, save_model
from model_training.model.segmenter import RFMSegmenter
from stream_app.exceptions import ModelUnavailableError, StoreUnavailableError
from stream_app.store.keys import Keys

__all__ = ["HISTORY_LIMIT", "ModelRegistry"]

#: Versions kept on the rollback list (the directories themselves are never deleted here).
HISTORY_LIMIT = 50

VERSIONS_DIR = "versions"
STAGING_DIR = ".incoming"
# Version ids are `make_version`'s `2011-12-10T00:00:00Z-3f2a`; anything with a path separator
# or a leading dot could escape the versions directory, so it is refused.
_VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._+-]{0,127}")

# KEYS: current, history. ARGV: version, history limit, "1" to set only when there is none.
# Returns the version served before (nil if none), unchanged when it already was the version.
_SET_CURRENT = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then return current end
if current and ARGV[3] == '1' then return current end
if current then
  redis.call('LPUSH', KEYS[2], current)
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
end
redis.call('SET', KEYS[1], ARGV[1])
return current
"""

# KEYS: current, history. ARGV: the version expected at the head of the history (checked
# before the call). Pops it into current; returns 0 if the history moved meanwhile.
_ROLLBACK = """
local head = redis.call('LINDEX', KEYS[2], 0)
if head ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[2])
redis.call('SET', KEYS[1], head)
return 1
"""


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailableError(f"Redis call failed ({type(exc).__name__}: {exc})") from exc


class ModelRegistry:
    """Model versions shared by every worker and the ``rfm models`` commands.

    Parameters
    ----------
    root
        The shared directory (``RFM_MODEL_DIR``); created on first write.
    client
        A synchronous Redis client built with ``decode_responses=True``.
    keys
        Key names of the deployment (its prefix).
    history_limit
        Versions kept on the rollback list.
    """

    def __init__(
        self,
        root: Path,
        client: redis.Redis,
        keys: Keys,
        *,
        history_limit: int = HISTORY_LIMIT,
    ) -> None:
        self.root = Path(root)
        self.client = client
        self.keys = keys
        self.history_limit = history_limit
        self._set_current_script = client.register_script(_SET_CURRENT)
        self._rollback_script = client.register_script(_ROLLBACK)

    @property
    def versions_dir(self) -> Path:
        """Directory holding one sub-directory per version."""
        return self.root / VERSIONS_DIR

    # ------------------------------------------------------------ versions on disk

    def publish(self, segmenter: RFMSegmenter, card: Mapping[str, Any]) -> str:
        """Store a new model as a version and make it the current one.

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
            The version cannot be written or does not load back; the pointer is unchanged.
        StoreUnavailableError
            Redis failed; the version is on disk but not current.
        """
        version = self._checked_id(str(card.get("version", "")))
        if not self.version_dir(version).is_dir():
            with self._staging() as staging:
                try:
                    save_model(staging, segmenter, dict(card))
                except OSError as exc:
                    raise ModelArtifactError(
                        f"cannot write model {version} into {self.root}: {exc}"
                    ) from exc
                load_model(staging)  # the checks every worker will run, before it is visible
                self._install(staging, version)
        else:
            self.load(version)  # installed before: still, never point at a damaged copy
        self._set_current(version)
        return version

    def import_dir(self, path: Path) -> str:
        """Register a directory written by ``rfm train`` as a version.

        It becomes current only if there is no current version yet (to replace a serving
        model, ``promote`` it).

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
            The directory holds no loadable model; nothing is registered.
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
            version = self._checked_id(load_model(staging).version)
            if not self.version_dir(version).is_dir():
                self._install(staging, version)
        self._set_current(version, only_if_none=True)
        return version

    def version_dir(self, version: str) -> Path:
        """Directory of one version (whether or not it exists)."""
        return self.versions_dir / self._checked_id(version)

    def load(self, version: str) -> LoadedModel:
        """Load and check one version.

        Raises
        ------
        ModelArtifactError
            The version is not registered, or its files are missing, corrupt, built with
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

    def load_current(self) -> LoadedModel | None:
        """Load the current version, or None while there is none.

        Raises
        ------
        ModelArtifactError
            The current version does not load (the pointer is left as it is).
        """
        version = self.current_version()
        return None if version is None else self.load(version)

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

    def versions(self) -> list[dict[str, Any]]:
        """Summaries of every stored version, oldest first.

        Returns
        -------
        list of dict
            Keys ``version``, ``trained_at``, ``method``, ``n_segments``, ``silhouette``,
            ``current``, ``trained_from`` (``stream`` or ``batch``) and ``error`` (why the
            card cannot be read, else None).
        """
        current = self.current_version()
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

    # ------------------------------------------------------------ the pointer

    def current_version(self) -> str | None:
        """The version every worker should serve, or None."""
        with _redis_errors():
            value = self.client.get(self.keys.model_current)
        return None if value is None else str(value)

    def history(self) -> list[str]:
        """Versions served before the current one, newest first."""
        with _redis_errors():
            values = cast(list[str], self.client.lrange(self.keys.model_history, 0, -1))
        return [str(value) for value in values]

    def promote(self, version: str) -> str | None:
        """Make ``version`` current, after checking that it loads.

        Returns
        -------
        str or None
            The version served before.

        Raises
        ------
        ModelArtifactError
            The version is missing or does not load; the current one keeps serving.
        """
        self.load(version)
        return self._set_current(version)

    def rollback(self) -> str:
        """Point back at the version served before the current one.

        The current version is dropped from the pointer (not from disk: ``promote`` brings
        it back).

        Returns
        -------
        str
            The version now current.

        Raises
        ------
        ModelUnavailableError
            No previous version.
        ModelArtifactError
            The previous version does not load; nothing changes (``promote`` another one).
        """
        with _redis_errors():
            head = self.client.lindex(self.keys.model_history, 0)
        if head is None:
            raise ModelUnavailableError("no previous model version to roll back to")
        previous = str(head)
        self.load(previous)
        with _redis_errors():
            moved = self._rollback_script(
                keys=[self.keys.model_current, self.keys.model_history], args=[previous]
            )
        if not int(cast(int, moved)):
            raise ModelUnavailableError(
                "the model history changed during the rollback (another promote or retrain); "
                "check `rfm models list` and try again"
            )
        return previous

    def _set_current(self, version: str, *, only_if_none: bool = False) -> str | None:
        with _redis_errors():
            before = self._set_current_script(
                keys=[self.keys.model_current, self.keys.model_history],
                args=[version, self.history_limit, "1" if only_if_none else "0"],
            )
        return None if before is None else str(before)

    # ------------------------------------------------------------ retrain coordination

    def request_retrain(self) -> None:
        """Ask the workers to retrain at their next opportunity."""
        with _redis_errors():
            self.client.set(self.keys.retrain_requested, "1")

    def take_retrain_request(self) -> bool:
        """Consume a pending retrain request; True if there was one (only one caller gets it)."""
        with _redis_errors():
            value = self.client.getdel(self.keys.retrain_requested)
        return value is not None

    def record_attempt(self, outcome: Mapping[str, Any]) -> None:
        """Record what the last retrain attempt did (replacing the previous record).

        Parameters
        ----------
        outcome
            Usually ``time`` (ISO 8601; now if absent), ``accepted`` (bool), ``reasons``
            (list of str), ``version`` (str or None), and any other JSON-able fields. Each
            field is stored JSON-encoded in the hash ``Keys.retrain_last``.
        """
        record = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **outcome}
        # Any: redis-py types the mapping invariantly over every encodable key type.
        mapping: dict[Any, Any] = {
            str(key): json.dumps(value, default=str) for key, value in record.items()
        }
        with _redis_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self.keys.retrain_last)
            pipe.hset(self.keys.retrain_last, mapping=mapping)
            pipe.execute()

    def last_attempt(self) -> dict[str, Any]:
        """The last recorded retrain attempt, decoded; empty if none."""
        with _redis_errors():
            raw = cast(dict[str, str], self.client.hgetall(self.keys.retrain_last))
        decoded: dict[str, Any] = {}
        for key, value in raw.items():
            try:
                decoded[key] = json.loads(value)
            except json.JSONDecodeError:
                decoded[key] = value  # written by hand: keep the text
        return decoded

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _checked_id(version: str) -> str:
        if not _VERSION_PATTERN.fullmatch(version):
            raise ModelArtifactError(
                f"{version!r} is not a model version id (like 2011-12-10T00:00:00Z-3f2a)"
            )
        return version

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
