"""What one order event does to a customer's state, decided without any I/O.

The stream applies the same rules as the batch pipeline (:mod:`model_training.data.rules`): lines
whose stock code is not a product or whose price is zero change nothing but are counted, and
the rest is summed per stock code so that the Redis script receives one entry per stock code.
Two equal lines in one event are two lines: dropping exact duplicate rows is a property of a
source file, which the replayer applies before publishing (as the batch pipeline does).

Building the effect is also where an event's values are judged believable
(:class:`~stream_app.core.limits.Limits`) and where its content digest is taken: the store
keeps the digest with the event id, so that the same id arriving with other content is told
apart from a plain redelivery.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import blake2b
from typing import NamedTuple

from model_training.data.rules import DEFAULT_RULE, ProductRule
from stream_app.core.events import InvalidEvent, OrderEvent
from stream_app.core.limits import DEFAULT_LIMITS, Limits

__all__ = ["DIGEST_BYTES", "ItemDelta", "OrderEffect", "content_digest", "order_effect"]

#: Bytes of an event's content digest (as hex, twice as many characters): two different
#: contents under one event id pass for the same with a chance of 2^-64.
DIGEST_BYTES = 8


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
    #: :func:`content_digest` of the event ("" for effects built by hand, e.g. in tests).
    digest: str = ""

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


def content_digest(
    is_return: bool,
    customer_id: str,
    country: str,
    occurred_at: float,
    skus: tuple[str, ...],
    units: tuple[int, ...],
    values: tuple[float, ...],
) -> str:
    """A short digest of everything in an event that the state depends on: its effect.

    The kind, customer, time and country, and per product stock code the units and their
    value. What changes nothing is left out: descriptions, non-product and zero-price lines,
    how a stock code's units are split over lines, the order id. Built from packed numbers,
    not text: it is taken for every event.

    >>> from stream_app.core.events import parse_order_event
    >>> text = ('{"event_id": "1", "kind": "purchase", "order_id": "1", "customer_id": "7",'
    ...         ' "occurred_at": "2011-01-01T00:00:00Z", "lines": [{"sku": "10A", "quantity": %d,'
    ...         ' "unit_price": 1.5, "description": "MUG"}]}')
    >>> one, same, other = (order_effect(parse_order_event(text % n)) for n in (2, 2, 3))
    >>> one.digest == same.digest, one.digest == other.digest, len(one.digest)
    (True, False, 16)
    """
    count = len(skus)
    text = "\x1f".join(("r" if is_return else "p", customer_id, country, *skus))
    numbers = struct.pack(f"<d{count}q{count}d", occurred_at, *units, *values)
    return blake2b(text.encode() + numbers, digest_size=DIGEST_BYTES).hexdigest()


def order_effect(
    event: OrderEvent,
    rule: ProductRule = DEFAULT_RULE,
    limits: Limits = DEFAULT_LIMITS,
    wall_now: float | None = None,
) -> OrderEffect:
    """Reduce a validated order event to its effect on RFM state.

    Parameters
    ----------
    event
        The validated event.
    rule
        Which stock codes are products.
    limits
        The sanity bounds every line, the order's value and its time must keep.
    wall_now
        The wall clock (epoch seconds) to judge the event's time by; None skips that check.

    Raises
    ------
    InvalidEvent
        A line, the order's value or its time is beyond ``limits``; nothing is applied.

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
    occurred_at = event.occurred_at.timestamp()
    if wall_now is not None and (problem := limits.time_problem(occurred_at, wall_now)):
        raise InvalidEvent(problem)
    is_product = rule.is_product
    units: dict[str, int] = {}
    values: dict[str, float] = {}
    non_product = zero_price = 0
    order_value = 0.0
    for index, line in enumerate(event.lines):
        sku, quantity, price = line["sku"], line["quantity"], line["unit_price"]
        if quantity > limits.max_quantity or price > limits.max_unit_price:
            raise InvalidEvent(limits.line_problem(index, quantity, price) or "")
        value = quantity * price
        order_value += value
        if not is_product(sku):
            non_product += 1
            continue
        if price <= 0:
            zero_price += 1
            continue
        units[sku] = units.get(sku, 0) + quantity
        values[sku] = values.get(sku, 0.0) + value
    if not math.isfinite(order_value) or (problem := limits.value_problem(order_value)):
        raise InvalidEvent(problem or f"order value {order_value:g} is not finite")
    skus = tuple(sorted(units))
    is_return, country = event.kind == "return", event.country or ""
    sku_units = tuple(map(units.__getitem__, skus))
    sku_values = tuple(map(values.__getitem__, skus))
    return OrderEffect(
        customer_id=event.customer_id,
        event_id=event.event_id,
        is_return=is_return,
        occurred_at=occurred_at,
        country=country,
        skus=skus,
        units=sku_units,
        values=sku_values,
        skipped_non_product=non_product,
        skipped_zero_price=zero_price,
        digest=content_digest(
            is_return, event.customer_id, country, occurred_at, skus, sku_units, sku_values
        ),
    )
