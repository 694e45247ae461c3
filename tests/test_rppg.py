"""The heart-rate pipeline end to end: the simulated rig's face at known rates, and a face-less video."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.synthetic import SimulatedRig
from drivers.synthetic_physio import Physiology
from edge.build import build_heart_rate_pipeline
from edge.config import HeartRateConfig
from fusion.rppg import HeartRatePipeline
from fusion.samples import VisibleFrame

NS = 1_000_000_000


def _feed(pipeline: HeartRatePipeline, rig: SimulatedRig, seconds: float) -> list[VisibleFrame]:
    """Pushes ``seconds`` of the rig's webcam frames into the pipeline, as the fusion loop does; returns them."""
    frames = []
    for sample in rig.stream(seconds):
        assert isinstance(sample, VisibleFrame)
        pipeline.push(sample.image, sample.t_mono, greyscale=sample.greyscale)
        frames.append(sample)
    return frames


@pytest.mark.slow
@pytest.mark.parametrize("bpm", [48.0, 72.0, 110.0, 160.0])
def test_rig_face_pulse_is_recovered_within_2_bpm(bpm: float) -> None:
    rig = SimulatedRig(physiology=Physiology(hr_bpm=bpm), thermal=False, wristband=False, realtime=False, seed=3)
    pipeline = build_heart_rate_pipeline(HeartRateConfig(method="pos"), 30.0)
    frames = _feed(pipeline, rig, 16.6)  # a 10 s window, ~3 s of POS start-up and 3 s of look-ahead
    reading = pipeline.reading()
    assert reading.bpm is not None, reading.flags
    assert reading.bpm == pytest.approx(bpm, abs=2.0)
    assert reading.method == "pos" and reading.face_box is not None
    assert frames[-1].meta["true_hr_bpm"] == pytest.approx(bpm)


def test_warming_up_until_a_full_window() -> None:
    rig = SimulatedRig(physiology=Physiology(hr_bpm=80.0), thermal=False, wristband=False, realtime=False)
    pipeline = build_heart_rate_pipeline(HeartRateConfig(method="chrom"), 30.0)
    _feed(pipeline, rig, 5.0)
    reading = pipeline.reading()
    assert reading.bpm is None and reading.flags == ("warming_up",)
    assert reading.face_box is not None


def test_faceless_video_gives_no_heart_rate_and_the_no_face_flag() -> None:
    pipeline = build_heart_rate_pipeline(HeartRateConfig(), 30.0)
    ramp = np.linspace(60, 200, 640)[None, :, None] * np.ones((480, 1, 3))  # a wall, lit from one side
    for i in range(11 * 30):  # longer than a window; brightness pulsing at 75 bpm, but no face
        gain = 1 + 0.01 * np.sin(2 * np.pi * 1.25 * i / 30)
        pipeline.push((ramp * gain).astype(np.uint8), i * NS // 30)
    reading = pipeline.reading()
    assert reading.bpm is None and reading.confidence == 0.0
    assert reading.flags == ("no_face",) and reading.face_box is None
    assert pipeline.heart_rate() is None
    assert pipeline.rejected["no_face"] == 330


def test_face_leaving_drops_the_number_and_says_so() -> None:
    rig = SimulatedRig(physiology=Physiology(hr_bpm=70.0), thermal=False, wristband=False, realtime=False)
    pipeline = build_heart_rate_pipeline(HeartRateConfig(), 30.0)
    last = _feed(pipeline, rig, 16.6)[-1].t_mono
    assert pipeline.reading().bpm is not None
    empty = np.full((480, 640, 3), 128, np.uint8)
    for i in range(1, 45):  # 1.5 s of an empty scene
        pipeline.push(empty, last + i * NS // 30)
    reading = pipeline.reading()
    assert reading.bpm is None and "no_face" in reading.flags


def test_bad_frame_is_a_caller_error() -> None:
    pipeline = build_heart_rate_pipeline(HeartRateConfig(), 30.0)
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        pipeline.push(np.zeros((480, 640), np.uint8), 0)


def test_frame_out_of_time_order_is_counted_and_skipped() -> None:
    rig = SimulatedRig(physiology=Physiology(hr_bpm=70.0), thermal=False, wristband=False, realtime=False)
    pipeline = build_heart_rate_pipeline(HeartRateConfig(), 30.0)
    frames = [s for s in rig.stream(1.0) if isinstance(s, VisibleFrame)]
    for f in frames[:10]:
        pipeline.push(f.image, f.t_mono)
    pipeline.push(frames[3].image, frames[3].t_mono)  # late duplicate
    pipeline.push(frames[10].image, frames[10].t_mono)
    assert pipeline.rejected["time_not_increasing"] == 1
    assert pipeline.frames == 11


# 75 and 95 bpm: at 60 the rig's white sensor noise, lifted by the luma method's whitening, wins (README)
@pytest.mark.parametrize("bpm", [75.0, 95.0])
def test_greyscale_frames_switch_to_the_intensity_method_and_flag_it(bpm: float) -> None:
    rig = SimulatedRig(
        physiology=Physiology(hr_bpm=bpm), thermal=False, wristband=False, realtime=False, seed=3, ir_webcam=True
    )
    pipeline = build_heart_rate_pipeline(HeartRateConfig(), 30.0)  # POS + CHROM configured
    assert all(frame.greyscale for frame in _feed(pipeline, rig, 16.6))
    reading = pipeline.reading()
    assert reading.method == "luma"
    assert "greyscale" in reading.flags
    assert reading.bpm is not None, reading.flags
    assert reading.bpm == pytest.approx(bpm, abs=3.0)


def test_a_switch_between_colour_and_greyscale_restarts_the_windows() -> None:
    rig = SimulatedRig(physiology=Physiology(hr_bpm=70.0), thermal=False, wristband=False, realtime=False)
    pipeline = build_heart_rate_pipeline(HeartRateConfig(), 30.0)
    sample = _feed(pipeline, rig, 16.6)[-1]
    last = sample.t_mono
    colour = pipeline.reading()
    assert colour.bpm is not None and colour.method == "pos+chrom" and "greyscale" not in colour.flags
    grey = np.repeat(sample.image[:, :, 1:2], 3, axis=2)
    pipeline.push(grey, last + NS // 30, greyscale=True)
    reading = pipeline.reading()
    assert reading.bpm is None and reading.method == "luma"
    assert set(reading.flags) == {"warming_up", "greyscale"}
