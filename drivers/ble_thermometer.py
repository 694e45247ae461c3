"""A Bluetooth SIG Health Thermometer (service 0x1809, Temperature Measurement 0x2A1C indications).

Any thermometer that implements the standard profile works: the value is an IEEE-11073 FLOAT in
°C or °F (converted), with the device's optional timestamp and measurement site.
"""

from __future__ import annotations

import time

from bleak import BleakClient
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner
from bleak.uuids import normalize_uuid_16

from drivers.ble_decode import PacketError, decode_health_thermometer
from drivers.ble_link import BleSkinSource

__all__ = ["HEALTH_THERMOMETER_SERVICE", "TEMPERATURE_MEASUREMENT", "BleThermometerSource"]

HEALTH_THERMOMETER_SERVICE = normalize_uuid_16(0x1809)
TEMPERATURE_MEASUREMENT = normalize_uuid_16(0x2A1C)


class BleThermometerSource(BleSkinSource):
    """Skin temperature from a standard BLE Health Thermometer.

    Args:
        name: configured source name.
        device_name: advertised name to look for (or give ``address``).
        address: Bluetooth address; takes precedence over the name.
        adapter: BlueZ adapter, e.g. "hci1"; None: default.
        site: where the probe sits, used when the device does not say ("wrist").
        scan_timeout_s: how long one scan looks for the thermometer.
        client_backend: bleak client backend type; None: the platform's.
        scanner_backend: bleak scanner backend type; None: the platform's.
    """

    def __init__(
        self,
        name: str,
        *,
        device_name: str | None = None,
        address: str | None = None,
        adapter: str | None = None,
        site: str = "wrist",
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
        self._site = site

    async def _subscribe(self, client: BleakClient) -> None:
        await client.start_notify(TEMPERATURE_MEASUREMENT, self._on_measurement)

    def _on_measurement(self, _sender: object, data: bytearray) -> None:
        t_mono, t_wall = time.monotonic_ns(), time.time()
        try:
            reading = decode_health_thermometer(bytes(data))
        except PacketError as exc:
            self._count_decode_error(exc.kind, f"Temperature Measurement {bytes(data).hex()}: {exc}")
            return
        meta: dict[str, object] = {"fahrenheit_on_wire": reading.fahrenheit_on_wire}
        if reading.timestamp is not None:
            meta["device_time"] = reading.timestamp.isoformat()
        self._emit(reading.celsius, t_mono=t_mono, t_wall=t_wall, site=reading.site or self._site, meta=meta)
