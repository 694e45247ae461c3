"""Builds the parts named in the configuration: sources (one `match` on kind), the heart-rate and
thermal pipelines, and the fusion loop. edge/ opens files and sessions here; fusion/ stays pure.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, assert_never

import numpy as np
import numpy.typing as npt

from drivers.base import Source
from edge.config import (
    BleThermometerConfig,
    E4BleConfig,
    E4CsvConfig,
    E4ServerConfig,
    FlirJpegConfig,
    FlirOneConfig,
    GreyscaleConfig,
    HeartRateConfig,
    PiCameraConfig,
    ReplayConfig,
    SourceConfig,
    SyntheticSourceConfig,
    ThermalConfig,
    UvcThermalConfig,
    VideoFileSourceConfig,
    VitalEdgeConfig,
    WebcamConfig,
)
from edge.retry import Backoff
from fusion.confidence import LearnedConfidence
from fusion.errors import ConfigError
from fusion.face import FaceDetector
from fusion.loop import FusionLoop
from fusion.privacy import Lensing
from fusion.pulse import ChromEstimator, PosEstimator, PulseEstimator
from fusion.pulse_onnx import InferenceSession
from fusion.pulse_stream import onnx_pulse_estimator
from fusion.rppg import HeartRatePipeline
from fusion.thermal import ThermalMeasurer, ThermalPipeline

__all__ = [
    "WEBCAM_FPS_HZ",
    "build_backoff",
    "build_confidence",
    "build_face_detector",
    "build_fusion",
    "build_heart_rate_pipeline",
    "build_pulse_estimators",
    "build_source",
    "build_thermal_pipeline",
    "greyscale_preparation",
]

# The rPPG path needs the nominal video rate before the first frame arrives; 30 fps is what the
# webcam drivers request and the rig renders. The estimators resample on t_mono, so a camera that
# delivers another rate still gives correct heart rates.
WEBCAM_FPS_HZ = 30.0


def build_source(cfg: SourceConfig) -> Source[Any]:
    """The driver for one configured source; driver modules are imported only once chosen."""
    match cfg:
        case SyntheticSourceConfig():
            from drivers.synthetic import SimulatedRig

            return SimulatedRig(
                name=cfg.name, seed=cfg.seed, realtime=cfg.realtime, duration_s=cfg.duration_s
            )
        case FlirOneConfig():
            from drivers.flirone import FlirOneSource

            return FlirOneSource(
                cfg.name,
                planck=cfg.planck.to_constants(),
                decode_visible=cfg.decode_visible,
                queue_size=cfg.queue_size,
            )
        case FlirJpegConfig():
            from drivers.flir_jpeg import FlirJpegSource

            return FlirJpegSource(cfg.name, path=cfg.path, rate_hz=cfg.rate_hz, frames=cfg.frames)
        case UvcThermalConfig():
            from drivers.uvc_thermal import UvcThermalSource

            return UvcThermalSource(cfg.name, model=cfg.model, device=cfg.device, queue_size=cfg.queue_size)
        case E4BleConfig():
            from drivers.e4_ble import E4BleSource

            return E4BleSource(
                cfg.name,
                device_name=cfg.device_name,
                address=cfg.address,
                adapter=cfg.adapter,
                offset_c=cfg.offset_c,
                scan_timeout_s=cfg.scan_timeout_s,
            )
        case BleThermometerConfig():
            from drivers.ble_thermometer import BleThermometerSource

            return BleThermometerSource(
                cfg.name,
                device_name=cfg.device_name,
                address=cfg.address,
                adapter=cfg.adapter,
                site=cfg.site,
                scan_timeout_s=cfg.scan_timeout_s,
            )
        case E4ServerConfig():
            from drivers.e4_server import E4ServerSource

            return E4ServerSource(cfg.name, host=cfg.host, port=cfg.port, device_id=cfg.device_id)
        case E4CsvConfig():
            from drivers.e4_csv import E4CsvSource

            return E4CsvSource(cfg.name, path=cfg.path, speed=cfg.speed)
        case WebcamConfig():
            from drivers.webcam import WebcamSource

            return WebcamSource(
                cfg.name,
                device=cfg.device,
                width=cfg.width,
                height=cfg.height,
                fps=cfg.fps,
                queue_size=cfg.queue_size,
            )
        case PiCameraConfig():
            from drivers.picamera import PiCameraSource

            return PiCameraSource(
                cfg.name, camera=cfg.camera, width=cfg.width, height=cfg.height, fps=cfg.fps, queue_size=cfg.queue_size
            )
        case ReplayConfig():
            from drivers.replay import ReplaySource

            return ReplaySource(cfg.name, path=cfg.path, speed=cfg.speed)
        case VideoFileSourceConfig():
            from drivers.video_file import VideoFileSource

            return VideoFileSource(
                cfg.name, path=cfg.path, realtime=cfg.realtime, loop=cfg.loop, fps_hz=cfg.fps_hz
            )
        case _:
            assert_never(cfg)


def build_backoff(cfg: SourceConfig) -> Backoff:
    """The supervisor's reopen policy for one source: ``edge.retry``'s, capped at its ``backoff_max_s``.

    Sources that can lose a link (Bluetooth, the E4 server, a webcam) take the cap from their
    configuration; the others use the default (30 s).
    """
    if isinstance(cfg, E4BleConfig | BleThermometerConfig | E4ServerConfig | WebcamConfig | PiCameraConfig):
        return Backoff(max_s=cfg.backoff_max_s)
    return Backoff()


def build_fusion(cfg: VitalEdgeConfig) -> FusionLoop:
    """The fusion loop with its heart-rate and thermal pipelines, as configured.

    Args:
        cfg: the validated configuration.
    """
    from edge.privacy import build_lensing

    lensing = build_lensing(cfg.privacy.mode, seed=4) if cfg.heart_rate.input == "lensed" else None
    return FusionLoop(
        device_id=cfg.device_id,
        heart_rate=build_heart_rate_pipeline(cfg.heart_rate, WEBCAM_FPS_HZ, lensing=lensing),
        thermal=build_thermal_pipeline(cfg.thermal, build_face_detector(cfg.heart_rate)),
        pair_tolerance_ns=int(cfg.thermal.pair_tolerance_ms * 1e6),
    )


def build_face_detector(cfg: HeartRateConfig) -> FaceDetector:
    """The configured face detector: the colour detector (Haar or ONNX), and on greyscale frames the
    ``greyscale`` pipeline (its detector, CLAHE, a colouriser) in front of it.

    Raises:
        ConfigError: a model file cannot be opened or breaks its contract, or dlib is missing.
    """
    from fusion.greyscale import GreyscaleFaceDetector

    colour = _colour_face_detector(cfg)
    grey_cfg = cfg.greyscale
    match grey_cfg.detector:
        case "same":
            grey = colour
        case "haar":
            from models.face_detectors import HaarFaceDetector

            grey = HaarFaceDetector()
        case "dlib-cnn":
            from models.face_recognition import DlibCnnFaceDetector, FaceModelsMissing

            try:
                grey = DlibCnnFaceDetector(max_width=320)
            except FaceModelsMissing as exc:
                raise ConfigError(f"heart_rate.greyscale.detector: dlib-cnn: {exc}") from exc
        case _ as unknown:
            assert_never(unknown)
    return GreyscaleFaceDetector(colour, grey, greyscale_preparation(grey_cfg))


def greyscale_preparation(cfg: GreyscaleConfig) -> Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]]:
    """Luma in, the BGR image a detector sees out: CLAHE, then the colouriser when one is configured.

    Raises:
        ConfigError: the colouriser cannot be opened or breaks the contract.
    """
    from fusion.greyscale import clahe, grey_as_bgr

    colourise: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]] = grey_as_bgr
    if cfg.colouriser is not None:
        from models.colourise import OnnxColouriser

        try:
            colourise = OnnxColouriser(_open_session(cfg.colouriser, "heart_rate.greyscale.colouriser")).colourise
        except ValueError as exc:
            raise ConfigError(f"heart_rate.greyscale.colouriser: {cfg.colouriser}: {exc}") from exc
    if not cfg.clahe:
        return colourise
    limit = cfg.clahe_clip_limit
    return lambda grey: colourise(clahe(grey, clip_limit=limit))


def _colour_face_detector(cfg: HeartRateConfig) -> FaceDetector:
    if cfg.face_detector is None:
        from models.face_detectors import HaarFaceDetector

        return HaarFaceDetector()
    from models.face_detectors import OnnxFaceDetector

    try:
        return OnnxFaceDetector(_open_session(cfg.face_detector, "heart_rate.face_detector"))
    except ValueError as exc:
        raise ConfigError(f"heart_rate.face_detector: {cfg.face_detector}: {exc}") from exc


def build_pulse_estimators(cfg: HeartRateConfig, fs_hz: float) -> list[PulseEstimator]:
    """The configured pulse estimators at ``fs_hz`` (``fused``: POS, CHROM and the model when set);
    ONNX model files are opened here.

    Raises:
        ConfigError: the model cannot be opened or its metadata is incomplete.
    """
    history_s = cfg.window_s + 2 * cfg.step_s
    match cfg.pulse_method:
        case "pos":
            return [PosEstimator(fs_hz, history_s=history_s)]
        case "chrom":
            return [ChromEstimator(fs_hz, history_s=history_s)]
        case "onnx":
            assert cfg.model is not None  # the config validator requires it
            return [_onnx_estimator(cfg.model, fs_hz, history_s)]
        case "fused":
            estimators: list[PulseEstimator] = [
                PosEstimator(fs_hz, history_s=history_s),
                ChromEstimator(fs_hz, history_s=history_s),
            ]
            if cfg.model is not None:
                estimators.append(_onnx_estimator(cfg.model, fs_hz, history_s))
            return estimators


def _onnx_estimator(model: Path, fs_hz: float, history_s: float) -> PulseEstimator:
    session = _open_session(model, "heart_rate.model")
    try:
        return onnx_pulse_estimator(session, fs_hz=fs_hz, history_s=history_s)
    except ValueError as exc:
        raise ConfigError(f"heart_rate.model: {model}: {exc}") from exc


def build_heart_rate_pipeline(
    cfg: HeartRateConfig,
    fs_hz: float,
    *,
    detector: FaceDetector | None = None,
    record_pulse: bool = False,
    lensing: Lensing | None = None,
) -> HeartRatePipeline:
    """The heart-rate pipeline for a webcam delivering about ``fs_hz`` frames per second.

    Args:
        cfg: the heart-rate configuration.
        fs_hz: the nominal frame rate.
        detector: replaces the configured face detector (e.g. a ``FullFrameDetector`` for skin patches).
        record_pulse: keep the pulse fed to the heart-rate estimator (``pulse_segments``; evaluation).
        lensing: with ``input: lensed``, the privacy lens the frames pass through (required then); the
            face is found on the lensed frames by skin colour unless ``detector`` is given.

    Raises:
        ConfigError: ``input: lensed`` without a lens.
    """
    if cfg.input == "lensed":
        if lensing is None:
            raise ConfigError("heart_rate.input 'lensed' needs privacy.mode other than 'off'")
        if detector is None:
            from edge.privacy import skin_region_detector

            detector = skin_region_detector(lensing)
    else:
        lensing = None
    estimators = build_pulse_estimators(cfg, fs_hz)
    confidence = build_confidence(cfg.confidence_model, estimators[0].fs_hz) if cfg.confidence_model else None
    return HeartRatePipeline(
        lensing=lensing,
        detector=detector if detector is not None else build_face_detector(cfg),
        estimators=estimators,
        fs_hz=fs_hz,
        window_s=cfg.window_s,
        step_s=cfg.step_s,
        record_pulse=record_pulse,
        tracker=cfg.tracker.settings(cfg.step_s, lensed=cfg.input == "lensed") if cfg.tracker is not None else None,
        confidence=confidence,
        low_confidence=confidence.threshold if confidence is not None else None,
    )


def build_confidence(model: Path, fs_hz: float) -> LearnedConfidence:
    """The learned window confidence of ``model`` for a pulse at ``fs_hz``; the ONNX file is opened here.

    Raises:
        ConfigError: the file cannot be opened or is not a confidence model for this rate.
    """
    session = _open_session(model, "heart_rate.confidence_model")
    try:
        return LearnedConfidence(session, fs_hz=fs_hz)
    except ValueError as exc:
        raise ConfigError(f"heart_rate.confidence_model: {model}: {exc}") from exc


# The onnxruntime versions known to import on a Cortex-A72 (a Raspberry Pi 4): 1.28 and later crash on
# import under emulation of that core, and Pi 4 owners report "Illegal instruction" with some wheels.
ONNXRUNTIME_RANGE = ">=1.20,<1.25"


def _import_onnxruntime(key: str) -> ModuleType:
    """onnxruntime, imported only now that ``key`` configures an ONNX model; ConfigError when it cannot be.

    A wheel built for a newer CPU kills the interpreter on import (SIGILL/SIGSEGV), which no ``except``
    catches: it is imported once in a child process first, so that the error can say what to do.
    """
    advice = (
        f'install a build that runs on this CPU: pip install "onnxruntime{ONNXRUNTIME_RANGE}"'
        f" (or remove {key} to use the default POS estimator and Haar detector)"
    )
    if "onnxruntime" in sys.modules:  # imported before (or made unimportable on purpose: None)
        probe_rc = 0
    else:
        probe = [sys.executable, "-c", "import onnxruntime"]
        probe_rc = subprocess.run(probe, capture_output=True, check=False).returncode
    if probe_rc < 0:
        version = importlib.metadata.version("onnxruntime")
        raise ConfigError(
            f"{key}: onnxruntime {version} crashes on import on this CPU (signal {-probe_rc}); {advice}"
        )
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError as exc:
        try:
            version = importlib.metadata.version("onnxruntime")
        except importlib.metadata.PackageNotFoundError:
            version = "(not installed)"
        raise ConfigError(f"{key}: onnxruntime {version} cannot be imported ({exc}); {advice}") from exc
    return ort


def _open_session(path: Path, key: str) -> InferenceSession:
    """An onnxruntime CPU session for ``path``; ConfigError naming the key when it cannot be opened."""
    if not path.is_file():
        raise ConfigError(f"{key}: no such file: {path}")
    ort = _import_onnxruntime(key)
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


def build_thermal_pipeline(
    cfg: ThermalConfig, detector: FaceDetector, measurer: ThermalMeasurer | None = None
) -> ThermalPipeline:
    """The thermal pipeline for ``cfg``: reference mode, paper (or calibrated) regressions, wristband window.

    Args:
        cfg: the ``thermal`` section of the configuration.
        detector: the face detector shared with the heart-rate path.
        measurer: a measurement stage shared with pipelines in other modes (evaluations); default: its own.
    """
    return ThermalPipeline(
        detector=detector,
        mode=cfg.reference,
        palm=(cfg.palm.a, cfg.palm.b),
        wrist=(cfg.wrist.a, cfg.wrist.b),
        wristband_window_s=cfg.wristband_window_s,
        measurer=measurer,
    )
