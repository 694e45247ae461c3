"""A webcam through OpenCV, read by one thread that hands the newest frame to the event loop.

The requested resolution and frame rate are asked for, and what the camera actually gives is
logged once per (re)open and carried in every frame's ``meta`` (``width``, ``height``, ``fps``,
``fps_requested`` ...). A failed read (camera unplugged, driver hiccup) closes the capture and ends
``samples()`` with ``SourceUnavailableError(DISCONNECTED)``; the supervisor reopens the source with the
shared backoff. A device that is absent when the source is entered raises
``SourceUnavailableError(ABSENT)``. The target may also be a video file (tests, demos): it is paced at
its own frame rate and its end is a failed read like an unplugged camera's, so the supervisor starts it
again from the beginning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from pathlib import Path
from types import MappingProxyType

import cv2
import numpy as np
import numpy.typing as npt

from drivers.base import QueueSource
from fusion.errors import SourceUnavailableError, UnavailableReason
from fusion.greyscale import grey_as_bgr, is_greyscale
from fusion.samples import VisibleFrame

__all__ = ["WebcamSource"]

_log = logging.getLogger(__name__)


class WebcamSource(QueueSource[VisibleFrame]):
    """Frames from a camera (index, /dev/videoN) or a video file, newest first.

    Args:
        name: configured source name.
        device: "0" or 0 (camera index), "/dev/video2", or a video file path.
        width: requested frame width; None: the camera's default.
        height: requested frame height; None: the camera's default.
        fps: requested frame rate; None: the camera's default.
        queue_size: frames kept for a slow consumer; the oldest is dropped and counted.
    """

    def __init__(
        self,
        name: str,
        *,
        device: str | int = 0,
        width: int | None = 640,
        height: int | None = 480,
        fps: float | None = 30.0,
        queue_size: int = 2,
    ) -> None:
        super().__init__(name, queue_size=queue_size)
        self._device = device
        self._requested = (width, height, fps)
        self._cap: cv2.VideoCapture | None = None
        self._meta: MappingProxyType[str, object] = MappingProxyType({})
        self._is_file = False
        self.read_failures = 0

    @property
    def actual(self) -> MappingProxyType[str, object]:
        """What the camera gives (width, height, fps, backend), as of the latest open."""
        return self._meta

    def _target(self) -> tuple[str | int, int]:
        device = self._device
        if isinstance(device, int) or re.fullmatch(r"\d+", device):
            return int(device), cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        if device.startswith("/dev/video"):
            if not os.path.exists(device):
                raise SourceUnavailableError(self.name, f"{device}: no such camera", UnavailableReason.ABSENT)
            if not os.access(device, os.R_OK | os.W_OK):
                raise SourceUnavailableError(
                    self.name, f"{device}: permission denied (join the 'video' group)", UnavailableReason.PERMISSION
                )
            return device, cv2.CAP_V4L2
        if not Path(device).is_file():
            raise SourceUnavailableError(self.name, f"{device}: no such camera or video file", UnavailableReason.ABSENT)
        return device, cv2.CAP_FFMPEG

    def _open_capture(self) -> cv2.VideoCapture:
        """Open and configure the capture (blocking; runs off the loop)."""
        target, api = self._target()
        self._is_file = isinstance(target, str) and not target.startswith("/dev/")
        cap = cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            raise SourceUnavailableError(self.name, f"{target}: cannot open", UnavailableReason.ABSENT)
        width, height, fps = self._requested
        if not self._is_file:
            if width is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height is not None:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps is not None:
                cap.set(cv2.CAP_PROP_FPS, fps)
        actual = {
            "device": str(target),
            "backend": cap.getBackendName(),
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "fps": float(cap.get(cv2.CAP_PROP_FPS)),
            "width_requested": width,
            "height_requested": height,
            "fps_requested": fps,
        }
        self._meta = MappingProxyType(actual)
        _log.info(
            "%s: %s opened at %sx%s %.1f fps (requested %sx%s %s fps)",
            self.name,
            target,
            actual["width"],
            actual["height"],
            actual["fps"],
            width,
            height,
            fps,
        )
        return cap

    async def _open(self) -> None:
        self._cap = await asyncio.to_thread(self._open_capture)
        self._start_reader(self._reader, "webcam")

    async def _close(self) -> None:
        await self._join_reader()
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def _frame(self, image: npt.NDArray[np.uint8], t_mono: int, t_wall: float) -> VisibleFrame:
        greyscale = is_greyscale(image)  # a mono format, or an IR camera's three equal channels
        if image.ndim == 2:
            image = grey_as_bgr(image)
        image.flags.writeable = False
        return VisibleFrame(
            t_mono=t_mono,
            t_wall=t_wall,
            source=self.name,
            seq=self._next_seq(),
            image=image,
            greyscale=greyscale,
            meta=self._meta,
        )

    def _reader(self) -> None:  # thread
        next_due = time.monotonic()
        cap = self._cap
        while cap is not None and not self._stop.is_set():
            ok, image = cap.read()
            t_mono, t_wall = time.monotonic_ns(), time.time()
            if not ok or image is None:
                self.read_failures += 1
                what = "end of the video file" if self._is_file else "read failed (camera unplugged?)"
                if not self._is_file:
                    _log.warning("%s: %s", self.name, what)
                self._fail_threadsafe(SourceUnavailableError(self.name, what, UnavailableReason.DISCONNECTED))
                return
            self._offer_threadsafe(self._frame(np.asarray(image, dtype=np.uint8), t_mono, t_wall))
            fps = float(self._meta.get("fps") or 0.0)  # type: ignore[arg-type]
            if self._is_file and fps > 0:  # a file reads instantly: pace it like the camera it stands for
                next_due = max(next_due + 1.0 / fps, time.monotonic() - 1.0)
                self._stop.wait(max(0.0, next_due - time.monotonic()))
