"""The dispatcher numbers records (gapless, the same seq for every sink) where the outbox left off."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Self

from edge.config import VitalEdgeConfig
from edge.publish.dispatch import Dispatcher
from edge.publish.mqtt import MqttSink
from edge.publish.outbox import Outbox
from edge.publish.sinks import build_dispatcher
from edge.publish.wire import payload_from_record
from edge.stats import AppStats
from fusion.samples import Sample
from fusion.vitals import UNNUMBERED, HeartRateReading, ThermalReading, VitalsRecord
from tests.test_mqtt_outage import make_record


class _Collect:
    def __init__(self, name: str, *, broken: bool = False) -> None:
        self.name = name
        self.broken = broken
        self.seqs: list[int] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def send(self, record: VitalsRecord) -> None:
        self.seqs.append(record.seq)
        if self.broken:
            raise RuntimeError("sink bug")

    def observe(self, sample: Sample, heart_rate: HeartRateReading, thermal: ThermalReading) -> None:
        return None


def _unnumbered() -> VitalsRecord:
    return dataclasses.replace(make_record("dev", 0), seq=UNNUMBERED)


async def test_every_sink_sees_the_same_gapless_seq_even_when_one_fails() -> None:
    first, broken, last = _Collect("a"), _Collect("b", broken=True), _Collect("c")
    dispatcher = Dispatcher([first, broken, last], first_seq=7)
    record = _unnumbered()
    for _ in range(3):
        await dispatcher.send(record)
    assert first.seqs == broken.seqs == last.seqs == [7, 8, 9]
    assert record.seq == UNNUMBERED, "the caller's record is not changed"
    assert dispatcher.errors == 3 and dispatcher.next_seq == 10


class _Boots(_Collect):
    def __init__(self) -> None:
        super().__init__("boots")
        self.boots: list[str] = []

    async def send(self, record: VitalsRecord) -> None:
        self.boots.append(record.boot_id)


async def test_every_record_carries_its_runs_boot_id() -> None:
    runs = [_Boots(), _Boots()]
    for sink in runs:  # two runs of the app, one after the other
        dispatcher = Dispatcher([sink])
        for _ in range(3):
            await dispatcher.send(_unnumbered())
    first, second = runs[0].boots, runs[1].boots
    assert len(set(first)) == len(set(second)) == 1 and first[0] != second[0], "one id per run, new each run"
    assert len(first[0]) == 32 and int(first[0], 16) >= 0
    assert json.loads(payload_from_record(dataclasses.replace(_unnumbered(), boot_id=first[0])))["boot_id"] == first[0]


def _mqtt(dispatcher: Dispatcher) -> MqttSink:
    sink = dispatcher.sinks[0]
    assert isinstance(sink, MqttSink), "MQTT is the first sink"
    return sink


async def test_a_new_app_numbers_from_where_the_outbox_left_off(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    cfg = VitalEdgeConfig.model_validate(
        {"device_id": "dev", "outbox": {"path": str(path)}, "overlay": {"enabled": False}, "metrics": {"enabled": 0}}
    )
    dispatcher = build_dispatcher(cfg, AppStats(), mqtt_url="mqtt://127.0.0.1:1")
    assert dispatcher.next_seq == 0, "a fresh outbox starts at 0"
    _mqtt(dispatcher).outbox.close()

    earlier = Outbox(path)
    for seq in range(5):
        earlier.put(seq, payload_from_record(make_record("dev", seq)))
    earlier.close()
    collect = _Collect("collect")
    dispatcher = build_dispatcher(cfg, AppStats(), mqtt_url="mqtt://127.0.0.1:1", extra_sinks=[collect])
    try:
        assert dispatcher.sinks[-1] is collect
        await dispatcher.send(_unnumbered())
        assert collect.seqs == [5]
        stored = [json.loads(row.payload)["seq"] for row in _mqtt(dispatcher).outbox.rows()]
        assert stored == [0, 1, 2, 3, 4, 5]
    finally:
        _mqtt(dispatcher).outbox.close()  # never started, so never closed by its exit
