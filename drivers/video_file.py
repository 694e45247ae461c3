"""A video file played as a webcam: ``vitaledge run`` and the evaluations on recorded faces.

Frames are decoded by OpenCV in one reader thread. Frame ``i`` gets ``t_mono = t0 + i / fps`` (t0: the
monotonic clock when the source opened; fps: the file's rate unless overridden), so fusion sees the
recording's own timeline whatever the playback speed. ``realtime`` paces frames like a camera (a slow
consumer loses the oldest frames, counted in ``dropped``); otherwise frames come as fast as the
consumer takes them and none is dropped. The stream ends at the end of the file unless ``loop``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np

from drivers.base import QueueSource
from fusion.errors import SourceError, SourceUnavailableError, UnavailableReason
from fusion.greyscale import grey_as_bgr, is_greyscale
from fusion.samples import VisibleFrame

__all__ = ["VideoFileSource"]

_NS_PER_S = 1_000_000_000


class _EndOfVideo(Exception):
    """Raised through the queue when the file is exhausted (not an error: ends ``samples()``)."""


class VideoFileSource(QueueSource[VisibleFrame]):
    """Plays a video file as a stream of VisibleFrame samples.

    Args:
        name: configured source name.
        path: the video file (anything OpenCV's FFmpeg backend reads).
        realtime: pace at the file's rate; False: as fast as the consumer takes frames.
        loop: start again at the end (the timeline keeps increasing).
        fps_hz: the frame rate to assume; None: the file's own.
        queue_size: frames buffered between the reader thread and the consumer.
    """

    def __init__(
        self,
        name: str,
        *,
        path: Path,
        realtime: bool = True,
        loop: bool = False,
        fps_hz: float | None = None,
        queue_size: int = 4,
    ) -> None:
        super().__init__(name, queue_size=queue_size)
        if fps_hz is not None and not fps_hz > 0:
            raise ValueError(f"{name}: fps_hz must be positive or None, got {fps_hz}")
        self._path = Path(path)
        self._realtime = realtime
        self._loop_file = loop
        self._fps_override = fps_hz
        self.fps_hz = 0.0
        self._cap: cv2.VideoCapture | None = None
        self._slots = threading.Semaphore(queue_size)  # unpaced mode: back-pressure instead of drops

    async def _open(self) -> None:
        if not self._path.is_file():
            raise SourceUnavailableError(self.name, f"{self._path}: no such file", UnavailableReason.ABSENT)
        cap = cv2.VideoCapture(str(self._path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(self.name, f"{self._path}: not a video OpenCV can decode")
        fps = self._fps_override or float(cap.get(cv2.CAP_PROP_FPS))
        if not fps > 0:
            cap.release()
            raise SourceError(self.name, f"{self._path}: the file gives no frame rate; set fps_hz")
        self.fps_hz = fps
        self._cap = cap
        self._slots = threading.Semaphore(self._queue_size)
        self._start_reader(self._reader, "video-file")

    async def _close(self) -> None:
        self._stop.set()
        self._slots.release()  # wake a reader waiting for room
        await self._join_reader()
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    async def samples(self) -> AsyncIterator[VisibleFrame]:
        """Yield the frames in order; ends at the end of the file (unless looping)."""
        try:
            async for frame in super().samples():
                if not self._realtime:
                    self._slots.release()
                yield frame
        except _EndOfVideo:
            return

    def _reader(self) -> None:  # thread
        cap, fps = self._cap, self.fps_hz
        assert cap is not None
        t0_mono, t0_wall = time.monotonic_ns(), time.time()
        i = 0
        while not self._stop.is_set():
            ok, image = cap.read()
            if not ok:
                if self._loop_file and i > 0 and cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    ok, image = cap.read()
                if not ok:
                    if self._realtime or self._wait_for_room():
                        self._fail_threadsafe(_EndOfVideo())
                    return
            offset_ns = round(i * _NS_PER_S / fps)
            if self._realtime:
                delay_s = (t0_mono + offset_ns - time.monotonic_ns()) / _NS_PER_S
                if delay_s > 0 and self._stop.wait(delay_s):
                    return
            elif not self._wait_for_room():
                return
            frame = np.ascontiguousarray(image, dtype=np.uint8)
            if frame.ndim == 2:
                frame = grey_as_bgr(frame)
            frame.flags.writeable = False
            self._offer_threadsafe(
                VisibleFrame(
                    t_mono=t0_mono + offset_ns,
                    t_wall=t0_wall + offset_ns / _NS_PER_S,
                    source=self.name,
                    seq=i,
                    image=frame,
                    greyscale=is_greyscale(frame),
                    meta={"frame_index": i},
                )
            )
            i += 1

    def _wait_for_room(self) -> bool:  # thread; False when stopping
        while not self._slots.acquire(timeout=0.2):
            if self._stop.is_set():
                return False
        return not self._stop.is_set()
