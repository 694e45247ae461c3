"""FLIR ONE frame assembly and decoding on the real USB capture (../shared/data/flirone/usb_capture)."""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.flirone_frames import (
    HEADER_BYTES,
    FrameAssembler,
    RawFrame,
    decode_thermal,
    decode_visible,
    encode_frame,
    parse_header,
)
from drivers.flirone_planck import FLIRONE_COUNTS_SCALE, celsius_to_raw, raw_to_celsius
from fusion.samples import PlanckConstants

# Planck constants of the FLIR ONE that took flir_example.jpg (its camera-info record).
EXAMPLE_PLANCK = PlanckConstants(
    r1=17837.53125, r2=0.012332781217992306, b=1450.4000244140625, f=1.0, o=-1143.0,
    emissivity=0.95, reflected_c=20.0, provenance="flir_example.jpg camera info",
)  # fmt: skip


def capture_reads(shared_data: Path) -> list[bytes]:
    folder = shared_data / "flirone" / "usb_capture"
    return [p.read_bytes() for p in sorted(folder.glob("*.bin"))]


def frame_spans(stream: bytes) -> list[tuple[int, int]]:
    """(start, end) of every frame in a clean stream, from the headers alone."""
    spans, at = [], 0
    while at < len(stream):
        header = parse_header(stream[at : at + HEADER_BYTES])
        assert not isinstance(header, str), header
        spans.append((at, at + HEADER_BYTES + header.total))
        at = spans[-1][1]
    return spans


def rechunk(stream: bytes, rng: random.Random) -> Iterator[bytes]:
    at = 0
    while at < len(stream):
        size = rng.randint(0, 40) if rng.random() < 0.2 else rng.randint(1, 70_000)
        yield stream[at : at + size]
        at += size


def assemble(reads: list[bytes]) -> tuple[FrameAssembler, list[RawFrame], list[tuple[str, str]]]:
    errors: list[tuple[str, str]] = []
    assembler = FrameAssembler(lambda kind, message: errors.append((kind, message)))
    frames = [f for r in reads for f in assembler.feed(r)]
    return assembler, frames, errors


@pytest.fixture(scope="module")
def reads(shared_data: Path) -> list[bytes]:
    return capture_reads(shared_data)


def test_capture_in_original_reads(reads: list[bytes]) -> None:
    assert reads[0] == b"" and len(reads) == 109  # 0001.bin is an empty read
    assembler, frames, errors = assemble(reads)
    assert errors == []
    assert assembler.frames == 20
    # The data README speaks of one duplicated frame, but the capture holds two: frames 1 and 11
    # repeat frames 0 and 10 byte for byte in header, thermal and JPEG (only the status timestamps
    # differ). Dropping repeats therefore leaves 18.
    assert assembler.duplicates == 2
    assert [f.index for f in frames] == [0, *range(2, 11), *range(12, 20)]
    assert assembler.ffc_frames == 0 and assembler.garbage_bytes == 0
    counts, telemetry = decode_thermal(frames[0].thermal)
    assert counts.shape == (60, 80) and counts.dtype == np.uint16
    assert telemetry.shape == (3, 80)
    assert 3000 < counts.min() < counts.max() < 4200  # 14-bit counts of a room scene
    visible = decode_visible(frames[0].jpeg)
    assert visible is not None and visible.shape == (1080, 1440, 3)
    assert frames[0].status["ffcState"] == "FFC_VALID_RAD"
    assert frames[0].status["shutterTemperature"] == pytest.approx(320.3, abs=0.01)


@pytest.mark.parametrize("seed", range(5))
def test_capture_rechunked_gives_the_same_frames(reads: list[bytes], seed: int) -> None:
    _, reference, _ = assemble(reads)
    assembler, frames, errors = assemble(list(rechunk(b"".join(reads), random.Random(seed))))
    assert errors == []
    assert (assembler.frames, assembler.duplicates) == (20, 2)
    assert [(f.index, f.thermal, f.jpeg) for f in frames] == [(f.index, f.thermal, f.jpeg) for f in reference]


def test_garbage_between_frames_is_skipped(reads: list[bytes]) -> None:
    stream = b"".join(reads)
    spans = frame_spans(stream)
    noisy = b"\x00\xef\xbe" + b"".join(b"\xef\xbe\x00\x00junk" + stream[a:b] for a, b in spans)
    assembler, frames, errors = assemble([noisy[i : i + 5000] for i in range(0, len(noisy), 5000)])
    assert len(frames) == 18 and assembler.frames == 20
    assert {kind for kind, _ in errors} >= {"header", "resync"}


def test_truncated_frame_costs_only_itself(reads: list[bytes]) -> None:
    stream = b"".join(reads)
    spans = frame_spans(stream)
    start, _ = spans[5]
    cut = stream[: start + 20_000] + stream[start + 30_000 :]  # 10 kB of frame 5's JPEG lost on the bus
    assembler, frames, errors = assemble([cut])
    assert [f.index for f in frames] == [0, *range(2, 10), *range(11, 19)]  # 19 valid, frame 5 gone
    assert assembler.frames == 19
    assert errors and errors[0][0] == "status"


