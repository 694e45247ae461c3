"""The Bluetooth LE connection loop shared by the wristband and thermometer drivers.

scan (by name or address, on the chosen adapter) -> connect (bleak-retry-connector's
``establish_connection``) -> subscribe (the subclass's ``_subscribe``) -> wait for the link to drop ->
back off with jitter -> again. ``__aenter__`` makes the first connection (an absent peripheral raises
``SourceUnavailableError``); afterwards the source keeps running across disconnects until closed.
Bleak backends are injectable (``client_backend``/``scanner_backend``) so tests drive the real
``BleakClient`` and ``BleakScanner`` over a virtual radio.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random

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
    """A skin-temperature source on a Bluetooth LE peripheral that reconnects by itself.

    Args:
        name: configured source name.
        device_name: advertised local name to look for (used when ``address`` is unset).
        address: Bluetooth address to look for; takes precedence over ``device_name``.
        adapter: BlueZ adapter ("hci0"); None: the system default.
        scan_timeout_s: how long one scan looks for the peripheral.
        backoff_initial_s: first wait after a lost link or failed attempt; doubles up to ``backoff_max_s``.
        backoff_max_s: longest wait between attempts.
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
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
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
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._connect_attempts = connect_attempts
        self._client_backend = client_backend
        self._scanner_backend = scanner_backend
        self._client: BleakClient | None = None
        self._link_lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connections = 0  # successful connections, the first included
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
        self._link_lost = asyncio.Event()
        await self._connect()
        self._task = asyncio.create_task(self._keep_connected(), name=f"{self.name}-ble")

    async def _close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
        """One scan-connect-subscribe round; raises SourceUnavailableError when it fails."""
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
        self._link_lost = asyncio.Event()
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
        self.connections += 1
        _log.info("%s: connected to %s (connection %d)", self.name, device.address, self.connections)

    def _on_disconnected(self, client: BleakClient) -> None:
        if client is self._client or self._client is None:
            self._link_lost.set()

    def _backoff_s(self, failures: int) -> float:
        base = min(self._backoff_max_s, self._backoff_initial_s * 2.0 ** max(0, failures - 1))
        return base * random.uniform(0.5, 1.0)  # jitter: many sources must not retry in lockstep

    async def _keep_connected(self) -> None:
        while True:
            await self._link_lost.wait()
            self._client = None
            _log.warning("%s: link to %s lost; reconnecting", self.name, self.device_address)
            failures = 1
            while True:
                await asyncio.sleep(self._backoff_s(failures))
                try:
                    await self._connect()
                    break
                except SourceUnavailableError as exc:
                    failures += 1
                    _log.info("%s: reconnect attempt failed: %s", self.name, exc)
