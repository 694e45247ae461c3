"""``vitaledge inspect`` and ``vitaledge flir-constants`` through the real CLI on the real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edge.cli import main
from edge.config import FlirOneConfig


def _inspect_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["inspect", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert isinstance(result, dict)
    return result


CAPTURE_KEYS = {"kind", "frames", "unique_frames", "thermal_shape", "visible_shape", "celsius_min", "celsius_max"}


def test_inspect_capture_folder(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = _inspect_json(shared_data / "flirone" / "usb_capture", capsys)
    assert result.keys() >= CAPTURE_KEYS
    assert result["kind"] == "flirone-capture"
    assert (result["frames"], result["unique_frames"], result["duplicates"]) == (20, 18, 2)
    assert result["thermal_shape"] == [60, 80] and result["visible_shape"] == [1080, 1440, 3]
    low, high = result["celsius_min"], result["celsius_max"]
    assert isinstance(low, float) and isinstance(high, float) and 0.0 < low < high < 150.0
    assert result["decode_errors"] == {} and result["reads"] == 109
    planck = result["planck"]
    assert isinstance(planck, dict) and "not this unit" in str(planck["provenance"])


def test_inspect_capture_as_one_file(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = shared_data / "flirone" / "usb_capture"
    single = tmp_path / "capture.raw"
    single.write_bytes(b"".join(p.read_bytes() for p in sorted(folder.glob("*.bin"))))
    result = _inspect_json(single, capsys)
    assert (result["kind"], result["frames"], result["unique_frames"], result["reads"]) == (
        "flirone-capture", 20, 18, 1,
    )  # fmt: skip


def test_inspect_radiometric_jpeg(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = _inspect_json(shared_data / "flirone" / "radiometric" / "flir_example.jpg", capsys)
    assert set(result) == {"kind", "thermal_shape", "photo_shape", "celsius_min", "celsius_max", "planck"}
    assert result["kind"] == "flir-jpeg"
    assert result["thermal_shape"] == [320, 240] and result["photo_shape"] == [640, 480, 3]
    assert result["celsius_min"] == pytest.approx(25.9, abs=0.1)
    assert result["celsius_max"] == pytest.approx(62.3, abs=0.5)
    planck = result["planck"]
    assert isinstance(planck, dict) and planck["r1"] == pytest.approx(17837.53125) and planck["o"] == -1143.0


def test_inspect_e4_csv(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = _inspect_json(shared_data / "e4" / "TEMP.csv", capsys)
    assert result["kind"] == "e4-csv"
    # 5,000 lines: 2 header rows and 4,998 samples.
    assert (result["samples"], result["rate_hz"], result["start_unix"]) == (4998, 4.0, 1560279825.0)


def test_inspect_human_output_and_unknown_file(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(shared_data / "flirone" / "radiometric" / "flir_example.jpg")]) == 0
    out = capsys.readouterr().out
    assert "kind: flir-jpeg" in out and "thermal_shape: [320, 240]" in out
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert main(["inspect", str(other)]) == 2
    assert "not a FLIR ONE capture, radiometric JPEG, E4 CSV or recorded session" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_plain_jpeg_is_named_as_not_radiometric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2
    import numpy as np

    plain = tmp_path / "holiday.jpg"
    cv2.imwrite(str(plain), np.zeros((4, 4, 3), np.uint8))
    assert main(["flir-constants", str(plain)]) == 2
    assert "no FLIR APP1 segments" in capsys.readouterr().err


def test_flir_constants_yaml_pastes_into_the_config(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flir-constants", str(shared_data / "flirone" / "radiometric" / "flir_example.jpg")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Planck constants of the FLIR unit that took flir_example.jpg")
    cfg = FlirOneConfig(kind="flirone", **yaml.safe_load(text))
    p = cfg.planck.to_constants()
    assert (p.r1, p.f, p.o) == (17837.53125, 1.0, -1143.0) and p.b == pytest.approx(1450.4, abs=1e-3)
    assert p.r2 == pytest.approx(0.0123327812) and p.emissivity == 0.98
    assert p.provenance == "camera-info record of flir_example.jpg"


def test_inspect_recorded_session(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from drivers.flir_jpeg import read_radiometric_jpeg
    from edge.recorder import Recorder
    from fusion.samples import SkinTemperature, ThermalFrame, VisibleFrame

    image = read_radiometric_jpeg(shared_data / "flirone" / "radiometric" / "flir_example.jpg")
    second = 1_000_000_000
    with Recorder(tmp_path / "session", video_codec="png") as recorder:
        for i in range(5):  # 5 thermal frames at 5 Hz, 3 webcam frames at 2 Hz, 4 wristband readings at 4 Hz
            t = 10 * second + i * second // 5
            recorder.write(
                ThermalFrame(
                    t_mono=t,
                    t_wall=1e9 + t / second,
                    source="thermal",
                    seq=i,
                    celsius=image.celsius,
                    raw=image.raw,
                    planck=image.planck,
                )
            )
        for i in range(3):
            t = 10 * second + i * second // 2
            recorder.write(
                VisibleFrame(
                    t_mono=t, t_wall=1e9 + t / second, source="webcam", seq=i, image=np.full((48, 64, 3), i, np.uint8)
                )
            )
        for i in range(4):
            t = 10 * second + i * second // 4
            recorder.write(SkinTemperature(t_mono=t, t_wall=1e9 + t / second, source="band", seq=i, celsius=33.0))
    result = _inspect_json(tmp_path / "session", capsys)
    assert result["kind"] == "session" and result["samples"] == 12 and result["bad_lines"] == 0
    assert result["video_codec"] == "png" and result["ended_wall"] is not None
    assert result["duration_s"] == pytest.approx(1.0)
    assert result["streams"] == [
        {"source": "thermal", "type": "thermal", "samples": 5, "rate_hz": 5.0},
        {"source": "webcam", "type": "visible", "samples": 3, "rate_hz": 2.0},
        {"source": "band", "type": "skin", "samples": 4, "rate_hz": 4.0},
    ]


def test_inspect_lists_each_stream_of_one_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The simulated rig is one source with three streams: inspect lists them as record counted them."""
    import numpy as np

    from edge.recorder import Recorder
    from fusion.samples import SkinTemperature, VisibleFrame

    second = 1_000_000_000
    with Recorder(tmp_path / "session", video_codec="png") as recorder:
        for i in range(3):
            t = 10 * second + i * second // 2
            image = np.full((48, 64, 3), i, np.uint8)
            recorder.write(VisibleFrame(t_mono=t, t_wall=1e9 + t / second, source="rig", seq=i, image=image))
        for i in range(5):
            t = 10 * second + i * second // 4
            recorder.write(SkinTemperature(t_mono=t, t_wall=1e9 + t / second, source="rig", seq=i, celsius=33.0))
    result = _inspect_json(tmp_path / "session", capsys)
    assert result["streams"] == [
        {"source": "rig", "type": "visible", "samples": 3, "rate_hz": 2.0},
        {"source": "rig", "type": "skin", "samples": 5, "rate_hz": 4.0},
    ]
    header = json.loads((tmp_path / "session" / "session.json").read_text())
    assert {s["type"]: s["samples"] for s in result["streams"]} == header["counts"]  # as record reported
    assert main(["inspect", str(tmp_path / "session")]) == 0
    text = capsys.readouterr().out
    assert "  rig visible: 3 samples at 2 Hz\n  rig skin: 5 samples at 4 Hz\n" in text
    assert "{" not in text and "'" not in text  # no Python reprs


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``vitaledge inspect … | head -1`` and ``eval … --json | head -c 50``: no BrokenPipeError traceback."""
    import os
    import subprocess
    import sys

    csv = tmp_path / "TEMP.csv"
    csv.write_text("1560279825.000000\n4.000000\n" + "33.5\n" * 20)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line: every write meets a broken pipe
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edge.cli", "inspect", str(csv), "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert done.stderr == b"", done.stderr.decode()
