"""Redis key formats, in one place.

Every key of one customer shares the hash tag ``{customer_id}`` so that one Lua script can
update them atomically, also on Redis Cluster.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

if TYPE_CHECKING:
    from stream_app.settings import Settings

__all__ = [
    "COUNTER_SHARDS",
    "DUE_SHARDS",
    "ClusterKeys",
    "Keys",
    "keys_for",
    "slot_of",
    "slot_tag",
]

#: Sorted sets the due customers are spread over on a Redis Cluster (by hash slot range).
DUE_SHARDS = 64
#: Hashes the service-wide counters are spread over on a Redis Cluster.
COUNTER_SHARDS = 16


class Keys:
    """Redis key builder for one key prefix (``rfm`` by default)."""

    def __init__(self, prefix: str = "rfm") -> None:
        self.prefix = prefix

    def state(self, customer_id: str) -> str:
        """Hash with the customer's RFM state and current segment."""
        return f"{self.prefix}:{{{customer_id}}}:state"

    def orders(self, customer_id: str) -> str:
        """Set of applied event ids, written by earlier releases: still read (an id in it
        counts as applied), no longer written; :meth:`digests` holds every applied id."""
        return f"{self.prefix}:{{{customer_id}}}:orders"

    def items(self, customer_id: str) -> str:
        """Hash of per-stock-code units bought, units returned and value returned."""
        return f"{self.prefix}:{{{customer_id}}}:items"

    def digests(self, customer_id: str) -> str:
        """Hash of applied event id -> content digest (``""`` for none): the idempotency
        record, and what tells a conflicting redelivery apart."""
        return f"{self.prefix}:{{{customer_id}}}:digests"

    def history(self, customer_id: str) -> str:
        """List of the customer's recent segment changes (bounded)."""
        return f"{self.prefix}:{{{customer_id}}}:history"

    @property
    def customers(self) -> str:
        """Set of every customer id with state."""
        return f"{self.prefix}:customers"

    @property
    def clock(self) -> str:
        """The stream clock (epoch seconds): the lowest partition watermark, never moving back
        but by ``rfm clock set``."""
        return f"{self.prefix}:clock"

    @property
    def watermarks(self) -> str:
        """Hash: orders-topic partition -> largest event time seen there (epoch seconds)."""
        return f"{self.prefix}:clock:watermarks"

    @property
    def offsets(self) -> str:
        """Hash: ``topic:partition`` -> the next offset to read, written with the state the
        offsets before it produced (so that writes Redis lost are read again from Kafka)."""
        return f"{self.prefix}:offsets"

    @property
    def epoch(self) -> str:
        """The store epoch: written with the first state, so that a wiped store is noticed.

        Its value is the floor of the segment-change sequence numbers given under it
        (creation time in seconds, shifted 20 bits): a store rebuilt later numbers above it.
        """
        return f"{self.prefix}:epoch"

    @property
    def counters(self) -> str:
        """Hash of service-wide counters (events applied, duplicates, skipped lines, ...)."""
        return f"{self.prefix}:counters"

    @property
    def segments(self) -> str:
        """Hash: segment -> customers in it now (the field ``""`` marks it built)."""
        return f"{self.prefix}:segments"

    @property
    def indexed(self) -> str:
        """Set of the segments with a member index (the member ``""`` marks them built)."""
        return f"{self.prefix}:segments:indexed"

    def members(self, segment: str) -> str:
        """Sorted set (all scores 0, so ordered by id): the customers in ``segment`` now."""
        return f"{self.prefix}:segment:{segment}"

    @property
    def days(self) -> str:
        """Sorted set (all scores 0, so ordered by date): the days with recorded changes."""
        return f"{self.prefix}:days"

    def flows(self, day: str) -> str:
        """Hash: ``from|to|reason`` -> segment changes recorded on ``day`` (YYYY-MM-DD)."""
        return f"{self.prefix}:flows:{day}"

    def sizes(self, day: str) -> str:
        """Hash: segment -> its customers after its last change on ``day`` (YYYY-MM-DD)."""
        return f"{self.prefix}:sizes:{day}"

    @property
    def due(self) -> str:
        """Sorted set: customer id scored by when (stream clock) their segment next changes."""
        return f"{self.prefix}:due"

    @property
    def model_current(self) -> str:
        """The version id of the model every worker serves."""
        return f"{self.prefix}:model:current"

    @property
    def model_history(self) -> str:
        """List of the versions served before the current one, newest first (for rollback)."""
        return f"{self.prefix}:model:history"

    @property
    def retrain_lock(self) -> str:
        """Lock held by the one worker retraining (expires if that worker dies)."""
        return f"{self.prefix}:retrain:lock"

    @property
    def retrain_requested(self) -> str:
        """Set by ``rfm retrain``: retrain at the next opportunity."""
        return f"{self.prefix}:retrain:requested"

    @property
    def retrain_last(self) -> str:
        """Hash describing the last retrain attempt (time, outcome, reasons, version)."""
        return f"{self.prefix}:retrain:last"

    @property
    def workers(self) -> str:
        """Hash: worker id -> JSON of the model version it serves and when it last said so."""
        return f"{self.prefix}:workers"

    def rescore_job(self, version: str) -> str:
        """Hash: re-scoring every customer with a model version (cursor reached, lease)."""
        return f"{self.prefix}:model:rescore:{version}"

    def rescore_claim(self, version: str) -> str:
        """The claim older releases took to re-score for a version: present means done."""
        return f"{self.prefix}:model:rescored:{version}"

    def customer_of(self, key: str) -> str:
        """The customer id inside one of this prefix's per-customer keys."""
        start = key.index("{") + 1
        return key[start : key.index("}", start)]

    def state_pattern(self) -> str:
        """Glob matching every customer's state key."""
        return f"{self.prefix}:{{*}}:state"


