"""``vitaledge bench rppg``: a few seconds of a real clip, each method in its own process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main


def test_bench_reports_speed_and_memory_per_method(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = str(shared_data / "ubfc" / "subject12" / "vid.mp4")
    assert main(["bench", "rppg", clip, "--method", "pos", "--max-s", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["pos"]
    for r in out.values():
        assert r["frames"] == pytest.approx(2 * 29.03, abs=1)
        assert r["fps"] > 0 and r["realtime_factor"] > 0 and r["fps_decode_excluded"] >= r["fps"]
        assert 20 < r["peak_rss_mb"] < 4000
