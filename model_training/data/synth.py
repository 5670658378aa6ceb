"""Synthetic transactions in the Online Retail format, for demos and tests.

The generator imitates what makes the UCI data hard and interesting: multi-line invoices,
heavy-tailed order counts and spend (a few wholesalers), customer groups with distinct
behaviour (loyal, regular, at risk, churned, new, one-time buyers) so that clustering finds
structure, seasonality (November peak, no Saturday trading, a lunchtime hour peak), returns
(some returning more than was bought, some of items never bought in the window), non-product
stock codes (``POST``, ``DOT``, ``D``, ``M``, ``BANK CHARGES``), anonymous lines, lines
without a description, zero prices, exact duplicate lines and invoices keyed in across a
minute boundary. Every cleaning rule of :mod:`model_training.data.cleaning` removes something.

Everything is drawn from one seeded :class:`numpy.random.Generator` with array operations,
so a seed always gives the same rows (and :func:`write_transactions` the same bytes).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from model_training.data.loading import SOURCE_COLUMNS
from model_training.data.synth_shop import (
    BEHAVIOURS,
    COUNTRIES,
    DAYS,
    PRODUCTS,
    QUANTITIES,
    QUANTITY_WEIGHTS,
    SATURDAY,
    SPECIALS,
    START,
    catalogue,
    cumulative_day_weights,
    sample_minutes,
    sample_minutes_of_day,
)
from model_training.exceptions import InvalidInputError

__all__ = ["DEFAULT_CUSTOMERS", "generate_transactions", "write_transactions"]

DEFAULT_CUSTOMERS = 2_000
_FIRST_INVOICE = 536_365

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def generate_transactions(customers: int = DEFAULT_CUSTOMERS, seed: int = 0) -> pd.DataFrame:
    """Generate a year of synthetic transaction lines in the Online Retail format.

    Parameters
    ----------
    customers
        Number of identified customers (anonymous lines come on top).
    seed
        Seed of the random generator: the same seed always gives the same rows.

    Returns
    -------
    pandas.DataFrame
        The columns of the Online Retail file (``InvoiceNo`` ... ``Country``), ordered by
        invoice. ``InvoiceDate`` is text ``YYYY-MM-DD HH:MM:SS``; ``CustomerID`` is text like
        ``17850.0`` or missing; ``Quantity`` is negative on return (``C``) invoices.

    Examples
    --------
    >>> frame = generate_transactions(customers=20, seed=1)
    >>> list(frame.columns)[:4]
    ['InvoiceNo', 'StockCode', 'Description', 'Quantity']
    """
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    rng = np.random.default_rng(seed)
    skus, descriptions, base_price = catalogue(rng)
    special = {code: PRODUCTS + i for i, (code, _) in enumerate(SPECIALS)}
    popularity = 1.0 / (np.arange(PRODUCTS) + 8.0) ** 1.1
    popularity /= popularity.sum()

    # Customers: id, behaviour group, country, activity window, spend scale.
    ids = 12_346 + np.sort(rng.choice(max(6_000, 3 * customers), size=customers, replace=False))
    shares = np.array([b.share for b in BEHAVIOURS])
    group = rng.choice(len(BEHAVIOURS), size=customers, p=shares / shares.sum())
    country_weights = np.array([w for _, w in COUNTRIES])
    country = rng.choice(len(COUNTRIES), size=customers, p=country_weights / country_weights.sum())
    start_bounds = np.array([b.start for b in BEHAVIOURS])[group]
    end_bounds = np.array([b.end for b in BEHAVIOURS])[group]
    first_day = (rng.uniform(start_bounds[:, 0], start_bounds[:, 1]) * DAYS).astype(np.int64)
    last_day = (rng.uniform(end_bounds[:, 0], end_bounds[:, 1]) * DAYS).astype(np.int64)
    last_day = np.clip(np.maximum(last_day, first_day + 14), 1, DAYS)
    scale = rng.lognormal(0.0, 0.6, customers)
    median = np.array([b.orders for b in BEHAVIOURS])[group]
    spread = np.array([b.spread for b in BEHAVIOURS])[group]
    n_orders = np.clip(np.rint(median * np.exp(spread * rng.standard_normal(customers))), 1, 400)

    # Purchase invoices of known customers, then anonymous ones (big baskets, mostly UK).
    day_cdf = cumulative_day_weights()
    owner = np.repeat(np.arange(customers), n_orders.astype(np.int64))
    n_anonymous = max(2, round(0.1 * len(owner)))
    inv_customer = np.concatenate([owner, np.full(n_anonymous, -1)])
    inv_country = np.concatenate([country[owner], np.zeros(n_anonymous, dtype=np.int64)])
    lo = np.concatenate([first_day[owner], np.zeros(n_anonymous, dtype=np.int64)])
    hi = np.concatenate([last_day[owner], np.full(n_anonymous, DAYS)])
    inv_minute = sample_minutes(rng, day_cdf, lo, hi)
    n_purchases = len(inv_customer)
    known = inv_customer >= 0

    # Lines of purchase invoices: basket size varies per invoice (gamma-mixed Poisson).
    behaviour_lines = np.array([b.lines for b in BEHAVIOURS])
    mean_lines = np.where(known, behaviour_lines[group[np.maximum(inv_customer, 0)]], 30.0)
    n_lines = 1 + rng.poisson(mean_lines * rng.gamma(1.5, 1 / 1.5, n_purchases))
    line_inv = np.repeat(np.arange(n_purchases), n_lines)
    line_prod = rng.choice(PRODUCTS, size=len(line_inv), p=popularity)
    line_customer = inv_customer[line_inv]
    quantity_scale = np.array([b.quantity for b in BEHAVIOURS])[group] * scale
    qty_factor = np.where(line_customer >= 0, quantity_scale[np.maximum(line_customer, 0)], 1.0)
    base_qty = rng.choice(QUANTITIES, size=len(line_inv), p=QUANTITY_WEIGHTS)
    line_qty = np.maximum(1, np.rint(base_qty * qty_factor)).astype(np.int64)
    # Bulk buyers get a lower unit price, as on the real price list.
    line_price = np.round(base_price[line_prod] * np.where(line_qty >= 100, 0.85, 1.0), 2)

    # Returns: a few lines of some invoices come back in a later ``C`` invoice; some return
    # more than was bought, some are of items never bought, some are dated before the sale.
    is_known_line = line_customer >= 0
    chosen = np.flatnonzero(is_known_line & (rng.random(len(line_inv)) < 0.02))
    source_inv, ret_of_line = np.unique(line_inv[chosen], return_inverse=True)
    n_returns = len(source_inv)
    delay = np.ceil(rng.exponential(8.0, n_returns)).astype(np.int64)
    delay = np.where(rng.random(n_returns) < 0.05, -delay, delay)
    ret_day = np.clip(inv_minute[source_inv] // 1440 + delay, 0, DAYS - 1)
    ret_day -= (START.day_of_week + ret_day) % 7 == SATURDAY  # the shop is shut: Friday
    ret_minute = ret_day * 1440 + sample_minutes_of_day(rng, n_returns)
    bought = line_qty[chosen]
    ret_qty = rng.integers(1, bought + 1)
    more = rng.random(len(chosen)) < 0.08
    ret_qty = np.where(more, bought + rng.integers(1, bought + 1), ret_qty)
    ret_prod = np.where(rng.random(len(chosen)) < 0.03, rng.integers(0, PRODUCTS, len(chosen)),
                        line_prod[chosen])  # fmt: skip

    # Standalone return invoices carrying one discount or manual adjustment line.
    n_adjust = max(2, round(0.004 * n_purchases))
    adj_customer = rng.integers(0, customers, n_adjust)
    adj_minute = sample_minutes(rng, day_cdf, first_day[adj_customer], last_day[adj_customer])
    adj_prod = np.where(rng.random(n_adjust) < 0.7, special["D"], special["M"])
    adj_prod[:2] = [special["D"], special["M"]]

    # Invoice table: purchases, returns of known lines, adjustment returns.
    inv_customer = np.concatenate([inv_customer, inv_customer[source_inv], adj_customer])
    inv_country = np.concatenate([inv_country, inv_country[source_inv], country[adj_customer]])
    inv_minute = np.concatenate([inv_minute, ret_minute, adj_minute])
    inv_return = np.arange(len(inv_minute)) >= n_purchases
    ret_base = n_purchases
    adj_base = n_purchases + n_returns

    # Extra lines on purchase invoices: postage for customers abroad, dotcom postage on
    # anonymous web orders, bank charges, manual lines, free samples, and a few sign errors.
    abroad = np.flatnonzero(
        known & (inv_country[:n_purchases] > 0) & (rng.random(n_purchases) < 0.7)
    )
    anonymous = np.flatnonzero(~known)
    web = anonymous[rng.random(len(anonymous)) < 0.5]
    known_inv = np.flatnonzero(known)
    bank = rng.choice(known_inv, max(1, round(0.002 * len(known_inv))))
    manual = rng.choice(known_inv, max(1, round(0.002 * len(known_inv))))
    free = rng.choice(known_inv, max(3, round(0.003 * len(known_inv))))
    wrong_sign = rng.choice(known_inv, max(1, round(0.0005 * len(known_inv))))
    no_desc = rng.choice(anonymous, max(2, round(0.05 * len(anonymous))))
    free_prod = rng.integers(0, PRODUCTS, len(free))
    wrong_prod = rng.integers(0, PRODUCTS, len(wrong_sign))
    no_desc_prod = rng.integers(0, PRODUCTS, len(no_desc))

    pieces: list[tuple[IntArray, IntArray, IntArray, FloatArray]] = [
        (line_inv, line_prod, line_qty, line_price),
        (ret_base + ret_of_line, ret_prod, -ret_qty, line_price[chosen]),
        (adj_base + np.arange(n_adjust), adj_prod, np.full(n_adjust, -1),
         np.round(rng.uniform(1.0, 80.0, n_adjust), 2)),
        (abroad, np.full(len(abroad), special["POST"]), rng.integers(1, 4, len(abroad)),
         rng.choice([15.0, 18.0, 28.0, 40.0], len(abroad))),
        (web, np.full(len(web), special["DOT"]), np.ones(len(web), dtype=np.int64),
         np.round(rng.uniform(10.0, 900.0, len(web)), 2)),
        (bank, np.full(len(bank), special["BANK CHARGES"]), np.ones(len(bank), dtype=np.int64),
         np.full(len(bank), 15.0)),
        (manual, np.full(len(manual), special["M"]), np.ones(len(manual), dtype=np.int64),
         np.round(rng.uniform(0.5, 60.0, len(manual)), 2)),
        (free, free_prod, rng.integers(1, 13, len(free)), np.zeros(len(free))),
        (wrong_sign, wrong_prod, -rng.integers(1, 13, len(wrong_sign)), base_price[wrong_prod]),
        (no_desc, no_desc_prod, rng.integers(-50, 50, len(no_desc)) | 1, np.zeros(len(no_desc))),
    ]  # fmt: skip
    inv = np.concatenate([p[0] for p in pieces])
    prod = np.concatenate([p[1] for p in pieces])
    qty = np.concatenate([p[2] for p in pieces]).astype(np.int64)
    price = np.concatenate([p[3] for p in pieces]).astype(np.float64)
    piece = np.repeat(np.arange(len(pieces)), [len(p[0]) for p in pieces])
    missing_desc = piece == len(pieces) - 1

    # Invoice numbers follow time, as in the shop's system; lines keep their piece order.
    rank = np.empty(len(inv_minute), dtype=np.int64)
    rank[np.lexsort((rng.random(len(inv_minute)), inv_minute))] = np.arange(len(inv_minute))
    order = np.lexsort((np.arange(len(inv)), piece, rank[inv]))
    inv, prod, qty, price, missing_desc = (
        inv[order],
        prod[order],
        qty[order],
        price[order],
        missing_desc[order],
    )

    # Some long invoices are keyed in across a minute boundary: their later lines are a
    # minute later.
    first_line = np.searchsorted(rank[inv], rank[inv], side="left")
    position = np.arange(len(inv)) - first_line
    size = np.bincount(inv, minlength=len(inv_minute))[inv]
    spans = (rng.random(len(inv_minute)) < 0.01)[inv] & (size >= 4) & (2 * position >= size)
    line_minute = inv_minute[inv] + spans

    # Exact duplicates: a line keyed in twice, right after itself.
    repeat = np.where((rng.random(len(inv)) < 0.01) & ~missing_desc, 2, 1)
    inv, prod, qty, price = (np.repeat(inv, repeat), np.repeat(prod, repeat),
                             np.repeat(qty, repeat), np.repeat(price, repeat))  # fmt: skip
    missing_desc, line_minute = np.repeat(missing_desc, repeat), np.repeat(line_minute, repeat)
    description = descriptions[prod]
    description[missing_desc] = None
    return _to_frame(
        invoice=_invoice_numbers(rank, inv_return)[inv],
        sku=skus[prod],
        description=description,
        quantity=qty,
        minute=line_minute,
        price=price,
        customer=_customer_ids(ids, inv_customer[inv]),
        country=np.array([name for name, _ in COUNTRIES], dtype=object)[inv_country[inv]],
    )


def write_transactions(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a frame from :func:`generate_transactions` as ``.csv`` or ``.csv.gz``.

    The gzip header carries no file name or time, so equal frames give equal bytes. Missing
    parent folders are created.

    Raises
    ------
    InvalidInputError
        The path ends neither in ``.csv`` nor in ``.csv.gz``.
    """
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".csv") or name.endswith(".csv.gz")):
        raise InvalidInputError(str(path), "unsupported output type: expected .csv or .csv.gz")
    data = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".gz"):
        with path.open("wb") as raw, gzip.GzipFile("", "wb", 6, raw, mtime=0) as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def _invoice_numbers(rank: IntArray, is_return: BoolArray) -> npt.NDArray[np.object_]:
    numbers = (_FIRST_INVOICE + rank).astype(str).astype(object)
    return np.where(is_return, "C" + numbers, numbers)


