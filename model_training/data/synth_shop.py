"""The synthetic shop: its customers' behaviours, its catalogue and its calendar.

What :func:`~model_training.data.synth.generate_transactions` draws from: groups of customers
with distinct buying habits, a catalogue of products (and the non-product codes a real shop
also bills), countries, and when orders happen (busier in autumn, no trading on Saturdays, a
lunchtime peak). The samplers take the caller's :class:`numpy.random.Generator`, so the
generator's one seed decides everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "BEHAVIOURS",
    "COUNTRIES",
    "DAYS",
    "END",
    "PRODUCTS",
    "QUANTITIES",
    "QUANTITY_WEIGHTS",
    "SATURDAY",
    "SPECIALS",
    "START",
    "Behaviour",
    "catalogue",
    "cumulative_day_weights",
    "sample_minutes",
    "sample_minutes_of_day",
]

#: First and last day of the data (the UCI window), so ``t_ref`` defaults to 2011-12-10.
START = pd.Timestamp("2010-12-01")
END = pd.Timestamp("2011-12-09")
#: Days in the data window.
DAYS = (END - START).days + 1

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Behaviour:
    """How one group of customers buys.

    ``orders`` is the median number of purchase invoices (log-normal with ``spread``);
    ``lines`` the mean lines per invoice; ``quantity`` scales units per line; ``start`` and
    ``end`` bound, as fractions of the year, the window in which the customer is active.
    """

    name: str
    share: float
    orders: float
    spread: float
    lines: float
    quantity: float
    start: tuple[float, float]
    end: tuple[float, float]


BEHAVIOURS: tuple[Behaviour, ...] = (
    Behaviour("wholesaler", 0.02, 30.0, 0.5, 20.0, 4.0, (0.0, 0.05), (0.97, 1.0)),
    Behaviour("loyal", 0.15, 14.0, 0.4, 10.0, 1.2, (0.0, 0.15), (0.97, 1.0)),
    Behaviour("regular", 0.20, 4.0, 0.4, 9.0, 1.0, (0.0, 0.3), (0.6, 1.0)),
    Behaviour("at_risk", 0.08, 7.0, 0.3, 9.0, 1.2, (0.0, 0.1), (0.55, 0.75)),
    Behaviour("churned", 0.18, 2.5, 0.4, 8.0, 1.0, (0.0, 0.1), (0.15, 0.45)),
    Behaviour("new", 0.12, 1.5, 0.4, 8.0, 1.0, (0.82, 0.95), (1.0, 1.0)),
    Behaviour("one_time", 0.25, 1.0, 0.0, 7.0, 0.8, (0.0, 0.0), (1.0, 1.0)),
)

COUNTRIES = (
    ("United Kingdom", 0.86),
    ("Germany", 0.025),
    ("France", 0.02),
    ("EIRE", 0.01),
    ("Spain", 0.008),
    ("Belgium", 0.008),
    ("Netherlands", 0.006),
    ("Switzerland", 0.006),
    ("Portugal", 0.006),
    ("Italy", 0.005),
    ("Finland", 0.005),
    ("Norway", 0.005),
    ("Australia", 0.004),
    ("Channel Islands", 0.004),
    ("Sweden", 0.004),
    ("Denmark", 0.004),
    ("Japan", 0.004),
    ("Poland", 0.004),
    ("Cyprus", 0.004),
    ("Iceland", 0.002),
    ("USA", 0.002),
    ("Israel", 0.002),
    ("Austria", 0.002),
)
# Non-product lines appended after the catalogue: (stock code, description).
SPECIALS = (
    ("POST", "POSTAGE"),
    ("DOT", "DOTCOM POSTAGE"),
    ("D", "Discount"),
    ("M", "Manual"),
    ("BANK CHARGES", "Bank Charges"),
)
_COLOURS = (
    "WHITE", "RED", "PINK", "BLUE", "GREEN", "IVORY", "BLACK", "CREAM", "PANTRY",
    "VINTAGE", "RETRO", "SKY BLUE", "SILVER", "JUMBO", "SET OF 3", "ANTIQUE",
)  # fmt: skip
_MOTIFS = (
    "HANGING HEART", "SPOTTY", "REGENCY", "PAISLEY", "FLORAL", "BIRD", "STAR", "UNION JACK",
    "POLKADOT", "ROSE", "CHRISTMAS", "DOLLY GIRL", "SPACEBOY", "LOVE", "WOODLAND", "PARTY",
)  # fmt: skip
_ITEMS = (
    "T-LIGHT HOLDER", "MUG", "LUNCH BAG", "CAKE STAND", "LANTERN", "COAT HANGER", "TEA CUP",
    "BUNTING", "NAPKINS", "PAPER CHAIN KIT", "DOORSTOP", "JAM JAR", "GIFT WRAP", "CUSHION COVER",
    "ALARM CLOCK", "TISSUES", "PURSE", "WATER BOTTLE", "BAKING CASES", "CHOPPING BOARD",
)  # fmt: skip
PRODUCTS = 700
QUANTITIES = np.array([1, 2, 3, 4, 6, 8, 10, 12, 24, 48])
QUANTITY_WEIGHTS = np.array([0.17, 0.14, 0.07, 0.10, 0.12, 0.06, 0.06, 0.18, 0.07, 0.03])
# Orders per hour of the day, 07:00 to 20:00 (lunchtime peak, as in the UCI data).
_HOUR_WEIGHTS = np.array([0.2, 2.0, 5.0, 9.0, 12.0, 14.0, 12.0, 11.0, 7.0, 4.0, 1.0, 0.7, 0.5, 0.2])
_FIRST_HOUR = 7
SATURDAY = 5


def catalogue(
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_], FloatArray]:
    """Stock codes, descriptions and list prices of the products, then the special codes."""
    combos = len(_COLOURS) * len(_MOTIFS) * len(_ITEMS)
    pick = rng.choice(combos, size=PRODUCTS, replace=False)
    colour, rest = np.divmod(pick, len(_MOTIFS) * len(_ITEMS))
    motif, item = np.divmod(rest, len(_ITEMS))
    names = [
        f"{_COLOURS[c]} {_MOTIFS[m]} {_ITEMS[i]}"
        for c, m, i in zip(colour, motif, item, strict=True)
    ]
    numbers = rng.choice(np.arange(10_000, 90_000), size=PRODUCTS, replace=False)
    letters = np.where(rng.random(PRODUCTS) < 0.2, rng.choice(list("ABCDE"), PRODUCTS), "")
    codes = [f"{n}{s}" for n, s in zip(numbers, letters, strict=True)]
    # List prices: log-normal around 2.50, on 5-pence steps, some ending in 9.
    price = np.maximum(0.1, np.ceil(rng.lognormal(np.log(2.5), 0.8, PRODUCTS) * 20) / 20)
    price = np.round(np.where(rng.random(PRODUCTS) < 0.3, price - 0.01, price), 2)
    skus = np.array(codes + [code for code, _ in SPECIALS], dtype=object)
    descriptions = np.array(names + [text for _, text in SPECIALS], dtype=object)
    return skus, descriptions, np.concatenate([price, np.zeros(len(SPECIALS))])


def cumulative_day_weights() -> FloatArray:
    """Cumulative weight of each day: busier in autumn, no trading on Saturdays."""
    days = pd.date_range(START, END, freq="D")
    month = np.array([0.0, 0.8, 0.75, 0.95, 0.85, 0.95, 0.95, 0.95, 1.0, 1.35, 1.45, 1.8, 1.5])
    weekday = np.array([1.0, 1.1, 1.15, 1.2, 0.85, 0.0, 0.7])  # Monday .. Sunday
    weight = month[days.month.to_numpy()] * weekday[days.day_of_week.to_numpy()]
    return np.concatenate([[0.0], np.cumsum(weight)])


def sample_minutes(
    rng: np.random.Generator, day_cdf: FloatArray, lo: IntArray, hi: IntArray
) -> IntArray:
    """Minutes since :data:`START` of orders placed on days ``[lo, hi)``, by the day weights."""
    target = day_cdf[lo] + rng.random(len(lo)) * (day_cdf[hi] - day_cdf[lo])
    day = np.clip(np.searchsorted(day_cdf, target, side="right") - 1, lo, hi - 1)
    return day.astype(np.int64) * 1440 + sample_minutes_of_day(rng, len(lo))


def sample_minutes_of_day(rng: np.random.Generator, count: int) -> IntArray:
    hour = _FIRST_HOUR + rng.choice(
        len(_HOUR_WEIGHTS), count, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()
    )
    return (hour * 60 + rng.integers(0, 60, count)).astype(np.int64)
