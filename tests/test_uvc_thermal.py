"""UVC thermal cameras: the pure decoders on constructed frames, and the source over a stand-in camera.

No PureThermal or P2 Pro exists here: the source's tests replace only the OpenCV capture object
(``open_capture``), the lowest level, with one that returns frames laid out as the cameras send them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from drivers.uvc_thermal import UvcModel, UvcThermalSource, decode_p2pro, decode_y16, to_celsius
from fusion.errors import SourceUnavailableError, UnavailableReason


def y16_frame(celsius: npt.NDArray[np.float64], telemetry_rows: int = 0) -> npt.NDArray[np.uint16]:
    centikelvin = np.round((celsius + 273.15) * 100).astype(np.uint16)
    return np.vstack([centikelvin, np.full((telemetry_rows, celsius.shape[1]), 0xBEEF, np.uint16)])


def p2pro_frame(celsius: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """256×384 YUYV as OpenCV gives it unconverted: upper half the camera's rendering, lower half 1/64 K."""
    upper = np.full((192, 256), 0x8010, "<u2")  # grey YUYV rendering, not used
    lower = np.round((celsius + 273.15) * 64).astype("<u2")
    return np.vstack([upper, lower]).view(np.uint8).reshape(384, 256, 2)


def test_y16_centikelvin_to_celsius() -> None:
    scene = np.linspace(20.0, 37.0, 160 * 120).reshape(120, 160)
    raw = decode_y16(y16_frame(scene), 160, 120)
    np.testing.assert_allclose(to_celsius(raw, 0.01), scene, atol=0.006)
    assert raw[0, 0] == 29315


def test_y16_drops_telemetry_rows_and_accepts_raw_bytes() -> None:
    scene = np.full((60, 80), 36.6)
    frame = y16_frame(scene, telemetry_rows=2)
    raw = decode_y16(frame.view(np.uint8).reshape(1, -1), 80, 62)  # bytes, as some builds return them
    assert raw.shape == (60, 80)
    np.testing.assert_allclose(to_celsius(raw, 0.01), scene, atol=0.006)
    with pytest.raises(ValueError, match="expected 160×120 16-bit"):
        decode_y16(frame, 160, 120)


def test_p2pro_lower_half_is_the_temperature() -> None:
    scene = np.tile(np.linspace(15.0, 45.0, 256), (192, 1))
    raw = decode_p2pro(p2pro_frame(scene))
    assert raw.shape == (192, 256)
    np.testing.assert_allclose(to_celsius(raw, 1 / 64), scene, atol=1 / 64)
    assert to_celsius(raw, 1 / 64).dtype == np.float32
    with pytest.raises(ValueError, match="256×384 YUYV"):
        decode_p2pro(np.zeros((192, 256, 2), np.uint8))


class StandInCamera:
    """An OpenCV capture returning prepared frames at ~100 fps, then failing reads (unplugged)."""

    def __init__(self, frames: list[npt.NDArray[np.generic]], width: int, height: int, opened: bool = True) -> None:
        self.frames = list(frames)
        self.size = {cv2.CAP_PROP_FRAME_WIDTH: float(width), cv2.CAP_PROP_FRAME_HEIGHT: float(height)}
        self.opened = opened
        self.released = threading.Event()

    def isOpened(self) -> bool:  # OpenCV's name
        return self.opened

    def read(self) -> tuple[bool, npt.NDArray[np.generic] | None]:
        time.sleep(0.01)
        if not self.frames:
            return False, None
        return True, self.frames.pop(0)

    def get(self, prop: int) -> float:
        return self.size.get(prop, 0.0)

    def release(self) -> None:
        self.released.set()


def _source(tmp_path: Path, camera: StandInCamera, model: UvcModel = "p2pro") -> UvcThermalSource:
    device = tmp_path / "video7"
    device.touch()

    def open_capture(dev: str, m: UvcModel) -> StandInCamera:
        assert (dev, m) == (str(device), model)
        return camera

    return UvcThermalSource("thermal", model=model, device=str(device), open_capture=open_capture)


async def test_p2pro_source_yields_celsius_then_reports_the_unplug(tmp_path: Path) -> None:
    scene = np.full((192, 256), 34.0)
    bad = np.zeros(100, np.uint8)
    camera = StandInCamera([p2pro_frame(scene), bad, p2pro_frame(scene + 1)], 256, 384)
    source = _source(tmp_path, camera)
    frames = []
    async with source:
        with pytest.raises(SourceUnavailableError) as caught:
            async with asyncio.timeout(5):
                async for frame in source.samples():
                    frames.append(frame)
    assert caught.value.reason is UnavailableReason.DISCONNECTED
    assert [float(f.celsius.mean()) for f in frames] == pytest.approx([34.0, 35.0], abs=0.02)
    assert source.decode_errors["frame-size"] == 1
    assert not frames[0].celsius.flags.writeable and frames[0].meta["model"] == "p2pro"
    assert camera.released.is_set()


async def test_missing_device_is_absent() -> None:
    source = UvcThermalSource("thermal", model="purethermal", device="/dev/video987")
    with pytest.raises(SourceUnavailableError) as caught:
        await source.__aenter__()
    assert caught.value.reason is UnavailableReason.ABSENT
    assert str(caught.value) == "thermal: no such video device: /dev/video987"
    numbered = UvcThermalSource("thermal", model="purethermal", device="987")
    with pytest.raises(SourceUnavailableError, match="/dev/video987"):
        await numbered.__aenter__()


async def test_device_that_will_not_open_is_busy_and_retry_works(tmp_path: Path) -> None:
    camera = StandInCamera([y16_frame(np.full((120, 160), 30.0))] * 3, 160, 120, opened=False)
    source = _source(tmp_path, camera, model="purethermal")
    with pytest.raises(SourceUnavailableError) as caught:
        async with source:
            pass
    assert caught.value.reason is UnavailableReason.BUSY and camera.released.is_set()
    camera.opened = True
    async with source:
        async with asyncio.timeout(5):
            frame = await anext(source.samples())
    assert float(frame.celsius[0, 0]) == pytest.approx(30.0, abs=0.01)


async def test_real_v4l2_open_of_a_file_that_is_no_camera(tmp_path: Path) -> None:
    not_a_camera = tmp_path / "video5"
    not_a_camera.write_bytes(b"")
    source = UvcThermalSource("thermal", model="purethermal", device=str(not_a_camera))  # real OpenCV
    with pytest.raises(SourceUnavailableError) as caught:
        async with source:
            pass
    assert caught.value.reason is UnavailableReason.BUSY
    assert str(caught.value) == f"thermal: cannot open {not_a_camera}: busy, or not a capture device"
