"""Sanity bounds on order events: what no real order carries sends the event to dead letters.

The schema (:mod:`stream_app.core.events`) says what an event is; these bounds say what one
believably is. A quantity of 10^12 or a price of 10^300 is well-formed and would still turn
its customer into a champion, and a date years ahead would move the event-time clock for
everyone. The defaults are generous (``RFM_MAX_QUANTITY``, ``RFM_MAX_UNIT_PRICE``,
``RFM_MAX_ORDER_VALUE``, ``RFM_MAX_EVENT_AHEAD_S``): a shop tightens them to what it sells.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """The largest believable order line, order and event time.

    Parameters
    ----------
    max_quantity
        Units on one line.
    max_unit_price
        Price of one unit.
    max_order_value
        Sum of quantity x unit price over an event's lines.
    max_ahead_s
        How far after the wall clock an event may be dated (clocks drift, time zones get
        mixed up: a day by default).
    """

    max_quantity: int = 1_000_000
    max_unit_price: float = 1_000_000.0
    max_order_value: float = 100_000_000.0
    max_ahead_s: float = 86_400.0

    def line_problem(self, index: int, quantity: int, unit_price: float) -> str | None:
        """Why line ``index`` is not believable, or None.

        >>> Limits().line_problem(0, 10**17, 1.0)
        'lines.0.quantity: 100000000000000000 is above the largest quantity (1000000)'
        """
        if quantity > self.max_quantity:
            return (
                f"lines.{index}.quantity: {quantity} is above the largest quantity "
                f"({self.max_quantity})"
            )
        if unit_price > self.max_unit_price:
            return (
                f"lines.{index}.unit_price: {unit_price:g} is above the largest unit price "
                f"({self.max_unit_price:g})"
            )
        return None

    def value_problem(self, value: float) -> str | None:
        """Why an order worth ``value`` is not believable, or None.

        >>> Limits(max_order_value=100.0).value_problem(250.0)
        'order value 250 is above the largest order value (100)'
        """
        if not value <= self.max_order_value:  # also catches NaN
            return (
                f"order value {value:g} is above the largest order value ({self.max_order_value:g})"
            )
        return None

    def time_problem(self, occurred_at: float, wall_now: float) -> str | None:
        """Why an event dated ``occurred_at`` is not believable at ``wall_now``, or None.

        >>> Limits(max_ahead_s=60).time_problem(120.0, wall_now=0.0)[:50]
        'occurred_at 1970-01-01T00:02:00+00:00 is more than'
        >>> Limits(max_ahead_s=60).time_problem(50.0, wall_now=0.0) is None
        True
        """
        if occurred_at - wall_now > self.max_ahead_s:
            return (
                f"occurred_at {_iso(occurred_at)} is more than {self.max_ahead_s:g} s after "
                f"the wall clock ({_iso(wall_now)})"
            )
        return None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


#: The defaults of the settings.
DEFAULT_LIMITS = Limits()
