"""Radiometric JPEG reader and file source on the real FLIR ONE app photo (flir_example.jpg)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.flir_jpeg import FlirJpegSource, read_radiometric_jpeg
from fusion.errors import DecodeError, SourceUnavailableError, UnavailableReason
from fusion.samples import ThermalFrame


@pytest.fixture(scope="module")
def photo(shared_data: Path) -> Path:
    return shared_data / "flirone" / "radiometric" / "flir_example.jpg"


def test_example_photo_decodes(photo: Path) -> None:
    image = read_radiometric_jpeg(photo)
    assert image.raw.shape == (320, 240) and image.raw.dtype == np.uint16  # 240 wide, 320 high
    assert image.celsius.shape == (320, 240) and image.celsius.dtype == np.float32
    # Atmospheric terms omitted (see drivers/flirone_planck.py): 25.90–62.01 °C; the data README's
    # "about 25.9–62.3" comes from a fuller model.
    assert float(image.celsius.min()) == pytest.approx(25.9, abs=0.1)
    assert float(image.celsius.max()) == pytest.approx(62.3, abs=0.5)
    # Byte order: without the swap the raw values would span most of 0..65535.
    assert 12000 < int(image.raw.min()) < int(image.raw.max()) < 21000
    assert image.photo is not None and image.photo.shape == (640, 480, 3)  # 480 wide, 640 high


def test_example_photo_constants_from_camera_info(photo: Path) -> None:
    p = read_radiometric_jpeg(photo).planck
    assert p.r1 == pytest.approx(17837.53125)
    assert p.b == pytest.approx(1450.4, abs=1e-3)
    assert p.f == 1.0
    assert p.o == -1143.0
    assert p.r2 == pytest.approx(0.0123327812)
    assert p.emissivity == pytest.approx(0.95)
    assert p.reflected_c == pytest.approx(20.0, abs=1e-4)
    assert p.provenance == "camera info of flir_example.jpg"


def test_plain_jpeg_is_refused_with_the_reason(tmp_path: Path) -> None:
    plain = tmp_path / "plain.jpg"
    cv2.imwrite(str(plain), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DecodeError, match="no FLIR APP1 segments") as caught:
        read_radiometric_jpeg(plain)
    assert caught.value.source == str(plain)
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(DecodeError, match="not a JPEG file"):
        read_radiometric_jpeg(tmp_path / "text.jpg")


def test_truncated_photo_is_a_decode_error(photo: Path, tmp_path: Path) -> None:
    data = photo.read_bytes()
    for cut in (100, 3000, 40_000, 70_000):
        broken = tmp_path / f"cut{cut}.jpg"
        broken.write_bytes(data[:cut])
        with pytest.raises(DecodeError):
            read_radiometric_jpeg(broken)


def test_corrupt_photos_only_ever_raise_decode_error(photo: Path, tmp_path: Path) -> None:
    data = photo.read_bytes()[:90_000]  # the FLIR segments end at byte 87,807
    rng = random.Random(5)
    outcomes = {"ok": 0, "decode": 0}
    for i in range(150):
        broken = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            broken[rng.randrange(2, 87_800)] = rng.randrange(256)
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(bytes(broken))
        try:
            image = read_radiometric_jpeg(path)
        except DecodeError:
            outcomes["decode"] += 1
        else:
            outcomes["ok"] += 1
            assert image.celsius.shape == image.raw.shape
    assert outcomes["decode"] > 50  # most hits land in the compressed raw image and break it


async def _take(source: FlirJpegSource) -> list[ThermalFrame]:
    async with asyncio.timeout(5):
        return [frame async for frame in source.samples()]


async def test_source_plays_the_photo_at_the_rate(photo: Path) -> None:
    source = FlirJpegSource("thermal", path=photo, rate_hz=50.0, frames=4)
    async with source:
        frames = await _take(source)
    assert [f.seq for f in frames] == [0, 1, 2, 3]
    span_s = (frames[-1].t_mono - frames[0].t_mono) / 1e9
    assert 0.05 <= span_s < 0.5  # three periods of 20 ms, with scheduling slack
    assert frames[0].celsius.shape == (320, 240) and not frames[0].celsius.flags.writeable
    assert frames[0].planck is not None and frames[0].planck.emissivity == pytest.approx(0.95)
    assert frames[0].visible is not None and frames[0].visible.shape == (640, 480, 3)


async def test_missing_file_is_absent(tmp_path: Path) -> None:
    source = FlirJpegSource("thermal", path=tmp_path / "nope.jpg")
    with pytest.raises(SourceUnavailableError) as caught:
        await source.__aenter__()
    assert caught.value.reason is UnavailableReason.ABSENT
    assert str(caught.value) == f"thermal: no such file: {tmp_path / 'nope.jpg'}"
