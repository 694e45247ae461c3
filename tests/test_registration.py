"""Visible → thermal registration on constructed scenes with a known transform."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from fusion.face import Box
from fusion.registration import Registrar, Transform, estimate_transform, transform_ncc

_MARGIN = 400


def _scene(truth: Transform, w: int, h: int, tw: int, th: int, seed: int = 0,
           ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """A world of random shapes, seen by a visible camera (random colours, pixel noise) and by a thermal
    camera (random temperatures, 0.1 °C noise) whose view is ``truth`` applied to the visible one."""
    rng = np.random.default_rng(seed)
    big_w, big_h = w + 2 * _MARGIN, h + 2 * _MARGIN
    labels = np.zeros((big_h, big_w), np.int32)
    for k in range(1, 60):
        x, y = int(rng.integers(0, big_w)), int(rng.integers(0, big_h))
        if k % 2:
            cv2.circle(labels, (x, y), int(rng.integers(15, 80)), k, -1)
        else:
            cv2.rectangle(labels, (x, y), (x + int(rng.integers(30, 180)), y + int(rng.integers(30, 150))), k, -1)
    colours = rng.integers(0, 256, (60, 3)).astype(np.uint8)
    temps = rng.uniform(20.0, 37.0, 60).astype(np.float32)
    vis = colours[labels[_MARGIN:_MARGIN + h, _MARGIN:_MARGIN + w]]
    vis = np.clip(vis.astype(np.int16) + rng.integers(-8, 9, vis.shape), 0, 255).astype(np.uint8)
    world = Transform(truth.scale, truth.dx - truth.scale * _MARGIN, truth.dy - truth.scale * _MARGIN, 1.0)
    celsius = world.warp_visible(temps[labels], (th, tw)) + rng.normal(0, 0.1, (th, tw)).astype(np.float32)
    return vis, celsius.astype(np.float32)


def _max_error_px(est: Transform, truth: Transform, w: int, h: int) -> float:
    pts = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1], [w / 2, h / 2]])
    return float(np.abs(est.map_points(pts) - truth.map_points(pts)).max())


@pytest.mark.parametrize(
    ("w", "h", "tw", "th", "fov_ratio", "dx", "dy"),
    [
        (1440, 1080, 80, 60, 1.3, -7.3, -4.6),  # FLIR ONE Gen 3 sled: visible wider than thermal
        (1440, 1080, 160, 120, 1.6, -20.2, -10.9),  # FLIR ONE Pro
        (640, 480, 80, 60, 2.2, -30.0, -22.0),  # wide webcam
        (640, 480, 160, 120, 0.8, 5.2, 4.1),  # narrow webcam: the visible image becomes the template
    ],
)
def test_known_shift_and_scale_recovered_within_one_thermal_pixel(
    w: int, h: int, tw: int, th: int, fov_ratio: float, dx: float, dy: float
) -> None:
    truth = Transform(tw * fov_ratio / w, dx, dy, 1.0)
    vis, celsius = _scene(truth, w, h, tw, th)
    est = estimate_transform(vis, celsius)
    assert est is not None
    assert _max_error_px(est, truth, w, h) < 1.0
    assert est.ncc > 0.5


def test_featureless_images_give_no_transform() -> None:
    vis = np.full((480, 640, 3), 128, np.uint8)
    assert estimate_transform(vis, np.full((60, 80), 30.0, np.float32)) is None


def test_box_and_points_map_both_ways() -> None:
    t = Transform(0.125, -10.0, -5.0, 0.9)
    box = Box(160.0, 120.0, 320.0, 240.0)
    mapped = t.map_box(box)
    # Pixel edges: left edge of visible pixel 160 is x = 159.5 in centre coordinates → 0.125·159.5 − 10.
    assert mapped.x == pytest.approx(0.125 * 159.5 - 10.0 + 0.5)
    assert mapped.w == pytest.approx(40.0)
    back = t.unmap_box(mapped)
    assert (back.x, back.y, back.w, back.h) == pytest.approx((box.x, box.y, box.w, box.h))
    pts = np.array([[0.0, 0.0], [639.0, 479.0]])
    np.testing.assert_allclose(t.unmap_points(t.map_points(pts)), pts)
    with pytest.raises(ValueError, match="N×2"):
        t.map_points(np.zeros(3))


def test_warp_visible_puts_a_drawn_rectangle_where_map_box_says() -> None:
    t = Transform(0.125, 3.0, 2.0, 1.0)
    vis = np.zeros((480, 640, 3), np.uint8)
    cv2.rectangle(vis, (200, 160), (359, 319), (0, 255, 0), -1)  # 160×160 visible pixels → 20×20 thermal
    warped = t.warp_visible(vis, (60, 80))
    assert warped.shape == (60, 80, 3)
    assert warped.dtype == np.uint8
    box = t.map_box(Box(200.0, 160.0, 160.0, 160.0))
    x0, y0, x1, y1 = box.clipped(80, 60)
    assert (x0, y0, x1, y1) == (28, 22, 48, 42)
    assert warped[y0 + 1:y1 - 1, x0 + 1:x1 - 1, 1].min() > 200  # inside: green
    assert warped[:, :x0 - 1, 1].max() == 0 and warped[:y0 - 1, :, 1].max() == 0  # outside: black
    grey = t.warp_visible(np.ones((480, 640), np.float32), (60, 80))
    assert grey.shape == (60, 80) and grey[30, 40] == pytest.approx(1.0)


def test_transform_ncc_is_high_for_the_true_transform_and_low_for_a_wrong_one() -> None:
    truth = Transform(80 * 1.3 / 1440, -7.3, -4.6, 1.0)
    vis, celsius = _scene(truth, 1440, 1080, 80, 60)
    good = transform_ncc(truth, vis, celsius)
    bad = transform_ncc(Transform(truth.scale, truth.dx + 6, truth.dy - 4, 1.0), vis, celsius)
    assert good > 0.5
    assert bad < good - 0.3


def test_registrar_keeps_last_good_reestimates_on_schedule_and_on_quality_drop() -> None:
    truth = Transform(80 * 1.3 / 1440, -7.3, -4.6, 1.0)
    vis, celsius = _scene(truth, 1440, 1080, 80, 60)
    reg = Registrar(interval_s=10.0, check_s=1.0)
    t0 = 1_000_000_000
    first = reg.update(vis, celsius, t0)
    assert first is not None and _max_error_px(first, truth, 1440, 1080) < 1.0
    assert reg.estimates == 1

    # Within the interval and still fitting: no new search.
    assert reg.update(vis, celsius, t0 + 2_000_000_000) is first
    assert reg.estimates == 1

    # A featureless pair (lens covered) at the scheduled time: the search fails, the last good is kept.
    flat_vis = np.full_like(vis, 90)
    flat_th = np.full_like(celsius, 25.0)
    assert reg.update(flat_vis, flat_th, t0 + 11_000_000_000) is first
    assert reg.estimates == 2 and reg.rejected == 1

    # The camera moved: each check sees the quality drop and searches before the schedule says so. With
    # one good transform in the history the first new one ties (the one in use stays); the second makes
    # the majority and takes over.
    moved = Transform(truth.scale, truth.dx + 5.0, truth.dy + 3.0, 1.0)
    vis2, celsius2 = _scene(moved, 1440, 1080, 80, 60)
    assert reg.update(vis2, celsius2, t0 + 13_000_000_000) is first
    assert reg.estimates == 3
    assert reg.ncc is not None and reg.ncc < 0.3  # the old transform fits the new view badly
    now = reg.update(vis2, celsius2, t0 + 14_000_000_000)
    assert reg.estimates == 4
    assert now is not None and _max_error_px(now, moved, 1440, 1080) < 1.0
    assert reg.ncc is not None and reg.ncc > 0.5


def test_registrar_outvotes_a_misleading_search() -> None:
    truth = Transform(80 * 1.3 / 1440, -7.3, -4.6, 1.0)
    vis, celsius = _scene(truth, 1440, 1080, 80, 60)
    other = Transform(80 * 1.8 / 1440, -20.0, -15.0, 1.0)
    vis_b, celsius_b = _scene(other, 1440, 1080, 80, 60, seed=3)  # a pair that says something else
    reg = Registrar(interval_s=1.0, check_s=100.0)
    for k in range(3):
        reg.update(vis, celsius, k * 1_000_000_000)
    kept = reg.update(vis_b, celsius_b, 3_000_000_000)
    assert kept is not None and _max_error_px(kept, truth, 1440, 1080) < 1.0
    assert reg.estimates == 4 and reg.rejected == 0


def test_wrong_shapes_are_caller_errors() -> None:
    with pytest.raises(ValueError, match="uint8"):
        estimate_transform(np.zeros((480, 640, 3), np.float32), np.zeros((60, 80), np.float32))
    with pytest.raises(ValueError, match="H×W"):
        estimate_transform(np.zeros((480, 640, 3), np.uint8), np.zeros((60, 80, 1), np.float32))
