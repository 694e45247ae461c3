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


def _run_with(seed: int, errors: dict[str, list[float]]) -> ThermalEvaluation:
    return ThermalEvaluation(seconds=10.0, seed=seed, errors_c=errors)


def test_seeds_summary_gives_mean_and_sd_and_how_often_each_ordering_holds() -> None:
    from edge.evaluation.thermal import summarise_seeds

    # seed 1: the paper's orderings all hold and fused beats both; seed 2: palm loses to wrist on MAE.
    one = _run_with(1, {"baseline": [1.0, -1.0], "palm": [0.6, 0.4], "wrist": [0.7, 0.6], "fused": [0.4, 0.4]})
    two = _run_with(2, {"baseline": [2.0, -2.0], "palm": [0.9, 0.1], "wrist": [0.3, 0.3], "fused": [0.4, 0.4]})
    out = summarise_seeds([one, two])
    assert (out["seeds"], out["seed_values"], out["seconds"]) == (2, [1, 2], 10.0)
    assert out["baseline"]["mae_c"] == {"mean": 1.5, "sd": 0.707}  # MAE 1 and 2
    assert out["palm"]["mae_c"] == {"mean": 0.5, "sd": 0.0}
    assert out["wrist"]["sd_c"]["mean"] == pytest.approx(0.035, abs=1e-3)  # SDs 0.0707 and 0
    assert out["orderings"] == {"fused_beats_both": 0.5, "palm_best_mae": 0.5, "wrist_best_sd": 1.0}
    assert set(out) == {"seeds", "seed_values", "seconds", *ROWS, "orderings"}


def test_cli_seeds_json_layout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "thermal", "--seconds", "4", "--seed", "2", "--seeds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seeds"] == 2 and out["seed_values"] == [2, 3]
    for row in ROWS:
        for figure in ("mae_c", "sd_c"):
            assert set(out[row][figure]) == {"mean", "sd"}
            assert isinstance(out[row][figure]["mean"], float) and isinstance(out[row][figure]["sd"], float)
    assert set(out["orderings"]) == {"fused_beats_both", "palm_best_mae", "wrist_best_sd"}
    assert all(share in (0.0, 0.5, 1.0) for share in out["orderings"].values())
    assert main(["eval", "thermal", "--seconds", "4", "--seeds", "2"]) == 0
    table = capsys.readouterr().out
    assert "2 seeds (1–2); mean ± SD across seeds" in table and " ± " in table.splitlines()[3]
    assert "of 2 seeds" in table
