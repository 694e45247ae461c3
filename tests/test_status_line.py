"""``vitaledge run`` on a terminal shows the live status line; into a file or the journal it does not."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from edge.cli import main


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "rig.yaml"
    path.write_text(
        "device_id: status-line\n"
        "sources:\n  - {kind: synthetic, name: rig, seed: 2, realtime: false, duration_s: 4}\n"
        "overlay: {enabled: false}\nmetrics: {enabled: false}\n",
        encoding="utf-8",
    )
    return path


def test_run_on_a_terminal_shows_the_status_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["run", "--config", str(_config(tmp_path))]) == 0
    drawn = terminal.getvalue()
    assert "\r\x1b[2Kseq     0 | HR " in drawn and "\r\x1b[2Kseq     1 | HR " in drawn
    assert "°C (ref " in drawn and drawn.endswith("\n")


def test_run_into_a_file_shows_no_status_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(_config(tmp_path))]) == 0
    assert "\x1b[2K" not in capsys.readouterr().err


def test_record_shows_progress_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    assert main(["record", str(tmp_path / "quiet"), "--seconds", "60", "--config", str(config)]) == 0
    assert "\x1b[2K" not in capsys.readouterr().err
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["record", str(tmp_path / "shown"), "--seconds", "60", "--config", str(config)]) == 0
    drawn = terminal.getvalue()
    assert "\r\x1b[2Krecording " in drawn and " / 60 s: " in drawn and drawn.endswith("\n")


def test_opencv_warnings_only_with_verbose(tmp_path: Path) -> None:
    import os
    import subprocess

    config = tmp_path / "cam.yaml"
    config.write_text("sources:\n  - {kind: webcam, device: 99}\n", encoding="utf-8")  # no /dev/video99 here
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VITALEDGE_", "OPENCV_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])

    def stderr(*flags: str) -> str:
        args = [*flags, "record", str(tmp_path / f"s{len(flags)}"), "--seconds", "1", "--config", str(config)]
        done = subprocess.run(
            [sys.executable, "-m", "edge.cli", *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 2, done.stderr
        return done.stderr

    quiet = stderr()
    assert "[ WARN" not in quiet and "vitaledge record: error: webcam: " in quiet
    assert "can't open camera by index" in stderr("--verbose")
