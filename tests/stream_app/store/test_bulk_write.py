"""A bulk write of states given column by column writes exactly what ``put`` writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from stream_app.service.bootstrap import history_columns
from stream_app.store.redis_store import RedisStore


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    path: Path = tmp_path_factory.mktemp("synth") / "transactions.csv.gz"
    write_transactions(generate_transactions(customers=120, seed=7), path)
    return load_transactions(path)


async def contents(store: RedisStore) -> dict[str, Any]:
    """Every key under the store's prefix (without it), with its type and value."""
    client, found = store.client, {}
    async for name in client.scan_iter(match=f"{store.keys.prefix}:*"):
        kind = await client.type(name)
        read = {"hash": client.hgetall, "set": client.smembers, "string": client.get}[kind]
        found[name.split(":", 1)[1]] = (kind, await read(name))
    return found


async def test_put_columns_writes_what_put_writes(
    frame: pd.DataFrame, private_redis_url: str
) -> None:
    columns, _ = history_columns(frame)
    assert columns.events and columns.has_returns().any()
    async with (
        RedisStore.from_url(private_redis_url, prefix="bulk") as bulk,
        RedisStore.from_url(private_redis_url, prefix="objects") as objects,
    ):
        for block in columns.blocks(50):
            await bulk.put_columns(block)
        await objects.put(columns.states())
        written = await contents(bulk)
        assert written == await contents(objects)
        assert len([name for name in written if name.endswith(":state")]) == len(columns)
        # A second bulk write replaces the first: nothing of it is left over.
        await bulk.put_columns(columns.block(0, 10))
        again = await contents(bulk)
        assert again == {name: value for name, value in written.items() if name in again}
