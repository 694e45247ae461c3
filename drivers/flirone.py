"""FLIR ONE thermal camera (USB 09cb:1996) as a source of ThermalFrame, through pyusb.

Start-up as the camera expects it: configuration 3, claim interfaces 0–2, alternate setting 0 on
interfaces 2 and 1 (stop), 1 on interface 1 (file I/O), the app's two file I/O requests on 0x02, then
alternate setting 1 on interface 2 (frames); then bulk reads on endpoint 0x85 in one reader thread, fed
to ``FrameAssembler``. The sequence is the one the working open-source drivers send (flirone-v4l2, the
Gen 3 Python driver whose capture the tests replay); it has not been run here on a camera.
Raw counts become °C with the unit's Planck constants (configuration, with where they came from:
``vitaledge flir-constants PHOTO.jpg`` reads them from a photo the phone app saved).
Non-root access needs the udev rule in ``systemd/99-vitaledge-flirone.rules``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import struct
import time
from typing import TYPE_CHECKING

import numpy as np

from drivers.base import QueueSource
from drivers.flirone_frames import FrameAssembler, RawFrame, decode_thermal, decode_visible
from drivers.flirone_planck import FLIRONE_COUNTS_SCALE, raw_to_celsius
from fusion.errors import SourceUnavailableError, UnavailableReason
from fusion.greyscale import is_greyscale
from fusion.samples import PlanckConstants, ThermalFrame

if TYPE_CHECKING:
    import usb.backend
    import usb.core

__all__ = ["FLIRONE_PRODUCT_ID", "FLIRONE_VENDOR_ID", "FlirOneSource"]

FLIRONE_VENDOR_ID = 0x09CB
FLIRONE_PRODUCT_ID = 0x1996
_CONFIGURATION = 3
_INTERFACES = (0, 1, 2)
_FRAME_ENDPOINT = 0x85
_READ_BYTES = 32768  # a multiple of the 512-byte packet size; a frame takes 3–5 reads
_READ_TIMEOUT_MS = 200
_WRITE_TIMEOUT_MS = 500
_FILE_IO_ENDPOINT = 0x02
_CHATTER_ENDPOINTS = (0x81, 0x83)  # status and file I/O answers, drained and ignored
_CHATTER_BYTES = 4096


def _file_io(request: bytes, tag: bytes) -> tuple[bytes, bytes]:
    """A file I/O message on 0x02: 16-byte header (CC 01 00 00, u32 1, u32 length, 4 bytes as the app
    sends them for this request), then the NUL-terminated JSON."""
    body = request + b"\x00"
    return b"\xcc\x01\x00\x00" + struct.pack("<II", 1, len(body)) + tag, body


# What the FLIR ONE app sends before frames start (as observed on the bus by the open drivers).
_FILE_IO_START = (
    *_file_io(b'{"type":"openFile","data":{"mode":"r","path":"CameraFiles.zip"}}', b"\xf8\xb3\xf7\x00"),
    *_file_io(b'{"type":"readFile","data":{"streamIdentifier":10}}', b"\xef\xdb\xc1\xc1"),
)
_MAX_CONSECUTIVE_USB_ERRORS = 20
_LIBUSB_ERROR_NO_DEVICE = -4
_log = logging.getLogger(__name__)


def _reason(exc: BaseException) -> UnavailableReason:
    code = getattr(exc, "errno", None)
    if code in (errno.EACCES, errno.EPERM):
        return UnavailableReason.PERMISSION
    if code == errno.EBUSY:
        return UnavailableReason.BUSY
    return UnavailableReason.ABSENT


def _gone(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == errno.ENODEV or (
        getattr(exc, "backend_error_code", None) == _LIBUSB_ERROR_NO_DEVICE
    )


class FlirOneSource(QueueSource[ThermalFrame]):
    """A FLIR ONE on USB: yields frames in °C with the sled's visible image, repeats dropped.

    Frames taken while the shutter is closed for a flat-field correction, and the one after, come
    marked ``ffc=True`` (not for measurement) rather than being dropped, so the offset corrector
    learns that the camera's offset may have jumped.

    Args:
        name: configured source name.
        planck: the unit's constants (with provenance) for counts -> °C.
        decode_visible: decode the sled's 1440×1080 JPEG into ``ThermalFrame.visible`` (off saves CPU).
        backend: a pyusb backend; None lets pyusb pick libusb (tests pass a fake device's backend).
        queue_size: frames held for a slow consumer before the oldest is dropped.
    """

    def __init__(
        self,
        name: str,
        *,
        planck: PlanckConstants,
        decode_visible: bool = True,
        backend: usb.backend.IBackend | None = None,
        queue_size: int = 4,
    ) -> None:
        super().__init__(name, queue_size=queue_size)
        self.planck = planck
        self._decode_visible = decode_visible
        self._backend = backend
        self._device: usb.core.Device | None = None
        self._claimed: list[int] = []
        self.assembler = FrameAssembler(self._count_threadsafe, keep_ffc=True)

    async def _open(self) -> None:
        self.assembler = FrameAssembler(self._count_threadsafe, keep_ffc=True)
        await asyncio.to_thread(self._open_device)
        self._start_reader(self._reader, "usb")

    def _open_device(self) -> None:
        import usb.core
        import usb.util

        try:
            device = usb.core.find(idVendor=FLIRONE_VENDOR_ID, idProduct=FLIRONE_PRODUCT_ID, backend=self._backend)
        except usb.core.NoBackendError as exc:
            raise SourceUnavailableError(
                self.name, "no USB backend: install libusb-1.0", UnavailableReason.ABSENT
            ) from exc
        if device is None:
            raise SourceUnavailableError(
                self.name, "no FLIR ONE (USB 09cb:1996) is plugged in", UnavailableReason.ABSENT
            )
        self._device = device
        step = "open the device"
        try:
            for interface in _INTERFACES:
                step = f"open the device and free interface {interface} from its kernel driver"
                try:
                    if device.is_kernel_driver_active(interface):
                        device.detach_kernel_driver(interface)
                except NotImplementedError:
                    pass  # backends without kernel drivers (not Linux)
            step = f"set configuration {_CONFIGURATION}"
            device.set_configuration(_CONFIGURATION)
            for interface in _INTERFACES:
                step = f"claim interface {interface}"
                usb.util.claim_interface(device, interface)
                self._claimed.append(interface)
            for interface, alt in ((2, 0), (1, 0), (1, 1)):  # stop frames and file I/O, start file I/O
                step = f"set alternate setting {alt} on interface {interface}"
                device.set_interface_altsetting(interface=interface, alternate_setting=alt)
            for request in _FILE_IO_START:
                step = "send the file I/O start request"
                device.write(_FILE_IO_ENDPOINT, request, timeout=_WRITE_TIMEOUT_MS)
            step = "set alternate setting 1 on interface 2 (start frames)"
            device.set_interface_altsetting(interface=2, alternate_setting=1)
            # The working open drivers send this SET_INTERFACE with a 2-byte data stage, so it is sent
            # that way too; the standard request above is what tells pyusb where 0x85 lives.
            device.ctrl_transfer(0x01, 0x0B, 1, 2, b"\x00\x00", timeout=_WRITE_TIMEOUT_MS)
        except ValueError as exc:  # pyusb found no such configuration, interface or endpoint
            raise SourceUnavailableError(
                self.name, f"cannot {step}: {exc} (not the FLIR ONE layout)", UnavailableReason.ABSENT
            ) from exc
        except usb.core.USBError as exc:
            reason = _reason(exc)
            hint = " (install systemd/99-vitaledge-flirone.rules)" if reason is UnavailableReason.PERMISSION else ""
            raise SourceUnavailableError(self.name, f"cannot {step}: {exc}{hint}", reason) from exc

    async def _close(self) -> None:
        await self._join_reader()
        await asyncio.to_thread(self._release_device)

    def _release_device(self) -> None:
        import usb.core
        import usb.util

        device, self._device = self._device, None
        claimed, self._claimed = self._claimed, []
        if device is None:
            return
        for interface in claimed:
            try:
                usb.util.release_interface(device, interface)
            except usb.core.USBError as exc:  # unplugged meanwhile: nothing left to release
                _log.debug("%s: release interface %d: %s", self.name, interface, exc)
        usb.util.dispose_resources(device)

    def _count_threadsafe(self, kind: str, message: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._count_decode_error, kind, message)

    def _reader(self) -> None:
        try:
            self._read_loop()
        except Exception as exc:  # a bug, not a device condition: log once, let the supervisor restart
            _log.exception("%s: reader thread failed", self.name)
            self._fail_threadsafe(exc)

    def _read_loop(self) -> None:
        import usb.core

        device = self._device
        assert device is not None
        errors_in_a_row = 0
        while not self._stop.is_set():
            try:
                data = device.read(_FRAME_ENDPOINT, _READ_BYTES, timeout=_READ_TIMEOUT_MS)
            except usb.core.USBTimeoutError:
                data = None  # no frame in flight: the camera is still starting or its shutter is busy
            except usb.core.USBError as exc:
                errors_in_a_row += 1
                if _gone(exc) or errors_in_a_row >= _MAX_CONSECUTIVE_USB_ERRORS:
                    self._fail_threadsafe(
                        SourceUnavailableError(self.name, f"USB read failed: {exc}", UnavailableReason.DISCONNECTED)
                    )
                    return
                self._count_threadsafe("usb", f"USB read failed: {exc}")
                with contextlib.suppress(usb.core.USBError):
                    device.clear_halt(_FRAME_ENDPOINT)  # a stalled endpoint stays stalled until cleared
                continue
            errors_in_a_row = 0
            for endpoint in _CHATTER_ENDPOINTS:  # the camera also talks on these; unread, it may stall
                with contextlib.suppress(usb.core.USBError):
                    device.read(endpoint, _CHATTER_BYTES, timeout=1)
            for raw in self.assembler.feed(memoryview(data) if data is not None else b""):
                frame = self._decode(raw)
                if frame is not None:
                    self._offer_threadsafe(frame)

    def _decode(self, raw: RawFrame) -> ThermalFrame | None:
        t_mono, t_wall = time.monotonic_ns(), time.time()
        counts, _telemetry = decode_thermal(raw.thermal)
        celsius = raw_to_celsius(counts, self.planck, scale=FLIRONE_COUNTS_SCALE)
        visible = None
        if self._decode_visible:
            visible = decode_visible(raw.jpeg)
            if visible is None:
                self._count_threadsafe("jpeg", "visible JPEG does not decode; frame kept without it")
            else:
                visible.flags.writeable = False
        for array in (counts, celsius):
            array.flags.writeable = False
        if not np.isfinite(celsius).any():
            self._count_threadsafe("planck", "no pixel converts to °C: check the Planck constants")
            return None
        return ThermalFrame(
            t_mono=t_mono,
            t_wall=t_wall,
            source=self.name,
            seq=self._next_seq(),
            celsius=celsius,
            raw=counts,
            visible=visible,
            visible_greyscale=visible is not None and is_greyscale(visible),
            ffc=raw.ffc,
            planck=self.planck,
            meta={"status": dict(raw.status), "frame_index": raw.index},
        )
