"""Drawing for the overlay: the annotated webcam frame and the false-colour thermal frame.

Pure image work (OpenCV) on copies of the frames, done only when someone watches.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from fusion.face import Box
from fusion.privacy import Lensing
from fusion.vitals import HeartRateReading, ThermalReading

__all__ = ["annotate_visible", "encode_jpeg", "false_colour", "thermal_range_c"]

_GREEN = (80, 220, 80)
_AMBER = (40, 180, 255)
_WHITE = (255, 255, 255)
_CYAN = (255, 220, 60)
_THERMAL_SCALE = 4  # 160×120 sensors are drawn at 640×480


def _fmt(value: float | None, unit: str, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return f"-- {unit}"
    return f"{value:.{digits}f} {unit}"


def _box(image: npt.NDArray[np.uint8], box: Box, colour: tuple[int, int, int], label: str | None = None) -> None:
    x0, y0 = round(box.x), round(box.y)
    x1, y1 = round(box.x + box.w), round(box.y + box.h)
    cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2, cv2.LINE_AA)
    if label:
        cv2.putText(image, label, (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)


def _banner(image: npt.NDArray[np.uint8], lines: list[str]) -> None:
    height = 10 + 26 * len(lines)
    shade = image[:height, :].astype(np.uint16) // 3
    image[:height, :] = shade.astype(np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(image, text, (10, 26 + 26 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.7, _WHITE, 2, cv2.LINE_AA)


def annotate_visible(
    image_bgr: npt.NDArray[np.uint8], heart_rate: HeartRateReading, thermal: ThermalReading
) -> npt.NDArray[np.uint8]:
    """The webcam frame with the face box, heart rate and corrected face temperature.

    Args:
        image_bgr: H×W×3 BGR frame (not modified).
        heart_rate: the heart-rate path's current reading (its face box is in this image's pixels).
        thermal: the thermal path's current reading.

    Returns:
        A new annotated BGR image.
    """
    out = np.ascontiguousarray(image_bgr).copy()
    if heart_rate.face_box is not None:
        colour = _GREEN if heart_rate.bpm is not None else _AMBER
        _box(out, heart_rate.face_box, colour, f"face  conf {heart_rate.confidence:.2f}")
    _banner(out, [
        f"HR {_fmt(heart_rate.bpm, 'bpm', 0)}   face {_fmt(thermal.face_corrected_c, 'C', 1)}",
        f"raw {_fmt(thermal.face_raw_c, 'C', 1)}   offset {_fmt(thermal.offset_c, 'C', 2)}"
        f"   ref {thermal.reference or '--'}",
    ])
    return out


def thermal_range_c(celsius: npt.NDArray[np.float32]) -> tuple[float, float]:
    """Display range: the 2nd–98th percentile of finite pixels, at least 4 °C wide (20–40 °C if none)."""
    finite = celsius[np.isfinite(celsius)]
    if finite.size == 0:
        return 20.0, 40.0
    lo, hi = (float(v) for v in np.percentile(finite, [2.0, 98.0]))
    if hi - lo < 4.0:
        mid = (hi + lo) / 2
        lo, hi = mid - 2.0, mid + 2.0
    return lo, hi


def false_colour(
    celsius: npt.NDArray[np.float32], thermal: ThermalReading, lensing: Lensing | None = None
) -> npt.NDArray[np.uint8]:
    """The thermal frame in false colour (inferno), scaled ×4, with the face, palm and wrist regions.

    Args:
        celsius: H×W temperatures; NaN pixels are drawn black.
        thermal: the thermal path's current reading (its face box is in thermal pixels).
        lensing: the privacy lens the picture passes through before the regions are drawn on it.

    Returns:
        A new BGR image.
    """
    lo, hi = thermal_range_c(celsius)
    scaled = np.clip((np.nan_to_num(celsius, nan=lo) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    coloured = cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)
    coloured[~np.isfinite(celsius)] = 0
    big = cv2.resize(coloured, None, fx=_THERMAL_SCALE, fy=_THERMAL_SCALE, interpolation=cv2.INTER_NEAREST)
    out = np.ascontiguousarray(big) if lensing is None else lensing.apply(np.ascontiguousarray(big))
    if thermal.face_box is not None:
        _box(out, thermal.face_box.scaled(_THERMAL_SCALE), _GREEN, f"face {_fmt(thermal.face_raw_c, 'C', 1)}")
    for name, box in (("palm", thermal.palm_box), ("wrist", thermal.wrist_box)):
        if box is not None:
            _box(out, box.scaled(_THERMAL_SCALE), _CYAN, name)
    flags = " ".join(f for f in thermal.flags if f == "ffc")
    _banner(out, [f"{lo:.1f}-{hi:.1f} C   corrected {_fmt(thermal.face_corrected_c, 'C', 1)} {flags}".rstrip()])
    return out


def encode_jpeg(image_bgr: npt.NDArray[np.uint8], quality: int) -> bytes:
    """JPEG bytes of a BGR image.

    Raises:
        ValueError: OpenCV could not encode it (wrong shape or dtype).
    """
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a {image_bgr.dtype} {image_bgr.shape} image as JPEG")
    return bytes(buf)
