"""BLE wristband and thermometer sources end to end: the real BleakClient/BleakScanner code paths
over a bumble virtual radio (tests/ble_backend.py), with virtual Health Thermometer and E4 peripherals."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from bumble import gatt

from drivers.ble_thermometer import BleThermometerSource
from drivers.e4_ble import E4BleSource
from edge.build import build_source
from edge.config import load_config
from fusion.errors import ConfigError, SourceUnavailableError, UnavailableReason
from fusion.samples import SkinTemperature
from tests.ble_backend import VirtualPeripheral, VirtualRadio

THERMO_ADDRESS = "F1:F1:F1:F1:F1:F1"
E4_ADDRESS = "F2:F2:F2:F2:F2:F2"
FAST = {"scan_timeout_s": 1.0}


def _ht_packet(celsius_tenths: int) -> bytes:
    return b"\x00" + (celsius_tenths & 0xFFFFFF).to_bytes(3, "little") + b"\xff"  # mantissa, exponent -1


def _char(uuid16: str, properties: gatt.Characteristic.Properties) -> gatt.Characteristic[bytes]:
    return gatt.Characteristic(uuid16, properties, gatt.Characteristic.Permissions(0), b"")


def _e4_packet(*raws: int) -> bytes:
    return struct.pack("<4H", *raws) + b"\x00\x01\x02\x03"


@dataclass
class Rig:
    radio: VirtualRadio
    thermo: VirtualPeripheral
    thermo_char: gatt.Characteristic[bytes]
    e4: VirtualPeripheral
    e4_char: gatt.Characteristic[bytes]

    def thermometer(self, **kwargs: object) -> BleThermometerSource:
        client, scanner = self.radio.backends()
        options = {**FAST, **kwargs}
        return BleThermometerSource("skin", client_backend=client, scanner_backend=scanner, **options)  # type: ignore[arg-type]

    def wristband(self, **kwargs: object) -> E4BleSource:
        client, scanner = self.radio.backends()
        options = {**FAST, **kwargs}
        return E4BleSource("wristband", client_backend=client, scanner_backend=scanner, **options)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def virtual_rig() -> AsyncIterator[Rig]:
    """A virtual radio with a Health Thermometer and an E4 advertising on it (also used by the lifecycle matrix)."""
    radio = VirtualRadio()
    await radio.start()
    thermo_char = _char("2A1C", gatt.Characteristic.Properties.INDICATE)
    thermo = await radio.add_peripheral("VE Thermo", THERMO_ADDRESS, [gatt.Service("1809", [thermo_char])], [0x1809])
    e4_char = _char("3EA6", gatt.Characteristic.Properties.NOTIFY)
    e4 = await radio.add_peripheral("Empatica E4", E4_ADDRESS, [gatt.Service("3EA0", [e4_char])], [0x3EA0])
    command: gatt.Characteristic[bytes] = gatt.Characteristic(
        "3E71",
        gatt.Characteristic.Properties.WRITE,
        gatt.Characteristic.WRITEABLE,
        e4.recording_write("3e71"),
    )
    e4.device.add_service(gatt.Service("3E70", [command]))
    try:
        yield Rig(radio, thermo, thermo_char, e4, e4_char)
    finally:
        for p in radio.peripherals:
            await p.device.power_off()
        await radio.central.power_off()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with virtual_rig() as rig:
        yield rig


async def _until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.005)


async def _next(it: AsyncIterator[SkinTemperature], timeout_s: float = 5.0) -> SkinTemperature:
    return await asyncio.wait_for(anext(it), timeout_s)


async def test_thermometer_reads_survives_link_loss_and_skips_bad_packets(rig: Rig) -> None:
    source = rig.thermometer(device_name="VE Thermo", adapter="hci0")
    async with source:
        it = aiter(source.samples())
        await rig.thermo.wait_subscribed(rig.thermo_char)
        await rig.thermo.send(rig.thermo_char, _ht_packet(365))
        first = await _next(it)
        assert first.celsius == pytest.approx(36.5)
        assert (first.source, first.seq, first.device, first.site) == ("skin", 0, THERMO_ADDRESS, "wrist")
        assert abs(first.t_wall - time.time()) < 5

        await rig.thermo.send(rig.thermo_char, b"\x00\xff\xff\x7f\x00")  # NaN: counted, skipped
        await rig.thermo.send(rig.thermo_char, b"\x00\x01")  # truncated
        await rig.thermo.send(rig.thermo_char, b"\x01\xda\x03\x00\xff")  # 98.6 °F
        second = await _next(it)
        assert second.celsius == pytest.approx(37.0)
        assert second.seq == 1
        assert source.decode_errors == {"nan": 1, "truncated": 1}

        await rig.thermo.send(rig.thermo_char, _ht_packet(360))
        await _until(lambda: source._queue is not None and source._queue.qsize() == 1)
        await rig.thermo.drop_link()  # the peripheral ends the link: what arrived is kept, then it says so
        assert (await _next(it)).celsius == pytest.approx(36.0)
        with pytest.raises(SourceUnavailableError) as info:
            await _next(it)
        assert info.value.reason is UnavailableReason.DISCONNECTED
        assert not source.connected
    async with source:  # what the supervisor does next: reopen, which reconnects and resubscribes
        it = aiter(source.samples())
        await rig.thermo.wait_subscribed(rig.thermo_char, count=2)
        await rig.thermo.send(rig.thermo_char, _ht_packet(-5 + 370))
        third = await _next(it)
        assert third.celsius == pytest.approx(36.5)
        assert third.seq == 3  # per source, across reopens
        assert source.connected
    assert not source.connected
    assert not rig.thermo.connected


async def test_e4_start_command_samples_and_reconnect(rig: Rig) -> None:
    source = rig.wristband(offset_c=0.0)
    async with source:
        it = aiter(source.samples())
        await rig.e4.wait_subscribed(rig.e4_char)
        await _until(lambda: bool(rig.e4.writes))  # the start command follows the subscription
        ((char, command),) = rig.e4.writes
        assert char == "3e71" and command[0] == 0x01 and len(command) == 5
        assert abs(struct.unpack("<I", command[1:])[0] - time.time()) < 5

        await rig.e4.send(rig.e4_char, _e4_packet(15310, 15315, 15300, 15320))
        samples = [await _next(it) for _ in range(4)]
        assert [s.celsius for s in samples] == pytest.approx([33.05, 33.15, 32.85, 33.25])
        assert [s.seq for s in samples] == [0, 1, 2, 3]
        assert [b.t_mono - a.t_mono for a, b in itertools.pairwise(samples)] == [250_000_000] * 3
        assert samples[0].meta["packet_trailer"] == "00010203"

        await rig.e4.send(rig.e4_char, b"\x00" * 11)  # wrong length
        await rig.e4.drop_link()
        with pytest.raises(SourceUnavailableError, match="link lost"):
            await _next(it)
    async with source:
        it = aiter(source.samples())
        await rig.e4.wait_subscribed(rig.e4_char, count=2)
        await rig.e4.send(rig.e4_char, _e4_packet(15310, 15310, 15310, 15310))
        after = await _next(it)
        assert after.celsius == pytest.approx(33.05) and after.seq == 4
        assert source.decode_errors == {"length": 1}
        assert len(rig.e4.writes) == 2  # started again after the reconnect


async def test_absent_peripheral_and_wrong_adapter_are_unavailable(rig: Rig) -> None:
    absent = rig.thermometer(device_name="Nobody", scan_timeout_s=0.2)
    with pytest.raises(SourceUnavailableError) as info:
        await absent.__aenter__()
    assert info.value.reason is UnavailableReason.ABSENT
    assert info.value.source == "skin"
    assert "'Nobody'" in str(info.value)

    wrong = rig.thermometer(device_name="VE Thermo", adapter="hci7")
    with pytest.raises(SourceUnavailableError, match="hci7"):
        await wrong.__aenter__()


async def test_by_address(rig: Rig) -> None:
    source = rig.thermometer(address=THERMO_ADDRESS.lower())
    async with source:
        await rig.thermo.wait_subscribed(rig.thermo_char)
        assert source.device_address == THERMO_ADDRESS


async def test_without_a_radio_the_platform_backend_reports_unavailable() -> None:
    """No virtual radio: the real platform backend (BlueZ over D-Bus here) finds nothing, and says so."""
    source = BleThermometerSource("skin", device_name="Nobody", scan_timeout_s=0.3)
    with pytest.raises(SourceUnavailableError) as info:
        await source.__aenter__()
    assert info.value.reason in (UnavailableReason.ABSENT, UnavailableReason.PERMISSION)
    await source.__aexit__(None, None, None)


def test_config_and_build() -> None:
    cfg = load_config(
        None,
        {
            "sources": [
                {"kind": "e4", "adapter": "hci1", "offset_c": 0.3},
                {"kind": "ble-thermometer", "name": "probe", "address": "AA:BB:CC:DD:EE:FF", "site": "finger"},
            ]
        },
    )
    e4, probe = (build_source(s) for s in cfg.sources)
    assert isinstance(e4, E4BleSource) and e4.name == "wristband"
    assert (e4._device_name, e4._adapter, e4._offset_c) == ("Empatica E4", "hci1", 0.3)
    assert isinstance(probe, BleThermometerSource)
    assert (probe._address, probe._site) == ("AA:BB:CC:DD:EE:FF", "finger")
    with pytest.raises(ConfigError, match=r"sources\.0\.ble-thermometer.*device_name or address"):
        load_config(None, {"sources": [{"kind": "ble-thermometer"}]})
