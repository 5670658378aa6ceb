"""Turn an Online Retail file into order events, one per invoice (no I/O but reading the file).

One event per invoice (``C`` invoices become returns), keyed by customer, in invoice-time
order. The lines are the batch pipeline's attributable lines (rules 1 and 2 of
:mod:`model_training.data.cleaning`); lines an event cannot carry (a quantity whose sign
disagrees with the invoice kind, a negative price) are dropped and counted, exactly as the
batch pipeline drops them. ``rfm replay`` publishes these events; ``rfm bootstrap`` applies
them straight to the store.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from model_training.data.cleaning import attributable_lines, inconsistent_quantity, return_mask
from model_training.data.loading import load_transactions

__all__ = ["ReplayPlan", "build_events", "event_lines", "plan_replay"]


@dataclass(frozen=True)
class ReplayPlan:
    """The events to publish, as ``(key, value)`` byte pairs, with what was dropped."""

    events: list[tuple[bytes, bytes]]
    counts: dict[str, int] = field(default_factory=dict)


def plan_replay(path: str | Path, shuffle_seed: int | None = None) -> ReplayPlan:
    """Load ``path`` and build its events (shuffled with ``shuffle_seed`` if given)."""
    return build_events(load_transactions(path), shuffle_seed=shuffle_seed)


def event_lines(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The lines events carry, in event order, with the counts of those dropped.

    The lines of one invoice are consecutive, in file order; invoices follow each other by
    invoice time, then number. Adds ``is_return`` (bool) to the loaded columns and
    ``invoice_time``.
    """
    lines, counts = attributable_lines(frame)
    is_return = return_mask(lines)
    unusable = inconsistent_quantity(lines, is_return)
    negative = lines["unit_price"] < 0
    counts["inconsistent_quantity"] = int(unusable.sum())
    counts["negative_price"] = int((negative & ~unusable).sum())
    kept = ~(unusable | negative)
    lines = lines[kept].assign(is_return=is_return[kept])
    return lines.sort_values(["invoice_time", "invoice"], kind="stable"), counts


def build_events(frame: pd.DataFrame, shuffle_seed: int | None = None) -> ReplayPlan:
    """Build one order event per invoice from a loaded transactions frame."""
    lines, counts = event_lines(frame)

    invoices = lines["invoice"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, invoices[1:] != invoices[:-1]])
    ends = np.r_[starts[1:], len(invoices)]
    customers = lines["customer_id"].to_numpy(dtype=object)
    countries = lines["country"].to_numpy(dtype=object)
    times = lines["invoice_time"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_numpy(dtype=object)
    skus = lines["sku"].to_numpy(dtype=object)
    descriptions = lines["description"].to_numpy(dtype=object)
    quantities = np.abs(lines["quantity"].to_numpy()).tolist()
    prices = lines["unit_price"].to_numpy().tolist()
    returns = lines["is_return"].to_numpy()

    events: list[tuple[bytes, bytes]] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        invoice = str(invoices[start])
        customer = str(customers[start])
        country = countries[start]
        event = {
            "event_id": invoice,
            "kind": "return" if returns[start] else "purchase",
            "order_id": invoice,
            "customer_id": customer,
            "occurred_at": times[start],
            "country": None if country is pd.NA else str(country),
            "lines": [
                {
                    "sku": str(skus[row]),
                    "description": str(descriptions[row]),
                    "quantity": quantities[row],
                    "unit_price": prices[row],
                }
                for row in range(start, end)
            ],
        }
        events.append((customer.encode(), json.dumps(event, separators=(",", ":")).encode()))
    counts["events"] = len(events)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(events)
    return ReplayPlan(events=events, counts=counts)
