"""Where the face is in a blurred frame: the region the heart-rate path follows on lensed video.

A privacy lens exists to defeat face detectors, so on lensed frames the face is found from what survives
the blur: colour. Skin chrominance lies in a compact box of YCrCb (Cr 133–173, Cb 77–127; Chai & Ngan
1999). The largest such connected area is the skin region; the buffered tracker (:mod:`fusion.tracking`)
then holds the box steady, as it does a detector's.

The region is not the face. The blur mixes the background into the face's edges until they fail the
chrominance test, so the region is a narrow core of the face (its width depends on skin tone and light,
not on the face's size), running on into the neck. What is about constant is how far the face reaches
past the core's sides: a share of the blur's width. So the box returned is a face box, as a detector's:
square, centred on the region, ``margin`` wider than the region on each side and starting ``top`` below
the region's top, both fitted per lens (``models/privacy_lens/skin_region.py``). The colour is then
taken as from any face box: the centre of the buffered box, skin pixels only.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from fusion.face import Box

__all__ = ["SkinRegionDetector"]


class SkinRegionDetector:
    """A FaceDetector for blurred frames: the face box the largest skin-coloured area stands for.

    Args:
        margin: how far the face reaches past each side of the region, as a share of the frame's width.
        top: how far the face's top lies below the region's top (negative: above), same unit.
        work_width_px: the frame is downscaled to this width first (the region is blurred anyway).
        cr: accepted Cr range (inclusive).
        cb: accepted Cb range (inclusive).
        min_area: smallest region, as a share of the frame.
    """

    def __init__(
        self,
        *,
        margin: float = 0.0,
        top: float = 0.0,
        work_width_px: int = 80,
        cr: tuple[int, int] = (133, 173),
        cb: tuple[int, int] = (77, 127),
        min_area: float = 0.01,
    ) -> None:
        if work_width_px < 8 or margin < 0:
            raise ValueError(f"need work_width_px ≥ 8 and margin ≥ 0, got {work_width_px}, {margin}")
        self.margin = margin
        self.top = top
        self._width = work_width_px
        self._low = np.array([0, cr[0], cb[0]], dtype=np.uint8)
        self._high = np.array([255, cr[1], cb[1]], dtype=np.uint8)
        self._min_area = min_area

    def region(self, image_bgr: npt.NDArray[np.uint8]) -> Box | None:
        """The box of the largest skin-coloured area, or None when there is none large enough."""
        width = image_bgr.shape[1]
        scale = min(1.0, self._width / width)
        small = image_bgr
        if scale < 1.0:
            small = np.asarray(cv2.resize(image_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8)
        mask = cv2.inRange(cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb), self._low, self._high)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if count <= 1:
            return None
        areas = stats[1:, cv2.CC_STAT_AREA]
        best = 1 + int(np.argmax(areas))
        if areas[best - 1] < self._min_area * mask.size:
            return None
        x, y, w, h = (float(v) / scale for v in stats[best, :4])
        return Box(x, y, w, h)

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Box]:
        region = self.region(image_bgr)
        if region is None:
            return []
        width = image_bgr.shape[1]
        side = region.w + 2.0 * self.margin * width
        return [Box(region.cx - side / 2.0, region.y + self.top * width, side, side)]
