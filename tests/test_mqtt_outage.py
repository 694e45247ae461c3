"""Broker outages against a real mosquitto: nothing accepted is lost, nothing arrives twice.

The subscriber keeps a persistent session (clean_session=False, QoS 1) on a broker that saves its state
after every change, so it misses nothing while the broker is down and the publisher reconnects first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from edge.config import MqttConfig
from edge.publish.mqtt import MqttSink
from edge.publish.outbox import Outbox
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord
from tests.mosquitto import MosquittoBroker, mosquitto_binary

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto is not installed")

ROOT = Path(__file__).resolve().parents[1]


class PersistentMosquitto(MosquittoBroker):
    """Mosquitto that writes its sessions to disk after every change, so a SIGKILL loses no session."""

    def __init__(self) -> None:
        super().__init__()
        conf = self._conf.read_text(encoding="utf-8").replace(
            "persistence false",
            f"persistence true\npersistence_location {self._dir}/\nautosave_interval 1\nautosave_on_changes true",
        )
        if os.geteuid() == 0:  # as root, mosquitto drops to a user who cannot write the temp folder: no persistence
            conf += "user root\n"
        self._conf.write_text(conf, encoding="utf-8")


def make_record(device_id: str, seq: int) -> VitalsRecord:
    return VitalsRecord(
        device_id=device_id,
        seq=seq,
        t_mono=seq * 1_000_000_000,
        t_wall=time.time(),
        heart_rate=HeartRateReading(bpm=60.0 + seq % 30, confidence=0.9, method="pos", face_box=None),
        thermal=ThermalReading(
            face_raw_c=35.0, face_corrected_c=36.6, offset_c=1.6, reference="wrist",
            reference_measured_c=33.0, reference_estimated_c=34.6, wristband_c=33.5, registration_ncc=0.8,
        ),
    )


class Collector:
    """A subscriber that survives broker restarts and records (topic, seq, replayed) in arrival order."""

    def __init__(self, broker: MosquittoBroker, device_id: str) -> None:
        self._broker = broker
        self._device_id = device_id
        self.received: list[tuple[str, int, bool]] = []
        self.status: list[bytes] = []
        self.connected = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self._broker.port, identifier=f"collector-{self._device_id}", clean_session=False
                ) as client:
                    await client.subscribe(f"vitaledge/{self._device_id}/#", qos=1)
                    self.connected.set()
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        topic = str(message.topic).rsplit("/", 1)[1]
                        if topic == "status":
                            self.status.append(message.payload)
                        else:
                            body = json.loads(message.payload)
                            self.received.append((topic, int(body["seq"]), bool(body.get("replayed", False))))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.05)

    def seqs(self, topic: str) -> list[int]:
        return [seq for t, seq, _ in self.received if t == topic]

    def distinct(self) -> set[int]:
        return {seq for _, seq, _ in self.received}


async def wait_for(condition: object, timeout_s: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def check_every_seq_arrives(collector: Collector, expected: range, killed_at: int, sent_per_s: float) -> None:
    """Every seq arrives, first arrivals in order per topic; a seq may arrive twice only if it was sent in
    the second before the broker was killed. QoS 1 is at least once: a record the dead broker had
    delivered but not acknowledged is sent again from the outbox, and a broker restored from its last
    autosave (every second) redelivers what it had handed the subscriber since (subscribers drop a
    repeated boot_id and seq, as the README says)."""
    vitals, history = collector.seqs("vitals"), collector.seqs("history")
    assert sorted(set(vitals + history)) == list(expected), "every seq at least once across vitals + history"
    repeats = {seq for seq in vitals + history if (vitals + history).count(seq) > 1}
    before, after = round(1.5 * sent_per_s), round(0.5 * sent_per_s)  # the autosave second, and scheduling
    far = {seq for seq in repeats if not killed_at - before <= seq <= killed_at + after}
    assert not far, f"repeats far from the kill at seq {killed_at}: {sorted(far)}"
    for seqs in (vitals, history):
        first = [seq for i, seq in enumerate(seqs) if seq not in seqs[:i]]
        assert first == sorted(first), "in order per topic"
    assert all(replayed == (topic == "history") for topic, _, replayed in collector.received)


@pytest.mark.slow
async def test_broker_killed_for_over_10_s_loses_nothing(tmp_path: Path, topic_prefix: str) -> None:
    with PersistentMosquitto() as broker:
        collector = Collector(broker, topic_prefix)
        collecting = asyncio.create_task(collector.run())
        await asyncio.wait_for(collector.connected.wait(), 5)
        cfg = MqttConfig(reconnect_min_s=0.2, reconnect_max_s=1.0)
        outbox = Outbox(tmp_path / "outbox.sqlite")
        sink = MqttSink(cfg, url=broker.url, device_id=topic_prefix, outbox=outbox, replay_rate_hz=200.0)
        seq = 0
        async with sink:
            async def produce(seconds: float) -> None:
                nonlocal seq
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    await sink.send(make_record(topic_prefix, seq))
                    seq += 1
                    await asyncio.sleep(0.1)

            await produce(1.5)
            broker.kill()
            outage_start = seq
            await produce(11.0)
            assert outbox.depth >= seq - outage_start - 1, "records wait in the outbox during the outage"
            outage_records = seq - outage_start
            broker.start()
            await produce(2.0)
            await wait_for(lambda: outbox.depth == 0, 10, "the outbox to drain")
            await wait_for(lambda: len(collector.distinct()) >= seq, 10, "every record at the subscriber")
            assert sink.stats.disconnects >= 1 and sink.stats.connects >= 2
        collecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collecting
    check_every_seq_arrives(collector, range(seq), killed_at=outage_start, sent_per_s=10)
    # All but the last stale_s (2 s) of the outage's records are replayed as history.
    assert len(collector.seqs("history")) >= outage_records - 25
    assert collector.seqs("vitals")[0] == 0 and collector.seqs("vitals")[-1] == seq - 1
    assert collector.status[-1] == b"stopped"


CHILD = """
import asyncio, sys, time
from pathlib import Path
from edge.config import MqttConfig
from edge.publish.mqtt import MqttSink
from edge.publish.outbox import Outbox
from tests.test_mqtt_outage import make_record

