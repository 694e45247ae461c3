"""FLIR radiometric JPEG: raw thermal image, Planck constants and embedded photo, and a file source.

The FLIR ONE phone app (and FLIR's cameras) store the measurement in APP1 segments that start with
``FLIR\\0``, 0x01, the chunk index and the last chunk index. Concatenated, the chunks are an FFF blob:
"FFF\\0", a 16-byte creator, u32 version, u32 directory offset, u32 entry count (big-endian), then
32-byte directory entries (u16 type, u16 subtype, u32 version, u32 index, u32 offset, u32 length, ...).
Records used: type 1 raw data (u16 byte-order mark 2, width, height; the image from byte 32: a 16-bit
PNG whose samples are little-endian, so swapped after decoding, or plain u16 pixels), type 14 embedded
photo (same 32-byte header, then a JPEG) and type 32 camera info: emissivity at byte 32, reflected
apparent temperature (K) at 40, Planck R1/B/F at 88/92/96, O (i32) at 776, R2 at 780, little-endian.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from drivers.base import QueueSource
from drivers.flirone_planck import KELVIN_OFFSET, raw_to_celsius
from fusion.errors import DecodeError, SourceUnavailableError, UnavailableReason
from fusion.greyscale import is_greyscale
from fusion.samples import PlanckConstants, ThermalFrame

__all__ = ["FlirJpegSource", "RadiometricImage", "read_radiometric_jpeg"]

_FLIR_APP1 = b"FLIR\x00"
_RAW_DATA, _EMBEDDED_IMAGE, _CAMERA_INFO = 1, 14, 32
_RECORD_HEADER = 32


@dataclass(frozen=True, slots=True, eq=False)
class RadiometricImage:
    """What a radiometric JPEG holds."""

    raw: npt.NDArray[np.uint16]  # H×W raw signal
    celsius: npt.NDArray[np.float32]  # H×W, by the photo's own constants
    planck: PlanckConstants  # with the photo's emissivity and reflected temperature
    photo: npt.NDArray[np.uint8] | None  # the embedded visible photo, BGR


def _fail(where: str, message: str, kind: str = "flir-jpeg") -> DecodeError:
    return DecodeError(where, message, kind)


def _flir_chunks(data: bytes, where: str) -> bytes:
    """The FFF blob from the APP1 FLIR segments, in chunk order."""
    if data[:2] != b"\xff\xd8":
        raise _fail(where, "not a JPEG file")
    chunks: dict[int, bytes] = {}
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise _fail(where, f"broken JPEG segment at byte {at}")
        marker = data[at + 1]
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more metadata
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        (length,) = struct.unpack_from(">H", data, at + 2)
        segment = data[at + 4 : at + 2 + length]
        if marker == 0xE1 and segment.startswith(_FLIR_APP1) and len(segment) >= 8:
            chunks[segment[6]] = segment[8:]
        at += 2 + length
    if not chunks:
        raise _fail(where, "no FLIR APP1 segments: not a radiometric FLIR JPEG")
    if sorted(chunks) != list(range(len(chunks))):
        raise _fail(where, f"FLIR segments missing: have chunks {sorted(chunks)}")
    return b"".join(chunks[i] for i in range(len(chunks)))


def _records(fff: bytes, where: str) -> dict[int, bytes]:
    """FFF directory: record type -> record bytes (the first record of each type)."""
    if fff[:4] != b"FFF\x00" or len(fff) < 64:
        raise _fail(where, "FLIR segments do not hold an FFF blob")
    directory, count = struct.unpack_from(">II", fff, 24)
    records: dict[int, bytes] = {}
    for i in range(count):
        entry = directory + 32 * i
        if entry + 32 > len(fff):
            raise _fail(where, "FFF directory runs past the end of the data")
        kind, _sub, _ver, _index, offset, length = struct.unpack_from(">HHIIII", fff, entry)
        if kind and kind not in records:
            if offset + length > len(fff):
                raise _fail(where, f"FFF record type {kind} runs past the end of the data")
            records[kind] = fff[offset : offset + length]
    return records


def _image_record(record: bytes, where: str, flags: int) -> npt.NDArray[np.generic]:
    if len(record) < _RECORD_HEADER:
        raise _fail(where, f"image record of {len(record)} bytes is shorter than its header")
    width, height = struct.unpack_from("<HH", record, 2)
    body = record[_RECORD_HEADER:]
    if body.startswith(b"\x89PNG") or body.startswith(b"\xff\xd8"):
        try:
            image = cv2.imdecode(np.frombuffer(body, np.uint8), flags)
        except cv2.error as exc:  # OpenCV raises on some damaged images instead of returning None
            raise _fail(where, f"embedded image does not decode: {str(exc).strip()[:120]}") from exc
        if image is None or image.size == 0:
            raise _fail(where, "embedded image does not decode")
        return np.asarray(image)
    if width == 0 or height == 0:
        raise _fail(where, f"image record is {width}×{height}: empty")
    if len(body) < 2 * width * height:
        raise _fail(where, f"raw record holds {len(body)} bytes, {width}×{height} needs {2 * width * height}")
    return np.frombuffer(body, "<u2", count=width * height).reshape(height, width)


def planck_from_camera_info(info: bytes, provenance: str) -> PlanckConstants:
    """The constants, emissivity and reflected temperature of a camera-info record (little-endian).

    Args:
        info: the record (type 32) bytes.
        provenance: where it came from, kept with the constants.

    Raises:
        ValueError: the record is too short or holds no usable constants.
    """
    if len(info) < 784:
        raise ValueError(f"camera info record of {len(info)} bytes is too short (needs 784)")

    def f32(offset: int) -> float:
        return float(struct.unpack_from("<f", info, offset)[0])

    p = PlanckConstants(
        r1=f32(88),
        b=f32(92),
        f=f32(96),
        o=float(struct.unpack_from("<i", info, 776)[0]),
        r2=f32(780),
        emissivity=f32(32),
        reflected_c=f32(40) - KELVIN_OFFSET,
        provenance=provenance,
    )
    if not (p.r1 > 0 and p.r2 > 0 and p.b > 0 and 0 < p.emissivity <= 1):
        raise ValueError(f"camera info holds no usable Planck constants (R1 {p.r1}, R2 {p.r2}, B {p.b})")
    return p


def read_radiometric_jpeg(path: Path) -> RadiometricImage:
    """Decode a FLIR radiometric JPEG.

    Args:
        path: the photo.

    Returns:
        Raw image, °C image, constants (provenance: the file) and embedded photo.

    Raises:
        OSError: the file cannot be read.
        DecodeError: the file is not a radiometric FLIR JPEG, or a record is broken.
    """
    where = str(path)
    records = _records(_flir_chunks(path.read_bytes(), where), where)
    if _RAW_DATA not in records or _CAMERA_INFO not in records:
        raise _fail(where, "no raw data or camera info record: not a radiometric image")
    try:
        planck = planck_from_camera_info(records[_CAMERA_INFO], f"camera info of {path.name}")
    except ValueError as exc:
        raise _fail(where, str(exc)) from exc
    decoded = _image_record(records[_RAW_DATA], where, cv2.IMREAD_UNCHANGED)
    if decoded.dtype != np.uint16 or decoded.ndim != 2:
        raise _fail(where, f"raw image is {decoded.dtype} {decoded.shape}, expected 2-D 16-bit")
    raw: npt.NDArray[np.uint16] = np.ascontiguousarray(decoded, np.uint16)
    if records[_RAW_DATA][_RECORD_HEADER:].startswith(b"\x89PNG"):
        raw = raw.byteswap()  # FLIR writes little-endian samples into a big-endian format
    photo = None
    if _EMBEDDED_IMAGE in records:
        decoded = _image_record(records[_EMBEDDED_IMAGE], where, cv2.IMREAD_COLOR)
        photo = np.asarray(decoded, np.uint8) if decoded.ndim == 3 else None
    return RadiometricImage(raw=raw, celsius=raw_to_celsius(raw, planck), planck=planck, photo=photo)


class FlirJpegSource(QueueSource[ThermalFrame]):
    """Plays one radiometric JPEG as a thermal camera: the same frame, fresh timestamps, ``rate_hz``.

    Args:
        name: configured source name.
        path: the photo.
        rate_hz: frames per second.
        frames: stop after this many; None: until closed.
    """

    def __init__(self, name: str, *, path: Path, rate_hz: float = 8.7, frames: int | None = None) -> None:
        super().__init__(name, queue_size=2)
        self._path = path
        self._period_s = 1.0 / rate_hz
        self._frames = frames
        self._image: RadiometricImage | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_seq = -1

    async def _open(self) -> None:
        try:
            image = await asyncio.to_thread(read_radiometric_jpeg, self._path)
        except FileNotFoundError as exc:
            raise SourceUnavailableError(self.name, f"no such file: {self._path}", UnavailableReason.ABSENT) from exc
        except PermissionError as exc:
            raise SourceUnavailableError(self.name, f"may not read {self._path}", UnavailableReason.PERMISSION) from exc
        except DecodeError as exc:  # a wrong file never gets better: report it as unusable, with why
            raise SourceUnavailableError(self.name, str(exc), UnavailableReason.ABSENT) from exc
        for array in (image.raw, image.celsius, image.photo):
            if array is not None:
                array.flags.writeable = False
        self._image = image
        self._task = asyncio.create_task(self._play(image), name=f"{self.name}-play")

    async def _close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # unlike `await task`, never mistakes its cancellation for ours

    async def samples(self) -> AsyncIterator[ThermalFrame]:
        """Yield frames until closed, or until the configured number of frames has been played."""
        async for frame in super().samples():
            yield frame
            if frame.seq == self._last_seq:
                return

    async def _play(self, image: RadiometricImage) -> None:
        start = time.monotonic()
        n = 0
        while self._frames is None or n < self._frames:
            if self._frames is not None and n == self._frames - 1:
                self._last_seq = self._seq  # the newest frame is never the one dropped
            self._offer(
                ThermalFrame(
                    t_mono=time.monotonic_ns(),
                    t_wall=time.time(),
                    source=self.name,
                    seq=self._next_seq(),
                    celsius=image.celsius,
                    raw=image.raw,
                    visible=image.photo,
                    visible_greyscale=image.photo is not None and is_greyscale(image.photo),
                    planck=image.planck,
                    meta={"path": str(self._path)},
                )
            )
            n += 1
            await asyncio.sleep(max(0.0, start + n * self._period_s - time.monotonic()))
