"""Typed samples every source emits (DESIGN §2); drivers produce them, fusion consumes them.

Samples are frozen; array samples use ``eq=False`` (``==`` on arrays raises) and the driver marks
their arrays read-only before emitting. ``meta`` carries device extras and the simulated rig's
ground truth; fusion never reads it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "SKIN_PLAUSIBLE_C",
    "PlanckConstants",
    "Sample",
    "SkinTemperature",
    "ThermalFrame",
    "VisibleFrame",
    "implausible_skin_c",
]

# A wristband sensor's operating range: a reading outside it is a fault (a decoding slip, a corrupt file, a
# hostile server), not a temperature. Every wristband source drops such readings and counts them ("range").
SKIN_PLAUSIBLE_C = (-40.0, 85.0)


def implausible_skin_c(celsius: float) -> str | None:
    """Why a wristband reading cannot be a temperature, or None when it can.

    Args:
        celsius: the reading.

    Returns:
        A short reason (for the count's log line), or None for a plausible reading.
    """
    low, high = SKIN_PLAUSIBLE_C
    if not math.isfinite(celsius):
        return f"{celsius} is not a temperature"
    if not low <= celsius <= high:
        return f"{celsius:.6g} °C outside {low:g}..{high:g} °C"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanckConstants:
    """Per-unit radiometric constants that turn raw counts into °C.

    ``provenance`` says where they came from (a photo's camera-info record, a datasheet, defaults).
    """

    r1: float
    r2: float
    b: float
    f: float
    o: float
    emissivity: float = 0.98
    reflected_c: float = 20.0
    provenance: str = "unspecified"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class VisibleFrame:
    """One colour (or greyscale/IR) video frame."""

    t_mono: int  # time.monotonic_ns() at capture
    t_wall: float  # unix seconds
    source: str  # configured name, e.g. "webcam"
    seq: int  # per source; a gap means a drop
    image: npt.NDArray[np.uint8]  # H×W×3 BGR, as OpenCV gives
    greyscale: bool = False  # True when the three channels are one (IR/NIR camera)
    meta: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ThermalFrame:
    """One radiometric thermal frame in °C, with the sled's own visible image when it has one."""

    t_mono: int
    t_wall: float
    source: str
    seq: int
    celsius: npt.NDArray[np.float32]  # H×W
    raw: npt.NDArray[np.uint16] | None = None  # sensor counts, when the device gives them
    visible: npt.NDArray[np.uint8] | None = None  # H×W×3 BGR of the sled's visible camera
    visible_greyscale: bool = False  # True when ``visible`` has no colour (low light, a mono sensor)
    ffc: bool = False  # shutter / flat-field correction in progress: not for measurement
    planck: PlanckConstants | None = None
    meta: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class SkinTemperature:
    """One absolute skin temperature reading from a contact sensor (wristband, thermometer)."""

    t_mono: int
    t_wall: float
    source: str
    seq: int
    celsius: float
    site: str = "wrist"
    device: str = ""
    meta: Mapping[str, object] = field(default_factory=dict)


Sample = VisibleFrame | ThermalFrame | SkinTemperature

