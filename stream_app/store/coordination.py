"""How the workers and ``rfm`` commands coordinate through Redis (besides the model pointer).

* **The retrain lock** (``Keys.retrain_lock``): held by the one worker retraining, with a
  short expiry that its holder renews while it works, so that a worker dying mid-retrain
  blocks the others only until the expiry; its value is the holder's token, and only the
  holder renews or releases it.
* **The retrain request** (``Keys.retrain_requested``): set by ``rfm retrain`` to a new
  random value each time; read by the worker that holds the lock, and deleted (if it is still
  the same request) only once that worker recorded what the attempt did. A worker dying
  before that leaves it for the next.
* **The last retrain attempt** (``Keys.retrain_last``): what the last attempt did, for the
  interval between retrains and for ``rfm retrain`` to show.
* **The re-score job** (``Keys.rescore_job``): after the pointer moves to a version, every
  customer is re-scored with it. The job (opened with the pointer move,
  :mod:`stream_app.store.registry`) holds the SCAN cursor reached and a lease: one worker at
  a time works on it, renews its lease after each batch and stores the cursor; when it dies,
  another takes the lease over once it lapses and goes on from the cursor.
* **The worker heartbeat** (``Keys.workers``): which version each worker serves, and when it
  last said so.

The client sends a command again when its reply is lost (:mod:`stream_app.store.client`).
Setting a value twice changes nothing, the lock and the lease are recognised as ours by the
token, and a request deleted twice is deleted once; storing a job's cursor twice stores it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from stream_app.service.ports import RescoreProgress
from stream_app.store.client import redis_errors
from stream_app.store.keys import Keys

__all__ = ["RESCORE_DONE_TTL_S", "RESCORE_JOB_TTL_S", "Coordination"]

#: Expiry of a re-score job, renewed with each batch: a job nobody worked on for this long
#: (no worker ran for a month) is forgotten rather than kept for ever.
RESCORE_JOB_TTL_S = 30 * 24 * 3600

#: How long a finished job is kept (for operators, and so that no worker starts it again).
RESCORE_DONE_TTL_S = 7 * 24 * 3600

# KEYS: the lock (or the request). ARGV: the caller's token (the request read). Deletes the
# key only if it still holds that value, in one step (a GET then a DEL could delete a lock
# that expired and was taken meanwhile, or a request made again meanwhile).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: the lock. ARGV: the caller's token, the expiry in milliseconds. Renews the lock only
# if the caller still holds it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


# KEYS: the job, the claim of older releases, the model pointer. ARGV: token, lease (ms),
# version. Takes the lease of an unfinished job of the current version unless another
# holder's lease runs; returns the job's fields, or nil.
_TAKE_RESCORE = """
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return false end
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('HEXISTS', KEYS[1], 'done') == 1 then return false end
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local holder = redis.call('HGET', KEYS[1], 'holder')
local expiry = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
if holder and holder ~= ARGV[1] and expiry > now then return false end
if holder ~= ARGV[1] then redis.call('HINCRBY', KEYS[1], 'leases', 1) end
redis.call('HSET', KEYS[1], 'holder', ARGV[1],
           'lease_until', string.format('%.0f', now + tonumber(ARGV[2])))
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: the job, the model pointer. ARGV: token, version, cursor, customers, changed, lease
# (ms), expiry of an unfinished job (s), expiry of a done one (s). Returns 1 if stored, 0 if
# the caller lost the lease or the version is no longer current. A resend after a lost reply
# stores the same cursor again (and adds the counts twice: they are for operators).
_ADVANCE_RESCORE = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then
  if ARGV[3] == '0' and redis.call('HEXISTS', KEYS[1], 'done') == 1 then return 1 end
  return 0
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('HINCRBY', KEYS[1], 'customers', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'changed', ARGV[5])
redis.call('HSET', KEYS[1], 'cursor', ARGV[3])
if ARGV[3] == '0' then
  redis.call('HSET', KEYS[1], 'done', time[1])
  redis.call('HDEL', KEYS[1], 'holder', 'lease_until')
  redis.call('EXPIRE', KEYS[1], ARGV[8])
else
  redis.call('HSET', KEYS[1], 'lease_until', string.format('%.0f', now + tonumber(ARGV[6])))
  redis.call('EXPIRE', KEYS[1], ARGV[7])