def test_random_corruption_costs_at_most_the_frames_it_touched(reads: list[bytes]) -> None:
    stream = b"".join(reads)
    spans = frame_spans(stream)
    thermals = [stream[a + HEADER_BYTES : a + HEADER_BYTES + 10332] for a, _ in spans]
    repeats = {i for i in range(1, len(spans)) if thermals[i] == thermals[i - 1]}
    for seed in range(40):  # bounded: ~2–4 s on the shared 2-core machine
        rng = random.Random(1000 + seed)
        corrupt = bytearray(stream)
        positions = [rng.randrange(len(stream)) for _ in range(rng.randint(1, 6))]
        a, b = spans[rng.randrange(len(spans))]  # and one hit where most bytes are structure
        positions.append(
            rng.choice([a + rng.randrange(HEADER_BYTES), a + rng.randrange(10360), b - 1 - rng.randrange(167)])
        )
        for p in positions:
            corrupt[p] ^= rng.randint(1, 255)
        touched = {i for i, (a, b) in enumerate(spans) if any(a <= p < b for p in positions)}
        _, frames, _ = assemble(list(rechunk(bytes(corrupt), rng)))
        got = {f.thermal for f in frames}
        for i in range(len(spans)):
            if i not in touched and i not in repeats:
                assert thermals[i] in got, f"seed {seed}: untouched frame {i} lost (touched {touched})"
        for f in frames:
            assert f.thermal in thermals, f"seed {seed}: a corrupt thermal block got through"
            decode_thermal(f.thermal)
            if any(a <= p < b for p in positions for a, b in [spans[thermals.index(f.thermal)]]):
                decode_visible(f.jpeg)  # a damaged JPEG decodes to something or to None, never raises


def _jpeg(width: int, height: int) -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


def _status(shutter: str = "ON", n: int = 0) -> dict[str, object]:
    return {"shutterState": shutter, "ffcState": "FFC_VALID_RAD", "usbNotifiedTimestamp": float(n)}


def test_160x120_layout_round_trips() -> None:
    counts = np.arange(120 * 160, dtype=np.uint16).reshape(120, 160) % 16384
    _, frames, errors = assemble([encode_frame(counts, _jpeg(64, 48), _status())])
    assert errors == [] and len(frames) == 1
    decoded, telemetry = decode_thermal(frames[0].thermal)
    assert decoded.shape == (120, 160) and telemetry.shape == (8, 80)
    np.testing.assert_array_equal(decoded, counts)


def test_ffc_frames_and_the_one_after_are_dropped_or_flagged() -> None:
    rng = np.random.default_rng(0)
    stream = b"".join(
        encode_frame(rng.integers(3000, 4000, (60, 80), dtype=np.uint16), _jpeg(32, 24), _status(shutter, n))
        for n, shutter in enumerate(["ON", "FFC", "FFC", "ON", "ON", "ON", "FFC", "ON", "ON"])
    )
    assembler, frames, errors = assemble([stream])
    assert errors == []
    assert [f.status["usbNotifiedTimestamp"] for f in frames] == [0.0, 4.0, 5.0, 8.0]
    assert assembler.ffc_frames == 5 and not any(f.ffc for f in frames)
    flagging = FrameAssembler(keep_ffc=True)
    kept = flagging.feed(stream)
    assert [f.ffc for f in kept] == [False, True, True, True, False, False, True, True, False]
    assert flagging.ffc_frames == 5


def test_packet_crc_catches_a_flipped_pixel() -> None:
    frame = bytearray(encode_frame(np.full((60, 80), 3500, np.uint16), _jpeg(32, 24), _status()))
    frame[HEADER_BYTES + 164 * 7 + 50] ^= 0x01
    _, frames, errors = assemble([bytes(frame)])
    assert frames == [] and errors[0] == ("packet-crc", "thermal packet CRC mismatch")


def test_header_crc_is_the_crc32_of_the_first_24_bytes(reads: list[bytes]) -> None:
    header = reads[1]
    parsed = parse_header(header)
    assert not isinstance(parsed, str)
    assert parsed.crc == zlib.crc32(header[:24])
    assert (parsed.total, parsed.thermal, parsed.jpeg, parsed.status) == (87651, 10332, 77152, 167)
    assert parse_header(header[:24] + b"\x00\x00\x00\x00") == "header CRC mismatch"


def test_planck_round_trip_and_physics() -> None:
    temps_c = np.array([-10.0, 0.0, 20.0, 36.6, 60.0, 120.0])
    raw = celsius_to_raw(temps_c, EXAMPLE_PLANCK)
    np.testing.assert_allclose(raw_to_celsius(raw, EXAMPLE_PLANCK), temps_c, atol=1e-3)
    assert np.all(np.diff(raw) > 0)
    counts = celsius_to_raw(temps_c, EXAMPLE_PLANCK, scale=FLIRONE_COUNTS_SCALE)
    np.testing.assert_allclose(raw_to_celsius(counts, EXAMPLE_PLANCK, scale=4.0), temps_c, atol=1e-3)
    # An object at the reflected temperature reads the same whatever its emissivity.
    for emissivity in (0.5, 0.9, 1.0):
        p = dataclasses.replace(EXAMPLE_PLANCK, emissivity=emissivity)
        assert float(raw_to_celsius(celsius_to_raw(20.0, p), EXAMPLE_PLANCK)) == pytest.approx(20.0, abs=1e-3)
    # A lower emissivity means a hotter object for the same signal above the surroundings.
    low = dataclasses.replace(EXAMPLE_PLANCK, emissivity=0.8)
    assert raw_to_celsius(raw[-1:], low)[0] > 120.0
    # Outside the calibration's domain: NaN, not a warning or an exception.
    assert np.isnan(raw_to_celsius(np.array([-5000.0]), EXAMPLE_PLANCK)[0])
