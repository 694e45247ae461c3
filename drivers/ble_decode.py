"""Pure decoders for wristband and thermometer Bluetooth LE packets (no I/O, no clocks).

Health Thermometer (Bluetooth SIG service 0x1809, Temperature Measurement 0x2A1C): a flags byte
(bit 0 set: °F, bit 1: a 7-byte timestamp follows, bit 2: a temperature-type byte follows), then an
IEEE-11073 32-bit FLOAT (24-bit signed mantissa, 8-bit signed base-10 exponent, little-endian).

Empatica E4 skin temperature (characteristic 0x3EA6) — community-decoded, unverified on hardware:
a 12-byte notification whose first 8 bytes are four little-endian u16 samples in units of 0.02 K
(°C = raw x 0.02 - 273.15, the convention of the infrared thermopile sensors in such wristbands),
oldest first, 4 Hz; the last 4 bytes are not understood and are kept as hex in ``meta``.
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass

from fusion.samples import implausible_skin_c

__all__ = [
    "E4_SAMPLES_PER_PACKET",
    "E4_SAMPLE_RATE_HZ",
    "TEMPERATURE_SITES",
    "FloatDecodeError",
    "HealthThermometerReading",
    "PacketError",
    "decode_e4_temperature",
    "decode_health_thermometer",
    "decode_ieee11073_float",
]

E4_SAMPLES_PER_PACKET = 4
E4_SAMPLE_RATE_HZ = 4.0
_E4_PACKET_BYTES = 12

# IEEE-11073 FLOAT special mantissas (exponent 0 in the standard; checked on the mantissa alone).
_SPECIAL_MANTISSAS = {
    0x7FFFFF: "NaN",
    -0x800000: "NRes",
    0x7FFFFE: "+INF",
    -0x7FFFFE: "-INF",
    -0x7FFFFF: "reserved",
}

# Bluetooth SIG "Temperature Type" values.
TEMPERATURE_SITES = {
    1: "armpit",
    2: "body",
    3: "ear",
    4: "finger",
    5: "gastrointestinal",
    6: "mouth",
    7: "rectum",
    8: "toe",
    9: "tympanum",
}


class PacketError(ValueError):
    """A packet could not be decoded; ``kind`` is a short label for counting."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class FloatDecodeError(PacketError):
    """An IEEE-11073 FLOAT held a special value (NaN, NRes, ±INF, reserved)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthThermometerReading:
    """One decoded Temperature Measurement."""

    celsius: float
    fahrenheit_on_wire: bool
    timestamp: dt.datetime | None = None  # the thermometer's own clock, naive local time
    site: str | None = None  # from the temperature-type byte, when present


def decode_ieee11073_float(data: bytes) -> float:
    """Decode a little-endian IEEE-11073 32-bit FLOAT.

    Args:
        data: exactly 4 bytes.

    Returns:
        mantissa x 10^exponent.

    Raises:
        PacketError: wrong length (kind "truncated").
        FloatDecodeError: a special value (kind "nan", "nres", "inf" or "reserved").
    """
    if len(data) != 4:
        raise PacketError(f"IEEE-11073 FLOAT needs 4 bytes, got {len(data)}", "truncated")
    raw = int.from_bytes(data, "little")
    mantissa = raw & 0xFFFFFF
    if mantissa & 0x800000:
        mantissa -= 0x1000000
    exponent = struct.unpack("<b", data[3:4])[0]
    special = _SPECIAL_MANTISSAS.get(mantissa)
    if special is not None:
        kind = {"NaN": "nan", "NRes": "nres", "+INF": "inf", "-INF": "inf"}.get(special, "reserved")
        raise FloatDecodeError(f"IEEE-11073 FLOAT special value {special} ({data.hex()})", kind)
    return float(mantissa * 10.0**exponent)


def _check_range(celsius: float, what: str) -> float:
    if (why := implausible_skin_c(celsius)) is not None:
        raise PacketError(f"{what} {why}", "range")
    return celsius


def decode_health_thermometer(data: bytes) -> HealthThermometerReading:
    """Decode one Temperature Measurement (0x2A1C) indication.

    Args:
        data: the characteristic value as received.

    Returns:
        The reading in °C (converted when the flags say °F), with timestamp and site when present.

    Raises:
        PacketError: truncated packet, trailing bytes, bad timestamp or implausible temperature.
        FloatDecodeError: the value is NaN, NRes, ±INF or reserved.
    """
    if len(data) < 5:
        raise PacketError(f"Temperature Measurement needs at least 5 bytes, got {len(data)}", "truncated")
    flags = data[0]
    fahrenheit = bool(flags & 0x01)
    expected = 5 + (7 if flags & 0x02 else 0) + (1 if flags & 0x04 else 0)
    if len(data) < expected:
        raise PacketError(f"flags 0x{flags:02x} need {expected} bytes, got {len(data)}", "truncated")
    if len(data) > expected:
        raise PacketError(f"flags 0x{flags:02x} need {expected} bytes, got {len(data)}", "length")
    value = decode_ieee11073_float(bytes(data[1:5]))
    celsius = (value - 32.0) * 5.0 / 9.0 if fahrenheit else value
    offset = 5
    timestamp = None
    if flags & 0x02:
        year, month, day, hour, minute, second = struct.unpack_from("<HBBBBB", data, offset)
        offset += 7
        try:
            timestamp = dt.datetime(year, month, day, hour, minute, second)  # device-local clock
        except ValueError as exc:
            raise PacketError(f"bad timestamp {data[5:12].hex()}: {exc}", "timestamp") from exc
    site = None
    if flags & 0x04:
        site = TEMPERATURE_SITES.get(data[offset], f"type-{data[offset]}")
    return HealthThermometerReading(
        celsius=_check_range(celsius, "temperature"),
        fahrenheit_on_wire=fahrenheit,
        timestamp=timestamp,
        site=site,
    )


def decode_e4_temperature(data: bytes) -> tuple[list[float], bytes]:
    """Decode one E4 skin-temperature notification (community decoding, unverified on hardware).

    Args:
        data: the 12-byte characteristic value.

    Returns:
        The four samples in °C, oldest first, and the 4 trailing bytes not understood.

    Raises:
        PacketError: wrong length (kind "length") or a sample outside the plausible range ("range").
    """
    if len(data) != _E4_PACKET_BYTES:
        raise PacketError(f"E4 temperature packet needs {_E4_PACKET_BYTES} bytes, got {len(data)}", "length")
    raws = struct.unpack_from("<4H", data, 0)
    samples = [_check_range(raw * 0.02 - 273.15, "E4 sample") for raw in raws]
    return samples, bytes(data[8:])
