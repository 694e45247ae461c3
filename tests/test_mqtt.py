"""The MQTT sink against a real mosquitto: topics, status and last will, retries, secrets, bad values."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest
from pydantic import SecretStr

from edge.config import MqttConfig
from edge.publish.mqtt import MqttSink, broker_address
from edge.publish.outbox import Outbox
from edge.publish.wire import json_dict_from_record
from fusion.errors import ConfigError
from fusion.vitals import ThermalReading, VitalsRecord
from tests.mosquitto import MosquittoBroker, free_port
from tests.test_mqtt_outage import ROOT, make_record


async def settle(condition: object, timeout_s: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert condition()


async def retained(port: int, topic: str) -> bytes:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic, qos=1)
        message = await asyncio.wait_for(anext(aiter(client.messages)), 5)
        assert message.retain and isinstance(message.payload, bytes)
        return message.payload


async def test_vitals_qos1_not_retained_and_status_online_then_stopped(
    mosquitto: MosquittoBroker, tmp_path: Path, topic_prefix: str
) -> None:
    sink = MqttSink(MqttConfig(), url=mosquitto.url, device_id=topic_prefix, outbox=Outbox(tmp_path / "o.sqlite"))
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
        await sub.subscribe(f"vitaledge/{topic_prefix}/vitals", qos=1)
        async with sink:
            await settle(lambda: sink.stats.connected)
            assert await retained(mosquitto.port, f"vitaledge/{topic_prefix}/status") == b"online"
            await sink.send(make_record(topic_prefix, 0))
            message = await asyncio.wait_for(anext(aiter(sub.messages)), 5)
            assert message.qos == 1 and not message.retain
            assert isinstance(message.payload, bytes)
            body = json.loads(message.payload)
            assert body["seq"] == 0 and body["schema"] == 1 and "replayed" not in body
            await settle(lambda: sink.outbox.depth == 0)
    assert await retained(mosquitto.port, f"vitaledge/{topic_prefix}/status") == b"stopped"
    assert sink.client_id == f"vitaledge-{topic_prefix}"


async def test_records_an_earlier_run_left_are_history_however_young(
    mosquitto: MosquittoBroker, tmp_path: Path, topic_prefix: str
) -> None:
    path = tmp_path / "o.sqlite"
    earlier = Outbox(path)
    for seq in range(3):  # accepted a moment ago by a run that died before the broker acknowledged them
        earlier.put(seq, json.dumps(json_dict_from_record(make_record(topic_prefix, seq))).encode())
    earlier.close()
    sink = MqttSink(MqttConfig(), url=mosquitto.url, device_id=topic_prefix, outbox=Outbox(path), stale_s=60.0)
    assert sink.next_seq == 3, "the next run continues the sequence"
    topics: list[tuple[str, int]] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
        await sub.subscribe(f"vitaledge/{topic_prefix}/+", qos=1)
        async with sink:
            await sink.send(make_record(topic_prefix, 3))
            async for message in sub.messages:
                topic = str(message.topic).rsplit("/", 1)[1]
                if topic in ("vitals", "history"):
                    assert isinstance(message.payload, bytes)
                    topics.append((topic, json.loads(message.payload)["seq"]))
                if len(topics) == 4:
                    break
    assert sorted(topics) == [("history", 0), ("history", 1), ("history", 2), ("vitals", 3)]


async def test_nan_values_are_published_as_null(mosquitto: MosquittoBroker, tmp_path: Path, topic_prefix: str) -> None:
    base = make_record(topic_prefix, 0)
    nan_thermal = ThermalReading(
        face_raw_c=math.nan, face_corrected_c=math.inf, offset_c=None, reference=None, reference_measured_c=None,
        reference_estimated_c=None, wristband_c=math.nan, registration_ncc=None,
    )
    record = VitalsRecord(device_id=topic_prefix, seq=0, t_mono=0, t_wall=time.time(),
                          heart_rate=base.heart_rate, thermal=nan_thermal)
    sink = MqttSink(MqttConfig(), url=mosquitto.url, device_id=topic_prefix, outbox=Outbox(tmp_path / "o.sqlite"))
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
        await sub.subscribe(f"vitaledge/{topic_prefix}/+", qos=1)
        async with sink:
            await sink.send(record)
            async for message in sub.messages:
                if str(message.topic).endswith("/vitals"):
                    assert isinstance(message.payload, bytes)
                    temperature = json.loads(message.payload)["temperature"]  # strict JSON: no NaN token
                    assert temperature["face_raw_c"] is None and temperature["face_corrected_c"] is None
                    break


async def test_unreachable_broker_retries_with_backoff_and_never_blocks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    cfg = MqttConfig(reconnect_min_s=0.1, reconnect_max_s=0.4, username="edge", password=SecretStr("hunter2-secret"))
    sink = MqttSink(cfg, url=f"mqtt://127.0.0.1:{port}", device_id="nobody", outbox=Outbox(tmp_path / "o.sqlite"))
    async with sink:
        started = time.perf_counter()
        for seq in range(20):
            await sink.send(make_record("nobody", seq))
        assert time.perf_counter() - started < 1.0, "send() only writes the outbox"
        await asyncio.sleep(1.5)
        assert sink.outbox.depth == 20 and sink.stats.connect_failures >= 3
    retries = [r for r in caplog.records if "cannot reach" in r.getMessage()]
    assert len(retries) >= 3 and all(r.levelno == logging.WARNING and r.exc_info is None for r in retries)
    delays = [float(r.getMessage().rsplit("retrying in ", 1)[1].split()[0]) for r in retries]
    assert max(delays) <= 0.4 * 1.25 + 0.05 and delays[-1] > delays[0], "capped exponential backoff"
    assert "hunter2" not in caplog.text, "secrets are never logged"


async def test_credentials_from_a_password_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret-from-file\n")
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd missing (Debian package mosquitto)")
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "edge", "s3cret-from-file"], check=True,
                   capture_output=True)
    broker = MosquittoBroker()
    conf = broker._conf.read_text().replace(  # user root: as root, mosquitto would drop to a user who cannot read tmp
        "allow_anonymous true", f"allow_anonymous false\npassword_file {passwd}\nuser root"
    )
    broker._conf.write_text(conf)
    with broker:
        good = MqttSink(MqttConfig(username="edge", password_file=secret), url=broker.url, device_id="auth",
                        outbox=Outbox(tmp_path / "a.sqlite"))
        async with good:
            await settle(lambda: good.stats.connected)
        bad = MqttSink(MqttConfig(username="edge", password=SecretStr("wrong-pass"), reconnect_min_s=0.1),
                       url=broker.url, device_id="auth2", outbox=Outbox(tmp_path / "b.sqlite"))
        async with bad:
            await asyncio.sleep(0.5)
            assert not bad.stats.connected and bad.stats.connect_failures >= 1
    assert "s3cret" not in caplog.text and "wrong-pass" not in caplog.text


LWT_CHILD = """
import asyncio, sys
from pathlib import Path
from edge.config import MqttConfig
from edge.publish.mqtt import MqttSink
from edge.publish.outbox import Outbox

