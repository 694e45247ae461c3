"""The fusion worker: fusion off the event loop, a bounded queue that drops only live samples, no record lost."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from edge.app import _is_live
from edge.config import ReplayConfig, SyntheticSourceConfig, WebcamConfig
from edge.fusion_worker import FusionWorker
from edge.publish.dispatch import Dispatcher
from edge.stats import AppStats
from fusion.loop import FusionLoop
from fusion.samples import Sample, SkinTemperature
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord
from tests.test_fusion_loop import _RecordingHeartRate, _RecordingThermal

MS = 1_000_000
pytestmark = pytest.mark.timeout(30)  # a regression here hangs (a blocked loop), it must not hang the suite


class _GatedThermal(_RecordingThermal):
    """Blocks the worker in ``push_skin`` until ``gate`` is set; remembers which readings it fused."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fused_ms: list[int] = []

    def push_skin(self, celsius: float, t_mono: int) -> None:
        self.entered.set()
        assert self.gate.wait(10), "test never opened the gate"
        self.fused_ms.append(t_mono // MS)
        super().push_skin(celsius, t_mono)


class _Collect:
    name = "collect"

    def __init__(self) -> None:
        self.records: list[VitalsRecord] = []
        self.observed: list[tuple[int, float | None]] = []  # (t_ms, wristband_c the readings carried)
        self.gate = asyncio.Event()
        self.gate.set()
        self.sending = asyncio.Event()

    async def __aenter__(self) -> _Collect:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def send(self, record: VitalsRecord) -> None:
        self.sending.set()
        await self.gate.wait()
        self.records.append(record)

    def observe(self, sample: Sample, heart_rate: HeartRateReading, thermal: ThermalReading) -> None:
        self.observed.append((sample.t_mono // MS, thermal.wristband_c))


def _skin(t_ms: int, source: str = "e4") -> SkinTemperature:
    return SkinTemperature(t_mono=t_ms * MS, t_wall=t_ms / 1e3, source=source, seq=t_ms, celsius=30.0 + t_ms / 1e3)


def _worker(
    thermal: _GatedThermal,
    collect: _Collect,
    stats: AppStats,
    *,
    live_sources: tuple[str, ...] = (),
    queue_size: int = 16,
    record_queue_size: int = 32,
) -> FusionWorker:
    fusion = FusionLoop(device_id="d", heart_rate=_RecordingHeartRate(), thermal=thermal)
    return FusionWorker(
        fusion,
        Dispatcher([collect]),
        stats,
        live_sources=live_sources,
        queue_size=queue_size,
        record_queue_size=record_queue_size,
    )


async def _echo_round_trip() -> bytes:
    """A real TCP round trip through the event loop: it completes only if the loop is serving."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        reply = await reader.readline()
        writer.close()
        await writer.wait_closed()
    return reply


async def test_a_stuck_fusion_step_does_not_stall_the_event_loop() -> None:
    thermal, collect, stats = _GatedThermal(), _Collect(), AppStats()
    async with _worker(thermal, collect, stats, live_sources=("e4",)) as worker:
        await worker.submit("e4", _skin(0))
        await asyncio.to_thread(thermal.entered.wait, 10)  # the worker is now stuck inside fusion
        assert await _echo_round_trip() == b"ping\n"  # the loop still serves sockets...
        for t_ms in (250, 500, 750, 1000, 1250):
            await worker.submit("e4", _skin(t_ms))  # ...and takes samples without waiting on fusion
        assert thermal.fused_ms == [] and stats.source("e4").samples == 6
        thermal.gate.set()
    # Leaving the block fused every accepted sample and sent the record they owed.
    assert thermal.fused_ms == [0, 250, 500, 750, 1000, 1250]
    assert [r.seq for r in collect.records] == [0]
    assert collect.observed == [(t, 30.0 + t / 1e3) for t in (0, 250, 500, 750, 1000, 1250)]
    assert stats.records == 1 and stats.fusion_latency.count == 6


async def test_a_full_queue_drops_the_oldest_live_sample_and_counts_it() -> None:
    thermal, collect, stats = _GatedThermal(), _Collect(), AppStats()
    async with _worker(thermal, collect, stats, live_sources=("e4",), queue_size=2) as worker:
        await worker.submit("e4", _skin(0))
        await asyncio.to_thread(thermal.entered.wait, 10)
        for t_ms in (100, 200, 300, 400, 500):  # room for two: 100, 200, then each newcomer pushes one out
            await worker.submit("e4", _skin(t_ms))
        assert stats.source("e4").fusion_dropped == 3
        thermal.gate.set()
    assert thermal.fused_ms == [0, 400, 500]
    assert stats.source("e4").samples == 6 and stats.source("e4").fusion_dropped == 3


async def test_a_source_that_is_not_live_waits_for_room_and_loses_nothing() -> None:
    thermal, collect, stats = _GatedThermal(), _Collect(), AppStats()
    async with _worker(thermal, collect, stats, queue_size=1) as worker:
        await worker.submit("replay", _skin(0, "replay"))
        await asyncio.to_thread(thermal.entered.wait, 10)
        await worker.submit("replay", _skin(500, "replay"))  # fills the queue
        waiting = asyncio.create_task(worker.submit("replay", _skin(1000, "replay")))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done(), "a replay sample must wait, not push another out"
        thermal.gate.set()
        await waiting
    assert thermal.fused_ms == [0, 500, 1000]
    assert stats.source("replay").fusion_dropped == 0
    assert [r.seq for r in collect.records] == [0]


async def test_a_slow_sink_holds_fusion_back_and_no_record_is_lost() -> None:
    thermal, collect, stats = _GatedThermal(), _Collect(), AppStats()
    thermal.gate.set()
    collect.gate.clear()  # the sink takes record 0 and sits on it
    async with _worker(thermal, collect, stats, record_queue_size=1) as worker:
        for t_ms in range(0, 3001, 500):
            await worker.submit("replay", _skin(t_ms, "replay"))
        await collect.sending.wait()
        while len(thermal.fused_ms) < 5:  # fused 2000 ms: record 1 is cut and waits for the only slot
            await asyncio.sleep(0.01)
        assert [r.seq for r in collect.records] == []
        collect.gate.set()
    assert [r.seq for r in collect.records] == [0, 1, 2]
    assert stats.records == 3 and stats.record_waits >= 1
    assert thermal.fused_ms == list(range(0, 3001, 500))


async def test_a_sample_that_breaks_fusion_is_counted_and_keeps_the_records_owed() -> None:
    class _Broken(_GatedThermal):
        def push_skin(self, celsius: float, t_mono: int) -> None:
            if t_mono == 1000 * MS:
                raise RuntimeError("bug")
            super().push_skin(celsius, t_mono)

    thermal, collect, stats = _Broken(), _Collect(), AppStats()
    thermal.gate.set()
    async with _worker(thermal, collect, stats) as worker:
        for t_ms in range(0, 2001, 500):
            await worker.submit("e4", _skin(t_ms))
    assert stats.errors["fusion_SkinTemperature"] == 1
    assert [r.seq for r in collect.records] == [0, 1]  # the breaking sample still cut record 0
    assert [t for t, _ in collect.observed] == [0, 500, 1500, 2000]


def test_only_devices_and_clock_paced_sources_are_live(tmp_path: Path) -> None:
    assert _is_live(WebcamConfig(kind="webcam"))
    assert _is_live(SyntheticSourceConfig(kind="synthetic"))
    assert not _is_live(SyntheticSourceConfig(kind="synthetic", realtime=False))  # demo --fast: every sample
    assert not _is_live(ReplayConfig(kind="replay", path=tmp_path))  # a replay at any speed stays bit-for-bit
