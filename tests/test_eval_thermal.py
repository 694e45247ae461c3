"""``vitaledge eval thermal``: Table II on a short run of the rig, through the CLI and as a function."""

from __future__ import annotations

import json

import pytest

from edge.cli import main
from edge.evaluation.thermal import PAPER_TABLE_II, ROWS, ThermalEvaluation, evaluate, format_table


@pytest.fixture(scope="module")
def short_run() -> ThermalEvaluation:
    return evaluate(14.0, 3)


def test_every_row_is_scored_on_the_same_frames(short_run: ThermalEvaluation) -> None:
    ev = short_run
    n = len(ev.errors_c["baseline"])
    assert n > 80 and all(len(ev.errors_c[row]) == n for row in ROWS)
    assert ev.thermal_frames == 122 and ev.ffc_frames >= 5  # the camera starts with a shutter event
    assert ev.thermal_frames == n + ev.ffc_frames + ev.unscored_frames
    base, palm, wrist, fused = (ev.stats(row) for row in ROWS)
    assert base is not None and palm is not None and wrist is not None and fused is not None
    # During warm-up the camera is several °C off; every reference takes that out.
    assert base[0] > 3.0 and max(palm[0], wrist[0], fused[0]) < 1.2


def test_table_shows_the_run_beside_the_paper(short_run: ThermalEvaluation) -> None:
    table = format_table(short_run)
    assert "Baseline" in table and "Fused" in table and "0.884" in table and "1.616" in table
    assert "seed 3" in table and "14 s" in table
    d = short_run.as_dict()
    assert d["paper"]["wrist"] == {"mae_c": 0.723, "sd_c": 0.484} and PAPER_TABLE_II["fused"] is None


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "thermal", "--seconds", "4", "--seed", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for row in ROWS:
        assert isinstance(out[row]["mae_c"], float) and isinstance(out[row]["sd_c"], float)
    assert out["seconds"] == 4.0 and out["seed"] == 2 and out["frames"]["thermal"] == 35


def test_cli_rejects_a_non_positive_duration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "thermal", "--seconds", "0"]) == 2
    assert "--seconds must be positive" in capsys.readouterr().err
