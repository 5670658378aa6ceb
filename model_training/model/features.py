"""Model features: the RFM matrix, the trimming rule and the log transform.

Pure numpy/pandas: no I/O, no scikit-learn. The batch pipeline and the stream build the
model's input with the same functions, so a customer's features mean the same everywhere.

Transform
---------
RFM values are heavily right-skewed (UCI: median monetary about 650, maximum above 250,000;
most customers bought once or twice). Distances on raw values would be ruled by a handful of
wholesalers, so the default transform is::

    z = standardise(log1p(max(x, 0)))

applied column by column. Recency is >= 0 and frequency >= 1 by construction; monetary is
>= 0 up to floating-point noise (matched returns never exceed what was bought), but a return
valued at a higher price than the purchase can make it slightly negative, so every column is
clipped at 0 before ``log1p``: a net refund counts as no spend. Standardisation (mean 0, unit
variance, learned on the fitting customers) gives the three features equal weight.

Trimming
--------
As in the reference analysis, the clustering is fitted on customers at or below the 95th
percentile of frequency *and* of monetary (pandas' default linear-interpolation quantile; on
UCI every numpy quantile method gives the same cut: 4,334 customers, 4,044 kept). Trimmed
customers still get a segment from the fitted model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from model_training.data.rfm import RFM_COLUMNS

__all__ = [
    "FEATURES",
    "TRIM_COLUMNS",
    "TRIM_QUANTILE",
    "log_features",
    "rfm_matrix",
    "standardise",
    "trim_mask",
]

#: Feature order of every model input: ``[recency_days, frequency, monetary]``.
FEATURES: tuple[str, ...] = tuple(RFM_COLUMNS)
#: Columns (indices into :data:`FEATURES`) whose upper tail is trimmed before fitting.
TRIM_COLUMNS: tuple[int, ...] = (1, 2)
#: Customers above this quantile of a trimmed column are left out of the fit.
TRIM_QUANTILE = 0.95

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def rfm_matrix(rfm: pd.DataFrame) -> FloatArray:
    """Return the model input of an RFM frame: a float64 array in :data:`FEATURES` order.

    Parameters
    ----------
    rfm
        A frame with at least the columns of :data:`FEATURES` (extra columns are ignored).

    Returns
    -------
    numpy.ndarray
        Shape ``(n_customers, 3)``, C-contiguous float64.

    Examples
    --------
    >>> frame = pd.DataFrame({"monetary": [10.5], "frequency": [2], "recency_days": [3]})
    >>> rfm_matrix(frame)
    array([[ 3. ,  2. , 10.5]])
    """
    missing = [column for column in FEATURES if column not in rfm.columns]
    if missing:
        raise KeyError(f"RFM frame lacks column(s) {', '.join(missing)}")
    return np.ascontiguousarray(rfm[list(FEATURES)].to_numpy(dtype=np.float64))


def trim_mask(
    x: FloatArray,
    quantile: float | None = TRIM_QUANTILE,
    columns: Sequence[int] = TRIM_COLUMNS,
) -> BoolArray:
    """Tell which rows are kept for fitting: at or below ``quantile`` in every trimmed column.

    Parameters
    ----------
    x
        Feature matrix, shape ``(n, n_features)``.
    quantile
        Upper quantile (linear interpolation, as pandas' default); ``None`` keeps every row.
    columns
        Indices of the trimmed columns. Indices beyond ``x``'s width are ignored, so the
        same rule works on feature sets other than RFM (scikit-learn's estimator checks).

    Returns
    -------
    numpy.ndarray
        Boolean mask of shape ``(n,)``.

    Examples
    --------
    >>> x = np.array([[1.0, 1, 10], [2, 2, 20], [3, 3, 30], [4, 40, 40]])
    >>> trim_mask(x, 0.75).tolist()
    [True, True, True, False]
    """
    keep = np.ones(x.shape[0], dtype=bool)
    if quantile is None or x.shape[0] == 0:
        return keep
    for column in columns:
        if column < x.shape[1]:
            cut = np.quantile(x[:, column], quantile)
            keep &= x[:, column] <= cut
    return keep


def log_features(x: FloatArray) -> FloatArray:
    """Apply ``log1p(max(x, 0))`` column by column (see the module docstring for why).

    Examples
    --------
    >>> log_features(np.array([[0.0, -1e-13, np.e - 1]])).round(6).tolist()
    [[0.0, 0.0, 1.0]]
    """
    return np.log1p(np.maximum(x, 0.0))


def standardise(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Centre and scale each column to unit variance; return ``(z, mean, scale)``.

    A constant column keeps scale 1: it carries no distance, and dividing by 0 would not help.

    Examples
    --------
    >>> z, mean, scale = standardise(np.array([[1.0, 5.0], [3.0, 5.0]]))
    >>> z.tolist(), mean.tolist(), scale.tolist()
    ([[-1.0, 0.0], [1.0, 0.0]], [2.0, 5.0], [1.0, 1.0])
    """
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0.0] = 1.0
    return (x - mean) / scale, mean, scale
