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
    assert 4 <= len(result.estimates_bpm) <= 8  # 20 s - 10 s window - ~3.2 s start-up, one per second
    assert len(result.flagged) == len(result.raw_bpm) == len(result.estimates_bpm)
    assert all(40 <= b <= 180 for b in result.estimates_bpm + result.references_bpm)
    errors = np.abs(result.errors())
    assert errors.mean() < 10.0  # loose: the full four-clip figures are in the README
    assert abs(result.whole_clip_bpm - result.whole_clip_reference_bpm) < 10.0


def test_json_output_has_the_documented_keys(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = str(shared_data / "ubfc" / "subject12")
    assert main(["eval", "rppg", clip, "--max-s", "15", "--json", "--method", "chrom"]) == 0
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