async def main(url, device_id, path):
    async with MqttSink(MqttConfig(keepalive_s=5), url=url, device_id=device_id, outbox=Outbox(Path(path))) as sink:
        while not sink.stats.connected:
            await asyncio.sleep(0.02)
        print("connected", flush=True)
        await asyncio.sleep(60)

asyncio.run(main(*sys.argv[1:4]))
"""


async def test_a_killed_process_leaves_offline_by_last_will(
    mosquitto: MosquittoBroker, tmp_path: Path, topic_prefix: str
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", LWT_CHILD, mosquitto.url, topic_prefix, str(tmp_path / "o.sqlite")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
    )
    assert proc.stdout is not None
    assert (await asyncio.to_thread(proc.stdout.readline)).strip() == "connected"
    assert await retained(mosquitto.port, f"vitaledge/{topic_prefix}/status") == b"online"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 10
    while (status := await retained(mosquitto.port, f"vitaledge/{topic_prefix}/status")) == b"online":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert status == b"offline"


@pytest.mark.parametrize(("url", "expected"), [
    ("mqtt://broker.lan", ("broker.lan", 1883, False)),
    ("mqtts://broker.lan", ("broker.lan", 8883, True)),
    ("mqtt://10.0.0.2:1884", ("10.0.0.2", 1884, False)),
])
def test_broker_address(url: str, expected: tuple[str, int, bool]) -> None:
    assert broker_address(url) == expected


def test_a_bad_url_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.url"):
        broker_address("http://broker.lan")
