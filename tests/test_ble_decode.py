"""Health Thermometer and E4 packet decoders against hand-computed byte strings."""

from __future__ import annotations

import datetime as dt

import pytest

from drivers.ble_decode import (
    FloatDecodeError,
    PacketError,
    decode_e4_temperature,
    decode_health_thermometer,
    decode_ieee11073_float,
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (bytes.fromhex("6d0100ff"), 36.5),  # 365 x 10^-1
        (bytes.fromhex("fbffff00"), -5.0),  # mantissa -5, exponent 0
        (bytes.fromhex("03000002"), 300.0),  # 3 x 10^2
        (bytes.fromhex("e4ffffff"), -2.8),  # -28 x 10^-1
    ],
)
def test_ieee11073_float(data: bytes, expected: float) -> None:
    assert decode_ieee11073_float(data) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (bytes.fromhex("ffff7f00"), "nan"),
        (bytes.fromhex("00008000"), "nres"),
        (bytes.fromhex("feff7f00"), "inf"),
        (bytes.fromhex("02008000"), "inf"),
        (bytes.fromhex("01008000"), "reserved"),
    ],
)
def test_ieee11073_special_values_are_errors(data: bytes, kind: str) -> None:
    with pytest.raises(FloatDecodeError) as info:
        decode_ieee11073_float(data)
    assert info.value.kind == kind
    assert data.hex() in str(info.value)


def test_celsius_without_options() -> None:
    reading = decode_health_thermometer(bytes.fromhex("006d0100ff"))
    assert reading.celsius == pytest.approx(36.5)
    assert not reading.fahrenheit_on_wire
    assert reading.timestamp is None and reading.site is None


def test_fahrenheit_is_converted() -> None:
    reading = decode_health_thermometer(bytes.fromhex("01da0300ff"))  # 98.6 °F
    assert reading.fahrenheit_on_wire
    assert reading.celsius == pytest.approx(37.0)


def test_timestamp_and_site() -> None:
    packet = bytes.fromhex("066d0100ffea070b1615050904")
    reading = decode_health_thermometer(packet)
    assert reading.celsius == pytest.approx(36.5)
    assert reading.timestamp == dt.datetime(2026, 11, 22, 21, 5, 9)
    assert reading.site == "finger"


@pytest.mark.parametrize(
    ("packet", "kind"),
    [
        (bytes.fromhex("006d01"), "truncated"),
        (bytes.fromhex("026d0100ffea07"), "truncated"),  # timestamp flagged, cut short
        (bytes.fromhex("006d0100ff00"), "length"),  # trailing byte not announced by flags
        (bytes.fromhex("026d0100ffea070d01000000"), "timestamp"),  # month 13
        (bytes.fromhex("00ffff7f00"), "nan"),
        (bytes.fromhex("00e8030000"), "range"),  # 1000 °C
    ],
)
def test_health_thermometer_errors(packet: bytes, kind: str) -> None:
    with pytest.raises(PacketError) as info:
        decode_health_thermometer(packet)
    assert info.value.kind == kind


def test_e4_packet_four_samples() -> None:
    # 15310 x 0.02 - 273.15 = 33.05; 15315 → 33.15; 15300 → 32.85; 15320 → 33.25
    packet = bytes.fromhex("ce3bd33bc43bd83ba1b2c3d4")
    samples, trailer = decode_e4_temperature(packet)
    assert samples == pytest.approx([33.05, 33.15, 32.85, 33.25])
    assert trailer == bytes.fromhex("a1b2c3d4")


@pytest.mark.parametrize(
    ("packet", "kind"),
    [(bytes(11), "length"), (bytes(13), "length"), (bytes(12), "range")],  # raw 0 → -273 °C
)
def test_e4_packet_errors(packet: bytes, kind: str) -> None:
    with pytest.raises(PacketError) as info:
        decode_e4_temperature(packet)
    assert info.value.kind == kind
