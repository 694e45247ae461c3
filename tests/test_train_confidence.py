"""``vitaledge train confidence`` and ``eval rppg --learned-confidence`` from the command line."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from edge.cli import main


def test_trains_on_two_short_clips_and_writes_a_model_the_config_can_use(shared_data: Path, tmp_path: Path) -> None:
    from edge.build import build_confidence

    out = tmp_path / "conf.onnx"
    clips = [str(shared_data / "ubfc" / s) for s in ("subject4", "subject12")]
    assert main(["train", "confidence", *clips, "--out", str(out), "--max-s", "17", "--steps", "5"]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["confidence.nperseg"] == "64" and '"subject4"' in meta["confidence.provenance"]
    runner = build_confidence(out, 30.0)
    assert 0.0 <= runner.threshold <= 1.0


def test_refuses_an_out_that_is_not_onnx_or_a_single_clip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "confidence", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "conf.pt")]) != 0
    assert "--out must name an .onnx file" in capsys.readouterr().err
    assert main(["train", "confidence", str(tmp_path), "--out", str(tmp_path / "conf.onnx")]) != 0
    assert "at least 2 clip folders" in capsys.readouterr().err


def test_learned_confidence_needs_the_leave_one_out_folds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "rppg", str(tmp_path), "--learned-confidence"]) != 0
    assert "--learned-confidence is scored by --folds leave-one-out" in capsys.readouterr().err
