"""Streaming (stateful, frame-by-frame) ONNX pulse models, proven with a tiny model built here."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge.build import build_heart_rate_pipeline, build_pulse_estimators
from edge.config import HeartRateConfig
from fusion.errors import ConfigError
from fusion.face import Box
from fusion.pulse_stream import StreamingOnnxPulseEstimator

NS = 1_000_000_000
FS = 10.0


def _stateful_model(path: Path, *, frame_shape: list[int] | None = None, n_outputs: int = 3) -> Path:
    """bvp = acc_in; acc_out = acc_in + mean(frame); clock_out = clock_in + dt (two states, two shapes)."""
    frame = helper.make_tensor_value_info("img", TensorProto.FLOAT, frame_shape or [1, 1, 8, 8, 3])
    acc_in = helper.make_tensor_value_info("s_acc", TensorProto.FLOAT, [1, 1])
    clock_in = helper.make_tensor_value_info("s_clock", TensorProto.FLOAT, [1, 2])
    dt = helper.make_tensor_value_info("dt", TensorProto.FLOAT, [])
    outs = [
        helper.make_tensor_value_info("bvp", TensorProto.FLOAT, [1, 1]),
        helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1, 1]),
        helper.make_tensor_value_info("clock_out", TensorProto.FLOAT, [1, 2]),
    ][:n_outputs]
    nodes = [
        helper.make_node("Identity", ["s_acc"], ["bvp"]),
        helper.make_node("ReduceMean", ["img"], ["m"], keepdims=0),
        helper.make_node("Add", ["s_acc", "m"], ["acc_out"]),
        helper.make_node("Add", ["s_clock", "dt"], ["clock_out"]),
    ]
    # Inputs deliberately not in contract order: the runner must find each by its shape.
    graph = helper.make_graph(nodes, "tiny_stream", [acc_in, frame, dt, clock_in], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _grey(v: int) -> np.ndarray:
    return np.full((20, 30, 3), v, dtype=np.uint8)


def test_states_start_at_zero_and_are_fed_back(tmp_path: Path) -> None:
    est = build_pulse_estimators(HeartRateConfig(method="onnx", model=_stateful_model(tmp_path / "s.onnx")), FS)[0]
    assert isinstance(est, StreamingOnnxPulseEstimator)
    assert est.contract.frame_input == "img" and est.contract.interval_input == "dt"
    assert est.contract.state_inputs == ("s_acc", "s_clock")
    for i, v in enumerate([51, 102, 204, 0]):
        est.push(_grey(v), round(i * NS / FS))
    pulse = est.pulse()
    assert pulse is not None and pulse.count == 4
    # Each sample is the running sum of the previous frames' means (RGB/255): zero first.
    np.testing.assert_allclose(pulse.signal, [0.0, 0.2, 0.6, 1.4], atol=1e-6)
    # The interval state received the frame interval each step (nominal for the first frame).
    np.testing.assert_allclose(est._states[1], [[0.4, 0.4]], atol=1e-6)


def test_reset_zeroes_the_states(tmp_path: Path) -> None:
    est = build_pulse_estimators(HeartRateConfig(method="onnx", model=_stateful_model(tmp_path / "s.onnx")), FS)[0]
    for i in range(3):
        est.push(_grey(255), round(i * NS / FS))
    est.reset()
    assert est.pulse() is None
    est.push(_grey(255), 5 * NS)
    est.push(_grey(255), 5 * NS + NS // 10)
    pulse = est.pulse()
    assert pulse is not None
    np.testing.assert_allclose(pulse.signal, [0.0, 1.0], atol=1e-6)


class _Switchable:
    """A detector whose face is there or not, as the test says."""

    def __init__(self) -> None:
        self.present = True

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        return [Box(0.0, 0.0, float(image_bgr.shape[1]), float(image_bgr.shape[0]))] if self.present else []


def test_pipeline_resets_the_states_when_the_face_is_lost(tmp_path: Path) -> None:
    cfg = HeartRateConfig(method="onnx", model=_stateful_model(tmp_path / "s.onnx"))
    detector = _Switchable()
    pipeline = build_heart_rate_pipeline(cfg, FS, detector=detector)
    frame = np.full((40, 40, 3), 255, dtype=np.uint8)
    t = 0
    for _ in range(20):
        pipeline.push(frame, t)
        t += NS // 10
    before = pipeline.estimator.pulse()
    assert before is not None and before.signal[-1] == pytest.approx(19.0, abs=1e-4)
    detector.present = False
    for _ in range(20):  # longer than the tracker's 1 s: the face is lost
        pipeline.push(frame, t)
        t += NS // 10
    assert pipeline.reading().flags == ("no_face",)
    detector.present = True
    for _ in range(3):
        pipeline.push(frame, t)
        t += NS // 10
    after = pipeline.estimator.pulse()
    assert after is not None
    np.testing.assert_allclose(after.signal, [0.0, 1.0, 2.0], atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frame_shape": [1, 1, 8, 8, 4]}, "frame input of shape [1, 1, H, W, 3]"),
        ({"n_outputs": 2}, "needs 3 outputs"),
    ],
)
def test_model_fitting_neither_contract_is_refused_with_the_reason(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    path = _stateful_model(tmp_path / "bad.onnx", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="neither contract") as info:
        build_pulse_estimators(HeartRateConfig(method="onnx", model=path), FS)[0]
    assert message in str(info.value)


def test_me_rppg_gives_a_finite_pulse_on_a_ubfc_clip(shared_data: Path) -> None:
    model = shared_data.parent / "models" / "me-rppg" / "model.onnx"
    if not model.is_file():
        pytest.skip(f"{model} absent (ME-rPPG is not shipped; see README)")
    cap = cv2.VideoCapture(str(shared_data / "ubfc" / "subject3" / "vid.mp4"))
    fps = cap.get(cv2.CAP_PROP_FPS)
    pipeline = build_heart_rate_pipeline(HeartRateConfig(method="onnx", model=model, window_s=4.0), fps)
    assert isinstance(pipeline.estimator, StreamingOnnxPulseEstimator)
    try:
        for i in range(round(9 * fps)):  # a 4 s window, start-up and 3 s of look-ahead
            ok, frame = cap.read()
            assert ok
            pipeline.push(frame, round(i * NS / fps))
    finally:
        cap.release()
    pulse = pipeline.estimator.pulse()
    assert pulse is not None and np.all(np.isfinite(pulse.signal)) and np.std(pulse.signal) > 0
    hr = pipeline.heart_rate()
    assert hr is not None and math.isfinite(hr.bpm) and 40.0 <= hr.bpm <= 180.0
