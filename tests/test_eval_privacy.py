"""``vitaledge eval privacy`` and ``bench privacy``: clips, frame sampling, the attacker's restorations."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.evaluation.privacy import find_clips, sample_frames, ssim_frame_and_face
from edge.evaluation.privacy_attack import ATTACKS, Gallery, iou, restorations
from edge.evaluation.rppg_data import EvalDataError
from fusion.face import Box
from fusion.privacy import Lens, LowResSensor, Optics, lens_psfs


def _scene(shape: tuple[int, int] = (240, 320)) -> np.ndarray:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (shape[0] // 8, shape[1] // 8, 3), dtype=np.uint8)
    return np.asarray(cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), np.uint8)


def test_iou() -> None:
    a = Box(0, 0, 10, 10)
    assert iou(a, a) == 1.0
    assert iou(a, Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou(a, Box(20, 20, 5, 5)) == 0.0


def test_restorations_cover_every_attack_and_keep_the_face_in_the_crop() -> None:
    scene = _scene()
    face = Box(120, 80, 60, 70)
    lens = Lens("t", lens_psfs([0, 0, 0, 0.6], Optics(psf_px=21)), work_scale=2, noise_std=0.0)
    got = list(restorations(lens.apply(scene), lens, face))
    assert [name for name, _, _ in got] == ["lensed", *(a.name for a in ATTACKS)]
    for _, image, crop_face in got:
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert crop_face.x >= 0 and crop_face.x + crop_face.w <= image.shape[1]
    lowres = LowResSensor(16)
    names = [name for name, _, _ in restorations(lowres.apply(scene), lowres, face)]
    assert len(names) == 1 + sum(a.scale == "full" for a in ATTACKS), "no working resolution to attack"


def test_the_attacker_restores_a_mild_blur() -> None:
    """The attack is real: with a mild lens and no noise, deconvolution gets closer to the truth."""
    scene = _scene()
    face = Box(120, 80, 60, 70)
    lens = Lens("t", lens_psfs([0, 0, 0, 0.5], Optics(psf_px=21)), work_scale=1, noise_std=0.0)
    x0, y0, x1, y1 = face.enlarged(1.0).clipped(320, 240)
    truth = scene[y0:y1, x0:x1].astype(float)
    images = {name: image for name, image, _ in restorations(lens.apply(scene), lens, face)}
    lensed_error = np.abs(images["lensed"] - truth).mean()
    best = min(np.abs(images[a.name] - truth).mean() for a in ATTACKS if a.scale == "full")
    assert best < 0.6 * lensed_error


def test_face_ssim_sees_the_blurred_face_that_a_plain_background_hides() -> None:
    frame = np.full((240, 320, 3), 120, np.uint8)
    face = Box(130, 80, 64, 80)
    frame[80:160, 130:194] = _scene((80, 64))  # the only detail in the frame
    lensed = Lens("defocus", lens_psfs([0, 0, 0, 3.0]), work_scale=1, noise_std=0).apply(frame)
    whole, on_face = ssim_frame_and_face(frame, lensed, face)
    assert on_face < 0.5 < whole  # the flat background keeps the whole-frame figure up
    assert ssim_frame_and_face(frame, frame, face) == (1.0, 1.0)
    with pytest.raises(ValueError, match="under 7 px"):
        ssim_frame_and_face(frame, lensed, Box(316, 0, 20, 20))
    with pytest.raises(ValueError, match="differ in shape"):
        ssim_frame_and_face(frame, lensed[:100], face)


def test_privacy_rates_are_also_given_per_clip() -> None:
    from edge.evaluation.privacy import _per_clip, _Tally

    tally = _Tally(
        clip=["a", "a", "b", "a"],
        ssim=[0.8] * 4,
        ssim_face=[0.4, 0.6, 0.9, 0.5],
        detected=[False] * 4,
        detected_after_attack=[True, False, False, False],
        reidentified=[False, False, True, False],
    )
    rates = _per_clip(tally)
    assert rates["a"] == {"frames": 3, "ssim_face": 0.5, "face_rate": 0.0, "face_rate_after_attack": 0.333,
                          "reid_rate_after_attack": 0.0}
    assert rates["b"]["reid_rate_after_attack"] == 1.0 and rates["b"]["face_rate_after_attack"] == 0.0


def test_gallery_matches_a_person_at_the_one_percent_threshold_and_not_a_blur_like_everyone() -> None:
    rng = np.random.default_rng(3)
    centres = {name: rng.normal(0, 1, 128) for name in "abcd"}
    entries = [(name, i, centre + rng.normal(0, 0.05, 128)) for name, centre in centres.items() for i in range(6)]
    gallery = Gallery(entries)
    impostor = [np.linalg.norm(va - vb) for na, _, va in entries for nb, _, vb in entries if na < nb]
    assert gallery.threshold == pytest.approx(np.quantile(impostor, 0.01))
    assert gallery.genuine_rate == 1.0  # these people are far apart: every raw pair of one person matches
    near_a = centres["a"] + rng.normal(0, 0.05, 128)
    verdict = gallery.judge([rng.normal(0, 3, 128), near_a], "a", 0)  # a hopeless restoration, then a good one
    assert verdict.reidentified and not verdict.false_match
    assert verdict.best_distance == pytest.approx(min(np.linalg.norm(near_a - v) for n, i, v in entries
                                                      if n == "a" and i != 0))
    # the same image claimed as b's: no match to b, and it matches a, who is someone else
    wrong = gallery.judge([near_a], "b", 0)
    assert not wrong.reidentified and wrong.false_match
    # a probe at the middle of everyone (what a heavy blur gives) is within the threshold of everybody, and
    # identifies nobody: a false match, not a re-identification
    middle = gallery.judge([np.mean([v for _, _, v in entries], axis=0)], "a", 0)
    assert middle.false_match and not middle.reidentified
    # the frame's own raw embedding is not a match for itself
    lone = Gallery([("a", 0, centres["a"]), ("b", 0, centres["b"])])
    assert not lone.judge([centres["a"]], "a", 0).reidentified


def test_find_clips_takes_videos_clip_folders_and_folders_of_them(tmp_path: Path) -> None:
    for name in ("subject1", "subject2"):
        (tmp_path / "set" / name).mkdir(parents=True)
        (tmp_path / "set" / name / "vid.avi").write_bytes(b"")
    (tmp_path / "set" / "subject1" / "ground_truth.txt").write_text("")
    (tmp_path / "one.mp4").write_bytes(b"")
    clips = find_clips([tmp_path / "set", tmp_path / "one.mp4"])
    assert [(c.name, c.folder is not None) for c in clips] == [("subject1", True), ("subject2", False), ("one", False)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalDataError, match="not a video"):
        find_clips([tmp_path / "empty"])


def test_sample_frames_spreads_over_a_clip(shared_data: Path) -> None:
    video = next((shared_data / "ubfc").glob("subject*/vid.*"))
    frames = sample_frames(video, 3)
    assert len(frames) == 3 and frames[0].shape[2] == 3
    assert not np.array_equal(frames[0], frames[2])


def test_cli_refuses_an_unknown_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "privacy", ".", "--presets", "blur"]) == 2
    assert "unknown preset 'blur'" in capsys.readouterr().err


def test_bench_privacy_prints_ms_per_frame(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "privacy", "--repeat", "3", "--presets", "lowres16,defocus", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"lowres16"' in out and '"median_ms"' in out


def test_heart_rate_through_a_lens_is_pooled_over_noise_seeds(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = next(p for p in sorted((shared_data / "ubfc").glob("subject*")) if p.is_dir())
    args = ["eval", "privacy", str(clip), "--presets", "off,lens", "--no-faces", "--max-s", "25",
            "--noise-seeds", "1,2", "--json"]
    assert main(args) == 0
    presets = json.loads(capsys.readouterr().out)["presets"]
    assert list(presets["off"]["hr_mae_bpm_per_noise_seed"]) == ["1"]  # raw video has no sensor noise to vary
    lens = presets["lens"]
    per_seed = lens["hr_mae_bpm_per_noise_seed"]
    assert list(per_seed) == ["1", "2"]
    assert lens["hr_windows"] == lens["hr_windows_per_clip"][clip.name] > 0
    assert lens["hr_mae_bpm"] == pytest.approx((per_seed["1"] + per_seed["2"]) / 2, abs=0.002)


def test_cli_refuses_noise_seeds_that_are_not_integers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "privacy", "x.mp4", "--noise-seeds", "1,two"]) == 2
    assert "--noise-seeds" in capsys.readouterr().err
