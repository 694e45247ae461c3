"""Buffered face box: 25 % enlargement, re-target only when the face leaves it, 0.25 s moves, loss."""

from __future__ import annotations

import cv2
import numpy as np

from fusion.face import Box
from fusion.tracking import FaceTracker

NS = 1_000_000_000


class BrightBlobDetector:
    """A real (if simple) FaceDetector: bounding boxes of the bright blobs in the image, largest first."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        self.calls += 1
        mask = (image_bgr[:, :, 1] > 127).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = [Box(*map(float, stats[i, :4])) for i in range(1, n)]
        return sorted(boxes, key=lambda b: b.w * b.h, reverse=True)


def scene(*faces: Box) -> np.ndarray:
    image = np.zeros((480, 640, 3), np.uint8)
    for f in faces:
        image[round(f.y) : round(f.y + f.h), round(f.x) : round(f.x + f.w)] = 255
    return image


def approx(box: Box | None, expected: Box, tol: float = 1.5) -> bool:
    assert box is not None
    return all(abs(a - b) <= tol for a, b in zip(box.as_list(), expected.as_list(), strict=True))


def test_first_detection_is_enlarged_by_25_percent() -> None:
    state = FaceTracker(BrightBlobDetector()).update(scene(Box(100, 100, 80, 80)), 0)
    assert state.box == Box(90, 90, 100, 100)
    assert state.detected and not state.lost


def test_jitter_inside_the_buffer_does_not_move_the_box() -> None:
    tracker = FaceTracker(BrightBlobDetector())
    first = tracker.update(scene(Box(100, 100, 80, 80)), 0).box
    for i, dx in enumerate([3, -4, 6, -2], start=1):
        state = tracker.update(scene(Box(100 + dx, 100 - dx, 82, 79)), i * NS // 30)
        assert state.box == first and not state.moved


def test_leaving_the_buffer_moves_the_box_over_a_quarter_second() -> None:
    tracker = FaceTracker(BrightBlobDetector(), move_s=0.25)
    tracker.update(scene(Box(100, 100, 80, 80)), 0)
    moved = scene(Box(160, 100, 80, 80))  # moved right, out of the buffered box
    start = tracker.update(moved, NS).box
    half = tracker.update(moved, NS + NS // 8).box
    end = tracker.update(moved, NS + NS // 4).box
    assert start == Box(90, 90, 100, 100)
    assert half is not None and abs(half.x - 120) <= 1.5
    assert approx(end, Box(150, 90, 100, 100))


def test_detector_runs_every_k_frames_and_near_the_face() -> None:
    detector = BrightBlobDetector()
    tracker = FaceTracker(detector, detect_every=5)
    image = scene(Box(100, 100, 80, 80), Box(500, 300, 30, 30))  # a second, smaller blob far away
    states = [tracker.update(image, i * NS // 30) for i in range(12)]
    assert detector.calls == 3
    assert [s.detected for s in states].count(True) == 3
    assert all(approx(s.box, Box(90, 90, 100, 100)) for s in states)


def test_face_is_lost_after_a_second_without_detection() -> None:
    tracker = FaceTracker(BrightBlobDetector(), lost_after_s=1.0)
    empty = scene()
    assert tracker.update(empty, 0).lost  # nothing seen yet
    tracker.update(scene(Box(100, 100, 80, 80)), NS)
    assert not tracker.update(empty, NS + NS // 2).lost  # a missed detection is tolerated
    state = tracker.update(empty, 2 * NS + 1)
    assert state.lost and state.box is None


def test_follows_the_tracked_face_not_a_larger_newcomer() -> None:
    tracker = FaceTracker(BrightBlobDetector())
    tracker.update(scene(Box(100, 100, 80, 80)), 0)
    state = tracker.update(scene(Box(400, 100, 150, 150), Box(102, 101, 80, 80)), NS // 30)
    assert state.box == Box(90, 90, 100, 100)


def test_face_found_again_elsewhere_after_leaving_the_search_region() -> None:
    tracker = FaceTracker(BrightBlobDetector(), move_s=0.0)
    tracker.update(scene(Box(100, 100, 80, 80)), 0)
    state = tracker.update(scene(Box(450, 300, 80, 80)), NS // 5)  # jumped far: whole-frame search
    assert approx(state.box, Box(440, 290, 100, 100))
