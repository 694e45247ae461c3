"""Builds the parts named in the configuration: sources (one `match` on kind) and the fusion loop."""

from __future__ import annotations

from typing import Any, assert_never

from drivers.samples import Source
from edge.config import (
    BleThermometerConfig,
    E4BleConfig,
    E4CsvConfig,
    E4ServerConfig,
    FlirJpegConfig,
    FlirOneConfig,
    ReplayConfig,
    SourceConfig,
    SyntheticSourceConfig,
    UvcThermalConfig,
    VideoFileSourceConfig,
    VitalEdgeConfig,
    WebcamConfig,
)
from fusion.loop import FusionLoop

__all__ = ["WEBCAM_FPS_HZ", "build_fusion", "build_source"]

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
                backoff_max_s=cfg.backoff_max_s,
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
                backoff_max_s=cfg.backoff_max_s,
            )
        case E4ServerConfig():
            from drivers.e4_server import E4ServerSource

            return E4ServerSource(
                cfg.name, host=cfg.host, port=cfg.port, device_id=cfg.device_id, backoff_max_s=cfg.backoff_max_s
            )
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
                backoff_max_s=cfg.backoff_max_s,
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


def build_fusion(cfg: VitalEdgeConfig, *, first_seq: int = 0) -> FusionLoop:
    """The fusion loop with its heart-rate and thermal pipelines, as configured.

    Args:
        cfg: the validated configuration.
        first_seq: ``seq`` of the first record (the outbox remembers where the last run stopped).
    """
    from edge.heart_rate import build_face_detector, build_heart_rate_pipeline
    from edge.thermal import build_thermal_pipeline

    return FusionLoop(
        device_id=cfg.device_id,
        heart_rate=build_heart_rate_pipeline(cfg.heart_rate, WEBCAM_FPS_HZ),
        thermal=build_thermal_pipeline(cfg.thermal, build_face_detector(cfg.heart_rate)),
        pair_tolerance_ns=int(cfg.thermal.pair_tolerance_ms * 1e6),
        first_seq=first_seq,
    )
