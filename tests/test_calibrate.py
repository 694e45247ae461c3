"""``vitaledge calibrate`` through the real CLI entry point, on CSV files written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edge.cli import main
from edge.config import ThermalConfig
from fusion.offset import PAPER_PALM, PAPER_WRIST


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pairs.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_recovers_the_papers_palm_line_and_prints_a_pasteable_snippet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xs = [31.0, 32.0, 32.5, 33.0, 34.0]
    rows = "\n".join(f"{x},{PAPER_PALM.estimate(x):.6f}" for x in xs)
    path = _write(tmp_path, f"wristband_c,reference_c\n# session 1\n\n{rows}\n")
    assert main(["calibrate", "--reference", "palm", str(path)]) == 0
    out = capsys.readouterr().out
    assert "a   = -1.4485" in out and "b   = 1.0103" in out and "MAE = 0.000" in out
    assert "n = 5" in out
    snippet = out[out.index("\nthermal:") + 1:]
    cfg = ThermalConfig.model_validate(yaml.safe_load(snippet)["thermal"])  # the snippet is valid config
    assert (cfg.palm.a, cfg.palm.b) == (-1.4485, 1.0103)


def test_json_output_with_hand_worked_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # x = 0,1,2; y = 0,2,1: b = 1/2, a = 1/2, residuals -0.5, 1, -0.5 -> MAE 2/3, residual SD sqrt(0.5)
    path = _write(tmp_path, "0,0\n1,2\n2,1\n")
    assert main(["calibrate", "--reference", "wrist", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reference"] == "wrist" and result["n"] == 3
    assert (result["a"], result["b"]) == pytest.approx((0.5, 0.5))
    assert result["mae_c"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["residual_sd_c"] == pytest.approx(0.5**0.5, abs=1e-4)
    assert yaml.safe_load(result["yaml"]) == {"thermal": {"wrist": {"a": 0.5, "b": 0.5}}}


def test_wrist_default_line_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = "".join(f"{x}, {PAPER_WRIST.estimate(x)}\n" for x in (30.0, 31.5, 35.0))  # spaces are fine
    assert main(["calibrate", "--reference", "wrist", str(_write(tmp_path, rows)), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["a"], result["b"]) == pytest.approx((15.6850, 0.5418))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wristband_c,reference_c\n33.0,31.9\n33.5,oops\n", "pairs.csv:3: not a number: 'oops'"),
        ("33.0,31.9\n33.5\n", "pairs.csv:2: expected 2 comma-separated columns"),
        ("33.0,31.9,1\n", "pairs.csv:1: expected 2 comma-separated columns"),
        ("33.0,31.9\nwristband_c,reference_c\n", "pairs.csv:2: not a number: 'wristband_c'"),
        ("33.0,nan\n34.0,32.0\n", "pairs.csv:1: values must be finite"),
        ("# only a comment\n33.0,31.9\n", "need at least 2 pairs, found 1"),
        ("33.0,31.9\n33.0,32.5\n", "slope is undefined"),
    ],
)
def test_bad_files_fail_with_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    assert main(["calibrate", "--reference", "palm", str(_write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("vitaledge calibrate: error: ") and "Traceback" not in err


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--reference", "palm", str(tmp_path / "absent.csv")]) == 2
    assert "absent.csv: cannot read" in capsys.readouterr().err


def test_reference_is_required_and_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, "1,2\n2,3\n")
    with pytest.raises(SystemExit):
        main(["calibrate", str(path)])
    with pytest.raises(SystemExit):
        main(["calibrate", "--reference", "face", str(path)])
