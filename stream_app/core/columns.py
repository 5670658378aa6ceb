"""Many customers' whole states column by column: what a bulk write of a history takes.

``rfm bootstrap`` computes the states of a whole history file with array operations; building
a :class:`~stream_app.core.state.CustomerState` per customer (and an
:class:`~stream_app.core.state.ItemTotals` per stock code) only to take them apart again for
Redis cost more than the rest. :class:`StateColumns` keeps them as arrays, customer by
customer, and builds the objects only when asked (:meth:`StateColumns.states`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_app.core.state import CustomerState, ItemTotals

__all__ = ["StateColumns"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class StateColumns:
    """Fresh states (no segment yet) of customers ``customers[i]``, one row each.

    Times are epoch seconds, NaN for none. A customer's stock codes are the rows
    ``item_starts[i]:item_starts[i + 1]`` of the item columns, their applied events the rows
    ``event_starts[i]:event_starts[i + 1]`` of ``event_ids`` and ``digests``.
    """

    customers: list[str]
    frequency: IntArray
    spent: FloatArray
    returned_matched: FloatArray
    first_purchase: FloatArray
    last_purchase: FloatArray
    last_order: list[str]
    country: list[str]
    item_starts: IntArray
    skus: list[str]
    bought: IntArray
    returned: IntArray
    returned_value: FloatArray
    event_starts: IntArray
    event_ids: list[str]
    digests: list[str]

    def __len__(self) -> int:
        return len(self.customers)

    @property
    def events(self) -> int:
        """The applied events, all customers together."""
        return len(self.event_ids)

    def block(self, first: int, last: int) -> StateColumns:
        """The customers ``first`` to ``last - 1`` (their items and events with them)."""
        items = slice(int(self.item_starts[first]), int(self.item_starts[last]))
        events = slice(int(self.event_starts[first]), int(self.event_starts[last]))
        rows = slice(first, last)
        return StateColumns(
            customers=self.customers[rows],
            frequency=self.frequency[rows],
            spent=self.spent[rows],
            returned_matched=self.returned_matched[rows],
            first_purchase=self.first_purchase[rows],
            last_purchase=self.last_purchase[rows],
            last_order=self.last_order[rows],
            country=self.country[rows],
            item_starts=self.item_starts[first : last + 1] - items.start,
            skus=self.skus[items],
            bought=self.bought[items],
            returned=self.returned[items],
            returned_value=self.returned_value[items],
            event_starts=self.event_starts[first : last + 1] - events.start,
            event_ids=self.event_ids[events],
            digests=self.digests[events],
        )

    def blocks(self, size: int) -> list[StateColumns]:
        """Consecutive blocks of at most ``size`` customers."""
        return [
            self.block(first, min(first + size, len(self))) for first in range(0, len(self), size)
        ]

    def has_returns(self) -> BoolArray:
        """Per customer: returned some units (apply.lua matches returns only for those)."""
        owners = np.repeat(np.arange(len(self)), np.diff(self.item_starts))
        found = np.zeros(len(self), dtype=np.bool_)
        found[owners[self.returned > 0]] = True
        return found

    def states(self) -> list[CustomerState]:
        """The states as objects (items, event ids and digests included)."""
        columns: dict[str, list[Any]] = {
            name: getattr(self, name).tolist()
            for name in (
                "frequency", "spent", "returned_matched", "first_purchase", "last_purchase",
                "item_starts", "bought", "returned", "returned_value", "event_starts",
            )
        }  # fmt: skip
        items, events = columns["item_starts"], columns["event_starts"]
        states = []
        for index, customer in enumerate(self.customers):
            first, last = columns["first_purchase"][index], columns["last_purchase"][index]
            rows = range(items[index], items[index + 1])
            applied = range(events[index], events[index + 1])
            states.append(
                CustomerState(
                    customer,
                    frequency=columns["frequency"][index],
                    spent=columns["spent"][index],
                    returned_matched=columns["returned_matched"][index],
                    first_purchase=None if math.isnan(first) else first,
                    last_purchase=None if math.isnan(last) else last,
                    last_order=self.last_order[index],
                    country=self.country[index],
                    items={
                        self.skus[row]: ItemTotals(
                            columns["bought"][row],
                            columns["returned"][row],
                            columns["returned_value"][row],
                        )
                        for row in rows
                    },
                    orders=frozenset(self.event_ids[row] for row in applied),
                    digests={
                        self.event_ids[row]: self.digests[row]
                        for row in applied
                        if self.digests[row]
                    },
                )
            )
        return states
