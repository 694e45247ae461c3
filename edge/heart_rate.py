"""Builds the heart-rate path from its configuration: opens the files, hands the objects to fusion."""

from __future__ import annotations

from pathlib import Path

from drivers.errors import ConfigError
from edge.config import HeartRateConfig
from fusion.face import FaceDetector
from fusion.pulse import ChromEstimator, PosEstimator, PulseEstimator
from fusion.pulse_onnx import InferenceSession, OnnxPulseEstimator
from fusion.rppg import HeartRatePipeline

__all__ = ["build_face_detector", "build_heart_rate_pipeline", "build_pulse_estimator"]


def build_face_detector(cfg: HeartRateConfig) -> FaceDetector:
    """The configured face detector: OpenCV's Haar cascade, or an ONNX detector from ``face_detector``.

    Raises:
        ConfigError: the ONNX file cannot be opened or does not describe a face detector.
    """
    if cfg.face_detector is None:
        from models.face_detectors import HaarFaceDetector

        return HaarFaceDetector()
    from models.face_detectors import OnnxFaceDetector

    try:
        return OnnxFaceDetector(_open_session(cfg.face_detector, "heart_rate.face_detector"))
    except ValueError as exc:
        raise ConfigError(f"heart_rate.face_detector: {cfg.face_detector}: {exc}") from exc


def build_pulse_estimator(cfg: HeartRateConfig, fs_hz: float) -> PulseEstimator:
    """The configured pulse estimator at ``fs_hz``; for ``onnx`` the model file is opened here.

    Raises:
        ConfigError: the model cannot be opened or its metadata is incomplete.
    """
    history_s = cfg.window_s + 2 * cfg.step_s
    match cfg.method:
        case "pos":
            return PosEstimator(fs_hz, history_s=history_s)
        case "chrom":
            return ChromEstimator(fs_hz, history_s=history_s)
        case "onnx":
            assert cfg.model is not None  # the config validator requires it
            session = _open_session(cfg.model, "heart_rate.model")
            try:
                return OnnxPulseEstimator(session, fs_hz=fs_hz, history_s=history_s)
            except ValueError as exc:
                raise ConfigError(f"heart_rate.model: {cfg.model}: {exc}") from exc


def build_heart_rate_pipeline(cfg: HeartRateConfig, fs_hz: float) -> HeartRatePipeline:
    """The heart-rate pipeline for a webcam delivering about ``fs_hz`` frames per second."""
    return HeartRatePipeline(
        detector=build_face_detector(cfg),
        estimator=build_pulse_estimator(cfg, fs_hz),
        fs_hz=fs_hz,
        window_s=cfg.window_s,
        step_s=cfg.step_s,
    )


def _open_session(path: Path, key: str) -> InferenceSession:
    """An onnxruntime CPU session for ``path``; ConfigError naming the key when it cannot be opened."""
    import onnxruntime as ort

    if not path.is_file():
        raise ConfigError(f"{key}: no such file: {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one core for the model, the other for decode and the rest
    options.log_severity_level = 3
    try:
        session: InferenceSession = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ConfigError(f"{key}: cannot load {path}: {exc}") from exc
    return session
