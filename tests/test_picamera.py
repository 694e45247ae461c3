"""The Pi Camera Module source with picamera2 faked at its Python surface (libcamera and the sensor cannot exist here).

The stand-in keeps picamera2's calls and data as the real one gives them: ``global_camera_info()`` lists
dicts, ``RGB888`` arrays are B, G, R in memory, a request carries ``SensorTimestamp`` in CLOCK_MONOTONIC ns
and must be released. Unverified on a real Pi (the README says so).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from drivers.picamera import PiCameraSource
from edge.build import build_source
from edge.config import load_config
from fusion.errors import SourceUnavailableError, UnavailableReason
from fusion.samples import VisibleFrame


class CameraModule:
    """The hardware: which modules are on the ribbon connectors and what the sensor sees."""

    def __init__(self, model: str = "imx708", mono: bool = False) -> None:
        self.connected = [{"Model": model, "Num": 0}]
        self.mono = mono
        self.fail_after: int | None = None  # captures before the cable "comes loose"
        self.busy = False
        self.open_cameras: list[FakePicamera2] = []
        self.unreleased = 0
        self.lock = threading.Lock()


class FakeRequest:
    def __init__(self, array: npt.NDArray[Any], sensor_ns: int, hardware: CameraModule) -> None:
        self._array, self._sensor_ns, self._hardware = array, sensor_ns, hardware
        with hardware.lock:
            hardware.unreleased += 1

    def make_array(self, stream: str) -> npt.NDArray[Any]:
        assert stream == "main"
        return self._array

    def get_metadata(self) -> dict[str, object]:
        return {"SensorTimestamp": self._sensor_ns, "ExposureTime": 10000}

    def release(self) -> None:
        with self._hardware.lock:
            self._hardware.unreleased -= 1


class FakePicamera2:
    hardware = CameraModule()

    @staticmethod
    def global_camera_info() -> list[dict[str, object]]:
        return list(FakePicamera2.hardware.connected)

    def __init__(self, camera_num: int = 0) -> None:
        if camera_num >= len(self.hardware.connected):
            raise IndexError("list index out of range")  # as picamera2 does
        self.camera_config: dict[str, Any] | None = None
        self.started = False
        self.closed = False
        self.captures = 0
        self.hardware.open_cameras.append(self)

    def create_video_configuration(self, main: dict[str, Any], controls: dict[str, Any]) -> dict[str, Any]:
        return {"main": dict(main), "controls": dict(controls)}

    def configure(self, config: dict[str, Any]) -> None:
        if self.hardware.busy:
            raise RuntimeError("Failed to acquire camera: Device or resource busy")
        fmt = "R8" if self.hardware.mono else config["main"]["format"]
        self.camera_config = {**config, "main": {**config["main"], "format": fmt}}

    def start(self) -> None:
        assert self.camera_config is not None, "start() before configure()"
        self.started = True

    def capture_request(self) -> FakeRequest:
        assert self.started and not self.closed
        if self.hardware.fail_after is not None and self.captures >= self.hardware.fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        assert self.camera_config is not None
        width, height = self.camera_config["main"]["size"]
        time.sleep(1 / 30)
        k = self.captures
        self.captures += 1
        if self.hardware.mono:
            array = np.full((height, width), 10 * k % 256, np.uint8)
        else:  # RGB888 is B, G, R in memory
            array = np.zeros((height, width, 3), np.uint8)
            array[:, :, 0], array[:, :, 1], array[:, :, 2] = 200, 100, 10 * k % 256
        return FakeRequest(array, time.monotonic_ns() - 5_000_000, self.hardware)  # exposed 5 ms ago

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def camera_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[CameraModule]:
    """A fresh Camera Module behind a stand-in ``picamera2`` module."""
    hardware = CameraModule()
    monkeypatch.setattr(FakePicamera2, "hardware", hardware)
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    yield hardware


async def _take(source: PiCameraSource, n: int) -> list[VisibleFrame]:
    it = aiter(source.samples())
    return [await asyncio.wait_for(anext(it), 5.0) for _ in range(n)]


async def test_colour_frames_in_opencv_order_with_sensor_time(camera_module: CameraModule) -> None:
    source = PiCameraSource("cam", width=64, height=48, fps=30.0, queue_size=16)
    async with source:
        before = time.monotonic_ns()
        frames = await _take(source, 4)
    first = frames[0]
    assert first.image.shape == (48, 64, 3) and first.image.dtype == np.uint8 and not first.image.flags.writeable
    assert tuple(int(v) for v in first.image[0, 0]) == (200, 100, 0)  # B, G, R as OpenCV wants, not swapped
    assert [int(f.image[0, 0, 2]) for f in frames] == [0, 10, 20, 30]
    assert [f.seq for f in frames] == [0, 1, 2, 3] and not first.greyscale
    assert all(f.t_mono < before + 1_000_000_000 for f in frames)
    assert frames[-1].t_mono < time.monotonic_ns() - 4_000_000, "the sensor's time, not the arrival time"
    assert first.meta["model"] == "imx708" and (first.meta["width"], first.meta["height"]) == (64, 48)
    camera = camera_module.open_cameras[0]
    assert camera.closed and not camera.started and camera_module.unreleased == 0


async def test_a_mono_sensor_gives_greyscale_frames(camera_module: CameraModule) -> None:
    camera_module.mono = True
    async with PiCameraSource("cam", width=32, height=24) as source:
        frame = (await _take(source, 2))[1]
    assert frame.greyscale and frame.image.shape == (24, 32, 3)
    assert np.all(frame.image == 10)


async def test_no_camera_and_no_picamera2_are_absent_with_the_fix(
    camera_module: CameraModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    camera_module.connected = []
    with pytest.raises(SourceUnavailableError, match=r"no camera 0 on libcamera.*ribbon") as info:
        await PiCameraSource("cam").__aenter__()
    assert info.value.reason is UnavailableReason.ABSENT
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 raises ImportError
    with pytest.raises(SourceUnavailableError, match=r"python3-picamera2.*--system-site-packages"):
        await PiCameraSource("cam").__aenter__()


async def test_a_busy_camera_is_closed_again(camera_module: CameraModule) -> None:
    camera_module.busy = True
    with pytest.raises(SourceUnavailableError, match=r"cannot start.*busy"):
        await PiCameraSource("cam").__aenter__()
    assert camera_module.open_cameras[0].closed


async def test_a_failed_capture_is_a_disconnect_and_reopen_resumes(camera_module: CameraModule) -> None:
    camera_module.fail_after = 3
    source = PiCameraSource("cam", width=32, height=24, queue_size=16)
    async with source:
        frames = await _take(source, 3)
        with pytest.raises(SourceUnavailableError, match=r"capture failed: Camera frontend") as info:
            await _take(source, 1)
    assert info.value.reason is UnavailableReason.DISCONNECTED and source.capture_failures == 1
    camera_module.fail_after = None
    async with source:  # the supervisor's reopen
        frames += await _take(source, 2)
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    assert len(camera_module.open_cameras) == 2 and all(c.closed for c in camera_module.open_cameras)


def test_config_builds_the_source() -> None:
    cfg = load_config(None, {"device_id": "pi", "sources": [{"kind": "picamera", "camera": 1, "fps": 15}]})
    source = build_source(cfg.sources[0])
    assert isinstance(source, PiCameraSource) and source.name == "webcam"
    assert source._camera_index == 1 and source._requested == (640, 480, 15.0)
