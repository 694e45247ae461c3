"""Failures retrying will not fix are said for what they are and retried at the longest delay; credentials never
ride in the URL; mutual TLS against a real mosquitto."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from edge.config import MqttConfig, load_config
from edge.publish.mqtt import MqttSink, broker_address
from edge.publish.outbox import Outbox
from fusion.errors import ConfigError
from tests.mosquitto import MosquittoBroker, free_port, mosquitto_binary
from tests.test_mqtt import settle

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto is not installed")


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "edge.publish.mqtt" and r.levelno >= logging.WARNING]


def _delay_s(message: str) -> float:
    return float(message.rsplit("retrying every ", 1)[1].split()[0])


async def test_wrong_password_is_said_and_retried_at_the_longest_delay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd missing (Debian package mosquitto)")
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "edge", "right"], check=True, capture_output=True)
    broker = MosquittoBroker()
    broker._conf.write_text(broker._conf.read_text().replace(
        "allow_anonymous true", f"allow_anonymous false\npassword_file {passwd}\nuser root"))
    cfg = MqttConfig(username="edge", password=SecretStr("wrong-pass"), reconnect_min_s=0.1, reconnect_max_s=8.0)
    with broker:
        sink = MqttSink(cfg, url=broker.url, device_id="auth", outbox=Outbox(tmp_path / "o.sqlite"))
        async with sink:
            await settle(lambda: sink.stats.connect_failures >= 1)
    said = _refusals(caplog)
    assert len(said) == 1 and "refused the credentials" in said[0] and "cannot reach" not in said[0]
    assert _delay_s(said[0]) >= 8.0 * 0.75, "no quick retries: straight to the longest delay"
    assert "wrong-pass" not in caplog.text


async def test_a_missing_ca_file_is_named_not_cannot_reach(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "ca.pem"
    cfg = MqttConfig(tls_ca_file=missing, reconnect_min_s=0.1, reconnect_max_s=8.0)
    sink = MqttSink(cfg, url=f"mqtts://127.0.0.1:{free_port()}", device_id="ca", outbox=Outbox(tmp_path / "o.sqlite"))
    async with sink:
        await settle(lambda: sink.stats.connect_failures >= 1)
    said = _refusals(caplog)
    assert len(said) == 1 and f"mqtt.tls_ca_file {missing}: file missing" in said[0]
    assert _delay_s(said[0]) >= 8.0 * 0.75


@pytest.mark.parametrize("url", ["mqtt://edge:hunter2@broker.lan", "mqtts://edge@broker.lan:8883"])
def test_credentials_in_the_url_are_refused_without_echoing_them(url: str) -> None:
    config = {"device_id": "d", "sources": [{"kind": "synthetic", "name": "rig"}], "mqtt": {"url": url}}
    with pytest.raises(ConfigError) as caught:
        load_config(None, config)
    assert "mqtt.url" in str(caught.value) and "must not carry credentials" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match="credentials in the URL"):
        broker_address(url)


def test_client_certificate_and_key_come_together(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="tls_cert_file and tls_key_file"):
        MqttConfig(tls_cert_file=tmp_path / "c.pem")


def _pki(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr")
        (folder / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem")


async def test_mutual_tls_connects_with_the_client_certificate_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl missing")
    _pki(tmp_path)
    broker = MosquittoBroker()
    broker._conf.write_text(broker._conf.read_text() + (
        f"cafile {tmp_path}/ca.pem\ncertfile {tmp_path}/server.pem\nkeyfile {tmp_path}/server.key\n"
        "require_certificate true\nuser root\n"))
    url = f"mqtts://127.0.0.1:{broker.port}"
    with broker:
        good = MqttSink(
            MqttConfig(tls_ca_file=tmp_path / "ca.pem", tls_cert_file=tmp_path / "client.pem",
                       tls_key_file=tmp_path / "client.key"),
            url=url, device_id="mtls", outbox=Outbox(tmp_path / "a.sqlite"),
        )
        async with good:
            await settle(lambda: good.stats.connected)
        anonymous = MqttSink(MqttConfig(tls_ca_file=tmp_path / "ca.pem", reconnect_min_s=0.1), url=url,
                             device_id="mtls2", outbox=Outbox(tmp_path / "b.sqlite"))
        async with anonymous:
            await settle(lambda: anonymous.stats.connect_failures >= 1, timeout_s=15)  # TLS 1.3: CONNACK timeout
            assert not anonymous.stats.connected
