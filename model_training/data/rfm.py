"""Per-customer RFM from clean transaction lines, vectorised.

Semantics (docs/design.md): ``frequency`` counts distinct purchase invoices; ``monetary`` is the
value of purchase lines minus the value of matched returned units (per customer and stock
code, ``min(returned, bought)`` units at the return lines' mean unit price); ``recency_days``
is the floor of whole days from the last purchase to ``t_ref``. An invoice's time is the
earliest time among its attributable lines (an invoice keyed in across a minute boundary
has two), see :mod:`model_training.data.cleaning`.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from model_training.data.cleaning import CleanLines
from model_training.data.rules import SECONDS_PER_DAY, default_t_ref

__all__ = [
    "RFM_COLUMNS",
    "compute_rfm",
    "customer_totals",
    "default_reference_time",
    "matched_return_values",
]

RFM_COLUMNS = ["recency_days", "frequency", "monetary"]


def default_reference_time(clean: CleanLines, frame: pd.DataFrame | None = None) -> datetime:
    """Midnight after the last transaction (of the raw frame if given, else of the clean lines)."""
    source = frame if frame is not None else clean.lines
    last = pd.Timestamp(source["invoiced_at"].max()).to_pydatetime()
    return default_t_ref(last)


def compute_rfm(clean: CleanLines, t_ref: datetime) -> pd.DataFrame:
    """Compute every customer's RFM at ``t_ref``.

    ``clean`` should hold no invoice after ``t_ref`` (clean with ``t_ref=``, see
    :func:`~model_training.data.cleaning.clean_transactions`): the RFM as of ``t_ref`` knows
    nothing of later orders, and recency is then never negative.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (sorted), with columns ``recency_days`` (int),
        ``frequency`` (int), ``monetary`` (float), ``first_purchase``, ``last_purchase``
        (timestamps) and ``country`` (of the latest purchase invoice). Customers without a
        valid purchase have no row.
    """
    per_customer = customer_totals(clean)
    per_customer["monetary"] = per_customer["spent"] - per_customer["returned_matched"]
    age = (pd.Timestamp(t_ref) - per_customer["last_purchase"]).dt.total_seconds()
    per_customer["recency_days"] = np.floor(age / SECONDS_PER_DAY).astype("int64")
    return per_customer[[*RFM_COLUMNS, "first_purchase", "last_purchase", "country"]]


def customer_totals(clean: CleanLines) -> pd.DataFrame:
    """What every customer's RFM is computed from, at no particular time.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (text, sorted), one row per customer with a valid
        purchase: ``frequency`` (int), ``first_purchase`` and ``last_purchase`` (invoice
        times), ``last_order`` and ``country`` (of the latest purchase invoice, ties broken by
        the larger invoice number), ``spent`` (purchase value) and ``returned_matched`` (value
        of the matched returned units). The stream keeps the same fields per customer.
    """
    lines = clean.lines
    purchases = lines[~lines["is_return"]]
    returns = lines[lines["is_return"]]

    invoices = (
        purchases.groupby(["customer_id", "invoice"], sort=False, observed=True)
        .agg(invoiced_at=("invoice_time", "first"), country=("country", "first"))
        .reset_index()
    )
    per_customer = invoices.groupby("customer_id", sort=True, observed=True).agg(
        frequency=("invoice", "size"),
        first_purchase=("invoiced_at", "min"),
        last_purchase=("invoiced_at", "max"),
    )
    latest = (
        invoices.sort_values(["customer_id", "invoiced_at", "invoice"])
        .drop_duplicates("customer_id", keep="last")
        .set_index("customer_id")
    )
    per_customer["last_order"] = latest["invoice"]
    per_customer["country"] = latest["country"]
    per_customer["spent"] = purchases.groupby("customer_id", observed=True)["value"].sum()
    per_customer["returned_matched"] = matched_return_values(purchases, returns).reindex(
        per_customer.index, fill_value=0.0
    )
    per_customer["frequency"] = per_customer["frequency"].astype("int64")
    per_customer.index = per_customer.index.astype(str)
    per_customer.index.name = "customer_id"
    return per_customer


def matched_return_values(purchases: pd.DataFrame, returns: pd.DataFrame) -> pd.Series:
    """Per customer, the value of returned units matched to units bought (per stock code)."""
    if returns.empty:
        return pd.Series(dtype="float64")
    keys = ["customer_id", "sku"]
    bought = purchases.groupby(keys, observed=True)["units"].sum().rename("bought")
    returned = returns.groupby(keys, observed=True).agg(
        returned=("units", "sum"), returned_value=("value", "sum")
    )
    items = returned.join(bought, how="left").fillna({"bought": 0})
    matched = items[["returned", "bought"]].min(axis=1)
    value = matched * (items["returned_value"] / items["returned"])
    return value.groupby(level="customer_id", observed=True).sum()
