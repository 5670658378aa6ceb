"""Dead letters that always fit the broker: the message value, cut to a size, with its digest.

A message the worker refuses goes to the dead-letter topic as JSON. Kept whole, a large value
grows when escaped (a control character takes six bytes, a quote two) and can pass the
broker's message size limit: the publish fails, the worker stops, and the restarted worker
refuses the same message again. So a dead letter keeps at most ``max_payload`` bytes of JSON
for the value (``RFM_DLQ_MAX_PAYLOAD``), plus the value's size and SHA-256, which tell the
operator what the message was even when only its beginning is kept.
"""

from __future__ import annotations

import codecs
import hashlib
from datetime import datetime

from pydantic import TypeAdapter

from stream_app.core.events import DeadLetter
from stream_app.service.ports import RawMessage

__all__ = [
    "KEY_MAX",
    "REASON_MAX",
    "cut_text",
    "dead_letter",
    "encoded_size",
    "matches",
    "shrink",
]

#: Bytes of JSON a dead letter keeps of the message key and of the reason.
KEY_MAX = 1024
REASON_MAX = 1024

# The serializer DeadLetter.model_dump_json uses for its text fields.
_TEXT = TypeAdapter(str)


def encoded_size(text: str) -> int:
    """Bytes ``text`` takes as a JSON string in a dead letter, quotes included.

    >>> encoded_size('a"b'), encoded_size("\\x00"), encoded_size("é")
    (6, 8, 4)
    """
    return len(_TEXT.dump_json(text))


def cut_text(text: str, max_encoded: int) -> str:
    """The longest beginning of ``text`` that takes at most ``max_encoded`` bytes as JSON.

    Cuts fall between characters, never inside one (nor inside an escape).

    >>> cut_text("ab\\ncd", 6)
    'ab\\n'
    >>> cut_text("€€€", 8)
    '€€'
    """
    if encoded_size(text) <= max_encoded:
        return text
    # The encoded size of a prefix grows with its length: bisect on the length.
    low, high = 0, len(text)  # text[:low] fits, text[:high] does not
    while high - low > 1:
        middle = (low + high) // 2
        if encoded_size(text[:middle]) <= max_encoded:
            low = middle
        else:
            high = middle
    return text[:low]


def _head(value: bytes, max_encoded: int) -> tuple[str, bool]:
    """As much of ``value`` as text as fits ``max_encoded`` bytes of JSON; whether it was cut."""
    if len(value) <= max_encoded:
        text = value.decode("utf-8", "replace")
        if encoded_size(text) <= max_encoded:
            return text, False
    # Every byte of the value takes at least one byte of JSON (an invalid byte becomes a
    # three-byte U+FFFD), so what fits lies within the first max_encoded bytes. The
    # incremental decoder holds back a character cut in the middle instead of replacing it.
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    return cut_text(decoder.decode(value[:max_encoded], final=False), max_encoded), True


def dead_letter(
    message: RawMessage, reason: str, max_payload: int, failed_at: datetime
) -> DeadLetter:
    """The dead letter of a refused message, its payload cut to ``max_payload`` bytes of JSON.

    Parameters
    ----------
    message
        The refused message, as the broker delivered it.
    reason
        Why it was refused, in one line.
    max_payload
        The most bytes the ``payload`` field may take in the dead letter's JSON, quotes
        included. The key and the reason are cut to :data:`KEY_MAX` and :data:`REASON_MAX`.
    failed_at
        When it was refused.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> message = RawMessage(b"k", b'"' * 5000, "orders", 0, 7)
    >>> letter = dead_letter(message, "not JSON", 1024, datetime(2024, 1, 1, tzinfo=UTC))
    >>> letter.truncated, letter.payload_bytes, len(letter.payload), letter.payload_sha256[:12]
    (True, 5000, 511, 'd8c8e203d946')
    """
    payload, truncated = _head(message.value, max_payload)
    key = None
    if message.key:  # an empty key is no key, as for the broker's partitioner
        key, _ = _head(message.key, KEY_MAX)
    return DeadLetter(
        reason=cut_text(reason, REASON_MAX),
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key,
        payload=payload,
        failed_at=failed_at,
        payload_bytes=len(message.value),
        payload_sha256=hashlib.sha256(message.value).hexdigest(),
        truncated=truncated,
    )


def shrink(letter: DeadLetter, max_payload: int) -> DeadLetter:
    """``letter`` with its payload cut to ``max_payload`` bytes of JSON (itself if it fits).

    The size and digest still describe the original message.

    >>> from datetime import UTC, datetime
    >>> letter = dead_letter(RawMessage(None, b"x" * 3000, "orders", 0, 1), "bad", 4096,
    ...                      datetime(2024, 1, 1, tzinfo=UTC))
    >>> small = shrink(letter, 1002)
    >>> len(small.payload), small.truncated, small.payload_bytes
    (1000, True, 3000)
    """
    if encoded_size(letter.payload) <= max_payload:
        return letter
    return letter.model_copy(
        update={"payload": cut_text(letter.payload, max_payload), "truncated": True}
    )


def matches(letter: DeadLetter, since: datetime | None = None, reason: str | None = None) -> bool:
    """Whether ``letter`` failed at or after ``since`` and its reason contains ``reason``.

    The reason matches case-insensitively; None matches anything.

    >>> from datetime import UTC, datetime
    >>> letter = dead_letter(RawMessage(None, b"{", "orders", 0, 1), "not JSON: EOF", 1024,
    ...                      datetime(2024, 5, 1, tzinfo=UTC))
    >>> matches(letter, reason="json"), matches(letter, since=datetime(2024, 6, 1, tzinfo=UTC))
    (True, False)
    """
    if since is not None and letter.failed_at < since:
        return False
    return reason is None or reason.casefold() in letter.reason.casefold()
