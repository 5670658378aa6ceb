"""The model registry every worker shares: versions on disk, the current pointer in Redis.

The versions themselves are files (:mod:`stream_app.store.model_files`); which one serves is
a pointer in Redis (``Keys.model_current``), and the versions served before are on
``Keys.model_history``, newest first, for rollback. The pointer moves only by one Lua script
(push the old current, set the new, open the new version's re-score job:
:mod:`stream_app.store.coordination`), so every worker that reads it sees one consistent story,
and it moves only to a version that has just loaded and passed the artifact checks
(:func:`~model_training.model.artifact.load_model`): a broken or incompatible artifact never
becomes current.

Every method is a coroutine. Reading, writing and unpickling versions runs in a thread
(:func:`asyncio.to_thread`), so the event loop of a worker keeps serving the stream meanwhile.
A script the client sends again after a lost reply (:mod:`stream_app.store.client`) changes
nothing more: the pointer is already at the version, or a rollback that ran answers that the
history moved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from model_training.model.artifact import LoadedModel
from model_training.model.segmenter import RFMSegmenter
from stream_app.exceptions import ModelUnavailableError
from stream_app.store.client import redis_errors
from stream_app.store.coordination import RESCORE_JOB_TTL_S
from stream_app.store.keys import Keys
from stream_app.store.model_files import ModelFiles

__all__ = ["HISTORY_LIMIT", "ModelRegistry"]

#: Versions kept on the rollback list (the directories themselves are never deleted here).
HISTORY_LIMIT = 50

# Opens the re-score job of the version just made current (KEYS[3]; ARGV[4]: its expiry),
# from the beginning, and drops the claim an older release took for it (KEYS[4]), so that
# every customer is re-scored with it, also after a rollback to a version served before.
_OPEN_RESCORE = """
local function open_rescore(version)
  redis.call('DEL', KEYS[3], KEYS[4])
  redis.call('HSET', KEYS[3], 'version', version, 'cursor', '0',
             'opened', redis.call('TIME')[1])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
"""

# KEYS: current, history, the version's re-score job and old claim. ARGV: version, history
# limit, "1" to set only when there is none, the job's expiry. Returns the version served
# before (nil if none), unchanged when it already was the version (nothing is opened then).
_SET_CURRENT = (
    _OPEN_RESCORE
    + """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then return current end
if current and ARGV[3] == '1' then return current end
if current then
  redis.call('LPUSH', KEYS[2], current)
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
end
redis.call('SET', KEYS[1], ARGV[1])
open_rescore(ARGV[1])
return current
"""
)

# KEYS: current, history, the re-score job and old claim of the version rolled back to.
# ARGV: the version expected at the head of the history (checked before the call), two
# unused, the job's expiry. Pops it into current; returns 0 if the history moved meanwhile.
_ROLLBACK = (
    _OPEN_RESCORE
    + """
local head = redis.call('LINDEX', KEYS[2], 0)
if head ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[2])
redis.call('SET', KEYS[1], head)
open_rescore(head)
return 1
"""
)


class ModelRegistry:
    """Model versions shared by every worker and the ``rfm models`` commands.

    Parameters
    ----------
    root
        The shared directory (``RFM_MODEL_DIR``); created on first write.
    client
        An async Redis client from :func:`~stream_app.store.client.redis_client`.
    keys
        Key names of the deployment (its prefix).
    history_limit
        Versions kept on the rollback list.
    """

    def __init__(
        self,
        root: Path,
        client: aioredis.Redis,
        keys: Keys,
        *,
        history_limit: int = HISTORY_LIMIT,
    ) -> None:
        self.files = ModelFiles(root)
        # redis-py's annotations do not model decode_responses=True; values are str here.
        self.client: Any = client
        self.keys = keys
        self.history_limit = history_limit
        self._set_current_script = client.register_script(_SET_CURRENT)
        self._rollback_script = client.register_script(_ROLLBACK)

    @property
    def root(self) -> Path:
        """The shared directory."""
        return self.files.root

    @property
    def versions_dir(self) -> Path:
        """Directory holding one sub-directory per version."""
        return self.files.versions_dir

    def version_dir(self, version: str) -> Path:
        """Directory of one version (whether or not it exists)."""
        return self.files.version_dir(version)

    # ------------------------------------------------------------ versions

    async def publish(self, segmenter: RFMSegmenter, card: Mapping[str, Any]) -> str:
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
        version = await asyncio.to_thread(self.files.save, segmenter, card)
        await self._set_current(version)
        return version

    async def import_dir(self, path: Path) -> str:
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
        version = await asyncio.to_thread(self.files.import_dir, path)
        await self._set_current(version, only_if_none=True)
        return version

    async def load(self, version: str) -> LoadedModel:
        """Load and check one version.

        Raises
        ------
        ModelArtifactError
            The version is not registered, or its files are missing, corrupt, built with
            incompatible libraries, or belong to another version.
        """
        return await asyncio.to_thread(self.files.load, version)

    async def load_current(self) -> LoadedModel | None:
        """Load the current version, or None while there is none.

        Raises
        ------
        ModelArtifactError
            The current version does not load (the pointer is left as it is).
        """
        version = await self.current_version()
        return None if version is None else await self.load(version)

    async def card(self, version: str) -> dict[str, Any]:
        """The model card of one version (without unpickling the model).

        Raises
        ------
        ModelArtifactError
            No such version, or its card is unreadable.
        """
        return await asyncio.to_thread(self.files.card, version)

    async def versions(self) -> list[dict[str, Any]]:
        """Summaries of every stored version, oldest first (see :meth:`ModelFiles.versions`)."""
        current = await self.current_version()
        return await asyncio.to_thread(self.files.versions, current)

    # ------------------------------------------------------------ the pointer

    async def current_version(self) -> str | None:
        """The version every worker should serve, or None."""
        with redis_errors():
            value = await self.client.get(self.keys.model_current)
        return None if value is None else str(value)

    async def history(self) -> list[str]:
        """Versions served before the current one, newest first."""
        with redis_errors():
            values = await self.client.lrange(self.keys.model_history, 0, -1)
        return [str(value) for value in values]

    async def promote(self, version: str) -> str | None:
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
        await self.load(version)
        return await self._set_current(version)

    async def rollback(self) -> str:
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
        with redis_errors():
            head = await self.client.lindex(self.keys.model_history, 0)
        if head is None:
            raise ModelUnavailableError("no previous model version to roll back to")
        previous = str(head)
        await self.load(previous)
        with redis_errors():
            moved = await self._rollback_script(
                keys=self._pointer_keys(previous), args=[previous, "", "", RESCORE_JOB_TTL_S]
            )
        if not int(moved):
            raise ModelUnavailableError(
                "the model history changed during the rollback (another promote or retrain); "
                "check `rfm models list` and try again"
            )
        return previous

    async def _set_current(self, version: str, *, only_if_none: bool = False) -> str | None:
        with redis_errors():
            before = await self._set_current_script(
                keys=self._pointer_keys(version),
                args=[version, self.history_limit, "1" if only_if_none else "0", RESCORE_JOB_TTL_S],
            )
        return None if before is None else str(before)

    def _pointer_keys(self, version: str) -> list[str]:
        keys = self.keys
        return [
            keys.model_current,
            keys.model_history,
            keys.rescore_job(version),
            keys.rescore_claim(version),
        ]
