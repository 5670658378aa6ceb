"""Re-scoring every customer after a model switch, as a job that survives its worker.

When the pointer moves to a model version, its re-score job is opened
(:class:`~stream_app.service.ports.RescoreJobs`). Every worker serving that version looks at
the job each time it refreshes its model; the one that takes the job's lease re-scores the
customers batch by batch from the job's cursor, and after each batch (once its changes are
published) stores the cursor reached, which renews the lease. A worker that dies stops
renewing: the lease lapses and the next worker to look goes on from the stored cursor. The
batch in flight when it died is re-scored again, which is harmless: a customer already on the
new model's segment does not change, and a change recorded but not yet published is published
again with its own sequence number (docs/design.md, section 7).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from stream_app.exceptions import StoreUnavailableError
from stream_app.service.ports import RescoreJobs, RescoreProgress
from stream_app.service.processor import BatchProcessor

__all__ = ["RESCORE_BATCH", "RESCORE_LEASE_S", "ModelRescore"]

log = logging.getLogger(__name__)

#: How long a worker holds a re-score job without storing progress before another may take
#: it over. A batch takes well under a second; a minute leaves room for a Redis that stalls.
RESCORE_LEASE_S = 60.0

#: Keys looked at per SCAN step of a re-score (about a fifth are customers' state keys).
RESCORE_BATCH = 2000


class ModelRescore:
    """Works on the re-score job of the model version a worker serves.

    Parameters
    ----------
    processor
        Scores with the model the worker serves.
    jobs
        The shared re-score jobs.
    lease_s
        Seconds the lease runs without progress before another worker may take the job.
    batch_size
        Keys looked at per step of the scan (see :meth:`CustomerStore.scan_from`).
    token
        This worker's lease token (default: a random one).
    """

    def __init__(
        self,
        processor: BatchProcessor,
        jobs: RescoreJobs,
        *,
        lease_s: float = RESCORE_LEASE_S,
        batch_size: int = RESCORE_BATCH,
        token: str = "",
    ) -> None:
        self.processor = processor
        self.jobs = jobs
        self.lease_s = lease_s
        self.batch_size = batch_size
        self.token = token or uuid.uuid4().hex

    async def resume(self, version: str) -> RescoreProgress | None:
        """Re-score every customer left for ``version``, if its job is free; say how far.

        Returns None when there was nothing to take (no unfinished job, another worker's
        lease runs, or the version is no longer current), else the job as this worker left
        it: ``done`` if it finished, else it stopped because it lost the lease or the
        version changed. Redis failing gives the lease up where it is; the next look goes on.
        """
        jobs = self.jobs
        try:
            job = await jobs.take_rescore(version, self.token, self.lease_s)
        except StoreUnavailableError as exc:
            log.warning("cannot look at the re-score of model %s: %s", version, exc)
            return None
        if job is None:
            return None
        if job.leases > 1 or job.cursor != "0":
            log.info(
                "going on with the re-score of model %s (%d customers done)", version, job.customers
            )
        state = _Run(job)

        async def advance(cursor: str, customers: int, changed: int) -> bool:
            if not await jobs.advance_rescore(
                version, self.token, cursor, customers, changed, self.lease_s
            ):
                state.lost = True
                return False
            state.note(cursor, customers, changed)
            return True

        try:
            if await self.processor.current_time() is None:
                await advance("0", 0, 0)  # no event yet: nobody to re-score
            else:
                await self.processor.rescore_all(
                    "retrain", self.batch_size, cursor=job.cursor, progress=advance
                )
        except StoreUnavailableError as exc:
            log.warning("re-score of model %s paused: %s", version, exc)
        finally:
            if not (state.progress.done or state.lost):
                # Stopped early (no model, Redis failing, the worker stopping): let the next
                # worker go on at once rather than after the lease.
                with contextlib.suppress(StoreUnavailableError, asyncio.CancelledError):
                    await jobs.release_rescore(version, self.token)
        progress = state.progress
        if progress.done:
            log.info(
                "re-scored every customer with model %s: %d re-scored, %d moved",
                version,
                progress.customers,
                progress.changed,
            )
        elif state.lost:
            log.warning(
                "stopped re-scoring for model %s: another worker or version took over", version
            )
        return progress


class _Run:
    """What one worker's turn on a job has done so far."""

    def __init__(self, job: RescoreProgress) -> None:
        self.progress = job
        self.lost = False

    def note(self, cursor: str, customers: int, changed: int) -> None:
        job = self.progress
        self.progress = RescoreProgress(
            version=job.version,
            cursor=cursor,
            customers=job.customers + customers,
            changed=job.changed + changed,
            leases=job.leases,
            done=cursor == "0",
        )
