"""The seams the service layer depends on: store, publisher, model versions, coordination.

Only Protocols and the plain data they exchange live here. The Redis store
(:mod:`stream_app.store.redis_store`) and the in-memory store (:mod:`stream_app.store.memory`)
implement :class:`CustomerStore`; the faust publisher (:mod:`stream_app.kafka.publisher`)
implements :class:`Publisher`; the model registry (:mod:`stream_app.store.registry`)
implements :class:`ModelVersions`, and :mod:`stream_app.store.coordination` implements
:class:`RetrainCoordination` and :class:`RescoreJobs`. One contract test suite runs against
both stores.

Every store method is one round trip to the store, so the processor's cost in round trips is
the number of store calls it makes: three per batch of orders in steady state (apply, record,
mark announced).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from model_training.model.artifact import LoadedModel
from model_training.model.segmenter import RFMSegmenter
from stream_app.core.columns import StateColumns
from stream_app.core.effects import OrderEffect
from stream_app.core.events import DeadLetter, SegmentChange
from stream_app.core.state import CustomerState

__all__ = [
    "DUE_LEASE_S",
    "AppliedBatch",
    "ChangeMessage",
    "CustomerStore",
    "ModelVersions",
    "Publisher",
    "RawMessage",
    "RescoreJobs",
    "RescoreProgress",
    "RetrainCoordination",
    "SegmentIndex",
    "SegmentUpdate",
]

#: How long (stream-clock seconds) a customer taken from the due set stays leased to the
#: caller that took them: if it dies before rescheduling them, they come due again after this.
DUE_LEASE_S = 3600.0


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message from the orders topic, as the broker delivered it."""

    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int
    #: When the message was published to Kafka (epoch seconds; None when unknown).
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class ChangeMessage:
    """A segment change and its JSON text, serialised once for the history and the topic."""

    change: SegmentChange
    payload: str

    @classmethod
    def of(cls, change: SegmentChange) -> ChangeMessage:
        """Serialise ``change``."""
        return cls(change, change.model_dump_json())


@dataclass(frozen=True, slots=True)
class SegmentUpdate:
    """Record that a customer is now in ``segment``.

    Recorded *before* the change is published, and marked unannounced until
    :meth:`CustomerStore.mark_announced`: a crash in between leaves the mark, and the change is
    published again (with the same sequence number) the next time the customer is scored.
    """

    customer_id: str
    segment: str
    previous_segment: str | None
    since: float
    model_version: str
    sequence: int
    history_entry: str  # the change as published, JSON
    rfm: tuple[int, int, float] | None = None  # the RFM the segment was assigned at
    reason: str = "order"  # what made the change: order, recency or retrain


@dataclass(frozen=True, slots=True)
class AppliedBatch:
    """What :meth:`CustomerStore.apply` did.

    Attributes
    ----------
    applied
        Per event, whether it was applied now (False: it had been before, or see below).
    states
        The touched customers' states after the batch (without items and event ids), in the
        order each customer first appears in the batch: what scoring needs.
    clock
        The event-time clock after the batch (None if no clock time was given).
    conflicts
        Event index -> the digest stored with its id: that id was applied before with other
        content, and this event was not applied.
    rejected
        Event index -> why the store could not apply its values (nothing was written).
    """

    applied: list[bool]
    states: list[CustomerState]
    clock: float | None
    conflicts: dict[int, str] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)
    #: ``topic:partition`` -> the next offset the store holds for it (None: none yet), for
    #: the partitions asked.
    stored_offsets: dict[str, int | None] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        """Events applied before with the same content."""
        return len(self.applied) - sum(self.applied) - len(self.conflicts) - len(self.rejected)


