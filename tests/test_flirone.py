"""The FLIR ONE driver end to end over real pyusb, with only the USB device faked at the backend level.

``ReplayBackend`` is a pyusb backend (usb.backend.IBackend): it describes a FLIR ONE (configuration 3,
interfaces 0–2, alternate setting 1 with the bulk endpoints) and answers bulk reads on 0x85 with the
real capture's reads in their original sizes. pyusb's own Device, find, claim and alternate-setting
code runs unchanged.
"""

from __future__ import annotations

import array
import asyncio
import errno
import threading
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import usb.backend
import usb.core

from drivers.flirone import FlirOneSource
from fusion.errors import SourceUnavailableError, UnavailableReason
from fusion.samples import PlanckConstants, ThermalFrame

PLANCK = PlanckConstants(
    r1=17837.53125, r2=0.012332781217992306, b=1450.4000244140625, f=1.0, o=-1143.0, provenance="test"
)
ENODEV = usb.core.USBError("No such device (it may have been disconnected)", -4, errno.ENODEV)


def _endpoints(interface: int) -> list[SimpleNamespace]:
    """Bulk IN 0x81/0x83/0x85 and OUT 0x02/0x04/0x06 of interfaces 0/1/2."""
    return [
        SimpleNamespace(
            bLength=7, bDescriptorType=5, bEndpointAddress=address, bmAttributes=2, wMaxPacketSize=512,
            bInterval=0, bRefresh=0, bSynchAddress=0, extra_descriptors=[],
        )
        for address in (0x81 + 2 * interface, 0x02 + 2 * interface)
    ]  # fmt: skip


class ReplayBackend(usb.backend.IBackend):  # type: ignore[misc]  # pyusb is untyped
    """A FLIR ONE at the lowest level pyusb has: replays bulk reads, records the set-up requests."""

    def __init__(self, reads: Sequence[bytes], *, present: bool = True, after: str = "timeout") -> None:
        self.reads = list(reads)
        self.present = present
        self.after = after  # what reads do once the capture is played: "timeout" or "unplug"
        self.open_error: usb.core.USBError | None = None
        self.requests: list[tuple[object, ...]] = []
        self.written: list[bytes] = []
        self.stall_before = -1  # stall the frame endpoint once, when this many reads are left
        self.configuration = 0
        self.altsettings = {0: 0, 1: 0, 2: 0}
        self.drained = threading.Event()
        self.handles_open = 0

    def enumerate_devices(self) -> list[str]:
        return ["flirone"] if self.present else []

    def get_device_descriptor(self, dev: str) -> SimpleNamespace:
        return SimpleNamespace(
            bLength=18, bDescriptorType=1, bcdUSB=0x200, bDeviceClass=0xEF, bDeviceSubClass=2,
            bDeviceProtocol=1, bMaxPacketSize0=64, idVendor=0x09CB, idProduct=0x1996, bcdDevice=0x100,
            iManufacturer=1, iProduct=2, iSerialNumber=3, bNumConfigurations=3, address=5, bus=1,
            port_number=1, port_numbers=(1,), speed=3,
        )  # fmt: skip

    def get_configuration_descriptor(self, dev: str, config: int) -> SimpleNamespace:
        return SimpleNamespace(
            bLength=9, bDescriptorType=2, wTotalLength=0, bNumInterfaces=3, bConfigurationValue=config + 1,
            iConfiguration=0, bmAttributes=0x80, bMaxPower=250, extra_descriptors=[],
        )  # fmt: skip

    def get_interface_descriptor(self, dev: str, intf: int, alt: int, config: int) -> SimpleNamespace:
        """Interface 0 (control) has its endpoints at once; 1 (file I/O) and 2 (frames) in alt 1 only."""
        if intf > 2 or alt > (0 if intf == 0 else 1):
            raise IndexError("no such interface")
        return SimpleNamespace(
            bLength=9, bDescriptorType=4, bInterfaceNumber=intf, bAlternateSetting=alt,
            bNumEndpoints=2 if intf == 0 or alt == 1 else 0, bInterfaceClass=0xFF, bInterfaceSubClass=0xF0,
            bInterfaceProtocol=0, iInterface=0, extra_descriptors=[],
        )  # fmt: skip

    def get_endpoint_descriptor(self, dev: str, ep: int, intf: int, alt: int, config: int) -> SimpleNamespace:
        return _endpoints(intf)[ep]

    def open_device(self, dev: str) -> str:
        if self.open_error is not None:
            raise self.open_error
        self.handles_open += 1
        return "handle"

    def close_device(self, dev_handle: str) -> None:
        self.handles_open -= 1

    def is_kernel_driver_active(self, dev_handle: str, intf: int) -> bool:
        return False

    def set_configuration(self, dev_handle: str, config_value: int) -> None:
        self.requests.append(("configuration", config_value, 0))
        self.configuration = config_value

    def get_configuration(self, dev_handle: str) -> int:
        return self.configuration

    def claim_interface(self, dev_handle: str, intf: int) -> None:
        self.requests.append(("claim", intf, 0))

    def release_interface(self, dev_handle: str, intf: int) -> None:
        self.requests.append(("release", intf, 0))

    def set_interface_altsetting(self, dev_handle: str, intf: int, altsetting: int) -> None:
        self.requests.append(("altsetting", intf, altsetting))
        self.altsettings[intf] = altsetting

    def bulk_write(self, dev_handle: str, ep: int, intf: int, data: array.array[int], timeout: int) -> int:
        self.requests.append(("write", ep, len(data)))
        self.written.append(bytes(data))
        return len(data)

    def ctrl_transfer(
        self, dev_handle: str, bm_request_type: int, b_request: int, w_value: int, w_index: int,
        data: array.array[int], timeout: int,
    ) -> int:  # fmt: skip
        self.requests.append(("control", b_request, w_value, w_index, len(data)))
        return len(data)

    def clear_halt(self, dev_handle: str, ep: int) -> None:
        self.requests.append(("clear_halt", ep, 0))

    def bulk_read(self, dev_handle: str, ep: int, intf: int, buff: array.array[int], timeout: int) -> int:
        if ep in (0x81, 0x83):  # chatter endpoints: nothing to say
            raise usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)
        assert (ep, intf, self.configuration, self.altsettings[2]) == (0x85, 2, 3, 1), "stream not started"
        if self.stall_before == len(self.reads):
            self.stall_before = -1
            raise usb.core.USBError("Pipe error", -9, errno.EPIPE)
        if not self.reads:
            self.drained.set()
            if self.after == "unplug":
                raise ENODEV
            threading.Event().wait(timeout / 1000)
            raise usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)
        data = self.reads.pop(0)
        buff[: len(data)] = array.array("B", data)
        return len(data)


