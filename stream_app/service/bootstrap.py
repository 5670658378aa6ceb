"""Load a whole history file straight into the state store: ``rfm bootstrap``.

The result is the state replaying the same file would build, idempotency records included,
so redelivering any of those events later changes nothing. It is computed from the events'
lines with array operations (the lines :func:`~stream_app.service.order_events.build_events`
turns into events, the stream's product rule and its arithmetic) and written with pipelined
bulk writes, without building an event or a state object per customer. Each event's content
digest is :func:`~stream_app.core.effects.content_digest` of the same stock codes, units and
values, summed in the same order, as the worker's effect of that event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import TypeAdapter, ValidationError

from model_training.data.loading import load_transactions
from model_training.data.rules import DEFAULT_RULE, ProductRule
from stream_app.core.columns import StateColumns
from stream_app.core.effects import content_digest
from stream_app.core.events import InvalidEvent, OrderEvent, OrderLine
from stream_app.core.limits import DEFAULT_LIMITS, Limits
from stream_app.core.state import CustomerState
from stream_app.service.order_events import event_lines
from stream_app.service.ports import CustomerStore
from stream_app.service.processor import new_epoch

__all__ = ["bootstrap_states", "history_columns", "load_history"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Customers per bulk write (one round trip each).
BLOCK = 2_000


def bootstrap_states(frame: pd.DataFrame, rule: ProductRule = DEFAULT_RULE) -> list[CustomerState]:
    """Every customer's state after all the frame's events, as replaying would leave it.

    ``rule`` tells products from other stock codes; it must be the workers'
    (``RFM_NON_PRODUCT_PATTERN``) for the state to be the one replaying would build.
    """
    return history_columns(frame, rule)[0].states()


def history_columns(
    frame: pd.DataFrame, rule: ProductRule = DEFAULT_RULE, limits: Limits = DEFAULT_LIMITS
) -> tuple[StateColumns, float | None]:
    """The states replaying the frame's events leaves, column by column, sorted by customer.

    Also returns the latest event time (epoch seconds; None without events).

    Raises
    ------
    InvalidEvent
        An event is beyond ``limits``, or an id or stock code is one the event schema refuses:
        the worker would not apply the event, so no bootstrap can give the state a replay
        builds.
    """
    lines, _ = event_lines(frame)
    invoices = lines["invoice"].to_numpy(dtype=object)
    count = len(invoices)
    starts = np.flatnonzero(np.r_[True, invoices[1:] != invoices[:-1]]) if count else np.r_[0:0]
    event_of_line = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, count]))
    quantity = np.abs(lines["quantity"].to_numpy(dtype=np.int64))
    price = lines["unit_price"].to_numpy(dtype=np.float64)
    value = quantity * price
    _check_limits(invoices, starts, event_of_line, quantity, price, value, limits)

    event_ids = invoices[starts]
    customers = lines["customer_id"].to_numpy(dtype=object)[starts]
    skus = lines["sku"].to_numpy(dtype=object)
    codes, uniques = pd.factorize(skus)
    _check_values(event_ids, pd.unique(customers), uniques)
    returns = lines["is_return"].to_numpy(dtype=np.bool_)[starts]
    seconds = lines["invoice_time"].to_numpy().astype("datetime64[s]").astype(np.int64)
    times = seconds[starts].astype(np.float64)
    countries = lines["country"].astype(object).fillna("").to_numpy(dtype=object)[starts]

    # The worker's effect of each event: per product stock code (price above zero), in code
    # order, the units and the values summed line by line in file order.
    product = np.fromiter((rule.is_product(sku) for sku in uniques), np.bool_, len(uniques))
    keep = np.flatnonzero(product[codes] & (price > 0))
    rank = _python_order(uniques)
    key = event_of_line[keep] * len(uniques) + rank[codes[keep]]
    order = keep[np.argsort(key, kind="stable")]
    key_sorted = event_of_line[order] * len(uniques) + rank[codes[order]]
    groups = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]]) if len(order) else keep
    group_units = np.add.reduceat(quantity[order], groups) if len(order) else quantity[:0]
    group_values = _sequential_sums(value[order], groups)
    group_event = event_of_line[order][groups]
    group_sku = codes[order][groups]
    group_skus = uniques[group_sku]
    bounds = np.searchsorted(group_event, np.arange(len(starts) + 1))

    digests, totals = _digests(
        returns, customers, countries, times, bounds, group_skus, group_units, group_values
    )
    columns = _per_customer(
        event_ids, customers, returns, times, countries, bounds, digests, totals,
        group_event, group_sku, uniques, group_units, group_values,
    )  # fmt: skip
    latest = float(times.max()) if len(times) else None
    return columns, latest


def _check_limits(
    invoices: npt.NDArray[np.object_],
    starts: IntArray,
    event_of_line: IntArray,
    quantity: IntArray,
    price: npt.NDArray[np.float64],
    value: npt.NDArray[np.float64],
    limits: Limits,
) -> None:
    """Raise the worker's :class:`InvalidEvent` for the first line or order beyond limits."""
    beyond = np.flatnonzero((quantity > limits.max_quantity) | (price > limits.max_unit_price))
    if len(beyond):
        row = int(beyond[0])
        event = int(event_of_line[row])
        problem = limits.line_problem(row - int(starts[event]), int(quantity[row]), price[row])
        raise InvalidEvent(f"event {invoices[row]}: {problem}")
    if len(starts):
        order_values = np.add.reduceat(value, starts)
        bad = np.flatnonzero(~(order_values <= limits.max_order_value))
        if len(bad):
            event = int(bad[0])
            problem = limits.value_problem(float(order_values[event]))
            raise InvalidEvent(f"event {invoices[starts[event]]}: {problem}")


