"""The Source lifecycle, as aiomqtt's client tests it, over every source kind: one matrix, no copies.

Reusable, not reentrant; ``__aexit__`` is safe without an enter and twice; a failed ``__aenter__`` leaves
the source ready to retry; cancelling a reader mid-iteration propagates and releases the device. Each
kind fakes only its device at the lowest level, as its own test file does (a bumble radio under the real
bleak client, pyusb's backend, the OpenCV capture object, a TCP server, real files).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
import sys
import threading
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from bumble import gatt

from drivers.base import Source
from drivers.ble_thermometer import BleThermometerSource
from drivers.e4_ble import E4BleSource
from drivers.e4_csv import E4CsvSource
from drivers.e4_server import E4ServerSource
from drivers.flir_jpeg import FlirJpegSource
from drivers.flirone import FlirOneSource
from drivers.picamera import PiCameraSource
from drivers.replay import ReplaySource
from drivers.synthetic import SimulatedRig
from drivers.uvc_thermal import UvcThermalSource
from drivers.video_file import VideoFileSource
from drivers.webcam import WebcamSource
from edge.recorder import Recorder
from fusion.errors import SourceUnavailableError
from fusion.samples import SkinTemperature
from tests.ble_backend import VirtualPeripheral
from tests.test_ble_sources import _char, _ht_packet, virtual_rig
from tests.test_e4_server import FakeE4Server
from tests.test_flirone import PLANCK, ReplayBackend, capture_reads
from tests.test_picamera import CameraModule, FakePicamera2
from tests.test_uvc_thermal import StandInCamera, p2pro_frame
from tests.test_video_file import _write_video


@dataclass
class Kit:
    """One source kind's device, faked at its lowest level.

    ``make()`` builds a source whose device is there and streams; ``make_absent()`` one whose device is
    missing until ``plug()`` (None: this kind cannot be absent); ``released(source)`` says whether what the
    source held (handles, threads, links) is let go.
    """

    make: Callable[[], Source[Any]]
    make_absent: Callable[[], Source[Any]] | None = None
    plug: Callable[[], Awaitable[None]] | None = None
    released: Callable[[Source[Any]], bool] = lambda _source: True


@contextlib.asynccontextmanager
async def _synthetic(_tmp: Path, _request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    yield Kit(make=lambda: SimulatedRig(realtime=True, webcam=False))


@contextlib.asynccontextmanager
async def _replay(tmp: Path, _request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    def record(path: Path) -> None:
        with Recorder(path) as recorder:
            for k in range(50):
                t_mono = 5_000_000_000 + k * 250_000_000
                recorder.write(SkinTemperature(t_mono=t_mono, t_wall=1.7e9, source="band", seq=k, celsius=33.0))

    record(tmp / "present")

    async def plug() -> None:
        record(tmp / "late")

    yield Kit(
        make=lambda: ReplaySource("replay", path=tmp / "present", speed=1.0),
        make_absent=lambda: ReplaySource("replay", path=tmp / "late", speed=1.0),
        plug=plug,
    )


@contextlib.asynccontextmanager
async def _flirone(_tmp: Path, request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    reads = capture_reads(request.getfixturevalue("shared_data"))
    backends: list[ReplayBackend] = []

    def make(present: bool = True) -> FlirOneSource:
        backends.append(ReplayBackend(reads, present=present))
        return FlirOneSource("thermal", planck=PLANCK, backend=backends[-1], queue_size=32)

    async def plug() -> None:
        backends[-1].present = True

    def released(_source: Source[Any]) -> bool:
        threads = any(t.name == "thermal-usb" for t in threading.enumerate())
        return not threads and all(b.handles_open == 0 for b in backends)

    yield Kit(make=make, make_absent=lambda: make(present=False), plug=plug, released=released)


@contextlib.asynccontextmanager
async def _flir_jpeg(tmp: Path, request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    photo = request.getfixturevalue("shared_data") / "flirone" / "radiometric" / "flir_example.jpg"

    async def plug() -> None:
        shutil.copy(photo, tmp / "later.jpg")

    yield Kit(
        make=lambda: FlirJpegSource("thermal", path=photo, rate_hz=100.0),
        make_absent=lambda: FlirJpegSource("thermal", path=tmp / "later.jpg", rate_hz=100.0),
        plug=plug,
        released=lambda source: isinstance(source, FlirJpegSource) and source._task is None,
    )


@contextlib.asynccontextmanager
async def _uvc_thermal(tmp: Path, _request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    device = tmp / "video7"
    device.touch()
    cameras: list[StandInCamera] = []

    def make(opened: bool = True) -> UvcThermalSource:
        cameras.append(StandInCamera([p2pro_frame(np.full((192, 256), 30.0))] * 300, 256, 384, opened=opened))
        camera = cameras[-1]
        return UvcThermalSource("thermal", model="p2pro", device=str(device), open_capture=lambda _d, _m: camera)

    async def plug() -> None:
        cameras[-1].opened = True

    def released(_source: Source[Any]) -> bool:
        threads = any(t.name == "thermal-uvc" for t in threading.enumerate())
        return not threads and all(c.released.is_set() for c in cameras)

    yield Kit(make=make, make_absent=lambda: make(opened=False), plug=plug, released=released)


async def _feed(peripherals: list[tuple[VirtualPeripheral, gatt.Characteristic[bytes], bytes]]) -> None:
    """Peripherals keep sending readings to whoever subscribed, as real ones do."""
    while True:
        await asyncio.sleep(0.05)
        for peripheral, char, packet in peripherals:
            if peripheral.connected:
                await peripheral.send(char, packet)


@contextlib.asynccontextmanager
async def _ble(kind: str) -> AsyncIterator[Kit]:
    async with virtual_rig() as rig:
        client, scanner = rig.radio.backends()
        e4_packet = struct.pack("<4H", 15310, 15310, 15310, 15310) + b"\x00\x01\x02\x03"
        peripherals = [(rig.thermo, rig.thermo_char, _ht_packet(365)), (rig.e4, rig.e4_char, e4_packet)]

        def make(device_name: str | None = None) -> Source[Any]:
            options: dict[str, Any] = {"client_backend": client, "scanner_backend": scanner}
            if kind == "e4":
                return E4BleSource("wristband", device_name=device_name or "Empatica E4", scan_timeout_s=1.0, **options)
            return BleThermometerSource("skin", device_name=device_name or "VE Thermo", scan_timeout_s=1.0, **options)

        async def plug() -> None:
            char = _char(
                "2A1C" if kind != "e4" else "3EA6",
                rig.thermo_char.properties if kind != "e4" else rig.e4_char.properties,
            )
            service = "1809" if kind != "e4" else "3EA0"
            late = await rig.radio.add_peripheral("Late", "F3:F3:F3:F3:F3:F3", [gatt.Service(service, [char])])
            if kind == "e4":
                command: gatt.Characteristic[bytes] = gatt.Characteristic(
                    "3E71",
                    gatt.Characteristic.Properties.WRITE,
                    gatt.Characteristic.WRITEABLE,
                    late.recording_write("3e71"),
                )
                late.device.add_service(gatt.Service("3E70", [command]))
            peripherals.append((late, char, peripherals[1 if kind == "e4" else 0][2]))

        def absent() -> Source[Any]:
            source = make(device_name="Late")
            source._scan_timeout_s = 0.2  # type: ignore[attr-defined]  # a short scan for the absent case
            return source

        def released(source: Source[Any]) -> bool:
            return not getattr(source, "connected", True)

        feeder = asyncio.create_task(_feed(peripherals))
        try:
            yield Kit(make=make, make_absent=absent, plug=plug, released=released)
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder


@contextlib.asynccontextmanager
async def _e4_ble(_tmp: Path, _request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    async with _ble("e4") as kit:
        yield kit


@contextlib.asynccontextmanager
async def _ble_thermometer(_tmp: Path, _request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    async with _ble("ble-thermometer") as kit:
        yield kit


@contextlib.asynccontextmanager
async def _e4_server(_tmp: Path, _request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    server = FakeE4Server()
    await server.start()
    gone = FakeE4Server()
    await gone.start()
    gone_port = gone.port
    await gone.stop()
    servers = [server]

    async def plug() -> None:
        late = FakeE4Server()
        late.server = await asyncio.start_server(late._client, "127.0.0.1", gone_port)
        servers.append(late)

    def make(port: int) -> E4ServerSource:
        return E4ServerSource("wristband", port=port, reply_timeout_s=1.0)

    try:
        yield Kit(
            make=lambda: make(server.port),
            make_absent=lambda: make(gone_port),
            plug=plug,
            released=lambda source: isinstance(source, E4ServerSource) and source._writer is None,
        )
    finally:
        for s in servers:
            await s.stop()


@contextlib.asynccontextmanager
async def _e4_csv(tmp: Path, _request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    text = "1000\n4\n" + "30\n" * 100
    (tmp / "TEMP.csv").write_text(text)

    async def plug() -> None:
        (tmp / "LATE.csv").write_text(text)

    yield Kit(
        make=lambda: E4CsvSource("wristband", path=tmp / "TEMP.csv", speed=1.0),
        make_absent=lambda: E4CsvSource("wristband", path=tmp / "LATE.csv", speed=1.0),
        plug=plug,
        released=lambda source: isinstance(source, E4CsvSource) and source._file is None,
    )


@contextlib.asynccontextmanager
async def _webcam(tmp: Path, _request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    video = _write_video(tmp / "clip.avi", 200)

    async def plug() -> None:
        shutil.copy(video, tmp / "late.avi")

    yield Kit(
        make=lambda: WebcamSource("webcam", device=str(video), queue_size=16),
        make_absent=lambda: WebcamSource("webcam", device=str(tmp / "late.avi"), queue_size=16),
        plug=plug,
        released=lambda source: isinstance(source, WebcamSource) and source._thread is None and source._cap is None,
    )


@contextlib.asynccontextmanager
async def _picamera(_tmp: Path, _request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    present, absent = CameraModule(), CameraModule()
    absent.connected = []

    def make(hardware: CameraModule) -> Source[Any]:
        # Each source sees its own module: the fake class's hardware is swapped in by the open itself.
        source = PiCameraSource("cam", width=32, height=24, queue_size=16)
        original = source._open_camera

        def open_camera() -> Any:
            FakePicamera2.hardware = hardware
            return original()

        source._open_camera = open_camera  # type: ignore[method-assign]
        return source

    async def plug() -> None:
        absent.connected = [{"Model": "imx708", "Num": 0}]

    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    saved = FakePicamera2.hardware
    with mock.patch.dict(sys.modules, {"picamera2": module}):
        try:
            yield Kit(
                make=lambda: make(present),
                make_absent=lambda: make(absent),
                plug=plug,
                released=lambda source: isinstance(source, PiCameraSource)
                and source._thread is None
                and source._camera is None
                and all(c.closed for c in present.open_cameras + absent.open_cameras),
            )
        finally:
            FakePicamera2.hardware = saved


@contextlib.asynccontextmanager
async def _video_file(tmp: Path, _request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    video = _write_video(tmp / "clip.avi", 200)

    async def plug() -> None:
        shutil.copy(video, tmp / "late.avi")

    yield Kit(
        make=lambda: VideoFileSource("cam", path=video, realtime=True),
        make_absent=lambda: VideoFileSource("cam", path=tmp / "late.avi", realtime=True),
        plug=plug,
    )


KITS = {
    "synthetic": _synthetic,
    "replay": _replay,
    "flirone": _flirone,
    "flir-jpeg": _flir_jpeg,
    "uvc-thermal": _uvc_thermal,
    "e4": _e4_ble,
    "ble-thermometer": _ble_thermometer,
    "e4-server": _e4_server,
    "e4-csv": _e4_csv,
    "webcam": _webcam,
    "picamera": _picamera,
    "video-file": _video_file,
}


def test_every_configurable_kind_is_in_the_matrix() -> None:
    from typing import get_args

    from edge.config import SourceConfig

    union = get_args(SourceConfig)[0]  # Annotated[A | B | ..., Field(discriminator="kind")]
    kinds = {get_args(cls.model_fields["kind"].annotation)[0] for cls in get_args(union)}
    assert kinds == set(KITS)


@pytest.fixture(params=list(KITS))
async def kit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Kit]:
    async with KITS[request.param](tmp_path, request) as kit:
        yield kit


async def _first(source: Source[Any]) -> object:
    async with asyncio.timeout(10):
        return await anext(aiter(source.samples()))


async def test_enter_read_exit(kit: Kit) -> None:
    source = kit.make()
    async with source:
        assert await _first(source) is not None
    assert kit.released(source)


async def test_exit_without_enter_and_twice(kit: Kit) -> None:
    source = kit.make()
    await source.__aexit__(None, None, None)
    await source.__aexit__(None, None, None)
    with pytest.raises(RuntimeError, match="async with"):
        await _first(source)
    async with source:
        pass
    await source.__aexit__(None, None, None)
    assert kit.released(source)


async def test_cancel_mid_read_propagates_and_releases(kit: Kit) -> None:
    source = kit.make()
    got = asyncio.Event()

    async def consume() -> None:
        async with source:
            async for _ in source.samples():
                got.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert kit.released(source)


async def test_retry_after_a_failed_enter(kit: Kit) -> None:
    if kit.make_absent is None or kit.plug is None:
        pytest.skip("this kind has no device that can be absent")
    source = kit.make_absent()
    with pytest.raises(SourceUnavailableError):
        await source.__aenter__()
    await source.__aexit__(None, None, None)
    await kit.plug()
    async with source:
        assert await _first(source) is not None
    assert kit.released(source)


async def test_reentry_refused_and_reusable_after_exit(kit: Kit) -> None:
    source = kit.make()
    async with source:
        with pytest.raises(RuntimeError, match="not reentrant"):
            await source.__aenter__()
    async with source:
        pass
    assert kit.released(source)
