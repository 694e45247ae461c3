"""Degrade, never stop: even thinning of live frames, driven by sample times, and the queue's drop order."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from drivers.synthetic import SimulatedRig
from drivers.synthetic_physio import Physiology
from edge.build import build_heart_rate_pipeline
from edge.config import HeartRateConfig
from edge.decimate import Decimator
from edge.fusion_worker import FusionWorker
from edge.publish.dispatch import Dispatcher
from edge.stats import AppStats
from fusion.loop import FusionLoop
from fusion.samples import SkinTemperature, ThermalFrame, VisibleFrame
from tests.test_fusion_loop import _RecordingHeartRate
from tests.test_fusion_worker import _Collect, _GatedThermal, _skin

NS = 1_000_000_000
MS = 1_000_000
pytestmark = pytest.mark.timeout(60)


def _kept(decimator: Decimator, kind: str, rate_hz: float, seconds: float) -> list[int]:
    times = [round(i * NS / rate_hz) for i in range(round(seconds * rate_hz))]
    return [t for t in times if decimator.admit(kind, t)]


def test_every_frame_is_kept_while_fusion_keeps_up() -> None:
    decimator = Decimator()
    assert len(_kept(decimator, "VisibleFrame", 30.0, 5.0)) == 150
    assert not decimator.degraded


def test_a_starved_fusion_keeps_evenly_spaced_frames_at_the_floors() -> None:
    decimator = Decimator()
    decimator.scale = decimator.min_scale  # as low as it goes: the floors decide
    webcam = _kept(decimator, "VisibleFrame", 30.0, 10.0)
    thermal = _kept(decimator, "ThermalFrame", 8.7, 10.0)
    skin = _kept(decimator, "SkinTemperature", 4.0, 10.0)
    assert len(webcam) == pytest.approx(100, abs=3)  # 10 fps of 30
    gaps_ms = np.diff(webcam[5:]) / MS  # after the arrival rate is learnt
    assert gaps_ms.min() >= 99 and gaps_ms.max() <= 134, "evenly spaced: every third frame, never a burst"
    assert len(thermal) == pytest.approx(10, abs=2)  # 1 Hz of 8.7
    assert len(skin) == 40  # wristband readings are never thinned
    assert decimator.degraded


def test_two_webcams_are_two_streams_each_kept_at_the_floor() -> None:
    decimator = Decimator()
    decimator.scale = decimator.min_scale
    times = [round(i * NS / 30.0) for i in range(300)]  # 10 s at 30 fps, both cameras in step
    kept = {"left": 0, "right": 0}
    for t in times:
        for camera in kept:
            kept[camera] += decimator.admit("VisibleFrame", t, camera)
    # Paced as one stream, the two would share one 10 fps grid and each get about half of it.
    assert kept["left"] == pytest.approx(100, abs=3) and kept["right"] == pytest.approx(100, abs=3)


def test_scale_follows_the_measured_busy_fraction() -> None:
    decimator = Decimator(budget=0.5)
    now = 0.0
    for _ in range(3):  # fusion busy 100 % of each second: cut towards the budget
        for _ in range(10):
            now += 0.1
            decimator.observe(0.1, now)
    assert 0.1 < decimator.scale <= 0.3 and decimator.degraded  # about halved per second, twice so far
    for _ in range(200):  # idle for 20 s: creep back to every frame (15 % a second)
        now += 0.1
        decimator.observe(0.001, now)
    assert decimator.scale == 1.0 and not decimator.degraded


@pytest.mark.parametrize("bpm", [72.0, 160.0])
def test_decimation_to_10_fps_keeps_the_heart_rate_within_2_bpm(bpm: float) -> None:
    rig = SimulatedRig(physiology=Physiology(hr_bpm=bpm), thermal=False, wristband=False, realtime=False, seed=3)
    pipeline = build_heart_rate_pipeline(HeartRateConfig(method="pos"), 30.0)
    decimator = Decimator()
    decimator.scale = decimator.min_scale
    fed = 0
    for sample in rig.stream(17.0):  # a 10 s window, POS start-up and the tracker's 3 s look-ahead
        assert isinstance(sample, VisibleFrame)
        if decimator.admit("VisibleFrame", sample.t_mono):
            pipeline.push(sample.image, sample.t_mono)
            fed += 1
    assert fed == pytest.approx(170, abs=4)  # 10 fps
    reading = pipeline.reading()
    assert reading.bpm is not None, reading.flags
    assert reading.bpm == pytest.approx(bpm, abs=2.0)
    assert pipeline.rejected["no_face"] == 0, "the face stays tracked with the detector on a thinned stream"


def _visible(t_ms: int) -> VisibleFrame:
    image = np.zeros((4, 4, 3), np.uint8)
    return VisibleFrame(t_mono=t_ms * MS, t_wall=t_ms / 1e3, source="rig", seq=t_ms, image=image)


def _thermal(t_ms: int) -> ThermalFrame:
    celsius = np.zeros((4, 4), np.float32)
    return ThermalFrame(t_mono=t_ms * MS, t_wall=t_ms / 1e3, source="rig", seq=t_ms, celsius=celsius)


async def test_webcam_frames_give_way_first_so_temperature_is_never_starved() -> None:
    thermal, collect, stats = _GatedThermal(), _Collect(), AppStats()
    heart_rate = _RecordingHeartRate()
    fusion = FusionLoop(device_id="d", heart_rate=heart_rate, thermal=thermal)
    decimator = Decimator(floors_hz={})  # nothing thinned here: this is about the queue
    decimator.scale = 0.5  # as if thinning: records say so
    worker = FusionWorker(
        fusion, Dispatcher([collect]), stats, live_sources=("rig",), queue_size=4, decimator=decimator
    )
    async with worker:
        await worker.submit("rig", _skin(0, "rig"))
        await asyncio.to_thread(thermal.entered.wait, 10)  # the worker is stuck on the first reading
        await worker.submit("rig", _thermal(10))
        for t_ms in (20, 53, 87, 120):  # webcam frames fill the queue...
            await worker.submit("rig", _visible(t_ms))
        # ...each newcomer, a webcam frame, a reading or a thermal frame, pushes out the oldest webcam frame
        await worker.submit("rig", _skin(250, "rig"))
        await worker.submit("rig", _thermal(1100))
        assert stats.source("rig").fusion_dropped == 3
        thermal.gate.set()
    assert thermal.fused_ms == [0, 250]
    assert len(thermal.paired) == 2  # both thermal frames were fused
    assert heart_rate.frames == [120 * MS]
    assert [r.degraded for r in collect.records] == [True]


def test_skin_samples_are_not_frames() -> None:
    assert Decimator().admit(SkinTemperature.__name__, 0)


async def test_a_source_asking_first_is_thinned_once_and_the_refusals_are_counted() -> None:
    stats, heart_rate = AppStats(), _RecordingHeartRate()
    fusion = FusionLoop(device_id="d", heart_rate=heart_rate, thermal=_GatedThermal())
    decimator = Decimator()
    decimator.scale = decimator.min_scale  # thinning the webcam to its 10 fps floor
    worker = FusionWorker(  # a queue with room for all: this is about thinning, not the queue's drops
        fusion, Dispatcher([]), stats, live_sources=("rig",), decimator=decimator, queue_size=100
    )
    async with worker:
        wants = worker.demand("rig")
        admitted = []
        for i in range(90):  # 3 s at 30 fps
            t = round(i * NS / 30)
            if wants("VisibleFrame", t):
                admitted.append(t)
                image = np.zeros((4, 4, 3), np.uint8)
                await worker.submit("rig", VisibleFrame(t_mono=t, t_wall=t / NS, source="rig", seq=i, image=image))
    assert len(admitted) == pytest.approx(30, abs=3)
    assert heart_rate.frames == admitted, "a frame admitted before it was made is not thinned again"
    assert stats.source("rig").fusion_skipped == 90 - len(admitted)
    assert worker.demand("replay")("VisibleFrame", 0), "a source that is not live is never thinned"