def _check_values(
    event_ids: npt.NDArray[np.object_],
    customers: npt.NDArray[np.object_],
    skus: npt.NDArray[np.object_],
) -> None:
    """Raise :class:`InvalidEvent` for an id or stock code the event schema refuses."""
    fields = OrderEvent.model_fields
    for name, values, rule in (
        ("event_id", event_ids, Annotated[str, fields["event_id"]]),
        ("customer_id", customers, Annotated[str, fields["customer_id"]]),
        ("sku", skus, get_type_hints(OrderLine, include_extras=True)["sku"]),
    ):
        try:
            TypeAdapter(list[rule]).validate_python(values.tolist())  # type: ignore[valid-type]
        except ValidationError as exc:
            error = exc.errors()[0]
            value = values[int(error["loc"][0])]
            raise InvalidEvent(f"{name} {value!r}: {error['msg']}") from exc


def _python_order(values: npt.NDArray[np.object_]) -> IntArray:
    """Each value's rank in Python's order of ``str`` (how the worker sorts stock codes)."""
    rank = np.empty(len(values), dtype=np.int64)
    rank[sorted(range(len(values)), key=values.__getitem__)] = np.arange(len(values))
    return rank


def _sequential_sums(values: npt.NDArray[np.float64], starts: IntArray) -> npt.NDArray[np.float64]:
    """Per group (rows ``starts[g]`` to the next start), the sum left to right, as Python's
    ``+`` adds: every bit as the worker's effect has it (NumPy sums pairwise)."""
    if not len(values):
        return values
    sizes = np.diff(np.r_[starts, len(values)])
    sums = values[starts].copy()
    group = np.repeat(np.arange(len(starts)), sizes)
    within = np.arange(len(values)) - starts[group]
    later = np.flatnonzero(within > 0)
    for step in range(1, int(sizes.max())):
        rows = later[within[later] == step]
        sums[group[rows]] += values[rows]  # one row per group at each step
    return sums


def _digests(
    returns: npt.NDArray[np.bool_],
    customers: npt.NDArray[np.object_],
    countries: npt.NDArray[np.object_],
    times: npt.NDArray[np.float64],
    bounds: IntArray,
    skus: npt.NDArray[np.object_],
    units: IntArray,
    values: npt.NDArray[np.float64],
) -> tuple[list[str], list[float]]:
    """Each event's content digest and total value, as the worker's effect gives them."""
    edges, sku_list = bounds.tolist(), skus.tolist()
    unit_list, value_list = units.tolist(), values.tolist()
    digests, totals = [], []
    for event, (is_return, customer, country, moment) in enumerate(
        zip(returns.tolist(), customers.tolist(), countries.tolist(), times.tolist(), strict=True)
    ):
        first, last = edges[event], edges[event + 1]
        event_values = tuple(value_list[first:last])
        digests.append(
            content_digest(
                is_return,
                customer,
                country,
                moment,
                tuple(sku_list[first:last]),
                tuple(unit_list[first:last]),
                event_values,
            )
        )
        totals.append(sum(event_values))
    return digests, totals


