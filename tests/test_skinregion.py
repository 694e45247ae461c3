"""The face found from the skin region on lensed video, and the fit of its geometry."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.privacy import blur_radius_share, build_lensing, fit_face_geometry, skin_region_detector
from fusion.errors import ConfigError
from fusion.face import Box
from fusion.skinregion import SkinRegionDetector
from fusion.tracking import FaceTracker

FIT = Path(__file__).parents[1] / "models" / "privacy_lens" / "skin_region.json"
WALL_BGR = (150, 170, 60)
SKIN_BGR = (120, 150, 205)


def _frame_with_skin_ellipse(size: tuple[int, int], centre: tuple[int, int], axes: tuple[int, int]) -> np.ndarray:
    frame = np.full((size[1], size[0], 3), WALL_BGR, np.uint8)
    cv2.ellipse(frame, centre, axes, 0, 0, 360, SKIN_BGR, -1)
    return frame


def test_the_region_is_the_skin_areas_box() -> None:
    frame = _frame_with_skin_ellipse((320, 240), (160, 110), (40, 60))
    region = SkinRegionDetector().region(frame)
    assert region is not None
    # The ellipse spans x 120–200, y 50–170; the detector works at a quarter of the width (4 px cells).
    assert np.allclose((region.x, region.y, region.w, region.h), (120, 50, 80, 120), atol=5)


def test_the_face_box_is_square_around_the_region_widened_by_the_margin() -> None:
    frame = _frame_with_skin_ellipse((320, 240), (160, 110), (40, 60))
    detector = SkinRegionDetector(margin=0.05, top=-0.02)  # 16 px each side, 6.4 px above, at 320 px
    region = detector.region(frame)
    (face,) = detector.detect(frame)
    assert region is not None
    assert face.w == face.h == pytest.approx(region.w + 32)
    assert face.cx == pytest.approx(region.cx)
    assert face.y == pytest.approx(region.y - 6.4)


def test_each_lens_gets_its_committed_fit_scaled_by_its_blur_and_held_out_clips_are_refitted() -> None:
    for preset in ("lens", "defocus", "lowres16"):
        lensing = build_lensing(preset)
        assert lensing is not None
        fit = json.loads(FIT.read_text())["presets"][preset]
        detector = skin_region_detector(lensing)
        assert detector.margin == pytest.approx(fit["margin_radii"] * blur_radius_share(lensing))
        assert detector.top == pytest.approx(fit["top_radii"] * blur_radius_share(lensing))
        widest = max(fit["per_clip"], key=lambda name: fit["per_clip"][name]["margin_radii"])
        assert skin_region_detector(lensing, held_out=widest).margin < detector.margin
    lensing = build_lensing("lens")
    assert lensing is not None
    lensing.name = "unfitted"
    with pytest.raises(ConfigError, match="no skin-region fit"):
        skin_region_detector(lensing)


def test_no_skin_gives_no_region() -> None:
    frame = np.full((240, 320, 3), WALL_BGR, np.uint8)
    assert SkinRegionDetector().detect(frame) == []
    speck = _frame_with_skin_ellipse((320, 240), (160, 110), (3, 3))  # well under 1 % of the frame
    assert SkinRegionDetector().detect(speck) == []


def test_the_fit_is_the_median_over_clips_and_leaves_one_out() -> None:
    per_clip = {
        "a": {"frames": 30, "margin_radii": 0.6, "top_radii": 0.0},
        "b": {"frames": 5, "margin_radii": 0.8, "top_radii": 0.2},
        "c": {"frames": 30, "margin_radii": 1.3, "top_radii": -0.1},
    }
    assert fit_face_geometry(per_clip) == pytest.approx((0.8, 0.0))
    assert fit_face_geometry(per_clip, leave_out="b") == pytest.approx((0.95, -0.05))
    with pytest.raises(ValueError, match="no clip"):
        fit_face_geometry({"a": per_clip["a"]}, leave_out="a")


class _Recording:
    """A detector that always finds one box and notes the size of every image it was given."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        self.shapes.append(image_bgr.shape)
        return [Box(280.0, 200.0, 80.0, 80.0)] if image_bgr.shape[1] == 640 else [Box(10.0, 10.0, 40.0, 40.0)]


@pytest.mark.parametrize("search_near", [True, False])
def test_a_tracker_that_must_not_search_near_gives_the_detector_whole_frames(search_near: bool) -> None:
    detector = _Recording()
    tracker = FaceTracker(detector, search_near=search_near)
    frame = np.zeros((480, 640, 3), np.uint8)
    for i in range(3):
        tracker.update(frame, i * 33_000_000)
    whole = [s == frame.shape for s in detector.shapes]
    assert whole[0]
    assert all(whole[1:]) is (not search_near)


def test_on_a_real_clip_the_face_reaches_past_the_region_by_about_the_blur(shared_data: Path) -> None:
    """The fit's measurement on real frames: Haar's face on the raw frame is wider than the skin region
    through the lens, by a margin of the order of the PSF's rms radius, and starts near its top."""
    from models.privacy_lens.skin_region import measure_clip

    video = next((shared_data / "ubfc").glob("subject*/vid.*"))
    lensing = build_lensing("lens", seed=11)
    assert lensing is not None
    rows = measure_clip(video, lensing)
    assert len(rows) >= 10
    margins, tops = np.array(rows).T
    assert 0.3 < float(np.median(margins)) < 2.0
    assert abs(float(np.median(tops))) < 1.0
