"""Every customer with RFM, read from the store: for exports and for retraining."""

from __future__ import annotations

import pandas as pd

from model_training.data.rfm import RFM_COLUMNS
from stream_app.core.scoring import rfm_matrix
from stream_app.core.state import CustomerState
from stream_app.service.ports import CustomerStore

__all__ = ["customers_with_rfm", "rfm_snapshot"]


async def customers_with_rfm(store: CustomerStore, batch_size: int = 5000) -> list[CustomerState]:
    """Every customer with a valid purchase (without items and event ids), sorted by id.

    Parameters
    ----------
    store
        The customer-state store.
    batch_size
        Customers read per call.

    Returns
    -------
    list of CustomerState
        Customers without a valid purchase yet (only returns, say) are left out.
    """
    states: list[CustomerState] = []
    async for batch in store.scan(batch_size):
        states.extend(state for state in batch if state.has_rfm)
    states.sort(key=lambda state: state.customer_id)
    return states


async def rfm_snapshot(store: CustomerStore, now: float) -> pd.DataFrame:
    """Every customer's RFM at ``now`` (epoch seconds), as ``rfm train`` reads it.

    Returns
    -------
    pandas.DataFrame
        Index ``customer_id`` (sorted), the three columns of
        :data:`~model_training.data.rfm.RFM_COLUMNS`.
    """
    states = await customers_with_rfm(store)
    return pd.DataFrame(
        rfm_matrix(states, now),
        index=pd.Index([state.customer_id for state in states], name="customer_id"),
        columns=RFM_COLUMNS,
    ).astype({"recency_days": "int64", "frequency": "int64"})