def capture_reads(shared_data: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((shared_data / "flirone" / "usb_capture").glob("*.bin"))]


async def take(source: FlirOneSource, count: int) -> list[ThermalFrame]:
    frames: list[ThermalFrame] = []
    async with asyncio.timeout(10):
        async for frame in source.samples():
            frames.append(frame)
            if len(frames) == count:
                break
    return frames


async def test_real_capture_through_the_driver(shared_data: Path) -> None:
    backend = ReplayBackend(capture_reads(shared_data))
    source = FlirOneSource("thermal", planck=PLANCK, backend=backend, queue_size=32)
    async with source:
        frames = await take(source, 18)
        await asyncio.to_thread(backend.drained.wait, 5)
        await asyncio.sleep(0.3)
        assert source._queue is not None and source._queue.empty()  # 18 unique frames, no more
    assert backend.requests[:12] == [
        ("configuration", 3, 0),
        ("claim", 0, 0),
        ("claim", 1, 0),
        ("claim", 2, 0),
        ("altsetting", 2, 0),
        ("altsetting", 1, 0),
        ("altsetting", 1, 1),
        ("write", 0x02, 16),
        ("write", 0x02, 65),
        ("write", 0x02, 16),
        ("write", 0x02, 51),
        ("altsetting", 2, 1),
    ]
    assert backend.requests[12] == ("control", 0x0B, 1, 2, 2)  # SET_INTERFACE alt 1 on 2, 2-byte data
    assert backend.written[1] == b'{"type":"openFile","data":{"mode":"r","path":"CameraFiles.zip"}}\x00'
    assert backend.written[0][:12] == b"\xcc\x01\x00\x00\x01\x00\x00\x00\x41\x00\x00\x00"
    assert sorted(r for r in backend.requests if r[0] == "release") == [("release", i, 0) for i in range(3)]
    assert backend.handles_open == 0
    assert (source.assembler.frames, source.assembler.duplicates, source.dropped) == (20, 2, 0)
    assert [f.seq for f in frames] == list(range(18))
    assert [f.meta["frame_index"] for f in frames] == [0, *range(2, 11), *range(12, 20)]
    first = frames[0]
    assert first.celsius.shape == (60, 80) and first.celsius.dtype == np.float32
    assert first.raw is not None and first.raw.shape == (60, 80)
    assert first.visible is not None and first.visible.shape == (1080, 1440, 3)
    assert not first.celsius.flags.writeable and not first.visible.flags.writeable
    assert first.planck is PLANCK
    # This unit's constants are unknown (another FLIR ONE's are used), so only plausibility: every
    # pixel converts, indoor range, and the order of the counts is kept.
    assert np.isfinite(first.celsius).all()
    assert 15.0 < float(first.celsius.min()) < float(first.celsius.max()) < 60.0
    assert np.argmax(first.celsius) == np.argmax(first.raw) and np.argmin(first.celsius) == np.argmin(first.raw)
    status = first.meta["status"]
    assert isinstance(status, dict) and status["shutterState"] == "ON"


