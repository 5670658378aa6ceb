"""The stream through TLS Kafka and a TLS Redis with an ACL user, and refusals at start-up.

Kafka: Tansu (which speaks no TLS here) behind ``socat openssl-listen``, advertising the TLS
port, so every connection of the clients, the bootstrap and the reconnections alike, goes
through TLS. Redis: ``redis-server`` on a TLS port only, its ``default`` user disabled, and an
ACL user allowed only the keys under the test's prefix, so a Lua script touching any other key
fails. Certificates come from a private CA made by ``trustme``.

SASL: Tansu 0.6 checks SCRAM credentials only with ``--authentication``, and then its user
store (in memory) takes no user, so only the refusal is tested end to end: every SCRAM login
fails there, as a wrong password would. A login that succeeds is not tested (see
docs/security.md).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pandas as pd
import pytest
import redis
import trustme

from model_training.data.loading import load_transactions
from model_training.data.rules import default_t_ref
from model_training.data.synth import generate_transactions, write_transactions
from model_training.model.artifact import load_model
from model_training.pipeline import train
from stream_app.devtools.network import HOST, free_port
from stream_app.devtools.processes import ProcessInfo, spawn, terminate
from stream_app.devtools.servers import find_redis_server, find_tansu
from stream_app.exceptions import BrokerUnavailableError
from stream_app.kafka.connection import check_broker
from stream_app.service.bootstrap import bootstrap_states
from stream_app.service.order_events import build_events
from stream_app.settings import Settings
from tests.integration.conftest import UniqueNames
from tests.integration.streaming import (
    assert_same_states,
    export,
    full_states,
    replay,
    running_worker,
)

SOCAT = shutil.which("socat") or "/usr/bin/socat"

#: The ACL user's password, and wrong ones: none may appear in any output or log.
REDIS_PASSWORD = "redis-Pw-3f9a1c"
WRONG_REDIS_PASSWORD = "redis-Wrong-77d2e0"
WRONG_SASL_PASSWORD = "sasl-Wrong-41bc9e"

#: The only keys the Redis ACL user may touch are under this prefix.
KEY_PREFIX = "secured"


@dataclass(frozen=True)
class Secured:
    """The module's servers and the files that reach them."""

    tls_kafka: str  # bootstrap of the TLS endpoint (socat in front of Tansu)
    sasl_kafka: str  # bootstrap of a Tansu that asks for SCRAM credentials
    redis_port: int  # TLS only
    ca: Path  # signed every server certificate
    other_ca: Path  # signed none
    directory: Path

    def settings(self, names: UniqueNames, **changes: object) -> Settings:
        """Settings reaching both through TLS, with the ACL user, and this test's names."""
        base = Settings(
            kafka_bootstrap=self.tls_kafka,
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=self.ca,
            redis_url=f"rediss://rfm:{REDIS_PASSWORD}@{HOST}:{self.redis_port}/0",
            redis_ssl_ca_certs=self.ca,
            **{**names.fields(), "key_prefix": KEY_PREFIX},  # the ACL user's keys
            session_timeout_s=6.0,
            retrain_interval_s=0.0,
        )
        return _changed(base, **changes)


def _changed(settings: Settings, **changes: object) -> Settings:
    """``settings`` with ``changes``, validated again (``model_copy`` would not)."""
    return Settings(**{**settings.model_dump(), **changes})


