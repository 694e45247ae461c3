"""E4 TEMP.csv replay: the real export's timestamps and values, bad lines, pacing, lifecycle."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drivers.e4_csv import E4CsvSource
from edge.build import build_source
from edge.config import load_config
from fusion.errors import ConfigError, SourceError, SourceUnavailableError, UnavailableReason
from fusion.samples import SkinTemperature


async def _all(source: E4CsvSource) -> list[SkinTemperature]:
    async with source:
        return [s async for s in source.samples()]


async def test_real_export_timestamps_and_values(shared_data: Path) -> None:
    path = shared_data / "e4" / "TEMP.csv"
    lines = path.read_text().split()
    start, rate = float(lines[0]), float(lines[1])
    expected = [float(v) for v in lines[2:]]
    assert rate == 4.0

    source = E4CsvSource("wristband", path=path, speed=None)
    samples = await _all(source)
    assert len(samples) == len(expected)
    assert [s.celsius for s in samples] == expected
    assert [s.seq for s in samples] == list(range(len(expected)))
    for n in (0, 1, 2, 3, 4, 1000, len(expected) - 1):
        assert samples[n].t_wall == pytest.approx(start + n / 4.0, abs=1e-6)
        assert samples[n].t_mono - samples[0].t_mono == n * 250_000_000
    assert samples[0].t_wall == 1560279825.0 and samples[0].celsius == 32.13
    assert source.decode_errors == {}
    assert source.header is not None and source.header.rate_hz == 4.0


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "TEMP.csv"
    path.write_text(body)
    return path


async def test_bad_lines_are_counted_with_their_line_number(tmp_path: Path) -> None:
    path = _write(tmp_path, "1000.0\n4.0\n30.0\nabc\n\n30.5\nnan\n31.0\n")
    source = E4CsvSource("wristband", path=path, speed=None)
    samples = await _all(source)
    assert [(s.celsius, s.t_wall) for s in samples] == [(30.0, 1000.0), (30.5, 1000.75), (31.0, 1001.25)]
    assert source.decode_errors == {"value": 3}
    assert [str(e) for e in source.errors] == [
        f"wristband: {path}:4: not a temperature: 'abc'",
        f"wristband: {path}:5: not a temperature: ''",
        f"wristband: {path}:7: not a temperature: 'nan'",
    ]
    assert source.errors[0].source == "wristband"


async def test_paced_at_speed(tmp_path: Path) -> None:
    path = _write(tmp_path, "1000.0\n4.0\n" + "30.0\n" * 9)  # 2 s of samples
    t0 = time.monotonic()
    samples = await _all(E4CsvSource("wristband", path=path, speed=8.0))  # 2 s / 8 = 0.25 s
    elapsed = time.monotonic() - t0
    assert len(samples) == 9
    assert 0.2 <= elapsed < 1.5
    assert samples[-1].t_mono - samples[0].t_mono == 2_000_000_000  # the recording's timeline, not the playback's


async def test_missing_file_and_bad_header(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailableError) as info:
        await E4CsvSource("wristband", path=tmp_path / "nope.csv").__aenter__()
    assert info.value.reason is UnavailableReason.ABSENT and "nope.csv" in str(info.value)

    bad = _write(tmp_path, "start\n4\n30\n")
    source = E4CsvSource("wristband", path=bad)
    with pytest.raises(SourceError, match="not an E4 export"):
        await source.__aenter__()
    await source.__aexit__(None, None, None)


def test_config_and_build(tmp_path: Path) -> None:
    cfg = load_config(None, {"sources": [{"kind": "e4-csv", "path": str(tmp_path / "TEMP.csv"), "speed": None}]})
    source = build_source(cfg.sources[0])
    assert isinstance(source, E4CsvSource)
    assert (source.name, source._path, source._speed) == ("wristband", tmp_path / "TEMP.csv", None)
    with pytest.raises(ConfigError, match="speed"):
        load_config(None, {"sources": [{"kind": "e4-csv", "path": "x.csv", "speed": 0}]})


async def test_implausible_values_are_counted_and_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path, "1000.0\n4.0\n30.0\n500\n1e308\n-40.5\n85\n")
    source = E4CsvSource("wristband", path=path, speed=None)
    samples = await _all(source)
    assert [s.celsius for s in samples] == [30.0, 85.0], "the sensor's range, -40..85 °C as the BLE decoders"
    assert source.decode_errors == {"range": 3}
    assert str(source.errors[0]) == f"wristband: {path}:4: implausible: 500 °C outside -40..85 °C"
