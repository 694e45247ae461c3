"""FLIR ONE USB frame stream: assembling frames from bulk reads and decoding their parts (pure, no I/O).

A frame on endpoint 0x85 is a 28-byte header, then the thermal block, the visible JPEG and a status
JSON. Header: magic ``EF BE 00 00``, u32 1, u32 total/thermal/JPEG/status sizes, u32 CRC-32 of the
first 24 bytes, all little-endian. The thermal block is Lepton VoSPI packets of 164 bytes (u16 ID
whose low 12 bits are the packet number, u16 CRC-16/CCITT, 80 u16 pixels), stored as little-endian
words: 80×60 is 60 image packets + 3 telemetry packets; 160×120 is two packets per row (left, right)
+ telemetry packets.

Bulk reads split and merge frames arbitrarily, so the assembler buffers bytes, finds the magic,
checks the header CRC, the sizes, every packet's CRC, the JPEG start and the status JSON, and on any
failure resynchronises one byte past the bad magic (a truncated frame then costs only itself).
"""

from __future__ import annotations

import binascii
import dataclasses
import json
import struct
import zlib
from collections.abc import Callable, Mapping

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "HEADER_BYTES",
    "MAGIC",
    "PACKET_BYTES",
    "FrameAssembler",
    "FrameHeader",
    "RawFrame",
    "decode_thermal",
    "decode_visible",
    "encode_frame",
    "is_ffc",
]

MAGIC = b"\xef\xbe\x00\x00"
HEADER_BYTES = 28
PACKET_BYTES = 164
PACKET_PIXELS = 80
MAX_FRAME_BYTES = 4 * 1024 * 1024  # a 1440×1080 JPEG is ~80 kB; anything near this is a corrupt size
_HEADER = struct.Struct("<4s6I")

ErrorSink = Callable[[str, str], None]  # (kind, message)


@dataclasses.dataclass(frozen=True, slots=True)
class FrameHeader:
    """The sizes (bytes) a frame header announces, and its CRC-32."""

    total: int
    thermal: int
    jpeg: int
    status: int
    crc: int


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class RawFrame:
    """One structurally valid frame, not yet decoded."""

    index: int  # position among the valid frames of the stream, from 0
    header: FrameHeader
    thermal: bytes
    jpeg: bytes
    status: Mapping[str, object]
    ffc: bool = False  # taken while the shutter was closed, or the frame after: not for measurement


