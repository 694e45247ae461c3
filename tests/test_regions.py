"""Face, palm and wrist regions on constructed thermal/visible images with drawn, known shapes."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from fusion.face import Box
from fusion.offset import OffsetCorrector
from fusion.regions import (
    RegionMeasurement,
    SkinModel,
    face_region,
    learn_skin_model,
    otsu_split,
    palm_region,
    wristband_mask,
    wristband_region,
)

H, W = 60, 80
LIT_SKIN = np.array([140.0, 180.0, 225.0])  # G 180, S 96
DARK_SKIN = np.array([70.0, 105.0, 175.0])  # G 105, S 153: across the face G and S move oppositely
BAND_BGR = (200, 70, 20)  # blue: OpenCV hue ≈ 107


def _ellipse(cx: int, cy: int, ax: int, ay: int) -> npt.NDArray[np.bool_]:
    m = np.zeros((H, W), np.uint8)
    cv2.ellipse(m, (cx, cy), (ax, ay), 0, 0, 360, 1, -1)
    return m.astype(bool)


def _rect(x0: int, y0: int, x1: int, y1: int) -> npt.NDArray[np.bool_]:
    m = np.zeros((H, W), bool)
    m[y0:y1 + 1, x0:x1 + 1] = True
    return m


FACE = _ellipse(22, 24, 9, 12)
HAIR = _rect(12, 8, 32, 13) & ~FACE
FOREARM = _rect(0, 44, 49, 51)
BAND = _rect(50, 42, 54, 53)
HAND = _rect(55, 40, 68, 54)  # the palm, held up next to the band
PLANT = _rect(70, 5, 77, 20)


def _scene(seed: int = 0) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Thermal (°C, 0.05 °C noise) and visible-on-thermal-grid (BGR, ±5 noise) images of one person."""
    rng = np.random.default_rng(seed)
    c = np.full((H, W), 23.0)
    c[HAIR], c[FACE], c[FOREARM], c[BAND], c[HAND], c[PLANT] = 28.0, 34.5, 31.0, 29.0, 33.0, 22.0
    celsius = (c + rng.normal(0, 0.05, c.shape)).astype(np.float32)
    vis = np.empty((H, W, 3))
    vis[:] = (90, 95, 100)  # grey wall
    # Light from the right: dark, saturated skin on the face's left, lit pale skin on its right.
    mix = np.broadcast_to(np.clip((np.arange(W) - 13) / 18, 0, 1)[None, :, None], (H, W, 1))
    tone = DARK_SKIN + (LIT_SKIN - DARK_SKIN) * mix
    vis[FACE] = tone[FACE]
    vis[HAIR] = (30, 35, 40)
    vis[FOREARM] = DARK_SKIN + (LIT_SKIN - DARK_SKIN) * 0.35
    vis[HAND] = DARK_SKIN + (LIT_SKIN - DARK_SKIN) * 0.6
    vis[BAND] = BAND_BGR
    vis[PLANT] = (40, 160, 60)
    noisy = np.clip(vis + rng.integers(-5, 6, vis.shape), 0, 255).astype(np.uint8)
    return celsius, noisy


def test_face_mask_is_the_hot_cluster_inside_the_box() -> None:
    celsius, _ = _scene()
    box = Box(11.0, 8.0, 23.0, 30.0)  # covers face, hair and wall
    face = face_region(celsius, box)
    assert face is not None and face.ok
    x0, y0, x1, y1 = box.clipped(W, H)
    in_box = np.zeros((H, W), bool)
    in_box[y0:y1, x0:x1] = True
    np.testing.assert_array_equal(face.mask, FACE & in_box)
    assert face.pixels == int((FACE & in_box).sum())
    assert face.mean_c == pytest.approx(34.5, abs=0.02)
    assert face.spread_c < 0.1


def test_otsu_split_is_the_exact_two_class_optimum() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        wall, skin = rng.normal(28.0, 1.5, rng.integers(2, 60)), rng.normal(34.5, 0.4, rng.integers(2, 60))
        values = np.round(np.concatenate([wall, skin]), 1)  # ties, as a quantised camera gives
        split = otsu_split(values)
        assert split is not None
        threshold, cold_mean, hot_mean = split
        cold, hot = values[values <= threshold], values[values > threshold]
        assert (cold_mean, hot_mean) == pytest.approx((cold.mean(), hot.mean()))
        sse = ((cold - cold.mean()) ** 2).sum() + ((hot - hot.mean()) ** 2).sum()
        brute = min(  # every cut between distinct values: none leaves less within-class scatter
            ((values[values <= t] - values[values <= t].mean()) ** 2).sum()
            + ((values[values > t] - values[values > t].mean()) ** 2).sum()
            for t in np.unique(values)[:-1]
        )
        assert sse == pytest.approx(brute, rel=1e-9, abs=1e-9)
    assert otsu_split(np.full(9, 33.0)) is None
    assert otsu_split(np.array([30.0, 30.0, 36.0])) == (30.0, 30.0, 36.0)


def test_face_of_one_temperature_is_all_of_it_without_contrast() -> None:
    celsius = np.full((H, W), 34.0, np.float32)
    face = face_region(celsius, Box(10.0, 10.0, 8.0, 8.0))
    assert face is not None and face.pixels == 64 and face.flags == ("no_contrast",)


def test_face_without_contrast_is_flagged_and_tiny_box_gives_none() -> None:
    celsius, _ = _scene()
    inner = face_region(celsius, Box(18.0, 18.0, 8.0, 10.0))  # entirely inside the face: noise split
    assert inner is not None and not inner.ok and inner.flags == ("no_contrast",)
    assert face_region(celsius, Box(20.0, 20.0, 2.0, 2.0)) is None
    assert face_region(celsius, Box(-50.0, -50.0, 10.0, 10.0)) is None


