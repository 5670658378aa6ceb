"""What one order event does to a customer's state, decided without any I/O.

The stream applies the same rules as the batch pipeline (:mod:`model_training.data.rules`): lines
whose stock code is not a product or whose price is zero change nothing but are counted, and
the rest is summed per stock code so that the Redis script receives one entry per stock code.
Two equal lines in one event are two lines: dropping exact duplicate rows is a property of a
source file, which the replayer applies before publishing (as the batch pipeline does).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from model_training.data.rules import is_product_code
from stream_app.core.events import OrderEvent

__all__ = ["ItemDelta", "OrderEffect", "order_effect"]

#: A shop has thousands of stock codes, each seen again and again: remember the answers.
_is_product = lru_cache(maxsize=1 << 16)(is_product_code)


class ItemDelta(NamedTuple):
    """Units and their value for one stock code within one event."""

    sku: str
    units: int
    value: float


@dataclass(frozen=True, slots=True)
class OrderEffect:
    """The part of an order event that touches RFM state.

    The stock codes, their units and their values are held column by column (``skus``,
    ``units``, ``values``, one entry per stock code): that is how the Redis script takes
    them, and it spares the stream an object per line. :attr:`items` gives them row by row.
    """

    customer_id: str
    event_id: str
    is_return: bool
    occurred_at: float  # epoch seconds
    country: str
    skus: tuple[str, ...] = ()
    units: tuple[int, ...] = ()
    values: tuple[float, ...] = ()
    skipped_non_product: int = 0
    skipped_zero_price: int = 0

    @classmethod
    def of(
        cls,
        customer_id: str,
        event_id: str,
        is_return: bool,
        occurred_at: float,
        country: str,
        items: Iterable[ItemDelta | tuple[str, int, float]],
    ) -> OrderEffect:
        """Build an effect from its items, row by row."""
        rows = tuple(items)
        skus, units, values = zip(*rows, strict=True) if rows else ((), (), ())
        return cls(customer_id, event_id, is_return, occurred_at, country, skus, units, values)

    @property
    def items(self) -> tuple[ItemDelta, ...]:
        """One :class:`ItemDelta` per stock code."""
        return tuple(map(ItemDelta, self.skus, self.units, self.values))

    @property
    def total(self) -> float:
        """The value of all the event's product lines."""
        return sum(self.values)

    @property
    def counts_as_purchase(self) -> bool:
        """A purchase with at least one valid line adds to frequency."""
        return not self.is_return and bool(self.skus)


def order_effect(event: OrderEvent) -> OrderEffect:
    """Reduce a validated order event to its effect on RFM state.

    Examples
    --------
    >>> from stream_app.core.events import parse_order_event
    >>> event = parse_order_event(
    ...     '{"event_id": "536365", "kind": "purchase", "order_id": "536365",'
    ...     ' "customer_id": "17850", "occurred_at": "2010-12-01T08:26:00Z",'
    ...     ' "lines": [{"sku": "85123A", "quantity": 6, "unit_price": 2.55},'
    ...     '           {"sku": "85123A", "quantity": 2, "unit_price": 2.55},'
    ...     '           {"sku": "POST", "quantity": 1, "unit_price": 18.0}]}')
    >>> effect = order_effect(event)
    >>> effect.items, effect.skipped_non_product
    ((ItemDelta(sku='85123A', units=8, value=20.4),), 1)
    """
    units: dict[str, int] = {}
    values: dict[str, float] = {}
    non_product = zero_price = 0
    for line in event.lines:
        sku = line["sku"]
        if not _is_product(sku):
            non_product += 1
            continue
        price = line["unit_price"]
        if price <= 0:
            zero_price += 1
            continue
        quantity = line["quantity"]
        units[sku] = units.get(sku, 0) + quantity
        values[sku] = values.get(sku, 0.0) + quantity * price
    skus = tuple(sorted(units))
    return OrderEffect(
        customer_id=event.customer_id,
        event_id=event.event_id,
        is_return=event.kind == "return",
        occurred_at=event.occurred_at.timestamp(),
        country=event.country or "",
        skus=skus,
        units=tuple(map(units.__getitem__, skus)),
        values=tuple(map(values.__getitem__, skus)),
        skipped_non_product=non_product,
        skipped_zero_price=zero_price,
    )