def _per_customer(
    event_ids: npt.NDArray[np.object_],
    customers: npt.NDArray[np.object_],
    returns: npt.NDArray[np.bool_],
    times: npt.NDArray[np.float64],
    countries: npt.NDArray[np.object_],
    bounds: IntArray,
    digests: list[str],
    totals: list[float],
    group_event: IntArray,
    group_sku: IntArray,
    skus: npt.NDArray[np.object_],
    group_units: IntArray,
    group_values: npt.NDArray[np.float64],
) -> StateColumns:
    """Gather the events' effects per customer (customers in Python's order of ids).

    Events come in the order the worker compares them by, (time, event id); ``group_sku`` is
    each (event, stock code) group's index into ``skus``.
    """
    codes, ids = pd.factorize(customers)
    rank = _python_order(ids)
    owner = rank[codes] if len(codes) else codes
    people = len(ids)
    sorted_ids = ids[np.argsort(rank)].tolist() if people else []
    by_customer = np.argsort(owner, kind="stable")
    event_starts = np.r_[0, np.cumsum(np.bincount(owner, minlength=people))]

    # RFM from the purchases with a product line; the latest (the last in event order) gives
    # the country and the last order, as apply.lua keeps them.
    counted = np.flatnonzero(~returns & (np.diff(bounds) > 0))
    buyers = owner[counted]
    frequency = np.bincount(buyers, minlength=people).astype(np.int64)
    spent = _sums(buyers, np.asarray(totals, dtype=np.float64)[counted], people)
    first_purchase = np.full(people, np.inf)
    np.minimum.at(first_purchase, buyers, times[counted])
    first_purchase[np.isinf(first_purchase)] = np.nan
    latest = np.full(people, -1, dtype=np.int64)
    np.maximum.at(latest, buyers, counted)
    bought_any = latest >= 0
    last_purchase = np.where(bought_any, times[latest], np.nan)
    last_order = np.where(bought_any, event_ids[latest], "").tolist()
    country = np.where(bought_any, countries[latest], "").tolist()

    # Items per customer and stock code: units bought, and units and value returned.
    group_return = returns[group_event]
    key = (owner[group_event] if len(group_event) else group_event) * len(skus) + group_sku
    order = np.argsort(key, kind="stable")
    key = key[order]
    firsts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else order
    units, back = group_units[order], group_return[order]

    def per_item(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.add.reduceat(values, firsts) if len(firsts) else values[:0]

    bought = per_item(np.where(back, 0, units))
    returned = per_item(np.where(back, units, 0))
    returned_value = per_item(np.where(back, group_values[order], 0.0))
    item_owner = key[firsts] // max(len(skus), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        matched = np.where(
            returned > 0, np.minimum(returned, bought) * (returned_value / returned), 0.0
        )
    return StateColumns(
        customers=sorted_ids,
        frequency=frequency,
        spent=spent,
        returned_matched=_sums(item_owner, matched, people),
        first_purchase=first_purchase,
        last_purchase=last_purchase,
        last_order=last_order,
        country=country,
        item_starts=np.r_[0, np.cumsum(np.bincount(item_owner, minlength=people))],
        skus=skus[key[firsts] % max(len(skus), 1)].tolist(),
        bought=bought.astype(np.int64),
        returned=returned.astype(np.int64),
        returned_value=returned_value.astype(np.float64),
        event_starts=event_starts,
        event_ids=event_ids[by_customer].tolist(),
        digests=[digests[event] for event in by_customer.tolist()],
    )


def _sums(owners: IntArray, values: npt.NDArray[np.float64], people: int) -> FloatArray:
    """Per customer, the sum of their ``values``."""
    return np.bincount(owners, weights=values, minlength=people).astype(np.float64)


async def load_history(
    store: CustomerStore,
    path: str | Path,
    chunk: int = BLOCK,
    on_progress: Callable[[int], None] | None = None,
    rule: ProductRule = DEFAULT_RULE,
) -> StateColumns:
    """Write the states of a history file into ``store``; return them.

    The stream clock moves to the file's last event time, as a replay would move it. ``rule``
    is the workers' product rule (``Settings.product_rule``). ``chunk`` customers go in each
    bulk write; ``on_progress`` hears how many after each.
    """
    columns, latest = history_columns(load_transactions(path), rule)
    for block in columns.blocks(chunk):
        await store.put_columns(block)
        if on_progress is not None:
            on_progress(len(block))
    if latest is not None:
        await store.advance_clock(latest)
    # A store rebuilt after a loss gets a new epoch: workers waiting on it resume, and number
    # their changes above the lost store's.
    await store.create_epoch(new_epoch(time.time()))
    return columns
