"""The thermal path: registered regions, wristband reference and offset correction, frame by frame.

Composes the pure pieces (DESIGN §4): ``fusion.registration`` (visible → thermal transform, kept
over time), ``fusion.regions`` (face, palm, wrist on the thermal grid) and ``fusion.offset``
(wristband window, paper regressions, palm / wrist / fused corrector). Per thermal frame::

    visible = frame.visible or the paired webcam frame   (the sled's own camera is preferred)
    transform = registrar.update(visible, celsius, t)      (last good one kept)
    face box = detector(visible) → thermal pixels;  face = box ∩ hotter Otsu class
    skin model learned from the face's skin (last good one kept); palm = skin blob by the band
    wrist = wristband hue → box → top 10 %;  wristband mean over the window ending at t
    offset = corrector(palm, wrist);  corrected face = face + offset

Shutter (FFC) frames are not measured and restart the fused filter. Time is ``t_mono`` (ns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from fusion.face import Box, FaceDetector
from fusion.offset import OffsetCorrector, OffsetEstimate, Regression, WristbandWindow
from fusion.regions import (
    RegionMeasurement,
    SkinModel,
    face_region,
    learn_skin_model,
    palm_region,
    wristband_region,
)
from fusion.registration import DEFAULT_FOV_RATIOS, SLED_FOV_RATIOS, Registrar, Transform
from fusion.samples import ThermalFrame
from fusion.vitals import ThermalReading

# Before the first frame, or a frame without a measurement (shutter, no registration yet): no numbers at all.
_NOTHING_MEASURED = ThermalReading(
    face_raw_c=None,
    face_corrected_c=None,
    offset_c=None,
    reference=None,
    reference_measured_c=None,
    reference_estimated_c=None,
    wristband_c=None,
    registration_ncc=None,
)

__all__ = [
    "PAPER_PALM_RESIDUAL_SD_C",
    "PAPER_WRIST_RESIDUAL_SD_C",
    "FrameMeasurement",
    "ThermalMeasurer",
    "ThermalPipeline",
]

Mode = Literal["palm", "wrist", "fused"]

# How far each reference site's true temperature strays from its regression on the wristband: the paper
# reports the regressions' residual MAE (palm 0.65 °C, wrist 0.31 °C); for Gaussian residuals SD = MAE·√(π/2).
# This is the spread ``fusion.offset.reference_offset`` means by ``residual_sd_c`` (it adds the region's
# measurement noise itself); Table II's SDs (0.707, 0.484) also hold the face's own measurement error.
PAPER_PALM_RESIDUAL_SD_C = 0.65 * math.sqrt(math.pi / 2)
PAPER_WRIST_RESIDUAL_SD_C = 0.31 * math.sqrt(math.pi / 2)


@dataclass(frozen=True, slots=True, eq=False)
class FrameMeasurement:
    """What one thermal frame shows, before any correction (the same for every reference mode)."""

    face: RegionMeasurement | None
    face_box: Box | None  # thermal pixels
    palm: RegionMeasurement | None
    wrist: RegionMeasurement | None
    registration_ncc: float | None
    registered: bool  # False: no visible image or no transform yet, so no region could be found
    flags: tuple[str, ...] = ()


class ThermalMeasurer:
    """Registration, face detection and the three regions, frame by frame (no correction).

    Pipelines in different modes fed the same frames may share one measurer: it measures each frame
    once and hands the same result to every caller (what ``vitaledge eval thermal`` does).

    Args:
        detector: finds faces in the visible image.
        detect_interval_s: run the face detector at most this often (sample time); between runs, and for
            up to ``face_hold_s`` after a miss, the last box is used (a face moves little in 0.5 s, and
            the box is only a bound: the hot cluster inside it is the face).
        face_hold_s: how long a detected box stays usable without a new detection.
    """

    def __init__(self, detector: FaceDetector, *, detect_interval_s: float = 0.5, face_hold_s: float = 1.5) -> None:
        self._detector = detector
        self._detect_interval_ns = int(detect_interval_s * 1e9)
        self._face_hold_ns = int(face_hold_s * 1e9)
        # The sled's camera and a webcam sit differently relative to the thermal camera: one each.
        self._registrars = {
            "sled": Registrar(fov_ratios=SLED_FOV_RATIOS),
            "webcam": Registrar(fov_ratios=DEFAULT_FOV_RATIOS),
        }
        self._face: tuple[Box, int] | None = None  # last detected box (visible pixels) and its time
        self._detected_at: int | None = None
        self._skin: SkinModel | None = None
        self._last: tuple[ThermalFrame, npt.NDArray[np.uint8] | None, FrameMeasurement] | None = None

    def measure(self, frame: ThermalFrame, paired_visible: npt.NDArray[np.uint8] | None) -> FrameMeasurement:
        """Measure a (non-FFC) frame; the same frame object again returns the same result."""
        if self._last is not None and self._last[0] is frame and self._last[1] is paired_visible:
            return self._last[2]
        result = self._measure(frame, paired_visible)
        self._last = (frame, paired_visible, result)
        return result

    def _measure(self, frame: ThermalFrame, paired_visible: npt.NDArray[np.uint8] | None) -> FrameMeasurement:
        celsius, t = frame.celsius, frame.t_mono
        visible, which = (frame.visible, "sled") if frame.visible is not None else (paired_visible, "webcam")
        if visible is None:
            return FrameMeasurement(None, None, None, None, None, False, ("no_visible",))
        registrar = self._registrars[which]
        transform = registrar.update(visible, celsius, t)
        if transform is None:
            return FrameMeasurement(None, None, None, None, None, False, ("no_registration",))
        flags: list[str] = []
        vis_th = np.asarray(transform.warp_visible(visible, celsius.shape), np.uint8)
        face_box, fresh = self._face_box(visible, transform, t)
        face = face_region(celsius, face_box) if face_box is not None else None
        if face is None:
            flags.append("no_face")
        else:
            flags.extend(face.flags)
            if self._skin is None or fresh:  # skin colour changes slowly: relearn on new detections
                self._skin = learn_skin_model(vis_th, face.mask) or self._skin
        wrist = wristband_region(celsius, vis_th)
        palm = None
        if self._skin is not None:
            palm = palm_region(celsius, vis_th, self._skin, exclude=face_box, near=wrist.box if wrist else None)
        for name, region in (("palm", palm), ("wrist", wrist)):
            flags.extend([f"no_{name}"] if region is None else [f"{name}_{f}" for f in region.flags])
        return FrameMeasurement(face, face_box, palm, wrist, registrar.ncc, True, tuple(flags))

    def _face_box(self, visible: npt.NDArray[np.uint8], transform: Transform, t: int) -> tuple[Box | None, bool]:
        """The face box in thermal pixels (detected now, or the last one while fresh) and whether it is new."""
        fresh = False
        if self._face is None or self._detected_at is None or t - self._detected_at >= self._detect_interval_ns:
            self._detected_at = t
            boxes = self._detector.detect(visible)
            if boxes:
                self._face, fresh = (boxes[0], t), True
        if self._face is None or t - self._face[1] > self._face_hold_ns:
            return None, False
        return transform.map_box(self._face[0]), fresh


class ThermalPipeline:
    """Face temperature from thermal frames, corrected by the wristband through palm, wrist or both.

    Args:
        detector: finds faces in the visible image.
        mode: ``palm`` / ``wrist`` (the paper's per-frame correction) or ``fused`` (both, inverse-variance
            weighted and Kalman-tracked).
        palm: (a, b) of T_palm = a + b · T_wristband.
        wrist: (a, b) of T_wrist = a + b · T_wristband.
        wristband_window_s: the wristband mean's window, ending at each frame (the paper: 60 s).
        measurer: a measurement stage shared with pipelines in other modes fed the same frames;
            default: the pipeline's own, using ``detector``.
        palm_residual_sd_c / wrist_residual_sd_c: each regression's residual spread (weights of the
            fused offset); defaults from the paper's residual MAEs, ``vitaledge calibrate`` measures them.
    """

    def __init__(
        self,
        *,
        detector: FaceDetector,
        mode: Mode,
        palm: tuple[float, float],
        wrist: tuple[float, float],
        wristband_window_s: float,
        measurer: ThermalMeasurer | None = None,
        palm_residual_sd_c: float = PAPER_PALM_RESIDUAL_SD_C,
        wrist_residual_sd_c: float = PAPER_WRIST_RESIDUAL_SD_C,
    ) -> None:
        self.mode: Mode = mode
        self._measurer = measurer or ThermalMeasurer(detector)
        self._corrector = OffsetCorrector(
            mode,
            palm=Regression(*palm),
            wrist=Regression(*wrist),
            palm_residual_sd_c=palm_residual_sd_c,
            wrist_residual_sd_c=wrist_residual_sd_c,
        )
        self._band = WristbandWindow(wristband_window_s)
        self._reading = replace(_NOTHING_MEASURED, flags=("warming_up",))
        self.frames = 0  # thermal frames pushed
        self.measured = 0  # frames that gave a corrected face temperature

    def push_skin(self, celsius: float, t_mono: int) -> None:
        """Add one wristband reading (non-finite ones are counted and ignored by the window)."""
        self._band.push(celsius, t_mono)

    def reading(self) -> ThermalReading:
        """The state after the latest thermal frame."""
        return self._reading

    def push_thermal(self, frame: ThermalFrame, paired_visible: npt.NDArray[np.uint8] | None) -> None:
        """Measure and correct one thermal frame (with the visible frame taken with it, when there is one).

        Shutter (FFC) frames are not measured; they restart the fused filter. When no region can be found
        (no visible image, no registration yet) the fused offset is held for a while, but without a face
        there is no temperature.

        Raises:
            ValueError: when ``frame.celsius`` is not a 2-D image.
        """
        if frame.celsius.ndim != 2:
            raise ValueError(f"thermal frame {frame.seq}: celsius must be H×W, got shape {frame.celsius.shape}")
        self.frames += 1
        t = frame.t_mono
        band_c = self._band.mean(t)
        if frame.ffc:
            self._corrector.update(t, wristband_c=band_c, palm=None, wrist=None, ffc=True)
            self._reading = self._blank(band_c, None, ("ffc",))
            return
        m = self._measurer.measure(frame, paired_visible)
        if not m.registered:
            est = self._corrector.update(t, wristband_c=band_c, palm=None, wrist=None)
            self._reading = self._blank(band_c, est, m.flags)
            return
        flags = list(m.flags)
        if band_c is None:
            flags.append("no_wristband")
        est = self._corrector.update(t, wristband_c=band_c, palm=m.palm, wrist=m.wrist)
        flags.extend(["no_reference"] if est is None else est.flags)
        self._reading = self._read(m, est, band_c, tuple(flags))
        if self._reading.face_corrected_c is not None:
            self.measured += 1

    def _blank(self, band_c: float | None, est: OffsetEstimate | None, flags: tuple[str, ...]) -> ThermalReading:
        offset_c, reference = (est.offset_c, est.reference) if est else (None, None)
        return replace(_NOTHING_MEASURED, offset_c=offset_c, reference=reference, wristband_c=band_c, flags=flags)

    def _read(
        self, m: FrameMeasurement, est: OffsetEstimate | None, band_c: float | None, flags: tuple[str, ...]
    ) -> ThermalReading:
        quality: dict[str, float] = {}
        face = m.face
        for name, region in (("face", face), ("palm", m.palm), ("wrist", m.wrist)):
            if region is not None:
                quality[f"{name}_pixels"] = float(region.pixels)
                quality[f"{name}_spread_c"] = region.spread_c
        measured = estimated = None
        if est is not None:
            quality["offset_var_c2"] = est.variance_c2
            refs = [r for r in (est.palm, est.wrist) if r is not None]
            for r in refs:
                quality[f"{r.reference}_offset_c"] = r.offset_c
            if refs:  # inverse-variance weighted, like the fused offset itself
                w = [1.0 / r.variance_c2 for r in refs]
                measured = math.fsum(wi * r.measured_c for wi, r in zip(w, refs, strict=True)) / math.fsum(w)
                estimated = math.fsum(wi * r.estimated_c for wi, r in zip(w, refs, strict=True)) / math.fsum(w)
        raw = face.mean_c if face is not None else None
        corrected = raw + est.offset_c if raw is not None and est is not None else None
        return ThermalReading(
            face_raw_c=raw,
            face_corrected_c=corrected,
            offset_c=est.offset_c if est else None,
            reference=est.reference if est else None,
            reference_measured_c=measured,
            reference_estimated_c=estimated,
            wristband_c=band_c,
            registration_ncc=m.registration_ncc,
            face_box=m.face_box,
            palm_box=m.palm.box if m.palm is not None else None,
            wrist_box=m.wrist.box if m.wrist is not None else None,
            quality=quality,
            flags=flags,
        )
