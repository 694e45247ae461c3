"""Face boxes and the face-detector interface shared by the rPPG and thermal paths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Box", "FaceDetector", "FullFrameDetector"]


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box in pixel coordinates of the image it was found in (x, y = top-left)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    def scaled(self, fx: float, fy: float | None = None) -> Box:
        """The same box in an image resized by ``fx`` (and ``fy``)."""
        fy = fx if fy is None else fy
        return Box(self.x * fx, self.y * fy, self.w * fx, self.h * fy)

    def enlarged(self, factor: float) -> Box:
        """The box grown by ``factor`` in width and height about its centre (0.25 → 125 %)."""
        w, h = self.w * (1 + factor), self.h * (1 + factor)
        return Box(self.cx - w / 2, self.cy - h / 2, w, h)

    def contains(self, other: Box) -> bool:
        return (
            other.x >= self.x
            and other.y >= self.y
            and other.x + other.w <= self.x + self.w
            and other.y + other.h <= self.y + self.h
        )

    def clipped(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Integer (x0, y0, x1, y1) inside an image of the given size; may be empty."""
        x0 = round(min(max(self.x, 0), width))
        y0 = round(min(max(self.y, 0), height))
        x1 = round(min(max(self.x + self.w, 0), width))
        y1 = round(min(max(self.y + self.h, 0), height))
        return x0, y0, x1, y1

    def as_list(self) -> list[float]:
        return [round(self.x, 1), round(self.y, 1), round(self.w, 1), round(self.h, 1)]


class FaceDetector(Protocol):
    """Finds faces in a BGR (or greyscale-as-BGR) image; largest first. Built in edge/ or models/."""

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Box]: ...


class FullFrameDetector:
    """A "detector" that finds the whole image: for video that is all skin (a cropped skin patch) or a
    camera framed on one region, so the pipeline runs unchanged with a fixed region."""

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Box]:
        return [Box(0.0, 0.0, float(image_bgr.shape[1]), float(image_bgr.shape[0]))]
