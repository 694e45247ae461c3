"""UVC radiometric thermal cameras through OpenCV's V4L2 backend, as a source of ThermalFrame.

- PureThermal 1/2/Mini (FLIR Lepton 3.x, radiometric TLinear on): Y16 frames of 160×120 (or 80×60),
  each pixel in centikelvin. Firmware with telemetry on appends 2 rows (…×122 / …×62): dropped.
- InfiRay P2 Pro / TOPDON TC001: a 256×384 YUYV frame whose upper half is the camera's own 8-bit
  rendering and whose lower 256×192 half is the temperature, little-endian u16 in 1/64 K.

OpenCV is told not to convert to RGB (``CAP_PROP_CONVERT_RGB`` 0), so ``read()`` gives the bytes as
sent. The decoders are pure functions; the reader thread only reads and hands frames over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Literal, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from drivers.base import QueueSource
from drivers.flirone_planck import KELVIN_OFFSET
from fusion.errors import SourceUnavailableError, UnavailableReason
from fusion.samples import ThermalFrame

__all__ = ["Capture", "UvcModel", "UvcThermalSource", "decode_p2pro", "decode_y16", "open_v4l2"]

UvcModel = Literal["purethermal", "p2pro"]
_P2PRO_WIDTH, _P2PRO_HEIGHT = 256, 384
_MAX_FAILED_READS = 10
_log = logging.getLogger(__name__)


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the source uses."""

    def isOpened(self) -> bool: ...  # OpenCV's name

    def read(self) -> tuple[bool, npt.NDArray[np.generic] | None]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


def decode_y16(frame: npt.NDArray[np.generic], width: int, height: int) -> npt.NDArray[np.uint16]:
    """A PureThermal/Lepton Y16 frame as H×W centikelvin, telemetry rows removed.

    Args:
        frame: what ``read()`` gave: H×W uint16, or the raw bytes (uint8, any shape).
        width: frame width the driver reported.
        height: frame height the driver reported (telemetry rows included).

    Raises:
        ValueError: the frame does not hold ``width``×``height`` 16-bit pixels.
    """
    if frame.dtype == np.uint16 and frame.size == width * height:
        image = frame.reshape(height, width)
    elif frame.dtype == np.uint8 and frame.size == 2 * width * height:
        image = np.ascontiguousarray(frame).reshape(-1).view("<u2").reshape(height, width)
    else:
        raise ValueError(f"Y16 frame is {frame.dtype} {frame.shape}, expected {width}×{height} 16-bit")
    if height in (62, 122):
        image = image[:-2]
    return np.ascontiguousarray(image, np.uint16)


def decode_p2pro(frame: npt.NDArray[np.generic]) -> npt.NDArray[np.uint16]:
    """The temperature half of an InfiRay P2 Pro / TOPDON TC001 frame: 192×256 in 1/64 K.

    Raises:
        ValueError: the frame is not 256×384 pixels of 2 bytes.
    """
    expected = _P2PRO_WIDTH * _P2PRO_HEIGHT * 2
    if frame.dtype != np.uint8 or frame.size != expected:
        raise ValueError(f"P2 Pro frame is {frame.dtype} {frame.shape}, expected {expected} bytes (256×384 YUYV)")
    words = np.ascontiguousarray(frame).reshape(-1).view("<u2").reshape(_P2PRO_HEIGHT, _P2PRO_WIDTH)
    return np.ascontiguousarray(words[_P2PRO_HEIGHT // 2 :], np.uint16)


def to_celsius(raw: npt.NDArray[np.uint16], kelvin_per_count: float) -> npt.NDArray[np.float32]:
    """Counts of ``kelvin_per_count`` (0.01 PureThermal, 1/64 P2 Pro) to °C."""
    return (raw.astype(np.float32) * np.float32(kelvin_per_count) - np.float32(KELVIN_OFFSET)).astype(np.float32)


def open_v4l2(device: str, model: UvcModel) -> Capture:
    """Open a V4L2 device for raw frames of ``model`` (no RGB conversion; Y16 for PureThermal)."""
    capture = cv2.VideoCapture(int(device) if device.isdigit() else device, cv2.CAP_V4L2)
    if capture.isOpened():
        if model == "purethermal":
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc("Y", "1", "6", " "))
        else:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, _P2PRO_WIDTH)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, _P2PRO_HEIGHT)
        capture.set(cv2.CAP_PROP_CONVERT_RGB, 0)
    return capture


