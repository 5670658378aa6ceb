"""Load a whole history file straight into the state store: ``rfm bootstrap``.

The result is the state replaying the same file would build, idempotency records included,
so redelivering any of those events later changes nothing. It is computed with the batch
pipeline's vectorised code and written with pipelined bulk writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd

from model_training.data.cleaning import clean_transactions
from model_training.data.loading import load_transactions
from model_training.data.rfm import customer_totals
from model_training.data.rules import DEFAULT_RULE, ProductRule
from stream_app.core.effects import order_effect
from stream_app.core.events import parse_order_event
from stream_app.core.state import CustomerState, ItemTotals
from stream_app.service.order_events import ReplayPlan, build_events
from stream_app.service.ports import CustomerStore
from stream_app.service.processor import new_epoch

__all__ = ["bootstrap_states", "load_history"]


def bootstrap_states(
    frame: pd.DataFrame, plan: ReplayPlan | None = None, rule: ProductRule = DEFAULT_RULE
) -> list[CustomerState]:
    """Every customer's state after all the frame's events, as replaying would leave it.

    ``plan`` is the frame's replay plan when the caller has it already. ``rule`` tells
    products from other stock codes; it must be the workers' (``RFM_NON_PRODUCT_PATTERN``) for
    the state to be the one replaying would build.
    """
    plan = plan if plan is not None else build_events(frame)
    orders: dict[str, set[str]] = {}
    digests: dict[str, dict[str, str]] = {}
    for key, value in plan.events:
        event = parse_order_event(value)
        customer = key.decode()
        orders.setdefault(customer, set()).add(event.event_id)
        # Kept as the stream keeps them: a later redelivery with other content is a conflict.
        digests.setdefault(customer, {})[event.event_id] = order_effect(event, rule).digest

    clean = clean_transactions(frame, rule)
    per_customer = customer_totals(clean)
    lines = clean.lines
    purchases = lines[~lines["is_return"]]
    returns = lines[lines["is_return"]]

    items: dict[str, dict[str, ItemTotals]] = {}
    bought = purchases.groupby(["customer_id", "sku"], observed=True)["units"].sum()
    returned = returns.groupby(["customer_id", "sku"], observed=True).agg(
        units=("units", "sum"), value=("value", "sum")
    )
    for customer, sku, units in zip(
        bought.index.get_level_values(0),
        bought.index.get_level_values(1),
        bought.to_numpy().tolist(),
        strict=True,
    ):
        items.setdefault(str(customer), {})[str(sku)] = ItemTotals(bought=int(units))
    for customer, sku, units, value in zip(
        returned.index.get_level_values(0),
        returned.index.get_level_values(1),
        returned["units"].to_numpy().tolist(),
        returned["value"].to_numpy().tolist(),
        strict=True,
    ):
        per_sku = items.setdefault(str(customer), {})
        before = per_sku.get(str(sku), ItemTotals())
        per_sku[str(sku)] = ItemTotals(before.bought, int(units), float(value))

    states = []
    records = per_customer.to_dict("index")
    for customer in sorted(orders):
        record = records.get(customer)
        if record is None:
            states.append(
                CustomerState(
                    customer,
                    items=items.get(customer, {}),
                    orders=frozenset(orders[customer]),
                    digests=digests[customer],
                )
            )
            continue
        states.append(
            CustomerState(
                customer_id=customer,
                frequency=int(record["frequency"]),
                spent=float(record["spent"]),
                returned_matched=float(record["returned_matched"]),
                first_purchase=pd.Timestamp(record["first_purchase"])
                .tz_localize("UTC")
                .timestamp(),
                last_purchase=pd.Timestamp(record["last_purchase"]).tz_localize("UTC").timestamp(),
                last_order=str(record["last_order"]),
                country=str(record["country"]),
                items=items.get(customer, {}),
                orders=frozenset(orders[customer]),
                digests=digests[customer],
            )
        )
    return states


async def load_history(
    store: CustomerStore,
    path: str | Path,
    chunk: int = 500,
    on_progress: Callable[[int], None] | None = None,
    rule: ProductRule = DEFAULT_RULE,
) -> list[CustomerState]:
    """Write the states of a history file into ``store``; return them.

    The stream clock moves to the file's last event time, as a replay would move it. ``rule``
    is the workers' product rule (``Settings.product_rule``).
    """
    frame = load_transactions(path)
    plan = build_events(frame)
    states = bootstrap_states(frame, plan, rule)
    for first in range(0, len(states), chunk):
        block = states[first : first + chunk]
        await store.put(block)
        if on_progress is not None:
            on_progress(len(block))
    if plan.events:
        latest = max(json.loads(value)["occurred_at"] for _, value in plan.events)
        await store.advance_clock(datetime.fromisoformat(latest).timestamp())
    # A store rebuilt after a loss gets a new epoch: workers waiting on it resume, and number
    # their changes above the lost store's.
    await store.create_epoch(new_epoch(time.time()))
    return states
