"""A customer's RFM state and the pure arithmetic that updates it.

The Redis store runs the same arithmetic in Lua (``apply.lua``); the in-memory store runs this
module. One contract test suite runs against both, so they cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from model_training.data.rules import SECONDS_PER_DAY, matched_return_value
from stream_app.core.effects import OrderEffect

__all__ = ["CustomerState", "ItemTotals", "apply_effect", "conflicting_digest"]


@dataclass(frozen=True, slots=True)
class ItemTotals:
    """Per stock code: units bought, units returned and value of the returned units."""

    bought: int = 0
    returned: int = 0
    returned_value: float = 0.0

    @property
    def matched_value(self) -> float:
        """Value of the returned units that count against the customer."""
        return matched_return_value(self.bought, self.returned, self.returned_value)


@dataclass(slots=True)  # not frozen: built by the thousand per batch, and never mutated
class CustomerState:
    """Everything the stream keeps about one customer."""

    customer_id: str
    frequency: int = 0
    spent: float = 0.0
    returned_matched: float = 0.0
    first_purchase: float | None = None  # epoch seconds
    last_purchase: float | None = None
    last_order: str = ""  # event id of the latest purchase, breaks ties for the country
    country: str = ""
    segment: str | None = None
    segment_since: float | None = None
    model_version: str | None = None
    sequence: int = 0
    segment_rfm: tuple[int, int, float] | None = None  # RFM when the segment was assigned
    unannounced: bool = False  # the last segment change is recorded but not yet published
    items: dict[str, ItemTotals] = field(default_factory=dict)
    orders: frozenset[str] = frozenset()
    #: Applied event id -> content digest (events applied before digests were kept have none).
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def monetary(self) -> float:
        """Purchase value minus the value of matched returned units."""
        return self.spent - self.returned_matched

    @property
    def has_rfm(self) -> bool:
        """Customers with no valid purchase have no RFM row."""
        return self.frequency > 0 and self.last_purchase is not None

    def recency_days(self, now: float) -> int:
        """Whole days (floor) from the last purchase to ``now`` (epoch seconds)."""
        if self.last_purchase is None:
            raise ValueError(f"customer {self.customer_id} has no purchase")
        # An order on a partition ahead of the clock (the slowest partition's) is "today".
        return max(0, math.floor((now - self.last_purchase) / SECONDS_PER_DAY))

    def rfm(self, now: float) -> tuple[int, int, float]:
        """``(recency_days, frequency, monetary)`` at ``now``."""
        return self.recency_days(now), self.frequency, self.monetary


def apply_effect(state: CustomerState, effect: OrderEffect) -> tuple[CustomerState, bool]:
    """Apply one event's effect once; return the new state and whether it was applied.

    An event id already in ``state.orders`` changes nothing, which makes redelivery and
    duplicates harmless. Every part of the state is order-independent.
    """
    if effect.event_id in state.orders:
        return state, False
    digests = state.digests
    if effect.digest:
        digests = {**digests, effect.event_id: effect.digest}
    items = dict(state.items)
    matched_delta = 0.0
    for delta in effect.items:
        before = items.get(delta.sku, ItemTotals())
        if effect.is_return:
            after = ItemTotals(
                before.bought, before.returned + delta.units, before.returned_value + delta.value
            )
        else:
            after = ItemTotals(before.bought + delta.units, before.returned, before.returned_value)
        matched_delta += after.matched_value - before.matched_value
        items[delta.sku] = after

    changes: dict[str, object] = {
        "items": items,
        "orders": state.orders | {effect.event_id},
        "digests": digests,
        "returned_matched": state.returned_matched + matched_delta,
    }
    if effect.counts_as_purchase:
        changes["frequency"] = state.frequency + 1
        changes["spent"] = state.spent + effect.total
        first = state.first_purchase
        changes["first_purchase"] = (
            effect.occurred_at if first is None else min(first, effect.occurred_at)
        )
        if _is_later(effect.occurred_at, effect.event_id, state.last_purchase, state.last_order):
            changes["last_purchase"] = effect.occurred_at
            changes["last_order"] = effect.event_id
            changes["country"] = effect.country
    return replace(state, **changes), True  # type: ignore[arg-type]


def conflicting_digest(state: CustomerState, effect: OrderEffect) -> str | None:
    """The digest stored with ``effect``'s id when that id was applied with other content.

    None for a new event, a plain redelivery, and events applied before digests were kept.
    """
    if effect.event_id not in state.orders or not effect.digest:
        return None
    known = state.digests.get(effect.event_id)
    return known if known is not None and known != effect.digest else None


def _is_later(time: float, event_id: str, last_time: float | None, last_event: str) -> bool:
    if last_time is None:
        return True
    return (time, event_id) > (last_time, last_event)
