"""A bleak backend over bumble: the real BleakClient/BleakScanner code, a virtual radio in-process.

``VirtualRadio`` is a bumble ``LocalLink`` (the "air") with one central controller (our adapter,
named like a BlueZ adapter) and any number of ``VirtualPeripheral``s, each a bumble ``Device`` with
a GATT server that advertises its name and services. ``radio.backends()`` returns a
``BaseBleakClient`` and a ``BaseBleakScanner`` subclass bound to that radio, to be passed as
``backend=`` to ``BleakClient``/``BleakScanner`` (or to the drivers, which pass them on).
Only the radio is simulated: scanning, connecting, GATT discovery, writes, subscriptions
(real CCCD writes), notifications, indications and link loss all go through bumble's host and
controller stacks.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bumble import gatt
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

__all__ = ["VirtualPeripheral", "VirtualRadio"]

_PROPERTY_NAMES: dict[gatt.Characteristic.Properties, CharacteristicPropertyName] = {
    gatt.Characteristic.Properties.BROADCAST: "broadcast",
    gatt.Characteristic.Properties.READ: "read",
    gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
    gatt.Characteristic.Properties.WRITE: "write",
    gatt.Characteristic.Properties.NOTIFY: "notify",
    gatt.Characteristic.Properties.INDICATE: "indicate",
    gatt.Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES: "authenticated-signed-writes",
    gatt.Characteristic.Properties.EXTENDED_PROPERTIES: "extended-properties",
}


def _bleak_uuid(value: UUID) -> str:
    return str(uuid.UUID(bytes=bytes(reversed(value.uuid_128_bytes))))


class VirtualPeripheral:
    """A bumble device advertising ``name`` and serving ``services``; the test drives it."""

    def __init__(self, radio: VirtualRadio, name: str, address: str, services: Iterable[gatt.Service]) -> None:
        controller = Controller(name, link=radio.link, public_address=address)
        self.device = Device(name=name, address=Address(address), host=Host(controller, AsyncPipeSink(controller)))
        self.device.add_services(list(services))
        self.name = name
        self.address = address
        self.writes: list[tuple[str, bytes]] = []  # (characteristic uuid, value) written by centrals
        self.subscriptions: collections.Counter[int] = collections.Counter()  # by characteristic handle
        self.device.on("characteristic_subscription", self._on_subscription)

    def _on_subscription(self, _bearer: object, char: gatt.Characteristic[bytes], notify: bool, indicate: bool) -> None:
        if notify or indicate:
            self.subscriptions[char.handle] += 1

    async def start(self, service_uuids16: Iterable[int] = ()) -> None:
        """Power on and advertise (restarting after every disconnection)."""
        await self.device.power_on()
        ad = [(AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode())]
        uuids = b"".join(u.to_bytes(2, "little") for u in service_uuids16)
        if uuids:
            ad.append((AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, uuids))
        self.device.advertising_data = bytes(AdvertisingData(ad))
        await self.device.start_advertising(auto_restart=True, advertising_interval_min=20)

    def recording_write(self, char_uuid: str) -> gatt.CharacteristicValue[bytes]:
        """A characteristic value that records what centrals write to it."""
        return gatt.CharacteristicValue(write=lambda _conn, value: self.writes.append((char_uuid, bytes(value))))

    @property
    def connected(self) -> bool:
        return bool(self.device.connections)

    async def wait_subscribed(
        self, characteristic: gatt.Characteristic[bytes], count: int = 1, timeout_s: float = 5.0
    ) -> None:
        """Wait until centrals have enabled notifications/indications on ``characteristic`` ``count`` times."""
        async with asyncio.timeout(timeout_s):
            while self.subscriptions[characteristic.handle] < count:
                await asyncio.sleep(0.01)

    async def send(self, characteristic: gatt.Characteristic[bytes], value: bytes) -> None:
        """Notify or indicate ``value`` to every subscriber, as the characteristic's properties say."""
        if characteristic.properties & gatt.Characteristic.Properties.INDICATE:
            await self.device.indicate_subscribers(characteristic, value)
        else:
            await self.device.notify_subscribers(characteristic, value)

    async def drop_link(self) -> None:
        """The peripheral ends every connection, as a wristband walking out of range would."""
        for connection in list(self.device.connections.values()):
            await connection.disconnect()


