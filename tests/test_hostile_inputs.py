"""Hostile or damaged inputs end in the project's own clear errors (or are counted and skipped), never a
traceback: each case here once did."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.e4_csv import E4CsvSource
from drivers.flir_jpeg import read_radiometric_jpeg
from drivers.flirone_frames import FrameAssembler, encode_frame
from drivers.replay import MANIFEST, ReplaySource
from edge.cli import main
from edge.config import load_config
from edge.publish.sinks import build_mqtt_sink
from edge.recorder import Recorder
from fusion.errors import ConfigError, DecodeError, SourceError
from fusion.samples import SkinTemperature


def test_config_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "vitaledge.yaml"
    path.write_bytes(b"device_id: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"vitaledge.yaml: not UTF-8 text \(a bad byte at offset 11\)"):
        load_config(path)


def test_an_integer_yaml_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "vitaledge.yaml"
    path.write_text("device_id: a\n1: 2\nsources: []\n")
    with pytest.raises(ConfigError, match="key 1: keys must be names"):
        load_config(path)


@pytest.mark.parametrize("where", ["/proc/vitaledge/outbox.sqlite", "/proc/self/outbox.sqlite"])
def test_an_outbox_under_proc_is_a_config_error(where: str) -> None:
    cfg = load_config(None, {"device_id": "d", "sources": [{"kind": "synthetic", "name": "rig"}],
                             "outbox": {"path": where}})
    with pytest.raises(ConfigError, match=f"outbox.path {where}: cannot open an outbox there"):
        build_mqtt_sink(cfg, mqtt_url="mqtt://127.0.0.1:1883")


async def test_an_e4_csv_that_is_not_utf8_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "TEMP.csv"
    path.write_bytes(b"\xff\xfe1000\n4\n30\n")
    with pytest.raises(SourceError, match="not an E4 export"):
        async with E4CsvSource("w", path=path, speed=None):
            pass


def test_a_radiometric_jpeg_with_a_0x0_raw_image_is_a_decode_error(shared_data: Path, tmp_path: Path) -> None:
    data = bytearray((shared_data / "flirone" / "radiometric" / "flir_example.jpg").read_bytes())
    png = data.find(b"\x89PNG")
    assert struct.unpack_from("<HHH", data, png - 32) == (2, 240, 320), "the raw record's header precedes it"
    data[png - 30 : png - 26] = struct.pack("<HH", 0, 0)
    data[png] = 0  # not a PNG: the plain u16 layout, whose size is the header's
    path = tmp_path / "zero.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(DecodeError, match="image record is 0×0"):
        read_radiometric_jpeg(path)


def test_a_flir_frame_whose_status_nests_deep_is_dropped_not_fatal() -> None:
    ok, jpeg = cv2.imencode(".jpg", np.full((24, 32, 3), 128, np.uint8))
    assert ok
    counts = np.full((60, 80), 3000, np.uint16)
    good = encode_frame(counts, jpeg.tobytes(), {"shutterState": "ON"})
    # The same frame with a status JSON nested 100k deep (a RecursionError in json.loads).
    thermal, jpeg_size = struct.unpack_from("<2I", good, 12)
    status = b"[" * 100_000 + b"]" * 100_000 + b"\x00"
    head = good[:4] + struct.pack("<5I", 1, thermal + jpeg_size + len(status), thermal, jpeg_size, len(status))
    deep = head + struct.pack("<I", zlib.crc32(head)) + good[28 : 28 + thermal + jpeg_size] + status
    errors: list[tuple[str, str]] = []
    assembler = FrameAssembler(lambda kind, message: errors.append((kind, message)))
    frames = assembler.feed(deep + good)
    assert len(frames) == 1 and errors[0] == ("status", "status is not a JSON object"), (
        "the deep one is counted and dropped, the next one still decodes"
    )


def _session(folder: Path) -> None:
    with Recorder(folder) as recorder:
        for k in range(3):
            recorder.write(SkinTemperature(t_mono=k * 10**9, t_wall=1e9 + k, source="w", seq=k, celsius=33.0))


async def test_bad_manifest_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    _session(tmp_path / "s")
    good = json.loads((tmp_path / "s" / MANIFEST).read_text().splitlines()[0])
    hostile = ["[" * 100_000 + "]" * 100_000]  # RecursionError
    hostile += [json.dumps({**good, "t_mono": bad}) for bad in ("12", 1.5, True, [1], None)]
    hostile += ['{"n": 9, "type": "skin", "t_mono": 1e999}']  # inf: OverflowError in int()
    with (tmp_path / "s" / MANIFEST).open("a") as f:
        f.write("\n".join(hostile) + "\n")
    source = ReplaySource("replay", path=tmp_path / "s", speed=None)
    async with source:
        back = [s async for s in source.samples()]
    assert len(back) == 3 and source.decode_errors == {"manifest": len(hostile)}
    assert any("t_mono must be an integer, got str" in str(e) for e in source.errors)


async def test_replay_paths_stay_inside_the_session_folder(tmp_path: Path) -> None:
    _session(tmp_path / "s")
    secret = tmp_path / "secret.png"
    cv2.imwrite(str(secret), np.zeros((4, 4, 3), np.uint8))
    entry = {"n": 50, "type": "visible", "t_mono": 5 * 10**9, "t_wall": 1e9, "source": "cam", "seq": 0}
    with (tmp_path / "s" / MANIFEST).open("a") as f:
        for name in ("../secret.png", str(secret)):
            f.write(json.dumps({**entry, "file": name}) + "\n")
    source = ReplaySource("replay", path=tmp_path / "s", speed=None)
    async with source:
        back = [s async for s in source.samples()]
    assert len(back) == 3, "neither the relative nor the absolute path outside the folder was read"
    assert source.decode_errors == {"missing": 2}
    assert all("outside the session folder" in str(e) for e in source.errors)


def test_inspect_skips_a_folder_and_a_broken_link_named_bin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.bin").mkdir()
    (tmp_path / "b.bin").symlink_to(tmp_path / "nowhere")
    assert main(["inspect", str(tmp_path)]) == 2
    assert "holds no recorded session or FLIR ONE capture" in capsys.readouterr().err
