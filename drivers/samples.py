"""Typed samples every source emits, and the source interface (DESIGN §1–2).

Samples are frozen; array samples use ``eq=False`` (``==`` on arrays raises) and the driver marks
their arrays read-only before emitting. ``meta`` carries device extras and the simulated rig's
ground truth; fusion never reads it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, Self, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "PlanckConstants",
    "Sample",
    "SkinTemperature",
    "Source",
    "ThermalFrame",
    "VisibleFrame",
]


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
S_co = TypeVar("S_co", bound=VisibleFrame | ThermalFrame | SkinTemperature, covariant=True)


class Source(Protocol[S_co]):
    """A device or file that yields typed samples.

    Usage: ``async with src: async for s in src.samples(): ...``. A source may yield one sample type or
    several (the simulated rig and a replayed session yield all three, in ``t_mono`` order). Reusable,
    not reentrant; a failed
    ``__aenter__`` leaves it ready to retry and ``__aexit__`` is safe after a failed enter or twice.
    """

    name: str
    dropped: int  # samples discarded because the consumer was slow

    async def __aenter__(self) -> Self: ...  # opens the device or raises SourceUnavailableError

    async def __aexit__(self, *exc_info: object) -> None: ...

    def samples(self) -> AsyncIterator[S_co]: ...