def parse_header(data: bytes | bytearray | memoryview) -> FrameHeader | str:
    """The header at the start of ``data`` (28 bytes), or the reason it is not one."""
    magic, one, total, thermal, jpeg, status, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        return "no magic"
    if zlib.crc32(bytes(data[:24])) != crc:
        return "header CRC mismatch"
    if one != 1 or total != thermal + jpeg + status or total > MAX_FRAME_BYTES:
        return f"inconsistent sizes (total {total}, thermal {thermal}, jpeg {jpeg}, status {status})"
    if thermal % PACKET_BYTES or _layout(thermal // PACKET_BYTES) is None:
        return f"thermal block of {thermal} bytes is no known layout"
    return FrameHeader(total=total, thermal=thermal, jpeg=jpeg, status=status, crc=crc)


def _layout(packets: int) -> tuple[int, int] | None:
    """(height, width) of the image a thermal block of ``packets`` packets holds."""
    if 60 <= packets < 120:
        return 60, 80
    if 240 <= packets < 300:
        return 120, 160
    return None


def _packets_ok(block: bytes) -> bool:
    """Check every packet's CRC-16/CCITT (computed over the big-endian words, ID nibble and CRC zeroed)."""
    words = np.frombuffer(block, dtype="<u2").reshape(-1, PACKET_BYTES // 2)
    stored = words[:, 1]
    if not stored.any():
        return True  # firmware that leaves the CRC empty: nothing to check
    zeroed = words.copy()
    zeroed[:, 0] &= 0x0FFF
    zeroed[:, 1] = 0
    big = zeroed.astype(">u2")
    return all(binascii.crc_hqx(big[i].tobytes(), 0) == int(stored[i]) for i in range(len(big)))


def _parse_status(data: bytes) -> Mapping[str, object] | None:
    text = data.split(b"\x00", 1)[0]
    try:
        status = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        return None
    return status if isinstance(status, dict) else None


def is_ffc(status: Mapping[str, object]) -> bool:
    """True while the shutter is closed for a flat-field correction (the image is the shutter)."""
    return status.get("shutterState") == "FFC" or "PROGRESS" in str(status.get("ffcState", ""))


class FrameAssembler:
    """Turns bulk reads into frames: resynchronises, validates, drops repeats and FFC frames.

    ``feed`` returns the frames to use. Counters: ``frames`` (structurally valid frames seen),
    ``duplicates`` (a frame whose header CRC and thermal+JPEG CRC-32 equal the previous frame's: the
    camera re-sent it), ``ffc_frames`` (shutter frames and the one after each), ``garbage_bytes``.
    Every rejected frame is reported to ``on_error(kind, message)``.

    Args:
        on_error: called with (kind, message) for each rejected frame or skipped run of bytes.
        keep_ffc: return FFC frames (and the one after) marked ``ffc=True`` instead of dropping them,
            so a consumer learns that the shutter closed (the offset corrector resets on it).
    """

    def __init__(self, on_error: ErrorSink | None = None, *, keep_ffc: bool = False) -> None:
        self._buf = bytearray()
        self._on_error = on_error
        self._previous: tuple[int, int] | None = None
        self._keep_ffc = keep_ffc
        self._after_ffc = False
        self.frames = 0
        self.duplicates = 0
        self.ffc_frames = 0
        self.garbage_bytes = 0

    def _error(self, kind: str, message: str) -> None:
        if self._on_error is not None:
            self._on_error(kind, message)

    def feed(self, data: bytes | bytearray | memoryview) -> list[RawFrame]:
        """Add one bulk read (any size, empty too); return the complete frames it finished."""
        self._buf += data
        out: list[RawFrame] = []
        while True:
            frame = self._next_frame()
            if frame is None:
                return out
            accepted = self._accept(frame)
            if accepted is not None:
                out.append(accepted)

    def _discard(self, count: int) -> None:
        self.garbage_bytes += count
        del self._buf[:count]

    def _next_frame(self) -> RawFrame | None:
        buf = self._buf
        while True:
            start = buf.find(MAGIC)
            if start < 0:
                keep = min(len(buf), len(MAGIC) - 1)  # a magic may straddle the next read
                self._discard(len(buf) - keep)
                return None
            if start:
                self._error("resync", f"skipped {start} bytes that were no frame")
                self._discard(start)
            if len(buf) < HEADER_BYTES:
                return None
            header = parse_header(buf)
            if isinstance(header, str):
                self._error("header", header)
                self._discard(1)
                continue
            end = HEADER_BYTES + header.total
            if len(buf) < end:
                return None
            frame, problem = self._validate(header, bytes(buf[HEADER_BYTES:end]))
            if frame is None:
                self._error(problem[0], problem[1])
                self._discard(1)  # a truncated frame may hide the next frame's header inside it
                continue
            del buf[:end]
            return frame

    def _validate(self, h: FrameHeader, body: bytes) -> tuple[RawFrame | None, tuple[str, str]]:
        thermal = body[: h.thermal]
        jpeg = body[h.thermal : h.thermal + h.jpeg]
        if not _packets_ok(thermal):
            return None, ("packet-crc", "thermal packet CRC mismatch")
        if jpeg[:2] != b"\xff\xd8":
            return None, ("jpeg", "visible part does not start with a JPEG marker")
        status = _parse_status(body[h.thermal + h.jpeg :])
        if status is None:
            return None, ("status", "status is not a JSON object")
        frame = RawFrame(index=self.frames, header=h, thermal=thermal, jpeg=jpeg, status=status)
        self.frames += 1
        return frame, ("", "")

    def _accept(self, frame: RawFrame) -> RawFrame | None:
        key = (frame.header.crc, zlib.crc32(frame.jpeg, zlib.crc32(frame.thermal)))
        repeat, self._previous = key == self._previous, key
        shutter = is_ffc(frame.status)
        if shutter or self._after_ffc:
            self._after_ffc = shutter  # the frame after the last shutter frame is still settling
            self.ffc_frames += 1
            return dataclasses.replace(frame, ffc=True) if self._keep_ffc else None
        if repeat:
            self.duplicates += 1
            return None
        return frame


def decode_thermal(block: bytes) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint16]]:
    """The raw counts image and the telemetry words of a validated thermal block.

    Returns:
        (counts H×W uint16, telemetry packets × 80 uint16).

    Raises:
        ValueError: the block is no known layout.
    """
    packets = len(block) // PACKET_BYTES
    layout = _layout(packets) if len(block) % PACKET_BYTES == 0 else None
    if layout is None:
        raise ValueError(f"thermal block of {len(block)} bytes is no known layout")
    height, width = layout
    image_packets = height * width // PACKET_PIXELS
    words = np.frombuffer(block, dtype="<u2").reshape(packets, PACKET_BYTES // 2)[:, 2:]
    counts = words[:image_packets].reshape(height, width).astype(np.uint16)
    return counts, words[image_packets:].astype(np.uint16)


def decode_visible(jpeg: bytes) -> npt.NDArray[np.uint8] | None:
    """The sled's visible image as BGR, or None when the JPEG does not decode."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else np.asarray(image, np.uint8)


def encode_frame(counts: npt.NDArray[np.uint16], jpeg: bytes, status: Mapping[str, object]) -> bytes:
    """Build a frame as the camera sends it (for tests and simulators): header, packets, JPEG, status.

    Args:
        counts: 60×80 or 120×160 raw counts.
        jpeg: the visible JPEG bytes.
        status: the status object (serialised as JSON with a trailing NUL).
    """
    height, width = counts.shape
    per_row = width // PACKET_PIXELS
    pixels = np.ascontiguousarray(counts, "<u2").reshape(height * per_row, PACKET_PIXELS)
    telemetry = np.zeros((3 if height == 60 else 4 * per_row, PACKET_PIXELS), "<u2")
    payload = np.concatenate([pixels, telemetry])
    words = np.zeros((len(payload), PACKET_BYTES // 2), "<u2")
    words[:, 0] = np.arange(len(payload)) & 0x0FFF
    words[:, 2:] = payload
    big = words.astype(">u2")
    words[:, 1] = [binascii.crc_hqx(big[i].tobytes(), 0) for i in range(len(big))]
    thermal = words.tobytes()
    status_bytes = json.dumps(dict(status)).encode() + b"\x00"
    sizes = (1, len(thermal) + len(jpeg) + len(status_bytes), len(thermal), len(jpeg), len(status_bytes))
    head = MAGIC + struct.pack("<5I", *sizes)
    return head + struct.pack("<I", zlib.crc32(head)) + thermal + jpeg + status_bytes
