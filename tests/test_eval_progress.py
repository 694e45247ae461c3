"""``vitaledge eval`` draws its `\\r` progress only on a terminal, never into a redirected stderr."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from edge.cli import main


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_thermal_progress_only_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["eval", "thermal", "--seconds", "4"]) == 0
    assert "\r" not in capsys.readouterr().err  # pytest's captured stderr is not a terminal
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["eval", "thermal", "--seconds", "4"]) == 0
    assert "\r" in terminal.getvalue() and "s of rig time" in terminal.getvalue()


def test_rppg_progress_only_on_a_terminal(
    shared_data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = str(shared_data / "ubfc" / "subject12")
    assert main(["eval", "rppg", clip, "--max-s", "11"]) == 0
    captured = capsys.readouterr()
    assert "subject12" in captured.out and "\r" not in captured.err
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["eval", "rppg", clip, "--max-s", "11"]) == 0
    assert re.search(r"\r +subject12 \[#+ *\] +\d+%", terminal.getvalue())