async def main(url, device_id, outbox_path, count):
    outbox = Outbox(Path(outbox_path))
    sink = MqttSink(MqttConfig(reconnect_min_s=0.2, reconnect_max_s=0.5), url=url, device_id=device_id,
                    outbox=outbox, replay_rate_hz=200.0)
    start = sink.next_seq
    async with sink:
        for seq in range(start, start + count):
            await sink.send(make_record(device_id, seq))
            print(seq, flush=True)  # accepted: committed to the outbox
            await asyncio.sleep(0.05)
        while outbox.depth:
            await asyncio.sleep(0.05)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


def start_child(url: str, device_id: str, outbox: Path, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, url, device_id, str(outbox), str(count)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT,
    )


@pytest.mark.slow
async def test_app_killed_mid_outage_replays_after_restart(tmp_path: Path, topic_prefix: str) -> None:
    outbox_path = tmp_path / "outbox.sqlite"
    with PersistentMosquitto() as broker:
        collector = Collector(broker, topic_prefix)
        collecting = asyncio.create_task(collector.run())
        await asyncio.wait_for(collector.connected.wait(), 5)
        first = start_child(broker.url, topic_prefix, outbox_path, 10_000)
        assert first.stdout is not None
        accepted: list[int] = []
        while len(accepted) < 20:  # live for a while
            accepted.append(int(await asyncio.to_thread(first.stdout.readline)))
        broker.kill()
        while len(accepted) < 60:  # then the broker is gone: these wait in the outbox
            accepted.append(int(await asyncio.to_thread(first.stdout.readline)))
        first.send_signal(signal.SIGKILL)
        first.wait()
        accepted += [int(line) for line in first.stdout.read().split("\n") if line.strip().isdigit()]
        first.stdout.close()
        assert Outbox(outbox_path).depth >= 40, "the killed app left its waiting records on disk"
        broker.start()
        second = start_child(broker.url, topic_prefix, outbox_path, 10)
        out, _ = await asyncio.to_thread(second.communicate, timeout=30)
        assert second.returncode == 0
        last = int(out.split()[-1])
        assert last == max(accepted) + 10, "the restarted app continues the sequence"
        await wait_for(lambda: len(collector.distinct()) >= last + 1, 10, "every record at the subscriber")
        collecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collecting
    check_every_seq_arrives(collector, range(last + 1), killed_at=accepted[19], sent_per_s=20)
    assert set(accepted) <= set(collector.seqs("history")) | set(collector.seqs("vitals"))
    assert Outbox(outbox_path).depth == 0
