"""Dead letters fit the broker whatever the refused message holds, and still say what it was."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from stream_app.core.events import DeadLetter
from stream_app.service.dead_letters import (
    KEY_MAX,
    cut_text,
    dead_letter,
    encoded_size,
    matches,
    shrink,
)
from stream_app.service.ports import RawMessage

WHEN = datetime(2024, 5, 1, 12, tzinfo=UTC)
LIMIT = 64 * 1024


def message(value: bytes, key: bytes | None = b"17850") -> RawMessage:
    return RawMessage(key=key, value=value, topic="orders", partition=2, offset=41)


def hostile(size: int) -> bytes:
    """Quotes, backslashes, control characters, multi-byte UTF-8 and invalid bytes."""
    unit = '"\\\x00\x01\n\t\x1f é€😀'.encode() + b"\xff\xfe" + "中".encode()
    return (unit * (size // len(unit) + 1))[:size]


def test_a_2_mb_hostile_payload_is_cut_below_the_limit() -> None:
    value = hostile(2 * 1024 * 1024)
    letter = dead_letter(message(value), "not JSON: bad", LIMIT, WHEN)
    assert letter.truncated
    assert letter.payload_bytes == len(value)
    assert letter.payload_sha256 == hashlib.sha256(value).hexdigest()
    assert encoded_size(letter.payload) <= LIMIT
    # Nearly the whole budget is used: escapes take at most six bytes, a character four.
    assert encoded_size(letter.payload) > LIMIT - 12
    # What is kept is the message's beginning, cut between characters.
    assert value.decode("utf-8", "replace").startswith(letter.payload)
    assert len(letter.model_dump_json().encode()) < LIMIT + 1024
    # The dead letter reads back as it was written.
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


def test_a_cut_never_splits_a_multi_byte_character() -> None:
    value = "€".encode() * 1000  # three bytes each
    for limit in range(1024, 1040):
        letter = dead_letter(message(value), "bad", limit, WHEN)
        assert set(letter.payload) == {"€"}
        assert encoded_size(letter.payload) <= limit


def test_a_small_payload_is_kept_whole() -> None:
    value = b'{"event_id": "1", "lines": []}'
    letter = dead_letter(message(value), "schema violation: lines: too short", LIMIT, WHEN)
    assert (letter.payload, letter.truncated, letter.payload_bytes) == (value.decode(), False, 30)
    assert (letter.topic, letter.partition, letter.offset, letter.key) == ("orders", 2, 41, "17850")


def test_a_huge_key_is_cut_too() -> None:
    letter = dead_letter(message(b"{", key=b'"' * 100_000), "bad", LIMIT, WHEN)
    assert letter.key is not None and encoded_size(letter.key) <= KEY_MAX


def test_an_empty_key_is_no_key() -> None:
    assert dead_letter(message(b"{", key=b""), "bad", LIMIT, WHEN).key is None


def test_dead_letters_written_before_the_size_fields_still_read() -> None:
    old = (
        '{"reason": "not JSON", "topic": "orders", "partition": 0, "offset": 3, "key": null,'
        ' "payload": "{", "failed_at": "2024-01-01T00:00:00Z"}'
    )
    letter = DeadLetter.model_validate_json(old)
    assert (letter.payload_bytes, letter.payload_sha256, letter.truncated) == (None, None, False)


def test_shrink_keeps_the_size_and_digest_of_the_original() -> None:
    value = hostile(200_000)
    letter = dead_letter(message(value), "bad", LIMIT, WHEN)
    small = shrink(letter, 4096)
    assert encoded_size(small.payload) <= 4096 and letter.payload.startswith(small.payload)
    assert (small.payload_bytes, small.payload_sha256) == (len(value), letter.payload_sha256)
    assert shrink(small, LIMIT) is small


def test_matches_filters_on_time_and_reason() -> None:
    letter = dead_letter(message(b"{"), "Schema violation: lines.0.quantity", LIMIT, WHEN)
    assert matches(letter)
    assert matches(letter, since=WHEN, reason="QUANTITY")
    assert not matches(letter, reason="not JSON")
    assert not matches(letter, since=datetime(2024, 5, 2, tzinfo=UTC))


@given(st.binary(max_size=3000), st.integers(min_value=2, max_value=2000))
def test_any_message_fits_any_limit(value: bytes, limit: int) -> None:
    letter = dead_letter(message(value), "bad", limit, WHEN)
    assert encoded_size(letter.payload) <= limit
    assert value.decode("utf-8", "replace").startswith(letter.payload)
    assert letter.truncated == (letter.payload != value.decode("utf-8", "replace"))


@given(st.text(max_size=500), st.integers(min_value=0, max_value=600))
def test_cut_text_keeps_the_longest_beginning_that_fits(text: str, limit: int) -> None:
    cut = cut_text(text, limit)
    assert text.startswith(cut)
    assert cut == text or encoded_size(text[: len(cut) + 1]) > limit
    assert cut == "" or encoded_size(cut) <= limit
