"""The wire format: the committed schema file is the model's schema, and records serialise as published."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from edge.publish.wire import VitalsMessage, json_dict_from_record, payload_from_record, published_schema
from fusion.face import Box
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord

REPO = Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO / "edge" / "publish" / "schema" / "vitals.schema.json"


def _record(*, bpm: float | None = 72.345, face_raw_c: float | None = math.nan) -> VitalsRecord:
    return VitalsRecord(
        device_id="lab-1",
        seq=42,
        boot_id="5e1f" * 8,
        t_mono=123_456_789_000,
        t_wall=1_795_000_000.123456,
        heart_rate=HeartRateReading(
            bpm=bpm,
            confidence=0.81234,
            method="pos+chrom",
            face_box=Box(270.04, 110.0, 190.06, 190.0),
            flags=("warming_up",),
            window_end_t_mono=120_456_789_000,
        ),
        thermal=ThermalReading(
            face_raw_c=face_raw_c,
            face_corrected_c=35.6049,
            offset_c=math.inf,
            reference="fused",
            reference_measured_c=31.9,
            reference_estimated_c=None,
            wristband_c=34.5,
            registration_ncc=0.71234,
            quality={"wrist_pixels": 12.0, "palm_pixels": 410.0004, "face_var": -math.inf},
            flags=("ffc", "warming_up"),
        ),
    )


def test_committed_schema_is_the_models_schema() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == published_schema(), (
        "the schema file is stale: python -m edge.publish.wire > edge/publish/schema/vitals.schema.json"
    )


def test_module_prints_the_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edge.publish.wire"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert out == SCHEMA_FILE.read_text(encoding="utf-8")


def test_payload_rounds_and_turns_non_finite_into_null() -> None:
    body = json.loads(payload_from_record(_record()))
    assert body == {
        "schema": 1, "device_id": "lab-1", "boot_id": "5e1f" * 8,
        "seq": 42, "t_wall": 1_795_000_000.123, "t_mono_ns": 123_456_789_000,
        "heart_rate": {
            "bpm": 72.3, "confidence": 0.812, "method": "pos+chrom", "face_box": [270.0, 110.0, 190.1, 190.0],
            "window_end_t_mono_ns": 120_456_789_000,
        },
        "temperature": {
            "face_raw_c": None, "face_corrected_c": 35.6, "offset_c": None, "reference": "fused",
            "reference_measured_c": 31.9, "reference_estimated_c": None, "wristband_c": 34.5,
            "registration_ncc": 0.712, "quality": {"face_var": None, "palm_pixels": 410.0, "wrist_pixels": 12.0},
        },
        "degraded": False,
        "flags": ["ffc", "warming_up"],
    }  # fmt: skip
    assert list(body) == list(json_dict_from_record(_record())), "key order is the schema's"
    assert b"NaN" not in payload_from_record(_record()) and b"Infinity" not in payload_from_record(_record())


def test_payloads_validate_against_the_schema_and_the_model() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    for record in (_record(), _record(bpm=None, face_raw_c=34.1)):
        body = json.loads(payload_from_record(record))
        jsonschema.validate(body, schema)
        assert VitalsMessage.model_validate(body).model_dump(by_alias=True, exclude={"replayed"}) == body
        jsonschema.validate({**body, "replayed": True}, schema)
    greyscale = json.loads(payload_from_record(_record()))
    greyscale["heart_rate"]["method"] = "luma"
    jsonschema.validate(greyscale, schema)


def test_schema_rejects_what_the_contract_forbids() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    body = json.loads(payload_from_record(_record()))
    for broken in (
        {**body, "extra": 1},
        {**body, "seq": -1},
        {**body, "device_id": "Lab 1"},
        {**body, "heart_rate": {**body["heart_rate"], "method": "guess"}},
        {**body, "heart_rate": {**body["heart_rate"], "method": "luma+pos"}},  # luma runs alone, on grey frames
        {**body, "flags": ["ffc", "ffc"]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