async def test_corrupt_capture_never_raises_out_of_the_driver(shared_data: Path) -> None:
    stream = bytearray(b"".join(capture_reads(shared_data)))
    rng = np.random.default_rng(7)
    for position in rng.integers(0, len(stream), 40):
        stream[position] ^= 0x5A
    reads = [bytes(stream[i : i + 16384]) for i in range(0, len(stream), 16384)]
    backend = ReplayBackend(reads, after="unplug")
    source = FlirOneSource("thermal", planck=PLANCK, backend=backend, queue_size=32)
    frames: list[ThermalFrame] = []
    async with source:
        with pytest.raises(SourceUnavailableError) as caught:
            async with asyncio.timeout(10):
                async for frame in source.samples():
                    frames.append(frame)
    assert caught.value.reason is UnavailableReason.DISCONNECTED and caught.value.source == "thermal"
    assert "USB read failed" in str(caught.value)
    assert 0 < len(frames) < 18
    assert sum(source.decode_errors.values()) > 0


async def test_stalled_endpoint_is_cleared_and_streaming_goes_on(shared_data: Path) -> None:
    backend = ReplayBackend(capture_reads(shared_data))
    backend.stall_before = 50
    source = FlirOneSource("thermal", planck=PLANCK, backend=backend, queue_size=32, decode_visible=False)
    async with source:
        frames = await take(source, 18)
    assert ("clear_halt", 0x85, 0) in backend.requests
    assert source.decode_errors["usb"] == 1
    assert [f.meta["frame_index"] for f in frames] == [0, *range(2, 11), *range(12, 20)]
    assert frames[0].visible is None


async def test_shutter_frames_come_flagged_not_measured() -> None:
    import cv2

    from drivers.flirone_frames import encode_frame

    _, jpeg = cv2.imencode(".jpg", np.zeros((24, 32, 3), np.uint8))
    shutters = ["ON", "FFC", "ON", "ON"]
    stream = b"".join(
        encode_frame(np.full((60, 80), 3500 + n, np.uint16), jpeg.tobytes(), {"shutterState": state, "n": n})
        for n, state in enumerate(shutters)
    )
    source = FlirOneSource("thermal", planck=PLANCK, backend=ReplayBackend([stream]), queue_size=8)
    async with source:
        frames = await take(source, 4)
    assert [f.ffc for f in frames] == [False, True, True, False]
    assert [int(f.raw[0, 0]) for f in frames if f.raw is not None] == [3500, 3501, 3502, 3503]
    assert source.assembler.ffc_frames == 2


async def test_absent_camera() -> None:
    source = FlirOneSource("thermal", planck=PLANCK, backend=ReplayBackend([], present=False))
    with pytest.raises(SourceUnavailableError) as caught:
        await source.__aenter__()
    assert caught.value.reason is UnavailableReason.ABSENT
    assert str(caught.value) == "thermal: no FLIR ONE (USB 09cb:1996) is plugged in"


async def test_real_libusb_path_without_a_camera() -> None:
    """No backend given: pyusb's own search (libusb, if installed); no FLIR ONE is plugged in here."""
    source = FlirOneSource("thermal", planck=PLANCK)
    with pytest.raises(SourceUnavailableError) as caught:
        async with source:
            pass
    assert caught.value.reason is UnavailableReason.ABSENT
    assert str(caught.value) in (
        "thermal: no FLIR ONE (USB 09cb:1996) is plugged in",
        "thermal: no USB backend: install libusb-1.0",
    )


async def test_a_device_without_configuration_3_is_refused() -> None:
    class OneConfiguration(ReplayBackend):
        def get_device_descriptor(self, dev: str) -> SimpleNamespace:
            descriptor = super().get_device_descriptor(dev)
            descriptor.bNumConfigurations = 1
            return descriptor

    source = FlirOneSource("thermal", planck=PLANCK, backend=OneConfiguration([]))
    with pytest.raises(SourceUnavailableError) as caught:
        await source.__aenter__()
    assert caught.value.reason is UnavailableReason.ABSENT
    assert "cannot set configuration 3: Invalid configuration 3 (not the FLIR ONE layout)" in str(caught.value)


