"""Retraining inside the stream: one worker at a time, from the RFM state in Redis.

A worker retrains when asked (``rfm retrain``) or when the configured interval has passed
since the last attempt by any worker *and* enough events were applied since. A lock in Redis
makes sure only one worker retrains (:class:`~stream_app.store.coordination.Coordination`);
its expiry is short and its holder renews it while it works, so a worker that dies blocks
the others only until the expiry. The request is read under the lock and cleared only once
the attempt's outcome is recorded: a worker dying midway leaves it for the next. The new
model is fitted with the same code as ``rfm train`` (:func:`model_training.model.refit.retrain`),
judged by the quality gates and published to the registry only if it passes; every attempt
is recorded. Fitting and publishing run in threads, so the stream keeps going meanwhile.
Whatever goes wrong, the model being served stays and the stream keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from model_training.data.rules import NON_PRODUCT_PATTERN
from model_training.model.artifact import LoadedModel
from model_training.model.refit import QualityGates, retrain
from stream_app.exceptions import StoreUnavailableError
from stream_app.service.ports import CustomerStore, ModelVersions, RetrainCoordination
from stream_app.service.snapshot import rfm_snapshot
from stream_app.service.telemetry import NoTelemetry, Telemetry

__all__ = ["LOCK_TTL_S", "Retrainer"]

log = logging.getLogger(__name__)

#: Expiry of the retrain lock. Its holder renews it every third of this while it retrains
#: (a minute for a million customers), so it only needs to outlast a stalled event loop; a
#: worker dying mid-retrain blocks the others this long at most.
LOCK_TTL_S = 60.0


class Retrainer:
    """Decides when to retrain, and does it under the shared lock.

    Parameters
    ----------
    registry
        Where new versions are published.
    coordination
        The lock, the retrain request and the record of attempts.
    store
        The customer-state store (the snapshot is read from it).
    current
        Returns the model being served (the previous model of a retrain).
    now
        Returns the stream clock (None before the first event).
    interval_s, min_events
        Retrain at most every ``interval_s`` seconds (0: only on request), and only when at
        least ``min_events`` events were applied since the last attempt.
    gates
        Quality gates a new model must pass.
    lock_ttl_s
        Expiry of the lock, renewed every third of it while this worker retrains.
    worker_id
        Recorded with each attempt (default: this retrainer's random token).
    non_product_pattern
        The product rule of the state (``RFM_NON_PRODUCT_PATTERN``), recorded in new cards.
    telemetry
        Told how each attempt ended.
    """

    def __init__(
        self,
        registry: ModelVersions,
        coordination: RetrainCoordination,
        store: CustomerStore,
        current: Callable[[], LoadedModel | None],
        now: Callable[[], Awaitable[float | None]],
        *,
        interval_s: float,
        min_events: int,
        gates: QualityGates,
        lock_ttl_s: float = LOCK_TTL_S,
        worker_id: str = "",
        non_product_pattern: str = NON_PRODUCT_PATTERN,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.telemetry: Telemetry = telemetry or NoTelemetry()
        self.registry = registry
        self.coordination = coordination
        self.store = store
        self.current = current
        self.now = now
        self.interval_s = interval_s
        self.min_events = min_events
        self.gates = gates
        self.lock_ttl_s = lock_ttl_s
        self.token = uuid.uuid4().hex
        self.worker_id = worker_id or self.token
        self.non_product_pattern = non_product_pattern

    async def maybe_retrain(self) -> str | None:
        """Retrain if asked or due and if this worker gets the lock; the new version or None."""
        coordination = self.coordination
        if await coordination.retrain_request() is None and not await self._due(
            await self._applied()
        ):
            return None
        if not await coordination.take_retrain_lock(self.token, self.lock_ttl_s):
            return None  # another worker is at it; a request stays for later
        try:
            # Looked at again under the lock: the worker that held it may have done it.
            request = await coordination.retrain_request()
            applied = await self._applied()
            if request is None and not await self._due(applied):
                return None
            async with self._lock_renewed():
                return await self._retrain(applied, request)
        finally:
            await coordination.release_retrain_lock(self.token)

    async def _applied(self) -> int:
        return (await self.store.counters()).get("applied", 0)

    @contextlib.asynccontextmanager
    async def _lock_renewed(self) -> AsyncIterator[None]:
        """Renew the lock every third of its expiry for as long as the block runs."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lock_ttl_s / 3)
                try:
                    held = await self.coordination.renew_retrain_lock(self.token, self.lock_ttl_s)
                except StoreUnavailableError as exc:
                    log.warning("cannot renew the retrain lock (trying again): %s", exc)
                    continue
                if not held:
                    log.warning("the retrain lock expired: another worker may retrain too")
                    return

        renewing = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _due(self, applied: int) -> bool:
        if self.interval_s <= 0:
            return False
        last = await self.coordination.last_attempt()
        if not last:
            # The first look starts the clock: the interval and the event count are measured
            # from here, not from an empty history (which would retrain at once).
            await self.coordination.record_attempt(
                {"baseline": True, "applied_events": applied, "accepted": None, "version": None}
            )
            return False
        when = datetime.fromisoformat(str(last.get("time")))
        if (datetime.now(UTC) - when).total_seconds() < self.interval_s:
            return False
        return applied - int(last.get("applied_events", 0)) >= self.min_events

    async def _retrain(self, applied: int, request: str | None) -> str | None:
        started = time.monotonic()
        outcome: dict[str, Any] = {
            "applied_events": applied,
            "requested": request is not None,
            "worker": self.worker_id,
        }
        previous = self.current()
        try:
            clock = await self.now()
            if clock is None:
                raise RuntimeError("the stream clock has not started: no event yet")
            frame = await rfm_snapshot(self.store, clock)
            t_ref = datetime.fromtimestamp(clock, tz=UTC).replace(tzinfo=None)
            # Fitting takes seconds: in a thread, so the stream keeps going meanwhile.
            result = await asyncio.to_thread(
                retrain,
                frame,
                t_ref,
                previous,
                self.gates,
                non_product_pattern=self.non_product_pattern,
            )
            outcome.update(
                accepted=result.accepted,
                reasons=result.reasons,
                customers=len(frame),
                changed_share=result.changed_share,
                candidate=result.version,
                previous=previous.version if previous else None,
            )
            version = None
            if result.accepted:
                version = await self.registry.publish(result.segmenter, result.card)
                log.info("retrained: published model %s", version)
            else:
                log.warning("retrained model refused: %s", "; ".join(result.reasons))
            outcome["version"] = version
            ended = "accepted" if result.accepted else "refused"
        except StoreUnavailableError:
            # Redis failing: nothing is recorded and a request stays, for the next look.
            log.exception("retrain stopped: the store is unavailable")
            self.telemetry.retrain_attempted("store_unavailable")
            return None
        except Exception as exc:  # a failed retrain must never stop the stream
            log.exception("retrain failed; model %s keeps serving", previous and previous.version)
            outcome.update(accepted=False, reasons=[f"retrain failed: {exc}"], version=None)
            version = None
            ended = "failed"
        outcome["seconds"] = round(time.monotonic() - started, 2)
        self.telemetry.retrain_attempted(ended)
        await self.coordination.record_attempt(outcome)
        if request is not None:
            # Only now: a worker dying before the outcome is recorded leaves the request.
            await self.coordination.clear_retrain_request(request)
        return version