def _wait(ready: object, what: str, procs: list[ProcessInfo], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            logs = "\n".join(
                f"{proc.log}:\n{proc.log.read_text(errors='replace')}" for proc in procs
            )
            raise AssertionError(f"{what} did not answer in time\n{logs}")
        time.sleep(0.1)


def _broker_lets_in(settings: Settings) -> bool:
    try:
        asyncio.run(check_broker(settings, timeout_s=2.0))
    except BrokerUnavailableError:
        return False
    return True


def _redis_answers(port: int, ca: Path) -> bool:
    client = redis.Redis(
        host=HOST,
        port=port,
        ssl=True,
        ssl_ca_certs=str(ca),
        username="rfm",
        password=REDIS_PASSWORD,
        socket_timeout=1,
        socket_connect_timeout=1,
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """TLS Kafka, SCRAM-asking Kafka and TLS + ACL Redis, started once for the module."""
    try:
        tansu = find_tansu()
        redis_server = find_redis_server()
    except Exception as exc:  # StackError: the binaries are missing
        pytest.skip(f"servers unavailable: {exc}")
    if not os.access(SOCAT, os.X_OK):
        pytest.skip("socat not installed (apt-get install socat)")
    directory = tmp_path_factory.mktemp("secured")
    authority = trustme.CA()
    server = authority.issue_cert(HOST, "localhost")
    ca, other_ca = directory / "ca.pem", directory / "other-ca.pem"
    cert, key = directory / "server.pem", directory / "server.key"
    authority.cert_pem.write_to_path(ca)
    trustme.CA().cert_pem.write_to_path(other_ca)
    server.cert_chain_pems[0].write_to_path(cert)
    server.private_key_pem.write_to_path(key)

    plain, tls, sasl, redis_port = (free_port() for _ in range(4))
    procs: list[ProcessInfo] = []

    def start(name: str, port: int, argv: list[str]) -> None:
        procs.append(spawn(name, port, argv, directory / f"{name}.log", directory, True))

    try:
        # Clients learn the TLS port from the metadata, so they reconnect through socat.
        start("kafka", plain, [str(tansu), "broker", "--listener-url", f"tcp://{HOST}:{plain}",
              "--advertised-listener-url", f"tcp://{HOST}:{tls}",
              "--storage-engine", "memory://tansu/"])  # fmt: skip
        start("socat", tls, [SOCAT, f"openssl-listen:{tls},bind={HOST},cert={cert},key={key},"
              "verify=0,fork,reuseaddr", f"tcp:{HOST}:{plain}"])  # fmt: skip
        start("kafka-sasl", sasl, [str(tansu), "broker", "--listener-url", f"tcp://{HOST}:{sasl}",
              "--advertised-listener-url", f"tcp://{HOST}:{sasl}",
              "--storage-engine", "memory://tansu/", "--authentication"])  # fmt: skip
        start("redis", redis_port, [str(redis_server), "--port", "0", "--bind", HOST,
              "--tls-port", str(redis_port), "--tls-cert-file", str(cert),
              "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
              "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
              "--user", "default", "off",
              # The keys of the prefix, pub/sub channels, every command but the dangerous
              # ones (INFO is one): EVALSHA, SCRIPT LOAD, SCAN stay allowed.
              "--user", "rfm", "on", f">{REDIS_PASSWORD}", f"~{KEY_PREFIX}:*", "&*",
              "+@all", "-@dangerous", "+info"])  # fmt: skip
        secured = Secured(f"{HOST}:{tls}", f"{HOST}:{sasl}", redis_port, ca, other_ca, directory)
        probe = Settings(
            kafka_bootstrap=secured.tls_kafka, kafka_security_protocol="SSL", kafka_ssl_cafile=ca
        )
        _wait(lambda: _broker_lets_in(probe), "Tansu behind socat", procs)
        _wait(lambda: _redis_answers(redis_port, ca), "the TLS Redis", procs)
        yield secured
    finally:
        terminate(procs, timeout=10)


def _rfm(
    settings: Settings, *args: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_app", *args],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _assert_one_error_line(run: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The command ended with exit code 2 and its last line is one ``error:`` line."""
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), run.stderr
    for part in expected:
        assert part in last, last
    assert "Traceback" not in run.stderr, run.stderr
    return last


def _assert_no_secret(*texts: str) -> None:
    for secret in (REDIS_PASSWORD, WRONG_REDIS_PASSWORD, WRONG_SASL_PASSWORD):
        for text in texts:
            assert secret not in text, f"a password shows in:\n{text}"


def test_stream_through_tls_kafka_and_tls_acl_redis_equals_the_batch(
    secured: Secured, unique_names: UniqueNames, tmp_path: Path
) -> None:
    history = tmp_path / "orders.csv"
    write_transactions(generate_transactions(customers=400, seed=11), history)
    frame = load_transactions(history)
    events = build_events(frame).events
    model_dir = tmp_path / "model"
    t_ref = default_t_ref(pd.Timestamp(frame["invoiced_at"].max()).to_pydatetime())
    train(history, model_dir, t_ref=t_ref, method="seed")
    batch = pd.read_csv(model_dir / "rfm.csv", dtype={"customer_id": str})
    settings = secured.settings(unique_names, model_dir=model_dir)

    with running_worker(settings, tmp_path / "worker.log") as worker:
        replay(settings, events, timeout_s=120)
        assert worker.process.poll() is None, worker.log()
        stream = export(settings, t_ref.replace(tzinfo=UTC).timestamp(), load_model(model_dir))
        states = full_states(settings)
        log = worker.log()

    assert len(events) > 2000
    assert_same_states(states, {s.customer_id: s for s in bootstrap_states(frame)})
    merged = batch.merge(stream, on="customer_id", suffixes=("_batch", "_stream"))
    assert len(merged) == len(batch) == len(stream)
    assert (merged["recency_days_batch"] == merged["recency_days_stream"]).all()
    assert (merged["frequency_batch"] == merged["frequency_stream"]).all()
    assert (merged["monetary_batch"] - merged["monetary_stream"]).abs().max() <= 0.01
    assert (merged["segment_batch"] == merged["segment_stream"]).all()
    _assert_no_secret(log)


def test_a_wrong_redis_password_fails_a_command_with_one_line(
    secured: Secured, unique_names: UniqueNames
) -> None:
    settings = secured.settings(unique_names)
    wrong = _changed(
        settings, redis_url=settings.redis_url.replace(REDIS_PASSWORD, WRONG_REDIS_PASSWORD)
    )
    run = _rfm(wrong, "segments")
    _assert_one_error_line(run, "Redis refused the user or password of RFM_REDIS_URL")
    _assert_no_secret(run.stdout, run.stderr)


def test_an_untrusted_redis_certificate_fails_a_command_with_one_line(
    secured: Secured, unique_names: UniqueNames
) -> None:
    settings = secured.settings(unique_names, redis_ssl_ca_certs=secured.other_ca)
    run = _rfm(settings, "segments")
    _assert_one_error_line(run, "not trusted by RFM_REDIS_SSL_CA_CERTS")
    _assert_no_secret(run.stdout, run.stderr)


def test_an_untrusted_kafka_certificate_fails_a_command_with_one_line(
    secured: Secured, unique_names: UniqueNames, tmp_path: Path
) -> None:
    orders = tmp_path / "orders.csv"
    write_transactions(generate_transactions(customers=5, seed=3), orders)
    settings = secured.settings(unique_names, kafka_ssl_cafile=secured.other_ca)
    run = _rfm(settings, "replay", "--input", str(orders))
    _assert_one_error_line(
        run,
        f"Kafka at {secured.tls_kafka}: TLS certificate not trusted by "
        f"RFM_KAFKA_SSL_CAFILE={secured.other_ca}",
    )
    _assert_no_secret(run.stdout, run.stderr)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_refused_sasl_credentials_fail_a_command_with_one_line(
    secured: Secured, unique_names: UniqueNames, tmp_path: Path, mechanism: str
) -> None:
    orders = tmp_path / "orders.csv"
    write_transactions(generate_transactions(customers=5, seed=3), orders)
    settings = secured.settings(
        unique_names,
        kafka_bootstrap=secured.sasl_kafka,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_ssl_cafile=None,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="alice",
        kafka_sasl_password=WRONG_SASL_PASSWORD,
    )
    run = _rfm(settings, "replay", "--input", str(orders))
    _assert_one_error_line(
        run,
        f"Kafka at {secured.sasl_kafka} refused the SASL credentials of user alice",
        "RFM_KAFKA_SASL_USERNAME / RFM_KAFKA_SASL_PASSWORD",
    )
    _assert_no_secret(run.stdout, run.stderr)


@pytest.mark.parametrize("refused", ["redis password", "kafka certificate", "sasl"])
def test_a_worker_refused_stops_at_start_up_with_one_line(
    secured: Secured, unique_names: UniqueNames, tmp_path: Path, refused: str
) -> None:
    settings = secured.settings(unique_names)
    if refused == "redis password":
        changes: dict[str, object] = {
            "redis_url": settings.redis_url.replace(REDIS_PASSWORD, WRONG_REDIS_PASSWORD)
        }
        expected = "Redis refused the user or password of RFM_REDIS_URL"
    elif refused == "kafka certificate":
        changes = {"kafka_ssl_cafile": secured.other_ca}
        expected = "TLS certificate not trusted by RFM_KAFKA_SSL_CAFILE"
    else:
        changes = {
            "kafka_bootstrap": secured.sasl_kafka,
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_ssl_cafile": None,
            "kafka_sasl_mechanism": "SCRAM-SHA-256",
            "kafka_sasl_username": "alice",
            "kafka_sasl_password": WRONG_SASL_PASSWORD,
        }
        expected = "refused the SASL credentials of user alice"
    started = time.monotonic()
    run = _rfm(_changed(settings, **changes), "worker", timeout_s=60)
    assert time.monotonic() - started < 30, "the worker did not stop at start-up"
    _assert_one_error_line(run, expected)
    _assert_no_secret(run.stdout, run.stderr)