end
return 1
"""

# KEYS: the job. ARGV: token. Gives the lease up if the caller holds it.
_RELEASE_RESCORE = """
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'holder', 'lease_until')
end
return 0
"""


def _millis(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _progress(version: str, fields: Mapping[str, str]) -> RescoreProgress:
    return RescoreProgress(
        version=version,
        cursor=str(fields.get("cursor", "0")),
        customers=int(fields.get("customers", 0)),
        changed=int(fields.get("changed", 0)),
        leases=int(fields.get("leases", 0)),
        done="done" in fields,
    )


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
        self._renew_script = client.register_script(_RENEW)
        self._take_rescore_script = client.register_script(_TAKE_RESCORE)
        self._advance_rescore_script = client.register_script(_ADVANCE_RESCORE)
        self._release_rescore_script = client.register_script(_RELEASE_RESCORE)

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

    async def renew_retrain_lock(self, token: str, ttl_s: float) -> bool:
        """Make the lock expire ``ttl_s`` seconds from now if ``token`` holds it; True if so.

        False: the lock expired (and may have been taken by another worker).
        """
        with redis_errors():
            renewed = await self._renew_script(
                keys=[self.keys.retrain_lock], args=[token, max(1, int(ttl_s * 1000))]
            )
        return bool(int(renewed))

    async def release_retrain_lock(self, token: str) -> bool:
        """Release the retrain lock if ``token`` holds it; True if it was released.

        A lock that expired and was taken by another worker meanwhile is left to that worker.
        """
        with redis_errors():
            released = await self._release_script(keys=[self.keys.retrain_lock], args=[token])
        return bool(int(released))

    # ------------------------------------------------------------ the retrain request

    async def request_retrain(self) -> str:
        """Ask the workers to retrain at their next opportunity; return the request's value.

        Each request has a new random value, so that a worker finishing an attempt clears
        only the request it read, not one made while it retrained.
        """
        request = uuid.uuid4().hex
        with redis_errors():
            await self.client.set(self.keys.retrain_requested, request)
        return request

    async def retrain_request(self) -> str | None:
        """The pending retrain request (its value), or None; reading it leaves it pending."""
        with redis_errors():
            value = await self.client.get(self.keys.retrain_requested)
        return None if value is None else str(value)

    async def clear_retrain_request(self, request: str) -> bool:
        """Delete the pending request if it is still ``request``; True if it was deleted.

        Call it once the attempt made for the request is recorded. A request made again
        meanwhile (another value) stays pending.
        """
        with redis_errors():
            cleared = await self._release_script(keys=[self.keys.retrain_requested], args=[request])
        return bool(int(cleared))

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

    async def take_rescore(
        self, version: str, token: str, lease_s: float
    ) -> RescoreProgress | None:
        """Take the lease of ``version``'s unfinished re-score job for ``lease_s`` seconds.

        Parameters
        ----------
        version
            The version the caller serves.
        token
            The caller's own random token (it renews and gives up the lease with it).
        lease_s
            Wall-clock seconds (Redis's clock) the lease runs unless renewed.

        Returns
        -------
        RescoreProgress or None
            The job as the caller takes it over, or None: no unfinished job for the version
            (none opened, done, or claimed by a worker of an older release), the version is
            not current, or another worker's lease runs.
        """
        keys = self.keys
        with redis_errors():
            reply = await self._take_rescore_script(
                keys=[keys.rescore_job(version), keys.rescore_claim(version), keys.model_current],
                args=[token, _millis(lease_s), version],
            )
        if not reply:
            return None
        return _progress(version, dict(zip(reply[::2], reply[1::2], strict=True)))

    async def advance_rescore(
        self,
        version: str,
        token: str,
        cursor: str,
        customers: int,
        changed: int,
        lease_s: float,
    ) -> bool:
        """Store the cursor reached (``"0"``: every customer is done) and renew the lease.

        ``customers`` and ``changed`` count the batch just re-scored. Returns False when
        ``token`` lost the lease (it lapsed and another worker took it) or the version is no
        longer current: the caller stops.
        """
        keys = self.keys
        with redis_errors():
            advanced = await self._advance_rescore_script(
                keys=[keys.rescore_job(version), keys.model_current],
                args=[
                    token,
                    version,
                    cursor,
                    customers,
                    changed,
                    _millis(lease_s),
                    RESCORE_JOB_TTL_S,
                    RESCORE_DONE_TTL_S,
                ],
            )
        return bool(int(advanced))

    async def release_rescore(self, version: str, token: str) -> None:
        """Give the lease of ``version``'s job up if ``token`` holds it (the cursor stays)."""
        with redis_errors():
            await self._release_rescore_script(keys=[self.keys.rescore_job(version)], args=[token])

    async def rescore_progress(self, version: str) -> RescoreProgress | None:
        """Where the re-score job of ``version`` stands, or None if there is none.

        A version re-scored by a worker of an older release (its claim key is there) reads
        as done.
        """
        with redis_errors():
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hgetall(self.keys.rescore_job(version))
                pipe.exists(self.keys.rescore_claim(version))
                fields, claimed = await pipe.execute()
        if claimed:
            return RescoreProgress(version, done=True)
        return _progress(version, fields) if fields else None

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
