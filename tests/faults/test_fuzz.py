"""Fuzz targets, one per decoder and reader: any input ends in a value or the project's own error types,
never another exception. Bounded for CI: 200 examples each, no per-example deadline (a loaded runner)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.ble_decode import (
    PacketError,
    decode_e4_temperature,
    decode_health_thermometer,
    decode_ieee11073_float,
)
from drivers.e4_csv import E4CsvSource
from drivers.e4_server import E4ServerSource
from drivers.flir_jpeg import read_radiometric_jpeg
from drivers.flirone_frames import FrameAssembler, decode_thermal, decode_visible, encode_frame
from drivers.replay import MANIFEST, SCHEMA, SESSION, iter_session
from drivers.uvc_thermal import decode_p2pro, decode_y16
from edge.config import load_config
from fusion.errors import VitalEdgeError

BOUNDED = settings(
    max_examples=200, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def only(allowed: tuple[type[BaseException], ...], call: Callable[[], Any]) -> None:
    """Run ``call``; an exception outside ``allowed`` fails the example (hypothesis shrinks it)."""
    with contextlib.suppress(allowed):
        call()


@BOUNDED
@given(st.binary(max_size=64))
def test_ble_packets(data: bytes) -> None:
    for decode in (decode_ieee11073_float, decode_health_thermometer, decode_e4_temperature):
        only((PacketError,), lambda decode=decode: decode(data))  # default arg: bound per loop


def _mutated(base: bytes) -> st.SearchStrategy[bytes]:
    edits = st.lists(st.tuples(st.integers(0, max(0, len(base) - 1)), st.integers(0, 255)), max_size=12)
    cut = st.integers(0, len(base))

    def apply(args: tuple[list[tuple[int, int]], int]) -> bytes:
        out = bytearray(base)
        for at, value in args[0]:
            out[at] = value
        return bytes(out[: args[1]])

    return st.tuples(edits, cut).map(apply)


def _frame() -> bytes:
    import cv2

    ok, jpeg = cv2.imencode(".jpg", np.full((24, 32, 3), 90, np.uint8))
    assert ok
    return encode_frame(np.arange(4800, dtype=np.uint16).reshape(60, 80), jpeg.tobytes(), {"shutterState": "ON"})


@BOUNDED
@given(st.one_of(st.binary(max_size=4096), _mutated(_frame() * 2)))
def test_flirone_usb_stream(data: bytes) -> None:
    assembler = FrameAssembler(lambda kind, message: None)
    for frame in assembler.feed(data):  # the assembler reports damage through its callback, never raises
        decode_thermal(frame.thermal)
        decode_visible(frame.jpeg)


def _photo() -> bytes:
    path = SHARED / "flirone" / "radiometric" / "flir_example.jpg"
    return path.read_bytes()[:90_000] if path.is_file() else b"\xff\xd8\xff\xe1\x00\x10FLIR\x00" + bytes(16)


@BOUNDED
@given(st.one_of(st.binary(max_size=2048), _mutated(_photo())))
def test_radiometric_jpeg(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    only((VitalEdgeError,), lambda: read_radiometric_jpeg(path))


@BOUNDED
@given(st.binary(max_size=512))
def test_uvc_frames(data: bytes) -> None:
    raw = np.frombuffer(data, np.uint8)
    only((ValueError,), lambda: decode_y16(raw, 4, len(data) // 8 or 1))  # documented: ValueError
    only((ValueError,), lambda: decode_p2pro(raw))


@BOUNDED
@given(st.one_of(st.binary(max_size=512), st.text(max_size=200).map(str.encode)))
def test_e4_csv(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "TEMP.csv"
    path.write_bytes(data)

    async def read() -> None:
        async with E4CsvSource("w", path=path, speed=None) as source:
            async for _ in source.samples():
                pass

    only((VitalEdgeError,), lambda: asyncio.run(read()))


@BOUNDED
@given(st.text(max_size=120), st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=2))
def test_e4_server_lines(text: str, numbers: list[float]) -> None:
    source = E4ServerSource("w", port=1)
    source._handle(text)  # bad lines are counted, never raised
    source._handle(" ".join(["E4_Temperature", *map(str, numbers)]))


_SKIN = {"n": 0, "type": "skin", "t_mono": 1, "t_wall": 1.0, "source": "w", "seq": 0, "celsius": 33.0,
         "site": "wrist", "device": "d"}
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)


@BOUNDED
@given(st.lists(st.one_of(
    st.text(max_size=80),
    st.dictionaries(st.sampled_from([*sorted(_SKIN), "file", "chunk", "index"]), _json, max_size=8)
    .map(lambda d: json.dumps({**_SKIN, **d})),
), max_size=6))
def test_replay_manifest(tmp_path: Path, lines: list[str]) -> None:
    folder = tmp_path / "session"
    folder.mkdir(exist_ok=True)
    (folder / SESSION).write_text(json.dumps({"format": "vitaledge-session", "schema": SCHEMA}))
    (folder / MANIFEST).write_text("\n".join(lines))
    errors: list[str] = []
    only((VitalEdgeError,), lambda: list(iter_session(folder, errors)))


@BOUNDED
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                 st.dictionaries(st.text(max_size=12), _json, max_size=5).map(lambda d: json.dumps(d).encode())))
def test_config_files(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "vitaledge.yaml"
    path.write_bytes(data)
    only((VitalEdgeError,), lambda: load_config(path))