def slot_of(customer_id: str) -> int:
    """The Redis Cluster hash slot of every key of ``customer_id``.

    >>> slot_of("12346"), key_slot(Keys().state("12346").encode())
    (9231, 9231)
    """
    # As Redis finds the hash tag of `{customer_id}` in a key: up to the first `}`.
    return key_slot(f"{{{customer_id}}}".encode())


@cache
def _slot_tags() -> tuple[str, ...]:
    """For each hash slot, the smallest decimal number whose hash tag falls in it."""
    tags: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    left, number = REDIS_CLUSTER_HASH_SLOTS, 0
    while left:
        text = str(number)
        slot = key_slot(text.encode())
        if tags[slot] is None:
            tags[slot] = text
            left -= 1
        number += 1
    return tuple(tag for tag in tags if tag is not None)


def slot_tag(slot: int) -> str:
    """A hash tag of ``slot``: keys ``...{tag}...`` live in that slot.

    >>> key_slot(slot_tag(1234).encode())
    1234
    """
    return _slot_tags()[slot]


class ClusterKeys(Keys):
    """The key layout on a Redis Cluster.

    Each customer's keys are those of :class:`Keys` (one hash tag per customer). What a
    script updates together with a customer lives in the customer's hash slot, one key per
    slot: the store epoch, the customers per segment and the segment member indexes. The
    small service-wide keys a script reads together (clock and watermarks, the model pointer
    and its history and re-score jobs) share the hash tag ``{PREFIX}``, so they are on one
    node. The due set and the counters are spread over :data:`DUE_SHARDS` and
    :data:`COUNTER_SHARDS` keys.
    """

    def _global(self, name: str) -> str:
        return f"{{{self.prefix}}}:{name}"

    def slot_key(self, slot: int, name: str) -> str:
        """The key ``name`` of hash slot ``slot``."""
        return f"{self.prefix}:slot:{{{slot_tag(slot)}}}:{name}"

    def slot_epoch(self, slot: int) -> str:
        """The store epoch, as the customers of ``slot`` see it."""
        return self.slot_key(slot, "epoch")

    def slot_segments(self, slot: int) -> str:
        """Hash: segment -> customers of ``slot`` in it now (field ``""`` marks it built)."""
        return self.slot_key(slot, "segments")

    def slot_indexed(self, slot: int) -> str:
        """Set of the segments with a member index in ``slot`` (``""`` marks them built)."""
        return self.slot_key(slot, "segments:indexed")

    def slot_members_prefix(self, slot: int) -> str:
        """What ``:segment:<name>`` follows in ``slot``'s member index keys."""
        return f"{self.prefix}:slot:{{{slot_tag(slot)}}}"

    def due_shard(self, customer_id: str) -> str:
        """The due set holding ``customer_id``: its slot's range of slots."""
        return self.due_shards[slot_of(customer_id) * DUE_SHARDS // REDIS_CLUSTER_HASH_SLOTS]

    @property
    def due_shards(self) -> list[str]:
        """Every due set, each in the first slot of its range (so mostly with its customers)."""
        width = REDIS_CLUSTER_HASH_SLOTS // DUE_SHARDS
        return [f"{self.prefix}:due:{{{slot_tag(i * width)}}}" for i in range(DUE_SHARDS)]

    @property
    def counter_shards(self) -> list[str]:
        """Every counters hash; a call adds to one, a read sums them all."""
        step = REDIS_CLUSTER_HASH_SLOTS // COUNTER_SHARDS
        return [f"{self.prefix}:counters:{{{slot_tag(i * step)}}}" for i in range(COUNTER_SHARDS)]

    @property
    def clock(self) -> str:
        return self._global("clock")

    @property
    def watermarks(self) -> str:
        return self._global("clock:watermarks")

    @property
    def offsets(self) -> str:
        return self._global("offsets")

    @property
    def epoch(self) -> str:
        return self._global("epoch")

    @property
    def days(self) -> str:
        return self._global("days")

    def flows(self, day: str) -> str:
        return self._global(f"flows:{day}")

    @property
    def model_current(self) -> str:
        return self._global("model:current")

    @property
    def model_history(self) -> str:
        return self._global("model:history")

    @property
    def retrain_lock(self) -> str:
        return self._global("retrain:lock")

    @property
    def retrain_requested(self) -> str:
        return self._global("retrain:requested")

    @property
    def retrain_last(self) -> str:
        return self._global("retrain:last")

    @property
    def workers(self) -> str:
        return self._global("workers")

    def rescore_job(self, version: str) -> str:
        return self._global(f"model:rescore:{version}")

    def rescore_claim(self, version: str) -> str:
        return self._global(f"model:rescored:{version}")


def keys_for(settings: Settings) -> Keys:
    """The key layout the settings ask for: :class:`ClusterKeys` with ``RFM_REDIS_CLUSTER``."""
    return (ClusterKeys if settings.redis_cluster else Keys)(settings.key_prefix)
