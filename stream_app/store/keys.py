"""Redis key formats, in one place.

Every key of one customer shares the hash tag ``{customer_id}`` so that one Lua script can
update them atomically, also on Redis Cluster.
"""

from __future__ import annotations

__all__ = ["Keys"]


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
