"""Home Assistant MQTT device discovery: one retained payload that declares every sensor of the device.

The payload follows HA's device-based discovery schema (``<prefix>/device/<id>/config``): shared
``device`` and ``origin`` mappings, ``components`` keyed by object id, each with ``platform`` and
``unique_id``. Values come from the live ``vitals`` topic only (never ``history``), through templates
into the VitalsRecord JSON; a null renders as ``None``, which HA shows as unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata

__all__ = ["Discovery", "discovery_message", "discovery_topic"]


def _version() -> str:
    try:
        return metadata.version("vitaledge")
    except metadata.PackageNotFoundError:
        return "0"


@dataclass(frozen=True, slots=True)
class _Sensor:
    object_id: str
    name: str
    template: str  # Jinja, into the vitals JSON
    unit: str | None
    device_class: str | None = None
    icon: str | None = None
    precision: int | None = None


_SENSORS = (
    _Sensor("heart_rate", "Heart rate", "{{ value_json.heart_rate.bpm }}", "bpm", icon="mdi:heart-pulse",
            precision=0),
    _Sensor("face_temperature", "Face temperature", "{{ value_json.temperature.face_corrected_c }}", "°C",
            device_class="temperature", precision=1),
    _Sensor("face_temperature_raw", "Face temperature (raw)", "{{ value_json.temperature.face_raw_c }}", "°C",
            device_class="temperature", precision=1),
    # A difference, not a temperature: device_class temperature would let HA convert it as one (+32 in °F).
    _Sensor("thermal_offset", "Thermal offset", "{{ value_json.temperature.offset_c }}", "°C",
            icon="mdi:thermometer-plus", precision=2),
    _Sensor("signal_confidence", "Signal confidence",
            "{{ (value_json.heart_rate.confidence * 100) | round(0) }}", "%", icon="mdi:signal", precision=0),
)


@dataclass(frozen=True, slots=True)
class Discovery:
    """What the MQTT sink publishes for Home Assistant: the config message and where HA announces itself."""

    topic: str  # <prefix>/device/<device_id>/config, retained
    payload: bytes
    ha_status_topic: str  # <prefix>/status: "online" means HA (re)started; send the config again


def discovery_topic(device_id: str, prefix: str = "homeassistant") -> str:
    """The retained config topic for this device."""
    return f"{prefix}/device/{device_id}/config"


def discovery_message(
    device_id: str,
    *,
    base_topic: str,
    prefix: str = "homeassistant",
    expire_after_s: int = 30,
    name: str | None = None,
    qos: int = 1,
) -> Discovery:
    """Build the device discovery message.

    Args:
        device_id: the configured device id (identifies the device and prefixes unique ids).
        base_topic: ``vitaledge/<device_id>``; state from ``/vitals``, availability from ``/status``.
        prefix: HA's discovery prefix.
        expire_after_s: HA marks values unavailable when no update came for this long.
        name: device name shown in HA; None: ``VitalEdge <device_id>``.
        qos: QoS HA subscribes with.

    Returns:
        Topic, JSON payload and HA's birth topic.
    """
    components: dict[str, dict[str, object]] = {}
    for sensor in _SENSORS:
        component: dict[str, object] = {
            "platform": "sensor",
            "unique_id": f"vitaledge_{device_id}_{sensor.object_id}",
            "name": sensor.name,
            "value_template": sensor.template,
            "state_class": "measurement",
            "expire_after": expire_after_s,
        }
        if sensor.unit is not None:
            component["unit_of_measurement"] = sensor.unit
        if sensor.device_class is not None:
            component["device_class"] = sensor.device_class
        if sensor.icon is not None:
            component["icon"] = sensor.icon
        if sensor.precision is not None:
            component["suggested_display_precision"] = sensor.precision
        components[sensor.object_id] = component
    payload = {
        "device": {
            "identifiers": [f"vitaledge_{device_id}"],
            "name": name or f"VitalEdge {device_id}",
            "manufacturer": "vitaledge",
            "model": "contact-free vital signs",
            "sw_version": _version(),
        },
        "origin": {"name": "vitaledge", "sw_version": _version()},
        "availability": [
            {
                "topic": f"{base_topic}/status",
                # "stopped" (clean exit) must read as unavailable too, not be ignored.
                "value_template": "{{ 'online' if value == 'online' else 'offline' }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "state_topic": f"{base_topic}/vitals",
        "qos": qos,
        "components": components,
    }
    return Discovery(
        topic=discovery_topic(device_id, prefix),
        payload=json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        ha_status_topic=f"{prefix}/status",
    )
