"""RFM_HISTORY_LENGTH bounds the segment changes kept per customer."""

from __future__ import annotations

import uuid

from stream_app.service.ports import SegmentUpdate
from stream_app.settings import Settings
from stream_app.store.redis_store import RedisStore
from tests.fakes import purchase_effect


async def test_the_store_keeps_as_many_changes_as_the_setting_says(private_redis_url: str) -> None:
    settings = Settings(
        redis_url=private_redis_url, key_prefix=f"t{uuid.uuid4().hex[:8]}", history_length=3
    )
    async with RedisStore.from_settings(settings) as store:
        await store.apply([purchase_effect("e1", 1.0e9, ("A", 1, 1.0), customer="c1")])
        segments = ["new", "loyal", "lost", "new", "loyal"]
        for sequence, (previous, segment) in enumerate(
            zip([None, *segments], segments, strict=False), start=1
        ):
            update = SegmentUpdate(
                "c1", segment, previous, 1.0e9 + sequence, "v1", sequence, f'"{sequence}"'
            )
            assert await store.record_each([update]) == [True]
        assert await store.history("c1") == ['"5"', '"4"', '"3"']