def _customer_ids(ids: IntArray, customer: IntArray) -> npt.NDArray[np.object_]:
    """Ids written like the UCI copy (``17850.0``); missing for anonymous lines."""
    text = np.array([f"{i}.0" for i in ids] + [None], dtype=object)
    return text[np.where(customer >= 0, customer, len(ids))]


def _to_frame(
    *,
    invoice: npt.NDArray[np.object_],
    sku: npt.NDArray[np.object_],
    description: npt.NDArray[np.object_],
    quantity: IntArray,
    minute: IntArray,
    price: FloatArray,
    customer: npt.NDArray[np.object_],
    country: npt.NDArray[np.object_],
) -> pd.DataFrame:
    # Format each distinct minute once: far fewer distinct times than lines.
    unique, inverse = np.unique(minute, return_inverse=True)
    stamps = (START + pd.to_timedelta(unique, unit="min")).strftime("%Y-%m-%d %H:%M:%S")
    columns = list(SOURCE_COLUMNS)
    return pd.DataFrame(
        {
            columns[0]: invoice,
            columns[1]: sku,
            columns[2]: description,
            columns[3]: quantity,
            columns[4]: np.asarray(stamps, dtype=object)[inverse],
            columns[5]: price,
            columns[6]: customer,
            columns[7]: country,
        }
    )
