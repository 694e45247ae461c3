"""Buffered face box (Gideon & Stent 2021): a steady crop that moves only when the face leaves it.

The detector's box is enlarged by 25 % in width and height. The buffered box is re-targeted only when
a raw detection leaves it, and then moves to the new target linearly over 0.25 s, so small head
motions and detector jitter never shift the crop (each shift is a step in the colour signal).
Detection runs every ``detect_every`` frames; between detections the box holds. When no detection
succeeds for ``lost_after_s`` the face is lost and the state says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from fusion.face import Box, FaceDetector

__all__ = ["FaceTracker", "TrackState"]

_NS_PER_S = 1_000_000_000
# While a face is tracked the detector looks only near it: a region twice the buffered box (room for
# the head to move between detections), scaled so the face is about 58 px wide: enough for a 24 px Haar
# cascade, still above the Haar detector's 40 px minimum if the face shrinks to 70 %, and many times
# cheaper than the whole frame. Nothing found there: the whole frame is searched.
_REGION_GROWTH = 1.0
_REGION_WIDTH_PX = 144


@dataclass(frozen=True, slots=True)
class TrackState:
    """The tracker's state after one frame.

    Attributes:
        box: the buffered box to crop, or None when no face is tracked.
        detected: a detection ran on this frame and found a face.
        lost: no face: none found yet, or none for longer than ``lost_after_s``.
        moved: the buffered box differs from the previous frame's (re-targeting in progress).
    """

    box: Box | None
    detected: bool
    lost: bool
    moved: bool = False


def _lerp(a: Box, b: Box, u: float) -> Box:
    return Box(a.x + (b.x - a.x) * u, a.y + (b.y - a.y) * u, a.w + (b.w - a.w) * u, a.h + (b.h - a.h) * u)


def _overlap(a: Box, b: Box) -> float:
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    return max(0.0, w) * max(0.0, h)


class FaceTracker:
    """Runs a face detector every few frames and keeps the buffered box.

    Args:
        detector: any FaceDetector (largest face first).
        detect_every: run the detector on every n-th frame (1: every frame), and at least every half
            ``lost_after_s`` of frame time: a thinned stream (a slow CPU) runs it less often per second,
            never so rarely that a face in view counts as lost.
        enlarge: growth of the detector box in width and height (0.25 → 125 %).
        move_s: duration of the interpolated move to a new target.
        lost_after_s: a face not detected for this long is lost (Haar misses single frames when the
            head turns; one second limits background in a 10 s window to 10 %).
        search_near: look near the tracked face first; False: the detector always sees the whole frame
            (one that sizes its box from the frame, like the skin region on lensed video, must).
    """

    def __init__(
        self,
        detector: FaceDetector,
        *,
        detect_every: int = 1,
        enlarge: float = 0.25,
        move_s: float = 0.25,
        lost_after_s: float = 1.0,
        search_near: bool = True,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be ≥ 1, got {detect_every}")
        self._detector = detector
        self._every = detect_every
        self._enlarge = enlarge
        self._move_ns = int(move_s * _NS_PER_S)
        self._lost_ns = int(lost_after_s * _NS_PER_S)
        self._search_near = search_near
        self.detections = 0  # detector calls made (for benchmarks)
        self.reset()

    def reset(self) -> None:
        self._frame = 0
        self._box: Box | None = None
        self._from: Box | None = None
        self._target: Box | None = None
        self._move_start = 0
        self._last_seen: int | None = None
        self._last_attempt: int | None = None

    def update(self, image_bgr: npt.NDArray[np.uint8], t_mono: int) -> TrackState:
        """Process one frame taken at ``t_mono`` (ns); returns where the face is."""
        detected = False
        overdue = self._last_attempt is not None and t_mono - self._last_attempt >= self._lost_ns // 2
        if self._frame % self._every == 0 or overdue:
            self._last_attempt = t_mono
            self.detections += 1
            found = self._detect(image_bgr)
            if found:
                detected = True
                self._last_seen = t_mono
                self._retarget(self._pick(found), t_mono)
        self._frame += 1
        if self._last_seen is None or t_mono - self._last_seen > self._lost_ns:
            self._box = self._from = self._target = None
            return TrackState(box=None, detected=detected, lost=True)
        previous = self._box
        self._box = self._current(t_mono)
        return TrackState(box=self._box, detected=detected, lost=False, moved=self._box != previous)

    def _detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Box]:
        """Detect near the tracked face first; the whole frame when nothing is tracked or found there."""
        if self._target is not None and self._search_near:
            height, width = image_bgr.shape[:2]
            x0, y0, x1, y1 = self._target.enlarged(_REGION_GROWTH).clipped(width, height)
            if x1 - x0 >= 24 and y1 - y0 >= 24:
                scale = min(1.0, _REGION_WIDTH_PX / (x1 - x0))
                region = image_bgr[y0:y1, x0:x1]
                if scale < 1.0:
                    region = np.asarray(
                        cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), dtype=np.uint8
                    )
                found = self._detector.detect(region)
                if found:
                    return [Box(x0 + b.x / scale, y0 + b.y / scale, b.w / scale, b.h / scale) for b in found]
        return self._detector.detect(image_bgr)

    def _pick(self, found: list[Box]) -> Box:
        """The detection to follow: the one overlapping the tracked box most, else the largest."""
        if self._target is not None:
            best = max(found, key=lambda b: _overlap(b, self._target))  # type: ignore[arg-type]
            if _overlap(best, self._target) > 0:
                return best
        return found[0]

    def _retarget(self, raw: Box, t_mono: int) -> None:
        if self._target is None or self._box is None:
            self._box = self._from = self._target = raw.enlarged(self._enlarge)
            self._move_start = t_mono - self._move_ns
            return
        if self._target.contains(raw):
            return
        self._from = self._current(t_mono)
        self._target = raw.enlarged(self._enlarge)
        self._move_start = t_mono

    def _current(self, t_mono: int) -> Box:
        assert self._from is not None and self._target is not None
        if self._move_ns <= 0 or t_mono - self._move_start >= self._move_ns:
            return self._target
        return _lerp(self._from, self._target, (t_mono - self._move_start) / self._move_ns)