@pytest.mark.parametrize(
    ("code", "reason"),
    [(errno.EACCES, UnavailableReason.PERMISSION), (errno.EBUSY, UnavailableReason.BUSY)],
)
async def test_open_errors_carry_the_reason(code: int, reason: UnavailableReason) -> None:
    backend = ReplayBackend([])
    backend.open_error = usb.core.USBError("refused", -3, code)
    source = FlirOneSource("thermal", planck=PLANCK, backend=backend)
    with pytest.raises(SourceUnavailableError) as caught:
        await source.__aenter__()
    assert caught.value.reason is reason
    assert str(caught.value).startswith("thermal: cannot open the device")
    if reason is UnavailableReason.PERMISSION:
        assert "99-vitaledge-flirone.rules" in str(caught.value)


async def test_a_bug_in_the_reader_reaches_the_consumer() -> None:
    class Broken(ReplayBackend):
        def bulk_read(self, dev_handle: str, ep: int, intf: int, buff: array.array[int], timeout: int) -> int:
            raise RuntimeError("backend bug")

    source = FlirOneSource("thermal", planck=PLANCK, backend=Broken([]))
    async with source:
        with pytest.raises(RuntimeError, match="backend bug"):
            async with asyncio.timeout(5):
                await anext(source.samples())


# --- configuration -----------------------------------------------------------------------------------


def _load(tmp_path: Path, source: dict[str, object]) -> object:
    import yaml

    from edge.config import load_config

    path = tmp_path / "vitaledge.yaml"
    path.write_text(yaml.safe_dump({"sources": [source]}))
    return load_config(path)


VALID_PLANCK = {"r1": 17000.0, "r2": 0.012, "b": 1430.0, "f": 1.0, "o": -1200.0, "provenance": "photo of unit 42"}


def test_config_builds_the_driver_with_the_units_constants(tmp_path: Path) -> None:
    from edge.build import build_source
    from edge.config import FlirOneConfig, VitalEdgeConfig

    cfg = _load(tmp_path, {"kind": "flirone", "name": "cam", "planck": VALID_PLANCK})
    assert isinstance(cfg, VitalEdgeConfig) and isinstance(cfg.sources[0], FlirOneConfig)
    source = build_source(cfg.sources[0])
    assert isinstance(source, FlirOneSource) and source.name == "cam"
    assert source.planck == PlanckConstants(
        r1=17000.0, r2=0.012, b=1430.0, f=1.0, o=-1200.0, emissivity=0.98, reflected_c=20.0,
        provenance="photo of unit 42",
    )  # fmt: skip
    default = _load(tmp_path, {"kind": "flirone"})
    assert isinstance(default, VitalEdgeConfig) and isinstance(default.sources[0], FlirOneConfig)
    assert "not this unit" in default.sources[0].planck.provenance


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"planck": {k: v for k, v in VALID_PLANCK.items() if k != "provenance"}}, "planck.provenance: Field required"),
        ({"planck": {**VALID_PLANCK, "emissivity": 1.2}}, "planck.emissivity: Input should be less than or equal"),
        ({"planck": {**VALID_PLANCK, "r2": 0}}, "planck.r2: Input should be greater than 0"),
        ({"usb_bus": 3}, "sources.0.flirone.usb_bus: unknown key"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, change: dict[str, object], message: str) -> None:
    from fusion.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, {"kind": "flirone", **change})
    assert message in str(caught.value)


def test_udev_rule_matches_the_driver() -> None:
    import re

    from drivers.flirone import FLIRONE_PRODUCT_ID, FLIRONE_VENDOR_ID

    rules = Path(__file__).resolve().parents[1] / "systemd" / "99-vitaledge-flirone.rules"
    lines = [line for line in rules.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == 1
    rule = {key: value for key, _op, value in re.findall(r'([A-Z]+(?:\{\w+\})?)(==|\+?=)"([^"]*)"', lines[0])}
    assert rule["ATTR{idVendor}"] == f"{FLIRONE_VENDOR_ID:04x}"
    assert rule["ATTR{idProduct}"] == f"{FLIRONE_PRODUCT_ID:04x}"
    assert (rule["SUBSYSTEM"], rule["MODE"], rule["GROUP"]) == ("usb", "0660", "video")
