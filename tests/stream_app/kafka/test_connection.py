"""Settings to Kafka clients: options, faust credentials, and refusals told from outages."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import faust
import pytest
import trustme
from aiokafka.errors import SaslAuthenticationFailed

from stream_app.devtools.network import HOST, free_port
from stream_app.exceptions import BrokerAccessError, BrokerUnavailableError
from stream_app.kafka import connection
from stream_app.kafka.connection import check_broker, client_options, faust_credentials
from stream_app.kafka.worker import faust_options
from stream_app.settings import Settings

PASSWORD = "k-Secret-90f1"


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(tmp_path: Path, authority: trustme.CA) -> Path:
    path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(path)
    return path


def _sasl(**changes: object) -> Settings:
    values: dict[str, object] = {
        "kafka_bootstrap": "k1:9093,k2:9093",
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "rfm",
        "kafka_sasl_password": PASSWORD,
    }
    return Settings(**{**values, **changes})


def test_plaintext_clients_get_the_bootstrap_and_nothing_else() -> None:
    assert client_options(Settings(kafka_bootstrap="k1:9092")) == {
        "bootstrap_servers": "k1:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(Settings()) is None
    assert faust_options(Settings())["broker_credentials"] is None


def test_tls_clients_check_the_certificate_against_the_ca_file(ca_file: Path) -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=ca_file)
    options = client_options(settings)
    assert options["security_protocol"] == "SSL"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert len(context.get_ca_certs()) == 1  # the CA file's, not the system's
    assert "sasl_mechanism" not in options
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context.get_ca_certs() == context.get_ca_certs()


def test_a_client_certificate_is_loaded(
    tmp_path: Path, authority: trustme.CA, ca_file: Path
) -> None:
    client = authority.issue_cert("rfm-worker")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(cert)
    client.private_key_pem.write_to_path(key)
    settings = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=ca_file,
        kafka_ssl_certfile=cert,
        kafka_ssl_keyfile=key,
    )
    assert isinstance(client_options(settings)["ssl_context"], ssl.SSLContext)
    wrong_key = tmp_path / "other.key"
    authority.issue_cert("other").private_key_pem.write_to_path(wrong_key)
    with pytest.raises(ssl.SSLError):
        client_options(settings.model_copy(update={"kafka_ssl_keyfile": wrong_key}))


def test_sasl_clients_get_the_mechanism_user_and_password() -> None:
    options = client_options(_sasl())
    assert options == {
        "bootstrap_servers": "k1:9093,k2:9093",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "rfm",
        "sasl_plain_password": PASSWORD,
    }


def test_sasl_over_tls_gives_faust_the_same_credentials(ca_file: Path) -> None:
    settings = _sasl(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=ca_file)
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    # What faust's aiokafka driver hands its consumer, producer and admin client.
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("rfm", PASSWORD)
    assert credentials.ssl_context is not None
    assert PASSWORD not in repr(credentials)
    assert isinstance(faust_options(settings)["broker_credentials"], faust.SASLCredentials)


async def test_every_client_of_the_tools_gets_the_options() -> None:
    settings = _sasl()
    made = [
        connection.consumer(settings, "orders", group_id=None)._client,
        connection.producer(settings, acks="all").client,
        connection.admin_client(settings)._client,
    ]
    for inner in made:
        assert inner._security_protocol == "SASL_PLAINTEXT"
        assert inner._sasl_mechanism == "SCRAM-SHA-512"
        assert inner._sasl_plain_username == "rfm"
        assert inner._sasl_plain_password == PASSWORD


@pytest.fixture
async def tls_listener(tmp_path: Path) -> AsyncIterator[int]:
    """A TLS server whose certificate a CA of its own signed (not the test's ``ca_file``)."""
    stranger = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    stranger.issue_cert(HOST).configure_cert(context)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, HOST, 0, ssl=context)
    port: int = server.sockets[0].getsockname()[1]
    async with server:
        yield port


async def test_an_untrusted_certificate_is_a_refusal_naming_the_ca_file(
    tls_listener: int, ca_file: Path
) -> None:
    settings = Settings(
        kafka_bootstrap=f"{HOST}:{tls_listener}",
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=ca_file,
    )
    with pytest.raises(BrokerAccessError) as raised:
        await check_broker(settings, timeout_s=5)
    assert str(raised.value).startswith(
        f"Kafka at {HOST}:{tls_listener}: TLS certificate not trusted by "
        f"RFM_KAFKA_SSL_CAFILE={ca_file}"
    )


async def test_no_broker_is_an_outage_not_a_refusal() -> None:
    settings = _sasl(kafka_bootstrap=f"{HOST}:{free_port()}")
    with pytest.raises(BrokerUnavailableError, match="check RFM_KAFKA_BOOTSTRAP"):
        await check_broker(settings, timeout_s=2)


async def test_refused_sasl_credentials_name_the_user_not_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refused(*args: object, **kwargs: object) -> None:
        assert kwargs["sasl_plain_password"] == PASSWORD
        raise SaslAuthenticationFailed("Authentication failed: Invalid username or password")

    monkeypatch.setattr(connection, "create_conn", refused)
    with pytest.raises(BrokerAccessError) as raised:
        await check_broker(_sasl(), timeout_s=2)
    message = str(raised.value)
    assert message == (
        "Kafka at k1:9093 refused the SASL credentials of user rfm (SCRAM-SHA-512); check "
        "RFM_KAFKA_SASL_USERNAME / RFM_KAFKA_SASL_PASSWORD"
    )
    assert PASSWORD not in message
