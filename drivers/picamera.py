"""The Raspberry Pi Camera Module through libcamera, via picamera2, read by one thread.

picamera2 is not on PyPI for the Pi's libcamera build: it comes from Raspberry Pi OS
(``sudo apt install python3-picamera2``), so the venv is made with ``--system-site-packages`` to see it.
It is imported when the source opens, never at start-up elsewhere. Frames are asked for as
``RGB888``, which libcamera lays out B, G, R in memory: OpenCV's order, no conversion. A mono sensor
(``R8``/``R16``, e.g. an OV9281 global-shutter module) gives one channel, marked greyscale.

Each frame's time is the sensor's (``SensorTimestamp``: CLOCK_MONOTONIC ns at the first row, the same
clock as ``time.monotonic_ns()`` here) when it is plausible, else the time it reached us. A failed capture
(ribbon cable, libcamera pipeline error) ends ``samples()`` with ``SourceUnavailableError(DISCONNECTED)``;
the supervisor reopens the camera with the shared backoff.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from drivers.base import QueueSource
from fusion.errors import SourceUnavailableError, UnavailableReason
from fusion.greyscale import grey_as_bgr, is_greyscale
from fusion.samples import VisibleFrame

__all__ = ["PiCameraSource"]

_log = logging.getLogger(__name__)
_NS_PER_S = 1_000_000_000
_INSTALL = (
    "picamera2 is not importable: sudo apt install python3-picamera2, and make the venv with --system-site-packages"
)


class PiCameraSource(QueueSource[VisibleFrame]):
    """Frames from a Pi Camera Module (libcamera), newest first.

    Args:
        name: configured source name.
        camera: libcamera's camera index (0: the first module; a Pi 5 has two connectors).
        width: requested frame width.
        height: requested frame height.
        fps: requested frame rate (libcamera's ``FrameRate`` control).
        queue_size: frames kept for a slow consumer; the oldest is dropped and counted.
    """

    def __init__(
        self,
        name: str,
        *,
        camera: int = 0,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        queue_size: int = 2,
    ) -> None:
        super().__init__(name, queue_size=queue_size)
        self._camera_index = camera
        self._requested = (width, height, fps)
        self._camera: Any = None
        self._meta: MappingProxyType[str, object] = MappingProxyType({})
        self.capture_failures = 0

    @property
    def actual(self) -> MappingProxyType[str, object]:
        """What the camera gives (model, width, height, fps), as of the latest open."""
        return self._meta

    def _open_camera(self) -> Any:
        """Find, configure and start the camera (blocking; runs off the loop)."""
        try:
            picamera2 = importlib.import_module("picamera2")
        except ImportError as exc:
            raise SourceUnavailableError(self.name, _INSTALL, UnavailableReason.ABSENT) from exc
        cameras = list(picamera2.Picamera2.global_camera_info())
        if self._camera_index >= len(cameras):
            found = ", ".join(str(c.get("Model", "?")) for c in cameras) or "none"
            raise SourceUnavailableError(
                self.name,
                f"no camera {self._camera_index} on libcamera (found: {found}); check the ribbon cable",
                UnavailableReason.ABSENT,
            )
        width, height, fps = self._requested
        camera = picamera2.Picamera2(self._camera_index)
        try:
            config = camera.create_video_configuration(
                main={"size": (width, height), "format": "RGB888"}, controls={"FrameRate": fps}
            )
            camera.configure(config)
            camera.start()
        except Exception as exc:  # libcamera raises RuntimeError and others; "busy" is the usual one
            camera.close()
            raise SourceUnavailableError(
                self.name, f"camera {self._camera_index} cannot start: {exc}", UnavailableReason.ABSENT
            ) from exc
        main = camera.camera_config.get("main", {}) if isinstance(camera.camera_config, dict) else {}
        size = main.get("size", (width, height))
        self._meta = MappingProxyType(
            {
                "device": f"picamera:{self._camera_index}",
                "model": str(cameras[self._camera_index].get("Model", "?")),
                "backend": "libcamera",
                "width": int(size[0]),
                "height": int(size[1]),
                "fps": float(fps),
                "width_requested": width,
                "height_requested": height,
                "fps_requested": fps,
            }
        )
        _log.info("%s: %s opened at %sx%s %.1f fps", self.name, self._meta["model"], size[0], size[1], fps)
        return camera

    async def _open(self) -> None:
        self._camera = await asyncio.to_thread(self._open_camera)
        self._start_reader(self._reader, "picamera")

    async def _close(self) -> None:
        await self._join_reader()
        camera, self._camera = self._camera, None
        if camera is not None:
            await asyncio.to_thread(_stop_and_close, camera)

    def _frame(self, array: npt.NDArray[Any], sensor_ns: object, arrived_ns: int) -> VisibleFrame:
        image = np.asarray(array)
        if image.dtype != np.uint8:  # R16 mono: 16-bit container, keep the top 8 bits
            image = (image >> 8).astype(np.uint8)
        if image.ndim == 3 and image.shape[2] == 4:  # XRGB8888 if a tuning forces it: drop the padding
            image = image[:, :, :3]
        greyscale = is_greyscale(image)  # a mono sensor, or a NoIR module at night giving equal channels
        if image.ndim == 2 or image.shape[2] == 1:
            image = grey_as_bgr(image.reshape(image.shape[:2]))
        image = np.ascontiguousarray(image)
        image.flags.writeable = False
        sensed = isinstance(sensor_ns, int) and 0 <= arrived_ns - sensor_ns < _NS_PER_S
        t_mono = sensor_ns if isinstance(sensor_ns, int) and sensed else arrived_ns
        return VisibleFrame(
            t_mono=t_mono,
            t_wall=time.time() - (arrived_ns - t_mono) / _NS_PER_S,
            source=self.name,
            seq=self._next_seq(),
            image=image,
            greyscale=greyscale,
            meta=self._meta,
        )

    def _reader(self) -> None:  # thread
        camera = self._camera
        while camera is not None and not self._stop.is_set():
            try:
                request = camera.capture_request()
                try:
                    array = request.make_array("main")
                    sensor_ns = request.get_metadata().get("SensorTimestamp")
                finally:
                    request.release()
            except Exception as exc:  # whatever libcamera raises, the camera is gone until reopened
                self.capture_failures += 1
                _log.warning("%s: capture failed: %s", self.name, exc)
                self._fail_threadsafe(
                    SourceUnavailableError(self.name, f"capture failed: {exc}", UnavailableReason.DISCONNECTED)
                )
                return
            self._offer_threadsafe(self._frame(array, sensor_ns, time.monotonic_ns()))


def _stop_and_close(camera: Any) -> None:
    try:
        camera.stop()
    finally:
        camera.close()