class CustomerStore(Protocol):
    """Where per-customer RFM state lives. Every method is one round trip."""

    async def apply(
        self,
        effects: Sequence[OrderEffect],
        clock_time: float | None = None,
        watermarks: Mapping[str, float] | None = None,
        epoch: int | None = None,
        offsets: Sequence[str] = (),
    ) -> AppliedBatch:
        """Apply each event once, atomically per event, in order; move the clock; read back.

        ``watermarks`` (partition -> the batch's largest event time there) raise those
        partitions' watermarks; ``clock_time`` raises every partition's watermark to it (a
        deliberate move). The clock then moves to the lowest watermark, never back. An event
        whose id was applied with another content digest is not applied (``conflicts``).
        With ``epoch``, nothing is written unless the store's epoch is that one: it raises
        :class:`~stream_app.exceptions.StoreLostError` (the store was wiped or rebuilt).
        The next offsets the store holds for the ``offsets`` partitions are read back.
        """
        ...

    async def record_each(
        self, updates: Sequence[SegmentUpdate], due: Mapping[str, float | None] | None = None
    ) -> list[bool]:
        """Store new segments and due times; say for each update whether it was stored.

        An update whose ``previous_segment`` or sequence is stale is skipped (compare-and-set).
        The same update sent again (a resend after a lost reply) reads as stored, so its change
        is still published. A stored change is marked unannounced until :meth:`mark_announced`.
        ``due`` sets when
        (stream clock) each customer's segment is next due to change; None forgets it.
        """
        ...

    async def mark_announced(
        self,
        customer_ids: Sequence[str],
        counts: Mapping[str, int] | None = None,
        offsets: Mapping[str, int] | None = None,
    ) -> None:
        """Clear the unannounced mark (the customers' last changes are published), add
        ``counts`` to the service-wide counters and store the partitions' next ``offsets``."""
        ...

    async def offsets(self) -> dict[str, int]:
        """The next offset stored per ``topic:partition``."""
        ...

    async def last_changes(self, customer_ids: Sequence[str]) -> list[str | None]:
        """Each customer's last recorded change (JSON), or None."""
        ...

    async def get(self, customer_id: str) -> CustomerState | None:
        """The full state of one customer (items and applied event ids included)."""
        ...

    async def load(self, customer_ids: Sequence[str]) -> list[CustomerState | None]:
        """Several customers' states (without items and event ids)."""
        ...

    async def schedule(self, due: Mapping[str, float]) -> None:
        """Set when (stream clock) each customer's segment is next due to change."""
        ...

    async def pop_due(self, now: float, limit: int, lease_s: float = DUE_LEASE_S) -> list[str]:
        """Take up to ``limit`` customers due by ``now``; each is taken by one caller only.

        Taken customers come due again at ``now + lease_s`` unless rescheduled (or
        unscheduled) before: a caller that dies loses nobody.
        """
        ...

    async def unschedule(self, customer_ids: Sequence[str]) -> None:
        """Forget the due times of these customers."""
        ...

    async def due_count(self, until: float | None = None) -> int:
        """How many customers are scheduled (due by ``until``, if given)."""
        ...

    async def segment_counts(self) -> dict[str, int]:
        """Customers per segment now (segments with none are left out)."""
        ...

    def scan(self, batch_size: int = 1000) -> AsyncIterator[list[CustomerState]]:
        """Every customer's state, in batches, without items and event ids."""
        ...

    def scan_from(
        self, cursor: str = "0", batch_size: int = 1000
    ) -> AsyncIterator[tuple[str, list[CustomerState]]]:
        """Every customer's state from ``cursor`` on, in pages, each with the cursor after it.

        ``"0"`` starts at the beginning; a page's cursor, given to another call (by another
        process too), goes on after that page; the last page's cursor is ``"0"``. There is at
        least one page, and a page may be empty. A customer stored for the whole scan is in
        at least one page (perhaps in two); one stored meanwhile may or may not be.
        """
        ...

    async def put(self, states: Sequence[CustomerState]) -> None:
        """Write whole states (items and applied event ids included), replacing what is there."""
        ...

    async def put_columns(self, columns: StateColumns) -> None:
        """Write fresh whole states given column by column (a bulk write), as :meth:`put`."""
        ...

    async def advance_clock(self, event_time: float) -> float:
        """Move the event-time clock forward to ``event_time`` (never back); return it."""
        ...

    async def set_clock(self, event_time: float) -> float:
        """Set the clock to ``event_time``, back or forward; no watermark stays above it."""
        ...

    async def epoch(self) -> int | None:
        """The store epoch (the floor of its sequence numbers), or None if it has none."""
        ...

    async def create_epoch(self, epoch: int) -> int:
        """Write the store epoch unless there is one; return the store's epoch."""
        ...

    async def has_state(self) -> bool:
        """Whether the store holds anything the stream wrote (clock, counters, watermarks)."""
        ...

    async def clock(self) -> float | None:
        """The event-time clock (the lowest partition watermark, never moving back), or None."""
        ...

    async def add_counters(self, counts: Mapping[str, int]) -> None:
        """Add to the service-wide counters."""
        ...

    async def counters(self) -> dict[str, int]:
        """The service-wide counters."""
        ...

    async def history(self, customer_id: str) -> list[str]:
        """The customer's recent segment changes, newest first, as JSON texts."""
        ...


