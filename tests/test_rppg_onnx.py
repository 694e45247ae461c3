"""The ONNX pulse path, proven with a tiny model built here and run by the real onnxruntime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge.build import build_pulse_estimators
from edge.config import HeartRateConfig
from fusion.errors import ConfigError
from fusion.heartrate import spectral_peak
from fusion.pulse_onnx import OnnxPulseEstimator

SKIN_BGR = np.array([120.0, 150.0, 200.0])


def _tiny_model(path: Path, *, layout: str = "NCTHW", t: int | str = 64, meta: dict[str, str] | None = None) -> Path:
    """Luma channel, spatially averaged: a stand-in for a trained PhysNet with the same contract."""
    shape = [1, 3, t, 36, 36] if layout == "NCTHW" else [1, t, 3, 36, 36]
    channel_axis = 1 if layout == "NCTHW" else 2
    w_shape = [1, 1, 1, 1, 1]
    w_shape[channel_axis] = 3
    x = helper.make_tensor_value_info("video", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("pulse", TensorProto.FLOAT, [1, t])
    luma = helper.make_tensor("luma", TensorProto.FLOAT, w_shape, [-1.0, 0.0, 0.0])  # blood darkens Y
    nodes = [
        helper.make_node("Mul", ["video", "luma"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "channel"], ["summed"], keepdims=0),  # (1, T, H, W)
        helper.make_node("ReduceMean", ["summed"], ["pulse"], axes=[2, 3], keepdims=0),  # (1, T)
    ]
    channel = helper.make_tensor("channel", TensorProto.INT64, [1], [channel_axis])
    graph = helper.make_graph(nodes, "tiny_rppg", [x], [y], initializer=[luma, channel])
    # IR 10, not the installed onnx's newest: the pinned onnxruntime (<1.25, for the Pi) reads IR ≤ 10 at least.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=10)
    props = {"rppg.layout": layout, "rppg.colour": "yuv", "rppg.normalisation": "temporal_z", "rppg.fs_hz": "30"}
    props.update(meta or {})
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _crops(bpm: float, seconds: float, fps: float = 29.7) -> Iterator[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(2)
    for i in range(round(seconds * fps)):
        t = i / fps
        bgr = SKIN_BGR * (1 + 0.004 * np.sin(2 * np.pi * bpm / 60 * t) * np.array([0.3, -1.0, 0.2]))
        yield np.clip(bgr + rng.normal(0, 2.0, (60, 50, 3)), 0, 255).astype(np.uint8), round(t * 1e9)


@pytest.mark.parametrize("layout", ["NCTHW", "NTCHW"])
def test_model_file_through_onnxruntime_recovers_the_pulse(tmp_path: Path, layout: str) -> None:
    model = _tiny_model(tmp_path / "tiny.onnx", layout=layout)
    est = build_pulse_estimators(HeartRateConfig(method="onnx", model=model), fs_hz=29.7)[0]
    assert isinstance(est, OnnxPulseEstimator)
    assert est.fs_hz == 30.0 and est.contract.chunk == 64 and est.contract.size_hw == (36, 36)
    for crop, t in _crops(84.0, 14.0):
        est.push(crop, t)
    pulse = est.pulse()
    assert pulse is not None and est.inferences >= 10
    assert spectral_peak(np.asarray(pulse.signal[-300:]), pulse.fs_hz).bpm == pytest.approx(84.0, abs=1.5)


def test_dynamic_time_dimension_takes_the_chunk_from_metadata(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path / "dyn.onnx", t="T", meta={"rppg.chunk_frames": "32"})
    est = build_pulse_estimators(HeartRateConfig(method="onnx", model=model), fs_hz=30.0)[0]
    assert isinstance(est, OnnxPulseEstimator) and est.contract.chunk == 32


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"rppg.layout": "NHWC"}, "rppg.layout"),
        ({"rppg.colour": "hsv"}, "rppg.colour"),
        ({"rppg.size": "big"}, "rppg.size"),
    ],
)
def test_broken_contract_is_a_config_error_naming_the_key(tmp_path: Path, meta: dict[str, str], message: str) -> None:
    model = _tiny_model(tmp_path / "bad.onnx", meta=meta)
    with pytest.raises(ConfigError, match=message):
        build_pulse_estimators(HeartRateConfig(method="onnx", model=model), fs_hz=30.0)[0]


def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"heart_rate\.model: no such file"):
        build_pulse_estimators(HeartRateConfig(method="onnx", model=tmp_path / "none.onnx"), fs_hz=30.0)[0]


def _tiny_detector(path: Path) -> Path:
    """Scores every anchor by the image's mean brightness; two overlapping boxes and one elsewhere."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 60, 80])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, 2])
    boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 3, 4])
    corners = [0.25, 0.25, 0.5, 0.75, 0.26, 0.25, 0.51, 0.75, 0.7, 0.1, 0.9, 0.3]
    base = [0.0, 0.9, 0.0, 0.8, 0.0, 0.3]  # (background, face) per anchor
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),  # ~(255-127)/128 = 1 for white
        helper.make_node("Mul", ["base", "m"], ["scores"]),
        helper.make_node("Identity", ["corners"], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_face",
        [x],
        [scores, boxes],
        initializer=[
            helper.make_tensor("base", TensorProto.FLOAT, [1, 3, 2], base),
            helper.make_tensor("corners", TensorProto.FLOAT, [1, 3, 4], corners),
        ],
    )
    # IR 10, not the installed onnx's newest: the pinned onnxruntime (<1.25, for the Pi) reads IR ≤ 10 at least.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=10)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_onnx_face_detector_configured_by_path(tmp_path: Path) -> None:
    from edge.build import build_face_detector

    detector = build_face_detector(HeartRateConfig(face_detector=_tiny_detector(tmp_path / "face.onnx")))
    white = np.full((480, 640, 3), 255, np.uint8)
    boxes = detector.detect(white)
    assert len(boxes) == 1  # the overlapping pair merged by NMS; the weak one below threshold
    assert (boxes[0].x, boxes[0].y, boxes[0].w, boxes[0].h) == pytest.approx((160, 120, 160, 240), abs=0.5)
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []  # dark: scores negative


def test_chunk_length_disagreeing_with_the_input_is_refused_when_built(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path / "short.onnx", meta={"rppg.chunk_frames": "32"})  # input says 64 frames
    with pytest.raises(ConfigError, match=r"rppg\.chunk_frames 32 disagrees with the input's T dimension 64"):
        build_pulse_estimators(HeartRateConfig(method="onnx", model=model), fs_hz=30.0)[0]
