"""Empatica E4 wristband over Bluetooth LE: skin temperature at 4 Hz.

UNVERIFIED ON HARDWARE. The E4 has no public BLE protocol; this driver follows community
reverse-engineering (open-source Android and Python clients): the wristband advertises as
"Empatica E4"; skin temperature is notified on characteristic 0x3EA6 of the sensor service
0x3EA0 once the command characteristic 0x3E71 receives ``0x01`` followed by the current unix
time (u32, little-endian). Each notification is decoded by ``drivers.ble_decode.decode_e4_temperature``
(four samples, 0.02 K units); the decoding is the community's best guess, so check the first
readings against a contact thermometer and set ``offset_c`` if they differ. The streaming-server
(``e4-server``) and CSV (``e4-csv``) sources are the verified ways to use an E4.
"""

from __future__ import annotations

import struct
import time

from bleak import BleakClient
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner
from bleak.uuids import normalize_uuid_16

from drivers.ble_decode import E4_SAMPLE_RATE_HZ, PacketError, decode_e4_temperature
from drivers.ble_link import BleSkinSource

__all__ = [
    "E4_COMMAND_CHARACTERISTIC",
    "E4_DEVICE_NAME",
    "E4_SENSOR_SERVICE",
    "E4_TEMPERATURE_CHARACTERISTIC",
    "E4BleSource",
    "start_command",
]

E4_DEVICE_NAME = "Empatica E4"
E4_SENSOR_SERVICE = normalize_uuid_16(0x3EA0)
E4_TEMPERATURE_CHARACTERISTIC = normalize_uuid_16(0x3EA6)
E4_COMMAND_CHARACTERISTIC = normalize_uuid_16(0x3E71)
_PERIOD_NS = int(1e9 / E4_SAMPLE_RATE_HZ)


def start_command(unix_s: float) -> bytes:
    """The "start streaming" command: 0x01 then the unix time as u32 little-endian."""
    return b"\x01" + struct.pack("<I", int(unix_s) & 0xFFFFFFFF)


class E4BleSource(BleSkinSource):
    """Skin temperature from an Empatica E4 over BLE (community decoding, unverified on hardware).

    Args:
        name: configured source name.
        device_name: advertised name (default "Empatica E4").
        address: Bluetooth address; takes precedence over the name.
        adapter: BlueZ adapter, e.g. "hci1"; None: default.
        offset_c: added to every decoded sample (per-unit calibration against a contact thermometer).
        scan_timeout_s: how long one scan looks for the wristband.
        client_backend: bleak client backend type; None: the platform's.
        scanner_backend: bleak scanner backend type; None: the platform's.
    """

    def __init__(
        self,
        name: str,
        *,
        device_name: str | None = E4_DEVICE_NAME,
        address: str | None = None,
        adapter: str | None = None,
        offset_c: float = 0.0,
        scan_timeout_s: float = 10.0,
        client_backend: type[BaseBleakClient] | None = None,
        scanner_backend: type[BaseBleakScanner] | None = None,
    ) -> None:
        super().__init__(
            name,
            device_name=device_name,
            address=address,
            adapter=adapter,
            scan_timeout_s=scan_timeout_s,
            client_backend=client_backend,
            scanner_backend=scanner_backend,
        )
        self._offset_c = offset_c

    async def _subscribe(self, client: BleakClient) -> None:
        await client.start_notify(E4_TEMPERATURE_CHARACTERISTIC, self._on_packet)
        await client.write_gatt_char(E4_COMMAND_CHARACTERISTIC, start_command(time.time()), response=True)

    def _on_packet(self, _sender: object, data: bytearray) -> None:
        t_mono, t_wall = time.monotonic_ns(), time.time()
        try:
            samples, trailer = decode_e4_temperature(bytes(data))
        except PacketError as exc:
            self._count_decode_error(exc.kind, f"E4 temperature packet {bytes(data).hex()}: {exc}")
            return
        last = len(samples) - 1
        for i, celsius in enumerate(samples):  # the packet arrives with its newest sample
            back_ns = (last - i) * _PERIOD_NS
            meta: dict[str, object] = {"packet_trailer": trailer.hex(), "decoding": "community, unverified"}
            t_wall_s = t_wall - back_ns / 1e9
            self._emit(celsius + self._offset_c, t_mono=t_mono - back_ns, t_wall=t_wall_s, site="wrist", meta=meta)