class UvcThermalSource(QueueSource[ThermalFrame]):
    """A PureThermal or P2 Pro/TC001 camera on V4L2: frames in °C, raw counts kept.

    Args:
        name: configured source name.
        model: "purethermal" (Y16 centikelvin) or "p2pro" (also TOPDON TC001).
        device: "/dev/videoN" or "N".
        open_capture: opens the device (default OpenCV V4L2); tests pass a stand-in camera.
        queue_size: frames held for a slow consumer before the oldest is dropped.
    """

    def __init__(
        self,
        name: str,
        *,
        model: UvcModel,
        device: str = "/dev/video0",
        open_capture: Callable[[str, UvcModel], Capture] = open_v4l2,
        queue_size: int = 4,
    ) -> None:
        super().__init__(name, queue_size=queue_size)
        self.model: UvcModel = model
        self.device = device
        self._open_capture = open_capture
        self._capture: Capture | None = None

    async def _open(self) -> None:
        path = f"/dev/video{self.device}" if self.device.isdigit() else self.device
        if not os.path.exists(path):
            raise SourceUnavailableError(self.name, f"no such video device: {path}", UnavailableReason.ABSENT)
        if not os.access(path, os.R_OK | os.W_OK):
            raise SourceUnavailableError(
                self.name, f"may not open {path} (add the user to the 'video' group)", UnavailableReason.PERMISSION
            )
        capture = await asyncio.to_thread(self._open_capture, self.device, self.model)
        self._capture = capture
        if not capture.isOpened():
            raise SourceUnavailableError(
                self.name, f"cannot open {path}: busy, or not a capture device", UnavailableReason.BUSY
            )
        self._start_reader(self._reader, "uvc", capture)

    async def _close(self) -> None:
        await self._join_reader()
        capture, self._capture = self._capture, None
        if capture is not None:
            await asyncio.to_thread(capture.release)

    def _count_threadsafe(self, kind: str, message: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._count_decode_error, kind, message)

    def _decode(self, frame: npt.NDArray[np.generic], width: int, height: int) -> ThermalFrame:
        if self.model == "purethermal":
            raw, kelvin_per_count = decode_y16(frame, width, height), 0.01
        else:
            raw, kelvin_per_count = decode_p2pro(frame), 1.0 / 64.0
        celsius = to_celsius(raw, kelvin_per_count)
        raw.flags.writeable = False
        celsius.flags.writeable = False
        return ThermalFrame(
            t_mono=time.monotonic_ns(),
            t_wall=time.time(),
            source=self.name,
            seq=self._next_seq(),
            celsius=celsius,
            raw=raw,
            meta={"device": self.device, "model": self.model},
        )

    def _reader(self, capture: Capture) -> None:
        try:
            self._read_loop(capture)
        except Exception as exc:  # a bug, not a device condition: log once, let the supervisor restart
            _log.exception("%s: reader thread failed", self.name)
            self._fail_threadsafe(exc)

    def _read_loop(self, capture: Capture) -> None:
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        failed = 0
        while not self._stop.is_set():
            ok, frame = capture.read()
            if not ok or frame is None:
                failed += 1
                if failed >= _MAX_FAILED_READS:
                    self._fail_threadsafe(
                        SourceUnavailableError(
                            self.name,
                            f"{self.device}: no frames ({failed} reads failed)",
                            UnavailableReason.DISCONNECTED,
                        )
                    )
                    return
                continue
            failed = 0
            try:
                self._offer_threadsafe(self._decode(frame, width, height))
            except ValueError as exc:
                self._count_threadsafe("frame-size", str(exc))