class VirtualRadio:
    """The in-process air: a bumble link, our central adapter, and the peripherals on it."""

    def __init__(self, adapter: str = "hci0") -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]  # bumble leaves it unannotated
        self.adapter = adapter
        controller = Controller("central", link=self.link, public_address="F0:F0:F0:F0:F0:F0")
        self.central = Device(address=Address("F0:F0:F0:F0:F0:F0"), host=Host(controller, AsyncPipeSink(controller)))
        self.peripherals: list[VirtualPeripheral] = []

    async def start(self) -> None:
        await self.central.power_on()

    async def add_peripheral(
        self, name: str, address: str, services: Iterable[gatt.Service], service_uuids16: Iterable[int] = ()
    ) -> VirtualPeripheral:
        peripheral = VirtualPeripheral(self, name, address, services)
        await peripheral.start(service_uuids16)
        self.peripherals.append(peripheral)
        return peripheral

    def check_adapter(self, options: dict[str, Any] | None) -> None:
        wanted = (options or {}).get("adapter")
        if wanted is not None and wanted != self.adapter:
            raise BleakError(f"adapter {wanted!r} not found (have {self.adapter!r})")

    def backends(self) -> tuple[type[BaseBleakClient], type[BaseBleakScanner]]:
        """Client and scanner backend types bound to this radio, for ``backend=``."""
        radio = self

        class Client(_BumbleClient):
            _radio = radio

        class Scanner(_BumbleScanner):
            _radio = radio

        return Client, Scanner


class _BumbleScanner(BaseBleakScanner):
    _radio: VirtualRadio

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        bluez: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._radio.check_adapter(bluez)

    def _on_advertisement(self, adv: Advertisement) -> None:
        name_value = adv.data.get(AdvertisingData.COMPLETE_LOCAL_NAME)
        name = name_value if isinstance(name_value, str) else None
        listed = adv.data.get(AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS) or []
        service_uuids = [_bleak_uuid(u) for u in listed] if isinstance(listed, list) else []
        if not self.is_allowed_uuid(service_uuids):
            return
        data = AdvertisementData(
            local_name=name,
            manufacturer_data={},
            service_data={},
            service_uuids=service_uuids,
            tx_power=None,
            rssi=adv.rssi,
            platform_data=(adv,),
        )
        address = str(adv.address).removesuffix("/P")
        device = self.create_or_update_device(address, address, name, adv.address, data)
        self.call_detection_callbacks(device, data)

    async def start(self) -> None:
        self.seen_devices = {}
        self._radio.central.on("advertisement", self._on_advertisement)
        await self._radio.central.start_scanning(filter_duplicates=False)

    async def stop(self) -> None:
        self._radio.central.remove_listener("advertisement", self._on_advertisement)
        await self._radio.central.stop_scanning()


class _BumbleClient(BaseBleakClient):
    _radio: VirtualRadio

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        bluez: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._radio.check_adapter(bluez)
        details = address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        self._peer_address = details if isinstance(details, Address) else Address(self.address)
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._closing = False

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        try:
            connection = await self._radio.central.connect(self._peer_address, timeout=self._timeout)
        except Exception as exc:
            raise BleakDeviceNotFoundError(self.address, f"{self.address}: connect failed: {exc!r}") from exc
        self._connection, self._peer, self._closing = connection, Peer(connection), False
        connection.on("disconnection", self._on_disconnection)
        await self._discover()

    def _on_disconnection(self, _reason: int) -> None:
        unsolicited = not self._closing
        self._connection = self._peer = None
        if unsolicited and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def _discover(self) -> None:
        assert self._peer is not None
        collection = BleakGATTServiceCollection()
        for service in await self._peer.discover_services():
            bleak_service = BleakGATTService(service, service.handle, _bleak_uuid(service.uuid))
            collection.add_service(bleak_service)
            for char in await self._peer.discover_characteristics(service=service):
                names = [n for flag, n in _PROPERTY_NAMES.items() if char.properties & flag]
                bleak_char = BleakGATTCharacteristic(
                    char,
                    char.handle,
                    _bleak_uuid(char.uuid),
                    names,
                    lambda: self.mtu_size - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_char)
                for desc in await self._peer.discover_descriptors(characteristic=char):
                    descriptor = BleakGATTDescriptor(desc, desc.handle, _bleak_uuid(desc.type), bleak_char)
                    collection.add_descriptor(descriptor)
        self.services = collection

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def disconnect(self) -> None:
        if self._connection is not None:
            self._closing = True
            await self._connection.disconnect()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise BleakError("pairing is not supported by the virtual radio")

    async def unpair(self) -> None:
        raise BleakError("pairing is not supported by the virtual radio")

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        return bytearray(await self._require_peer().read_value(characteristic.obj))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any) -> bytearray:
        return bytearray(await self._require_peer().read_value(descriptor.obj))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any, response: bool) -> None:
        await self._require_peer().write_value(characteristic.obj, bytes(data), with_response=response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        await self._require_peer().write_value(descriptor.obj, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        await self._require_peer().subscribe(characteristic.obj, lambda value: callback(bytearray(value)))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        await self._require_peer().unsubscribe(characteristic.obj)
