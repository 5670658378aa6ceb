"""How the workers and ``rfm`` commands coordinate through Redis (besides the model pointer).

* **The retrain lock** (``Keys.retrain_lock``): held by the one worker retraining, with an
  expiry so that a worker dying mid-retrain does not block the others; its value is the
  holder's token, and only the holder releases it.
* **The retrain request** (``Keys.retrain_requested``): set by ``rfm retrain``, taken by
  exactly one worker.
* **The last retrain attempt** (``Keys.retrain_last``): what the last attempt did, for the
  interval between retrains and for ``rfm retrain`` to show.
* **The re-score claim** (``Keys.rescore_claim``): after the workers switch to a new model
  version, the one that claims it re-scores every customer.
* **The worker heartbeat** (``Keys.workers``): which version each worker serves, and when it
  last said so.

The client sends a command again when its reply is lost (:mod:`stream_app.store.client`).
Setting a value twice changes nothing, and the lock is recognised as ours by its token. Taking
the request or a claim is once only: if the reply of the first try was lost, the second finds
it taken, and the request is lost (run ``rfm retrain`` again) or nobody re-scores for that
version (customers move on their next order or when due). That takes the connection to drop,
or Redis to stall past the socket timeout, between running the command and answering it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from stream_app.store.client import redis_errors
from stream_app.store.keys import Keys

__all__ = ["RESCORE_CLAIM_TTL_S", "Coordination"]

#: How long a re-score claim keeps other workers from re-scoring for the same version. Every
#: worker switches within seconds of a new version; a week is far longer than that, and the
#: claims of old versions still expire instead of piling up.
RESCORE_CLAIM_TTL_S = 7 * 24 * 3600

# KEYS: the lock. ARGV: the caller's token. Deletes the lock only if the caller holds it, in
# one step (a GET then a DEL could delete a lock that expired and was taken meanwhile).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Coordination:
    """The coordination keys of one deployment.

    Parameters
    ----------
    client
        An async Redis client from :func:`~stream_app.store.client.redis_client`.
    keys
        Key names of the deployment (its prefix).
    """

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        # redis-py's annotations do not model decode_responses=True; values are str here.
        self.client: Any = client
        self.keys = keys
        self._release_script = client.register_script(_RELEASE)

    # ------------------------------------------------------------ the retrain lock

    async def take_retrain_lock(self, token: str, ttl_s: float) -> bool:
        """Take the retrain lock for ``ttl_s`` seconds; True if the caller now holds it.

        Parameters
        ----------
        token
            The caller's own random token (released only with it).
        ttl_s
            Expiry, longer than a retrain takes.
        """
        lock = self.keys.retrain_lock
        with redis_errors():
            taken = await self.client.set(lock, token, nx=True, px=max(1, int(ttl_s * 1000)))
            if not taken:
                # Held already; by us when a first try's reply was lost and the SET was resent.
                taken = await self.client.get(lock) == token
        return bool(taken)

    async def release_retrain_lock(self, token: str) -> bool:
        """Release the retrain lock if ``token`` holds it; True if it was released.

        A lock that expired and was taken by another worker meanwhile is left to that worker.
        """
        with redis_errors():
            released = await self._release_script(keys=[self.keys.retrain_lock], args=[token])
        return bool(int(released))

    # ------------------------------------------------------------ the retrain request

    async def request_retrain(self) -> None:
        """Ask the workers to retrain at their next opportunity."""
        with redis_errors():
            await self.client.set(self.keys.retrain_requested, "1")

    async def take_retrain_request(self) -> bool:
        """Consume a pending retrain request; True if there was one (only one caller gets it)."""
        with redis_errors():
            value = await self.client.getdel(self.keys.retrain_requested)
        return value is not None

    # ------------------------------------------------------------ the last attempt

    async def record_attempt(self, outcome: Mapping[str, Any]) -> None:
        """Record what the last retrain attempt did (replacing the previous record).

        Parameters
        ----------
        outcome
            Usually ``time`` (ISO 8601; now if absent), ``accepted`` (bool), ``reasons``
            (list of str), ``version`` (str or None), and any other JSON-able fields. Each
            field is stored JSON-encoded in the hash ``Keys.retrain_last``.
        """
        record = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **outcome}
        mapping = {str(key): json.dumps(value, default=str) for key, value in record.items()}
        with redis_errors():
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(self.keys.retrain_last)
                pipe.hset(self.keys.retrain_last, mapping=mapping)
                await pipe.execute()

    async def last_attempt(self) -> dict[str, Any]:
        """The last recorded retrain attempt, decoded; empty if none."""
        with redis_errors():
            raw: dict[str, str] = await self.client.hgetall(self.keys.retrain_last)
        decoded: dict[str, Any] = {}
        for key, value in raw.items():
            try:
                decoded[key] = json.loads(value)
            except json.JSONDecodeError:
                decoded[key] = value  # written by hand: keep the text
        return decoded

    # ------------------------------------------------------------ model switches

    async def claim_rescore(self, version: str, owner: str) -> bool:
        """Claim re-scoring every customer for ``version``; True for the one caller who gets it.

        Parameters
        ----------
        version
            The model version the workers switched to.
        owner
            Stored as the claim's value, for operators (the app id).
        """
        with redis_errors():
            claimed = await self.client.set(
                self.keys.rescore_claim(version), owner, nx=True, ex=RESCORE_CLAIM_TTL_S
            )
        return bool(claimed)

    async def heartbeat(self, worker_id: str, version: str | None) -> None:
        """Say that ``worker_id`` serves ``version`` (None: no model yet), as of now."""
        beat = json.dumps({"version": version, "at": time.time()})
        with redis_errors():
            await self.client.hset(self.keys.workers, worker_id, beat)

    async def workers(self) -> dict[str, dict[str, Any]]:
        """Each worker's last heartbeat: ``version`` (str or None) and ``at`` (epoch seconds)."""
        with redis_errors():
            raw: dict[str, str] = await self.client.hgetall(self.keys.workers)
        return {worker: json.loads(beat) for worker, beat in raw.items()}
