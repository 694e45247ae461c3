"""``vitaledge eval rppg`` on a real UBFC clip (first 20 s: quick), through the live pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.config import HeartRateConfig
from edge.evaluation.rppg import EvalDataError, evaluate_clip, load_ground_truth


def test_ground_truth_is_read_and_timestamps_start_at_zero(shared_data: Path) -> None:
    video, ppg, t_s = load_ground_truth(shared_data / "ubfc" / "subject12")
    assert video.name == "vid.mp4"
    assert len(ppg) == len(t_s) > 1000
    assert t_s[0] == 0 and np.all(np.diff(t_s) > 0)


def test_first_20_s_of_a_clip_gives_sane_windows(shared_data: Path) -> None:
    result = evaluate_clip(shared_data / "ubfc" / "subject12", HeartRateConfig(), max_s=20.0)
    assert result.frames == pytest.approx(20 * 29.03, abs=2)
    assert 2 <= len(result.estimates_bpm) <= 5  # 20 s - 10 s window - ~3.2 s start-up - 3 s look-ahead
    assert len(result.flagged) == len(result.raw_bpm) == len(result.estimates_bpm)
    assert all(40 <= b <= 180 for b in result.estimates_bpm + result.references_bpm)
    errors = np.abs(result.errors())
    assert errors.mean() < 10.0  # loose: the full four-clip figures are in the README
    assert abs(result.whole_clip_bpm - result.whole_clip_reference_bpm) < 10.0


def test_json_output_has_the_documented_keys(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = str(shared_data / "ubfc" / "subject12")
    assert main(["eval", "rppg", clip, "--max-s", "18", "--json", "--method", "chrom"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"mae_bpm", "rmse_bpm", "pearson_r", "windows", "clips"} <= out.keys()
    assert out["method"] == "chrom" and out["windows"] >= 1
    assert out["clips"][0]["name"] == "subject12" and out["clips"][0]["mae_bpm"] is not None
    assert {"raw_mae_bpm", "unflagged_mae_bpm", "unflagged_windows"} <= out.keys()
    assert 0 <= out["unflagged_windows"] <= out["windows"]


def test_unflagged_mae_counts_only_readings_published_without_the_flag() -> None:
    from edge.evaluation.rppg import ClipResult, summarise

    clip = ClipResult(
        name="c",
        estimates_bpm=[70.0, 90.0, 72.0],
        references_bpm=[71.0, 70.0, 72.0],
        smoothed_references_bpm=[71.0, 70.0, 72.0],
        raw_bpm=[69.0, 110.0, 72.0],
        flagged=[False, True, False],
    )
    out = summarise("pos", [clip])
    assert out["unflagged_windows"] == 2 and out["unflagged_mae_bpm"] == 0.5  # the 20 bpm miss is flagged
    assert out["raw_mae_bpm"] == pytest.approx((2 + 40 + 0) / 3, abs=1e-3)
    assert out["mae_bpm"] == pytest.approx(7.0)


def test_folder_without_video_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ground_truth.txt").write_text("1 2 3\n")
    with pytest.raises(EvalDataError, match=r"no vid\.mp4 or vid\.avi"):
        load_ground_truth(tmp_path)


def test_malformed_ground_truth_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "vid.avi").write_bytes(b"")
    (tmp_path / "ground_truth.txt").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(EvalDataError, match="expected 3 rows"):
        load_ground_truth(tmp_path)


def test_a_missing_clip_folder_says_no_such_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    assert main(["eval", "rppg", str(tmp_path / "subject99")]) == 2
    assert f"{tmp_path / 'subject99'}: no such folder" in capsys.readouterr().err


def test_max_s_shorter_than_a_window_is_an_error_not_an_empty_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli import main

    assert main(["eval", "rppg", str(tmp_path), "--max-s", "5"]) == 2
    captured = capsys.readouterr()
    assert "--max-s 5: heart-rate windows need ≥ 10 s of video" in captured.err
    assert captured.out == ""


def test_onnx_without_a_model_reads_without_pydantics_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli import main

    assert main(["eval", "rppg", str(tmp_path), "--method", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "--method onnx: method 'onnx' needs 'model'" in err and "Value error" not in err


def _write_patch(path: Path, bpm: float, seconds: float, fps: float = 15.0, seed: int = 0) -> None:
    """A skin patch whose colour pulses at ``bpm`` (green most, as blood absorbs it), with noise."""
    import cv2

    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (48, 48))
    assert writer.isOpened()
    for i in range(round(seconds * fps)):
        pulse = np.sin(2 * np.pi * bpm / 60 * i / fps)
        bgr = np.array([110.0, 140.0, 190.0]) * (1 + 0.01 * pulse * np.array([0.3, -1.0, 0.2]))
        writer.write(np.clip(bgr + rng.normal(0, 1.0, (48, 48, 3)), 0, 255).astype(np.uint8))
    writer.release()


def test_skin_patch_set_gives_clip_and_subject_rates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = {"video1": 66.0, "video7": 102.0}
    for subject, bpm in truth.items():
        for k, region in enumerate(("forehead", "leftcheek")):
            _write_patch(tmp_path / f"{subject}_{region}.avi", bpm, 16.0, seed=k)
    (tmp_path / "notes.txt").write_text("not a clip")
    # As the real file: a BOM, a space after the header, and a subject without clips.
    (tmp_path / "ground_truth.csv").write_bytes(
        "\ufeffSubject,Heart_Rate(BPM) \nvideo1,65.0\nvideo7,103.0\nvideo9,80\n".encode()
    )
    assert main(["eval", "rppg", "--dataset", "skin-patches", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"mae_bpm", "rmse_bpm", "pearson_r", "subjects"} <= out.keys()
    assert [s["name"] for s in out["subjects"]] == ["video1", "video7"]
    for s in out["subjects"]:
        assert {"name", "bpm", "reference_bpm", "error_bpm", "clips"} <= s.keys()
        assert s["bpm"] == pytest.approx(truth[s["name"]], abs=1.5)
        assert [c["name"] for c in s["clips"]] == [f"{s['name']}_forehead", f"{s['name']}_leftcheek"]
        assert all(c["bpm"] == pytest.approx(truth[s["name"]], abs=1.5) for c in s["clips"])
    assert out["mae_bpm"] == pytest.approx(1.0, abs=1.5)
    assert out["pearson_r"] is None  # two subjects: r is not defined


def test_skin_patch_clip_without_reference_is_a_clear_error(tmp_path: Path) -> None:
    from edge.evaluation.rppg_data import load_skin_patches

    (tmp_path / "video3_forehead.avi").write_bytes(b"")
    (tmp_path / "ground_truth.csv").write_text("Subject,Heart_Rate(BPM)\nvideo1,70\n", encoding="utf-8-sig")
    with pytest.raises(EvalDataError, match="no reference for video3"):
        load_skin_patches(tmp_path)


def test_replay_with_the_default_setting_reproduces_what_was_published(shared_data: Path) -> None:
    from edge.evaluation.rppg import HrSetting, replay
    from edge.evaluation.rppg_data import run_clip

    cfg = HeartRateConfig(method="chrom")
    run = run_clip(shared_data / "ubfc" / "subject12" / "vid.mp4", cfg, name="s12", max_s=16.0)
    assert len(run.published) >= 2 and len(run.segments) == 1
    assert replay(run, HrSetting(), cfg.window_s, cfg.step_s) == run.published
    # The median blend describes every window as it comes; the tracker the same windows a few later.
    blend = replay(run, HrSetting(tracker=None, smooth_s=0.0), cfg.window_s, cfg.step_s)
    assert [p.raw_bpm for p in blend][: len(run.published)] == [p.raw_bpm for p in run.published]
    assert [p.end_s for p in blend][: len(run.published)] == [p.end_s for p in run.published]


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    from edge.evaluation.rppg_data import ClipRun, Published
    from edge.evaluation.rppg_plot import write_plots
    from fusion.reference import ReferencePpg

    fs = 30.0
    t = np.arange(0, 30, 1 / fs)
    ref = ReferencePpg(np.sin(2 * np.pi * 1.25 * t), t, fs)  # 75 bpm
    run = ClipRun(name="clip", fs_hz=fs, frames=len(t), video_s=30.0)
    run.published = [Published(float(s), 75.0 + (s % 3), 75.0, 0.1 * (s % 5), s % 5 == 0) for s in range(10, 30)]
    run.segments = [(np.round(t * 1e9).astype(np.int64), np.sin(2 * np.pi * 1.25 * t)[:, None])]
    files = write_plots(tmp_path / "plots", "ubfc", {"onnx:/m/me-rppg/model.onnx": [(run, ref)]}, HeartRateConfig())
    assert sorted(f.name for f in files) == ["bland_altman_onnx-me-rppg.png", "trace_onnx-me-rppg_clip.png"]
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 5000 for f in files)


def test_greyscale_scores_the_intensity_fallback(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = str(shared_data / "ubfc" / "subject12")
    assert main(["eval", "rppg", clip, "--max-s", "18", "--json", "--greyscale"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "luma (greyscale; fused configured)"
    assert out["windows"] >= 1 and out["clips"][0]["mae_bpm"] is not None
    assert main(["eval", "rppg", clip, "--max-s", "18", "--greyscale", "--compare", "pos"]) == 2
    assert "drop --compare" in capsys.readouterr().err
