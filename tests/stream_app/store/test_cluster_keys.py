"""The key layout on a Redis Cluster: which keys share a hash slot."""

from __future__ import annotations

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from stream_app.settings import Settings
from stream_app.store.keys import (
    COUNTER_SHARDS,
    DUE_SHARDS,
    ClusterKeys,
    Keys,
    keys_for,
    slot_of,
    slot_tag,
)


def _slot(key: str) -> int:
    return key_slot(key.encode())


def test_every_slot_has_a_tag_that_hashes_to_it() -> None:
    assert [key_slot(slot_tag(slot).encode()) for slot in range(REDIS_CLUSTER_HASH_SLOTS)] == list(
        range(REDIS_CLUSTER_HASH_SLOTS)
    )


def test_a_customers_keys_and_their_slot_keys_share_its_slot() -> None:
    keys = ClusterKeys("rfm")
    for customer in ("12346", "c-01", "ÄÖ", "{odd}"):
        slot = slot_of(customer)
        customer_keys = [keys.state(customer), keys.orders(customer), keys.items(customer)]
        slot_keys = [keys.slot_epoch(slot), keys.slot_segments(slot), keys.slot_indexed(slot)]
        assert {_slot(key) for key in customer_keys + slot_keys} == {slot}


def test_the_small_service_wide_keys_share_one_slot() -> None:
    keys = ClusterKeys("rfm")
    together = [
        keys.clock,
        keys.watermarks,
        keys.offsets,
        keys.epoch,
        keys.days,
        keys.flows("2011-12-09"),
        keys.model_current,
        keys.model_history,
        keys.rescore_job("v1"),
        keys.rescore_claim("v1"),
        keys.workers,
        keys.retrain_lock,
    ]
    assert len({_slot(key) for key in together}) == 1
    # ... and none of them is a customer's key.
    assert not any(key.startswith("rfm:{") for key in together)


def test_due_customers_and_counters_spread_over_many_slots() -> None:
    keys = ClusterKeys("rfm")
    assert len(set(keys.due_shards)) == DUE_SHARDS
    assert len({_slot(key) for key in keys.counter_shards}) == COUNTER_SHARDS
    width = REDIS_CLUSTER_HASH_SLOTS // DUE_SHARDS
    for customer in (str(number) for number in range(12346, 12446)):
        shard = keys.due_shard(customer)
        # A due set lives in the first slot of the range of slots whose customers it holds.
        assert _slot(shard) == slot_of(customer) // width * width


def test_settings_choose_the_layout() -> None:
    assert type(keys_for(Settings())) is Keys
    cluster = keys_for(Settings(redis_cluster=True, key_prefix="shop"))
    assert isinstance(cluster, ClusterKeys)
    assert cluster.clock == "{shop}:clock"
    assert cluster.state("7") == Keys("shop").state("7")  # customers' keys keep their names
