"""The one place Kafka clients are made, with the connection settings of every component.

The worker's faust app (:func:`faust_credentials`), the tools' aiokafka consumers, producers
and admin clients (:func:`consumer`, :func:`producer`, :func:`admin_client`, all built from
:func:`client_options`), and :func:`check_broker`, which tells a refusal (SASL credentials, a
certificate the CA file does not trust) from an outage, all read the same settings:
``RFM_KAFKA_BOOTSTRAP``, ``RFM_KAFKA_SECURITY_PROTOCOL``, ``RFM_KAFKA_SASL_*`` and
``RFM_KAFKA_SSL_*``.

aiokafka logs a failed bootstrap and goes on to the next host, ending with "Unable to
bootstrap": the cause is lost. :func:`started` starts a client and, when that fails, asks
:func:`check_broker` why, so a wrong password ends as one line naming the settings to fix.
"""

from __future__ import annotations

import ssl
from typing import Any, TypeVar

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context

from stream_app.exceptions import BrokerAccessError, BrokerUnavailableError
from stream_app.settings import Settings

__all__ = [
    "admin_client",
    "check_broker",
    "client_options",
    "consumer",
    "faust_credentials",
    "producer",
    "ssl_context",
    "started",
]

#: Longest wait for the broker's answer while checking a connection.
CHECK_TIMEOUT_S = 10.0

_SASL_REFUSALS = (SaslAuthenticationFailed, AuthenticationFailedError, IllegalSaslStateError)

Client = TypeVar("Client", AIOKafkaConsumer, AIOKafkaProducer, AIOKafkaAdminClient)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of ``RFM_KAFKA_SSL_*`` (SSL and SASL_SSL only; None otherwise).

    Without ``RFM_KAFKA_SSL_CAFILE`` the system's CA certificates are trusted. Host names are
    always checked.
    """
    if not settings.kafka_security_protocol.uses_tls:
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
    )
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments every aiokafka client gets: bootstrap servers and security.

    >>> client_options(Settings(kafka_bootstrap="k1:9092"))
    {'bootstrap_servers': 'k1:9092', 'security_protocol': 'PLAINTEXT'}
    >>> options = client_options(Settings(kafka_security_protocol="SASL_PLAINTEXT",
    ...     kafka_sasl_mechanism="SCRAM-SHA-256", kafka_sasl_username="rfm",
    ...     kafka_sasl_password="s3cret"))
    >>> options["sasl_mechanism"], options["sasl_plain_username"]
    ('SCRAM-SHA-256', 'rfm')
    """
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": protocol.value,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.uses_sasl:
        assert settings.kafka_sasl_password is not None  # Settings checks it
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism.value
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def faust_credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """The worker's ``broker_credentials``: the same security as :func:`client_options`."""
    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol.uses_sasl:
        assert settings.kafka_sasl_password is not None  # Settings checks it
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism.value,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def consumer(settings: Settings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer of the configured broker (not started; see :func:`started`)."""
    return AIOKafkaConsumer(*topics, **client_options(settings), **options)


def producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """An aiokafka producer of the configured broker (not started; see :func:`started`)."""
    return AIOKafkaProducer(**client_options(settings), **options)


def admin_client(settings: Settings, **options: Any) -> AIOKafkaAdminClient:
    """An aiokafka admin client of the configured broker (not started; see :func:`started`)."""
    return AIOKafkaAdminClient(**client_options(settings), **options)


async def started(settings: Settings, client: Client) -> Client:
    """Start ``client``; when it cannot, say why.

    Raises
    ------
    BrokerAccessError
        The broker refused the credentials or its certificate is not trusted.
    BrokerUnavailableError
        The broker does not answer.
    """
    try:
        await client.start()
    # aiokafka logs why each bootstrap server failed and raises "Unable to bootstrap"; a
    # SCRAM refusal escapes as a KeyError or ValueError (see _refusal).
    except (KafkaError, KeyError, ValueError) as exc:
        await check_broker(settings)
        raise BrokerUnavailableError(
            f"Kafka at {settings.kafka_bootstrap} does not answer: {exc}"
        ) from exc
    return client


async def check_broker(settings: Settings, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Connect to each bootstrap server as the clients do, until one lets this client in.

    Raises
    ------
    BrokerAccessError
        A broker answered and refused: the SASL credentials, the mechanism, or TLS (its
        certificate not trusted, or it does not speak TLS). The message names the settings.
    BrokerUnavailableError
        No bootstrap server answered.
    """
    options = client_options(settings)
    del options["bootstrap_servers"]
    failures = []
    for address in settings.kafka_bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            connection = await create_conn(
                host, int(port), request_timeout_ms=int(timeout_s * 1000), **options
            )
        except (TimeoutError, OSError, KafkaError, ValueError, KeyError) as exc:
            refusal = _refusal(settings, address.strip(), exc)
            if refusal is not None:
                raise BrokerAccessError(refusal) from exc
            failures.append(f"{address.strip()}: {exc or type(exc).__name__}")
            continue
        connection.close()
        return
    raise BrokerUnavailableError(
        f"Kafka at {settings.kafka_bootstrap} does not answer ({'; '.join(failures)}); "
        "check RFM_KAFKA_BOOTSTRAP"
    )


def _refusal(settings: Settings, address: str, exc: BaseException) -> str | None:
    """What to fix when the broker at ``address`` refused this client; None for an outage."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
        cause, ssl.SSLCertVerificationError
    ):
        trusted = (
            f"RFM_KAFKA_SSL_CAFILE={settings.kafka_ssl_cafile}"
            if settings.kafka_ssl_cafile
            else "the system's CA certificates (set RFM_KAFKA_SSL_CAFILE)"
        )
        reason = getattr(exc, "verify_message", None) or getattr(cause, "verify_message", "")
        return f"Kafka at {address}: TLS certificate not trusted by {trusted} ({reason})"
    if isinstance(exc, ssl.SSLError):
        return (
            f"Kafka at {address}: TLS failed ({exc.reason or exc}); check "
            "RFM_KAFKA_SECURITY_PROTOCOL (does the listener speak TLS?) and RFM_KAFKA_SSL_*"
        )
    # aiokafka's SCRAM exchange fails with a ValueError (a signature it rejects) or a
    # KeyError (a final server message carrying an error instead of the signature).
    if isinstance(exc, _SASL_REFUSALS) or (
        isinstance(exc, ValueError | KeyError) and settings.kafka_security_protocol.uses_sasl
    ):
        return (
            f"Kafka at {address} refused the SASL credentials of user "
            f"{settings.kafka_sasl_username} ({settings.kafka_sasl_mechanism}); check "
            "RFM_KAFKA_SASL_USERNAME / RFM_KAFKA_SASL_PASSWORD"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return f"Kafka at {address}: {exc}; check RFM_KAFKA_SASL_MECHANISM"
    return None
