"""The thermal pipeline on the simulated rig: registered regions, wristband reference, palm / wrist / fused
correction, shutter frames, the webcam fallback, and replay determinism."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from drivers.synthetic import SimulatedRig
from edge.build import build_thermal_pipeline
from edge.config import ThermalConfig
from fusion.offset import PAPER_PALM, PAPER_WRIST
from fusion.samples import Sample, SkinTemperature, ThermalFrame, VisibleFrame
from fusion.thermal import ThermalPipeline
from fusion.vitals import ThermalReading
from models.face_detectors import HaarFaceDetector


@pytest.fixture(scope="module")
def detector() -> HaarFaceDetector:
    return HaarFaceDetector()


@pytest.fixture(scope="module")
def session() -> list[Sample]:
    """12 s of the rig's thermal camera (with its sled image) and wristband; the first ones are in warm-up."""
    return list(SimulatedRig(seed=2, webcam=False).stream(12.0))


def _pipeline(detector: HaarFaceDetector, mode: str) -> ThermalPipeline:
    return build_thermal_pipeline(ThermalConfig.model_validate({"reference": mode}), detector)


def _run(pipeline: ThermalPipeline, samples: list[Sample]) -> list[tuple[ThermalFrame, ThermalReading]]:
    out = []
    for s in samples:
        if isinstance(s, SkinTemperature):
            pipeline.push_skin(s.celsius, s.t_mono)
        elif isinstance(s, ThermalFrame):
            pipeline.push_thermal(s, None)
            out.append((s, pipeline.reading()))
    return out


def _truth(frame: ThermalFrame, key: str) -> float:
    value = frame.meta[key]
    assert isinstance(value, float)
    return value


def test_fused_correction_removes_the_cameras_offset(detector: HaarFaceDetector, session: list[Sample]) -> None:
    pipeline = _pipeline(detector, "fused")
    results = _run(pipeline, session)
    raw_err, corr_err = [], []
    for frame, r in results:
        if frame.ffc:
            assert "ffc" in r.flags and r.face_raw_c is None and r.face_corrected_c is None
            continue
        if r.face_corrected_c is None or r.face_raw_c is None:
            continue
        assert r.reference == "fused" and r.registration_ncc is not None and r.registration_ncc > 0.4
        assert r.face_box is not None and r.palm_box is not None and r.wrist_box is not None
        assert {"face_pixels", "palm_pixels", "wrist_pixels"} <= set(r.quality)
        assert r.wristband_c is not None and 30.0 < r.wristband_c < 36.0
        raw_err.append(r.face_raw_c - _truth(frame, "true_face_c"))
        corr_err.append(r.face_corrected_c - _truth(frame, "true_face_c"))
    assert len(corr_err) > 0.8 * (len(results) - 10) and pipeline.measured == len(corr_err)
    # The camera is warming up (several °C off); the wristband reference takes that out.
    assert float(np.mean(np.abs(raw_err))) > 3.0
    assert float(np.mean(np.abs(corr_err))) < 1.0


@pytest.mark.parametrize("mode", ["palm", "wrist"])
def test_single_reference_modes_follow_the_papers_equations(
    detector: HaarFaceDetector, session: list[Sample], mode: str
) -> None:
    measured = 0
    for frame, r in _run(_pipeline(detector, mode), session):
        if r.face_corrected_c is None:
            continue
        measured += 1
        assert r.reference == mode and r.offset_c is not None and r.face_raw_c is not None
        assert r.reference_estimated_c is not None and r.reference_measured_c is not None
        assert r.offset_c == pytest.approx(r.reference_estimated_c - r.reference_measured_c, abs=1e-9)
        assert r.face_corrected_c == pytest.approx(r.face_raw_c + r.offset_c, abs=1e-9)
        assert r.wristband_c is not None
        paper = PAPER_PALM if mode == "palm" else PAPER_WRIST
        assert r.reference_estimated_c == pytest.approx(paper.estimate(r.wristband_c), abs=1e-9)
        true_ref = _truth(frame, f"true_{mode}_c")
        assert abs(r.reference_measured_c - (true_ref + _truth(frame, "offset_error_c"))) < 1.2
    assert measured > 60


def test_the_webcam_stands_in_when_the_sled_sends_no_image(detector: HaarFaceDetector) -> None:
    pipeline = _pipeline(detector, "fused")
    last_webcam: VisibleFrame | None = None
    readings = []
    for s in SimulatedRig(seed=4).stream(4.0):
        if isinstance(s, VisibleFrame):
            last_webcam = s
        elif isinstance(s, SkinTemperature):
            pipeline.push_skin(s.celsius, s.t_mono)
        elif isinstance(s, ThermalFrame):
            pipeline.push_thermal(dataclasses.replace(s, visible=None), last_webcam.image if last_webcam else None)
            readings.append((s, pipeline.reading()))
    good = [(f, r) for f, r in readings if r.face_corrected_c is not None]
    assert len(good) > 15
    for frame, r in good:
        assert r.face_raw_c is not None and r.face_corrected_c is not None
        assert abs(r.face_raw_c - _truth(frame, "offset_error_c") - _truth(frame, "true_face_c")) < 1.5


def test_no_visible_image_gives_a_flag_not_a_crash(detector: HaarFaceDetector, session: list[Sample]) -> None:
    pipeline = _pipeline(detector, "wrist")
    frame = next(s for s in session if isinstance(s, ThermalFrame) and not s.ffc)
    pipeline.push_thermal(dataclasses.replace(frame, visible=None), None)
    r = pipeline.reading()
    assert r.flags == ("no_visible",) and r.face_raw_c is None and r.face_corrected_c is None
    with pytest.raises(ValueError, match="celsius must be H×W"):
        pipeline.push_thermal(dataclasses.replace(frame, celsius=np.zeros((2, 3, 4), np.float32)), None)


def test_replay_is_bit_identical(detector: HaarFaceDetector, session: list[Sample]) -> None:
    a = [r for _, r in _run(_pipeline(detector, "fused"), session[:110])]
    b = [r for _, r in _run(_pipeline(detector, "fused"), session[:110])]
    assert len(a) == len(b) > 70
    for x, y in zip(a, b, strict=True):
        assert (x.face_raw_c, x.face_corrected_c, x.offset_c, x.flags) == (
            y.face_raw_c, y.face_corrected_c, y.offset_c, y.flags,
        )  # fmt: skip
    assert any(r.face_corrected_c is not None and math.isfinite(r.face_corrected_c) for r in a)
