"""The Bluetooth LE connection shared by the wristband and thermometer drivers.

``__aenter__``: scan (by name or address, on the chosen adapter) -> connect (bleak-retry-connector's
``establish_connection``, which makes its own few attempts for this one connect) -> subscribe (the
subclass's ``_subscribe``); an absent peripheral raises ``SourceUnavailableError``. When the link drops,
``samples()`` first yields what had already arrived, then raises ``SourceUnavailableError(DISCONNECTED)``;
the supervisor (``edge.app``) reopens the source with the shared backoff. The driver never reconnects
by itself. Bleak backends are injectable (``client_backend``/``scanner_backend``) so tests drive the real
``BleakClient`` and ``BleakScanner`` over a virtual radio.
"""

from __future__ import annotations

import abc
import contextlib
import logging

from bleak import BleakClient, BleakScanner
from bleak.args.bluez import BlueZClientArgs
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason, BleakError
from bleak_retry_connector import establish_connection

from drivers.base import QueueSource
from fusion.errors import SourceUnavailableError, UnavailableReason
from fusion.samples import SkinTemperature

__all__ = ["BleSkinSource"]

_log = logging.getLogger(__name__)
_DENIED = {
    BleakBluetoothNotAvailableReason.DENIED_BY_USER,
    BleakBluetoothNotAvailableReason.DENIED_BY_SYSTEM,
    BleakBluetoothNotAvailableReason.DENIED_BY_UNKNOWN,
}


class BleSkinSource(QueueSource[SkinTemperature], abc.ABC):
    """A skin-temperature source on a Bluetooth LE peripheral; a dropped link ends ``samples()``.

    Args:
        name: configured source name.
        device_name: advertised local name to look for (used when ``address`` is unset).
        address: Bluetooth address to look for; takes precedence over ``device_name``.
        adapter: BlueZ adapter ("hci0"); None: the system default.
        scan_timeout_s: how long one scan looks for the peripheral.
        connect_attempts: attempts inside one ``establish_connection`` call.
        client_backend: bleak client backend type (tests: a virtual radio); None: the platform's.
        scanner_backend: bleak scanner backend type; None: the platform's.
        queue_size: samples buffered for a slow consumer before the oldest is dropped.
    """

    def __init__(
        self,
        name: str,
        *,
        device_name: str | None,
        address: str | None = None,
        adapter: str | None = None,
        scan_timeout_s: float = 10.0,
        connect_attempts: int = 3,
        client_backend: type[BaseBleakClient] | None = None,
        scanner_backend: type[BaseBleakScanner] | None = None,
        queue_size: int = 64,
    ) -> None:
        super().__init__(name, queue_size=queue_size)
        if device_name is None and address is None:
            raise ValueError(f"{name}: give device_name or address")
        self._device_name = device_name
        self._address = address.upper() if address else None
        self._adapter = adapter
        self._scan_timeout_s = scan_timeout_s
        self._connect_attempts = connect_attempts
        self._client_backend = client_backend
        self._scanner_backend = scanner_backend
        self._client: BleakClient | None = None
        self.device_address: str | None = None

    @property
    def connected(self) -> bool:
        """True while a link to the peripheral is up and subscribed."""
        return self._client is not None and self._client.is_connected

    @abc.abstractmethod
    async def _subscribe(self, client: BleakClient) -> None:
        """Enable notifications and send any start command; the connection is up."""

    def _emit(self, celsius: float, *, t_mono: int, t_wall: float, site: str, meta: dict[str, object]) -> None:
        self._offer(
            SkinTemperature(
                t_mono=t_mono,
                t_wall=t_wall,
                source=self.name,
                seq=self._next_seq(),
                celsius=celsius,
                site=site,
                device=self.device_address or "",
                meta=meta,
            )
        )

    async def _open(self) -> None:
        await self._connect()

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(BleakError, OSError):
                await client.disconnect()

    def _matches(self, device: BLEDevice, adv: AdvertisementData) -> bool:
        if self._address is not None:
            return device.address.upper() == self._address
        return adv.local_name == self._device_name

    def _unavailable(self, message: str, exc: BaseException | None = None) -> SourceUnavailableError:
        reason = UnavailableReason.ABSENT
        denied = isinstance(exc, BleakBluetoothNotAvailableError) and exc.reason in _DENIED
        if denied or isinstance(exc, PermissionError):
            reason = UnavailableReason.PERMISSION
        detail = f": {exc}" if exc is not None else ""
        if isinstance(exc, FileNotFoundError):  # bleak's BlueZ backend found no D-Bus system bus
            detail += " (no D-Bus system bus: is BlueZ installed and running?)"
        return SourceUnavailableError(self.name, f"{message}{detail}", reason)

    async def _connect(self) -> None:
        """Scan, connect and subscribe; raises SourceUnavailableError when it fails."""
        wanted = self._address or repr(self._device_name)
        scan_options: BleakScanner.ExtraArgs = {}
        client_bluez: BlueZClientArgs = {}
        if self._adapter:
            scan_options["bluez"] = {"adapter": self._adapter}
            client_bluez["adapter"] = self._adapter
        if self._scanner_backend is not None:
            scan_options["backend"] = self._scanner_backend
        try:
            device = await BleakScanner.find_device_by_filter(
                self._matches, timeout=self._scan_timeout_s, **scan_options
            )
        except (BleakError, OSError) as exc:  # no adapter, no D-Bus, Bluetooth off
            raise self._unavailable("Bluetooth scan failed", exc) from exc
        if device is None:
            raise self._unavailable(f"no peripheral {wanted} seen in {self._scan_timeout_s:g} s")
        try:
            client = await establish_connection(
                BleakClient,
                device,
                self.name,
                disconnected_callback=self._on_disconnected,
                max_attempts=self._connect_attempts,
                backend=self._client_backend,
                bluez=client_bluez,
            )
        except (BleakError, OSError) as exc:
            raise self._unavailable(f"cannot connect to {device.address}", exc) from exc
        self._client = client
        try:
            await self._subscribe(client)
        except (BleakError, OSError) as exc:
            self._client = None
            with contextlib.suppress(BleakError, OSError):
                await client.disconnect()
            raise self._unavailable(f"cannot subscribe on {device.address}", exc) from exc
        self.device_address = device.address
        _log.info("%s: connected to %s", self.name, device.address)

    def _on_disconnected(self, client: BleakClient) -> None:
        # Our own disconnect in _close() clears _client first, so only a lost link gets here.
        if self._client is not None and client is self._client:
            self._client = None
            _log.warning("%s: link to %s lost", self.name, self.device_address)
            self._fail(SourceUnavailableError(self.name, "link lost", UnavailableReason.DISCONNECTED))