def test_skin_model_from_the_face_finds_face_hand_and_forearm_only() -> None:
    celsius, vis = _scene()
    face = face_region(celsius, Box(11.0, 8.0, 23.0, 30.0))
    assert face is not None
    model = learn_skin_model(vis, face.mask)
    assert model is not None and model.samples == face.pixels
    skin = model.mask(vis)
    drawn = FACE | HAND | FOREARM
    assert (skin & drawn).sum() / drawn.sum() > 0.97  # recall
    assert (skin & ~drawn).sum() == 0  # wall, hair, band and the green plant are not skin
    # The ellipse follows the face: G and S are anti-correlated in the learned covariance...
    (gg, gs), (_, ss) = model.covariance
    assert gs / np.sqrt(gg * ss) < -0.5
    # ...so a colour with the lit side's G and the dark side's S (each alone within the face's range, a
    # corner of a per-axis box) is not skin.
    corner = np.array([[[90, 180, 225]]], np.uint8)  # G 180, S = (225 - 90) / 225 -> 153
    assert cv2.cvtColor(corner, cv2.COLOR_BGR2HSV)[0, 0, 1] == 153
    assert not model.mask(corner)[0, 0]
    assert model.mask(np.array([[[105, 142, 200]]], np.uint8))[0, 0]  # the tone half-way across the face


def test_skin_model_needs_enough_pixels() -> None:
    _, vis = _scene()
    assert learn_skin_model(vis, np.zeros((H, W), bool)) is None
    with pytest.raises(ValueError, match="same size"):
        learn_skin_model(vis, np.zeros((H + 1, W), bool))


def test_wristband_box_matches_the_drawn_band_and_takes_the_hottest_tenth() -> None:
    celsius, vis = _scene()
    np.testing.assert_array_equal(wristband_mask(vis), BAND)
    tight = wristband_region(celsius, vis, margin_px=0)
    assert tight is not None and tight.ok
    assert (tight.box.x, tight.box.y, tight.box.w, tight.box.h) == (50.0, 42.0, 5.0, 12.0)
    wrist = wristband_region(celsius, vis)  # 1 px margin: 7×14 = 98 pixels, the top 10 pixels
    assert wrist is not None
    assert (wrist.box.x, wrist.box.y, wrist.box.w, wrist.box.h) == (49.0, 41.0, 7.0, 14.0)
    assert wrist.pixels == 10
    assert wrist.mean_c == pytest.approx(33.0, abs=0.1)  # the hand's skin beside the band, not the band
    # The hue window is configurable: no magenta band here.
    assert wristband_region(celsius, vis, hue_range=(140, 165)) is None


def test_hue_window_wraps_around_red() -> None:
    red = np.zeros((4, 4, 3), np.uint8)
    red[:, :2] = (20, 20, 200)  # hue 0
    red[:, 2:] = (60, 20, 200)  # hue ≈ 172
    assert wristband_mask(red, hue_range=(170, 5)).all()
    assert not wristband_mask(red, hue_range=(100, 130)).any()
    assert wristband_mask(red, hue_range=(0, 5))[:, :2].all() and not wristband_mask(red, (0, 5))[:, 2:].any()


def _regions_of_scene() -> tuple[
    npt.NDArray[np.float32], npt.NDArray[np.uint8], RegionMeasurement, SkinModel, RegionMeasurement, RegionMeasurement
]:
    """The scene and its regions as a frame would find them: face, skin model, wristband, palm by the band."""
    celsius, vis = _scene()
    face = face_region(celsius, Box(11.0, 8.0, 23.0, 30.0))
    assert face is not None
    model = learn_skin_model(vis, face.mask)
    band = wristband_region(celsius, vis)
    assert model is not None and band is not None
    palm = palm_region(celsius, vis, model, exclude=face.box, near=band.box)
    assert palm is not None
    return celsius, vis, face, model, band, palm


def test_palm_is_the_hand_blob_by_the_band_not_the_forearm_or_face() -> None:
    celsius, vis, face, model, _, palm = _regions_of_scene()
    assert palm.ok
    assert palm.mask.sum() > 0 and not (palm.mask & ~HAND).any()  # inside the drawn hand
    eroded = cv2.erode(HAND.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))) > 0
    assert palm.pixels >= 0.9 * eroded.sum()
    assert palm.mean_c == pytest.approx(33.0, abs=0.03)
    # Without the band the blob that does not run out of the frame is still preferred, but flagged.
    guess = palm_region(celsius, vis, model, exclude=face.box)
    assert guess is not None and not guess.ok and guess.flags == ("no_band",)
    assert guess.mean_c == pytest.approx(33.0, abs=0.03)
    # A band box far from every blob: no blob qualifies as "near", flagged likewise.
    far = palm_region(celsius, vis, model, exclude=face.box, near=Box(70.0, 2.0, 3.0, 3.0))
    assert far is not None and far.flags == ("not_near_band",)


def test_region_measurements_feed_the_offset_corrector() -> None:
    _, _, _, _, band, palm = _regions_of_scene()
    est = OffsetCorrector("palm").update(0, wristband_c=33.0, palm=palm, wrist=band)
    assert est is not None and est.offset_c == pytest.approx(31.8914 - 33.0, abs=0.03)


def test_images_not_on_the_thermal_grid_are_caller_errors() -> None:
    celsius, vis = _scene()
    with pytest.raises(ValueError, match="thermal grid"):
        wristband_region(celsius, vis[:-1])
    with pytest.raises(ValueError, match="H×W"):
        face_region(celsius[None], Box(0.0, 0.0, 5.0, 5.0))
