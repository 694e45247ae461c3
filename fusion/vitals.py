"""What the fusion loop produces: per-path readings and the 1 Hz VitalsRecord (its wire form: edge/publish/wire.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fusion.face import Box
from fusion.pulseview import PulseView

__all__ = ["UNNUMBERED", "HeartRateReading", "ThermalReading", "VitalsRecord"]

UNNUMBERED = -1  # a record's seq until the publishing side numbers it


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartRateReading:
    """The heart-rate path's state at one instant. ``bpm`` is None when there is no honest number."""

    bpm: float | None
    confidence: float  # 0..1; 0 when bpm is None
    method: str  # the fused estimators: "pos+chrom", "pos", "chrom", "onnx", ...
    face_box: Box | None  # buffered face box in the webcam image
    flags: tuple[str, ...] = ()  # "no_face", "warming_up", "low_confidence", ...
    window_end_t_mono: int | None = None  # end of the window ``bpm`` describes (ns); None without a rate
    # What the rate came from, for the page (fusion.pulseview); None without a rate. Not compared: two
    # readings of the same rate are equal whether or not they carry it.
    pulse_view: PulseView | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ThermalReading:
    """The thermal path's state at one instant. Temperatures in °C; None when not measurable."""

    face_raw_c: float | None  # camera's face temperature before correction
    face_corrected_c: float | None  # face_raw_c + offset_c
    offset_c: float | None  # C = T_est - T_meas
    reference: str | None  # "palm" | "wrist" | "fused"; None when no reference was usable
    reference_measured_c: float | None  # the camera's reading of the reference region
    reference_estimated_c: float | None  # T_ref estimated from the wristband by regression
    wristband_c: float | None  # wristband mean over the reference window
    registration_ncc: float | None  # peak NCC of the visible→thermal registration in use
    face_box: Box | None = None  # face region in thermal pixels
    palm_box: Box | None = None  # palm region in thermal pixels (drawn by the overlay)
    wrist_box: Box | None = None  # wrist region in thermal pixels (drawn by the overlay)
    quality: Mapping[str, float] = field(default_factory=dict)  # per-region pixel counts, variances
    flags: tuple[str, ...] = ()  # "ffc", "no_face", "no_reference", "no_wristband", ...


@dataclass(frozen=True, slots=True, kw_only=True)
class VitalsRecord:
    """One published record (1 Hz): heart rate, face temperature raw and corrected, and how."""

    device_id: str
    t_mono: int  # monotonic ns of the window end it describes
    t_wall: float  # unix seconds of the same instant
    heart_rate: HeartRateReading
    thermal: ThermalReading
    # Per device, from 0, no gaps: numbered by the publishing side (edge.publish.dispatch) before any sink
    # sees the record; fusion leaves it UNNUMBERED.
    seq: int = UNNUMBERED
    # Which run of the app numbered it (stamped with seq; fusion leaves it empty): a subscriber tells a
    # restart (new boot id, seq from the outbox's next) from a loss (a gap within one boot id).
    boot_id: str = ""
    # The CPU could not fuse every frame: the heart rate came from a thinned webcam stream, the temperature
    # from fewer thermal frames (edge.decimate).
    degraded: bool = False

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.heart_rate.flags) | set(self.thermal.flags)))
