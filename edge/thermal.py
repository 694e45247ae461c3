"""Builds the thermal pipeline from its configuration (edge/ owns the wiring; fusion/ stays pure)."""

from __future__ import annotations

from edge.config import ThermalConfig
from fusion.face import FaceDetector
from fusion.thermal import ThermalMeasurer, ThermalPipeline

__all__ = ["build_thermal_pipeline"]


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
