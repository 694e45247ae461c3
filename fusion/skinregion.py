"""Where the skin is in a blurred frame: the region the heart-rate path follows on lensed video.

A privacy lens exists to defeat face detectors, so on lensed frames the region comes from what survives
the blur: colour. Skin chrominance lies in a compact box of YCrCb (Cr 133–173, Cb 77–127; Chai & Ngan
1999) that a low-pass lens leaves where it was, inside areas larger than the PSF. The largest such
connected area (the face with the neck, for a seated subject) is the region; the buffered tracker
(:mod:`fusion.tracking`) then holds it steady, as it does a detector's box.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from fusion.face import Box

__all__ = ["SkinRegionDetector"]


class SkinRegionDetector:
    """A FaceDetector that returns the largest skin-coloured area (empty list when there is none).

    Args:
        work_width_px: the frame is downscaled to this width first (the region is blurred anyway).
        cr: accepted Cr range (inclusive).
        cb: accepted Cb range (inclusive).
        min_area: smallest region, as a share of the frame.
        shrink: the box returned is this share of the region's box (about its centre): the tracker
            enlarges boxes by 25 %, so 0.8 gives back the region itself.
    """

    def __init__(
        self,
        work_width_px: int = 80,
        cr: tuple[int, int] = (133, 173),
        cb: tuple[int, int] = (77, 127),
        min_area: float = 0.01,
        shrink: float = 0.8,
    ) -> None:
        if work_width_px < 8 or not 0 < shrink <= 1:
            raise ValueError(f"need work_width_px ≥ 8 and 0 < shrink ≤ 1, got {work_width_px}, {shrink}")
        self._width = work_width_px
        self._low = np.array([0, cr[0], cb[0]], dtype=np.uint8)
        self._high = np.array([255, cr[1], cb[1]], dtype=np.uint8)
        self._min_area = min_area
        self._shrink = shrink

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Box]:
        width = image_bgr.shape[1]
        scale = min(1.0, self._width / width)
        small = image_bgr
        if scale < 1.0:
            small = np.asarray(cv2.resize(image_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8)
        mask = cv2.inRange(cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb), self._low, self._high)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if count <= 1:
            return []
        areas = stats[1:, cv2.CC_STAT_AREA]
        best = 1 + int(np.argmax(areas))
        if areas[best - 1] < self._min_area * mask.size:
            return []
        x, y, w, h = (float(v) / scale for v in stats[best, :4])
        box = Box(x, y, w, h)
        return [box.enlarged(self._shrink - 1.0)]