class SegmentIndex(Protocol):
    """What the store keeps for reading segments back: members, flows and sizes per day.

    Days are stream-clock days (UTC), as ``YYYY-MM-DD``; ``since`` and ``until`` are
    inclusive, None for no bound.
    """

    async def ensure_indexes(self) -> None:
        """Build the segment counts and member indexes where the store has none yet.

        Once, for a store written by an older release or after a bulk write (``put``): it
        reads every state, in one script each, so no change recorded meanwhile is lost.
        """
        ...

    async def load_rfm(self, customer_ids: Sequence[str]) -> list[CustomerState | None]:
        """Several customers' states with only what RFM needs, their country and segment.

        Other fields keep their defaults (None where unknown); lighter than ``load``.
        """
        ...

    async def segment_page(self, segment: str, after: str, limit: int) -> list[str]:
        """Up to ``limit`` customer ids in ``segment`` now, in id order, after ``after``."""
        ...

    async def flows(
        self, since: str | None = None, until: str | None = None
    ) -> dict[str, dict[tuple[str, str, str], int]]:
        """Per day, ``(from segment ('' for none), to segment, reason)`` -> changes."""
        ...

    async def daily_sizes(
        self, since: str | None = None, until: str | None = None
    ) -> dict[str, dict[str, int]]:
        """Per day, the size of each segment after its last change that day."""
        ...


class Publisher(Protocol):
    """Where segment changes and dead letters go. Returns once the broker has them."""

    async def publish_changes(self, changes: Sequence[ChangeMessage]) -> None:
        """Publish segment changes keyed by customer id."""
        ...

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Publish dead letters keyed like their source message."""
        ...


class ModelVersions(Protocol):
    """The model versions every worker shares, and which one serves."""

    async def current_version(self) -> str | None:
        """The version every worker should serve, or None."""
        ...

    async def load(self, version: str) -> LoadedModel:
        """Load and check one version (``ModelArtifactError`` if it does not load)."""
        ...

    async def load_current(self) -> LoadedModel | None:
        """Load the current version, or None while there is none."""
        ...

    async def import_dir(self, path: Path) -> str:
        """Register a directory written by ``rfm train``; current only if none is."""
        ...

    async def publish(self, segmenter: RFMSegmenter, card: Mapping[str, Any]) -> str:
        """Store a new model as a version and make it the current one."""
        ...


class RetrainCoordination(Protocol):
    """What workers agree on to retrain one at a time."""

    async def take_retrain_lock(self, token: str, ttl_s: float) -> bool:
        """Take the retrain lock for ``ttl_s`` seconds; False if another holds it."""
        ...

    async def renew_retrain_lock(self, token: str, ttl_s: float) -> bool:
        """Make the lock expire ``ttl_s`` seconds from now; False if ``token`` lost it."""
        ...

    async def release_retrain_lock(self, token: str) -> bool:
        """Release the lock if ``token`` still holds it."""
        ...

    async def request_retrain(self) -> str:
        """Ask the workers to retrain at their next opportunity; return the request."""
        ...

    async def retrain_request(self) -> str | None:
        """The pending request, or None (reading it leaves it pending)."""
        ...

    async def clear_retrain_request(self, request: str) -> bool:
        """Delete the pending request if it is still ``request`` (once its attempt is
        recorded)."""
        ...

    async def record_attempt(self, outcome: Mapping[str, Any]) -> None:
        """Record what the last retrain attempt did."""
        ...

    async def last_attempt(self) -> dict[str, Any]:
        """The last recorded attempt; empty if none."""
        ...


@dataclass(frozen=True, slots=True)
class RescoreProgress:
    """Where re-scoring every customer with one model version stands.

    Attributes
    ----------
    version
        The model version.
    cursor
        Where the next batch starts (a cursor of :meth:`CustomerStore.scan_from`).
    customers, changed
        Customers re-scored so far, and how many of them changed segment (a batch re-scored
        again after a worker died counts twice).
    leases
        How many times a worker took the job (more than one: a worker took it over).
    done
        Every customer was re-scored.
    """

    version: str
    cursor: str = "0"
    customers: int = 0
    changed: int = 0
    leases: int = 0
    done: bool = False


class RescoreJobs(Protocol):
    """The re-score job of each model version: a cursor and a lease, shared by the workers.

    The job is opened when the pointer moves to the version; one worker at a time holds its
    lease, re-scores a batch, then stores the cursor reached (which renews the lease). When
    the holder dies, its lease lapses and another worker goes on from the cursor.
    """

    async def take_rescore(
        self, version: str, token: str, lease_s: float
    ) -> RescoreProgress | None:
        """Take the lease of ``version``'s unfinished job for ``lease_s`` seconds.

        Returns the job, or None: no unfinished job for it, it is not the current version,
        or another worker's lease runs.
        """
        ...

    async def advance_rescore(
        self,
        version: str,
        token: str,
        cursor: str,
        customers: int,
        changed: int,
        lease_s: float,
    ) -> bool:
        """Store the cursor reached (``"0"``: the job is done) and renew the lease.

        ``customers`` and ``changed`` count the batch just re-scored. False: ``token`` lost
        the lease or the version is no longer current; stop.
        """
        ...

    async def release_rescore(self, version: str, token: str) -> None:
        """Give the lease up (if ``token`` holds it), so another worker goes on at once."""
        ...

    async def rescore_progress(self, version: str) -> RescoreProgress | None:
        """Where the job of ``version`` stands, or None if there is none."""
        ...
