"""Home Assistant device discovery: the real payload against the fields HA requires, over a real broker.

Required fields, from HA's MQTT integration docs (device-based discovery): the topic is
``<prefix>/device/<object_id>/config``; the root carries ``device`` (``dev``) with ``identifiers`` or
``connections``, and ``origin`` (``o``) with ``name``; components sit under ``components`` (``cmps``),
each with ``platform`` (``p``) and, for entities, a ``unique_id``. A sensor needs a ``state_topic``
(shared at the root or its own); ``state_class: measurement`` needs a unit; ``device_class: temperature``
accepts °C, °F or K; availability entries need a ``topic``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import aiomqtt
import jsonschema
import pytest

from edge.config import MqttConfig
from edge.publish.homeassistant import discovery_message
from edge.publish.mqtt import MqttSink
from edge.publish.outbox import Outbox
from edge.publish.wire import json_dict_from_record
from tests.mosquitto import MosquittoBroker
from tests.test_mqtt_outage import make_record

DEVICE_DISCOVERY_SCHEMA = {
    "type": "object",
    "required": ["device", "origin", "components"],
    "properties": {
        "device": {
            "type": "object",
            "anyOf": [
                {"required": ["identifiers"], "properties": {"identifiers": {"type": "array", "minItems": 1}}},
                {"required": ["connections"]},
            ],
        },
        "origin": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        "availability": {
            "type": "array",
            "items": {"type": "object", "required": ["topic"], "properties": {"topic": {"type": "string"}}},
        },
        "state_topic": {"type": "string", "pattern": "^[^#+]+$"},
        "qos": {"enum": [0, 1, 2]},
        "components": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["platform", "unique_id"],
                "properties": {
                    "platform": {"enum": ["sensor", "binary_sensor"]},
                    "unique_id": {"type": "string", "minLength": 1},
                    "state_class": {"enum": ["measurement", "total", "total_increasing"]},
                    "expire_after": {"type": "integer", "minimum": 1},
                    "icon": {"type": "string", "pattern": "^mdi:"},
                },
                "allOf": [
                    {  # HA's temperature sensors accept only these units
                        "if": {"required": ["device_class"], "properties": {"device_class": {"const": "temperature"}}},
                        "then": {"required": ["unit_of_measurement"],
                                 "properties": {"unit_of_measurement": {"enum": ["°C", "°F", "K"]}}},
                    },
                    {
                        "if": {"required": ["state_class"]},
                        "then": {"required": ["unit_of_measurement"]},
                    },
                ],
            },
        },
    },
}


def payload_for(device_id: str) -> dict[str, object]:
    message = discovery_message(device_id, base_topic=f"vitaledge/{device_id}", expire_after_s=30)
    body = json.loads(message.payload)
    assert isinstance(body, dict)
    return body


def test_payload_has_every_field_home_assistant_requires() -> None:
    body = payload_for("kitchen-1")
    jsonschema.validate(body, DEVICE_DISCOVERY_SCHEMA)
    components = body["components"]
    assert isinstance(components, dict)
    ids = [c["unique_id"] for c in components.values()]
    assert len(ids) == len(set(ids)), "unique ids are unique"
    assert body["state_topic"] == "vitaledge/kitchen-1/vitals", "state from live vitals, never history"
    availability = body["availability"]
    assert isinstance(availability, list) and availability[0]["topic"] == "vitaledge/kitchen-1/status"


def test_sensors_as_the_issue_asks() -> None:
    components = payload_for("kitchen-1")["components"]
    assert isinstance(components, dict)
    hr = components["heart_rate"]
    assert (hr["unit_of_measurement"], hr["state_class"], hr["icon"]) == ("bpm", "measurement", "mdi:heart-pulse")
    for key in ("face_temperature", "face_temperature_raw"):
        assert components[key]["device_class"] == "temperature"
        assert components[key]["unit_of_measurement"] == "°C"
    assert "device_class" not in components["thermal_offset"], "an offset must not be unit-converted as a temperature"
    assert components["signal_confidence"]["unit_of_measurement"] == "%"
    assert all(c["expire_after"] == 30 for c in components.values())


def test_templates_point_into_the_record_json() -> None:
    record = json_dict_from_record(make_record("kitchen-1", 3))
    components = payload_for("kitchen-1")["components"]
    assert isinstance(components, dict)
    for name, component in components.items():
        paths = re.findall(r"value_json((?:\.[a-z_]+)+)", component["value_template"])
        assert paths, name
        for path in paths:
            node: object = record
            for key in path.strip(".").split("."):
                assert isinstance(node, dict) and key in node, f"{name}: {path} not in the record"
                node = node[key]
            assert isinstance(node, int | float), f"{name}: {path} is not a number"


async def test_discovery_is_retained_and_resent_when_home_assistant_restarts(
    mosquitto: MosquittoBroker, tmp_path: Path, topic_prefix: str
) -> None:
    message = discovery_message(topic_prefix, base_topic=f"vitaledge/{topic_prefix}")
    sink = MqttSink(MqttConfig(), url=mosquitto.url, device_id=topic_prefix,
                    outbox=Outbox(tmp_path / "o.sqlite"), discovery=message)
    async with sink:
        await sink.send(make_record(topic_prefix, 0))
        deadline = time.monotonic() + 5
        while sink.stats.published + sink.stats.replayed < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as ha:
            await ha.subscribe(message.topic, qos=1)
            first = await asyncio.wait_for(anext(aiter(ha.messages)), 5)
            assert first.retain, "a late subscriber (HA) gets the config from the broker"
            assert json.loads(first.payload if isinstance(first.payload, bytes) else b"") == json.loads(message.payload)
            await ha.publish("homeassistant/status", b"online", qos=1)
            again = await asyncio.wait_for(anext(aiter(ha.messages)), 5)
            assert not again.retain and again.payload == message.payload, "re-sent live on HA's birth message"


@pytest.mark.parametrize("prefix", ["homeassistant", "ha/discovery"])
def test_topic_follows_the_prefix(prefix: str) -> None:
    message = discovery_message("dev-1", base_topic="vitaledge/dev-1", prefix=prefix)
    assert message.topic == f"{prefix}/device/dev-1/config"
    assert message.ha_status_topic == f"{prefix}/status"
