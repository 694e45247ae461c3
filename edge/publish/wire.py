"""The JSON wire format of a published record (schema 1): a pydantic model whose JSON schema is the published one.

``edge/publish/schema/vitals.schema.json`` is this module's output; a test fails when they differ. After changing
the model, regenerate it with ``python -m edge.publish.wire > edge/publish/schema/vitals.schema.json``.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from fusion.vitals import VitalsRecord

__all__ = [
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "HeartRateMessage",
    "TemperatureMessage",
    "VitalsMessage",
    "json_dict_from_record",
    "message_from_record",
    "payload_from_record",
    "published_schema",
]

SCHEMA_VERSION = 1
SCHEMA_ID = f"https://vitaledge.invalid/schema/vitals-{SCHEMA_VERSION}.json"

_Celsius = float | None


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeartRateMessage(_Wire):
    """The heart-rate part of a record."""

    bpm: Annotated[float, Field(ge=40, le=180)] | None
    confidence: Annotated[float, Field(ge=0, le=1)] = Field(
        description="how much the 10 s window backs the published rate: the power at that rate as a share of "
        "the tallest peak, in the fused spectrum times in the least convinced estimator's (the tracker, default); "
        "the spectral confidence with tracker null; a learned model's when heart_rate.confidence_model is set. "
        "Readings under the threshold carry the low_confidence flag"
    )
    method: Annotated[str, Field(pattern=r"^(luma|(pos|chrom|onnx)(\+(pos|chrom|onnx))*)$")] = Field(
        description="the pulse estimators whose spectra were fused, e.g. pos+chrom; luma: intensity only, on "
        "greyscale (IR, mono) frames, which also carry the greyscale flag"
    )
    face_box: Annotated[list[float], Field(min_length=4, max_length=4)] | None = Field(
        description="x, y, width, height in webcam pixels"
    )
    window_end_t_mono_ns: int | None = Field(
        default=None,
        description="end of the window the rate describes (monotonic ns); the tracker looks a few windows "
        "ahead, so it is that much before the record's t_mono_ns",
    )


class TemperatureMessage(_Wire):
    """The thermal part of a record: face temperature raw and corrected, and the reference that corrected it."""

    face_raw_c: _Celsius
    face_corrected_c: _Celsius
    offset_c: _Celsius
    reference: Literal["palm", "wrist", "fused"] | None
    reference_measured_c: _Celsius
    reference_estimated_c: _Celsius
    wristband_c: _Celsius
    registration_ncc: Annotated[float, Field(ge=-1, le=1)] | None
    quality: dict[str, float | None]


class VitalsMessage(_Wire):
    """One record as published on ``vitaledge/<device_id>/vitals`` (and ``history``)."""

    model_config = ConfigDict(
        title=f"vitaledge VitalsRecord, schema {SCHEMA_VERSION} (topic vitaledge/<device_id>/vitals and /history)",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID},
    )

    schema_: Literal[1] = Field(alias="schema")
    device_id: str = Field(pattern=r"^[a-z0-9-]+$")
    boot_id: str = Field(
        description="random id of the app run that numbered the record: a new boot id with seq continuing is a "
        "restart; a gap in seq within one boot id is a lost message"
    )
    seq: int = Field(ge=0, description="per device, from 0, no gaps: a gap is a lost message")
    t_wall: float = Field(description="unix seconds at the end of the second this record describes")
    t_mono_ns: int = Field(description="device monotonic clock, ns; for ordering only")
    replayed: bool = Field(default=False, description="true on the history topic: sent late, after an outage")
    heart_rate: HeartRateMessage
    temperature: TemperatureMessage
    degraded: bool = Field(
        default=False,
        description="the CPU could not fuse every frame: the heart rate came from fewer webcam frames"
        " (at least 10 fps), the temperature from fewer thermal frames",
    )
    flags: list[str] = Field(json_schema_extra={"uniqueItems": True})


def _num(value: float | None, ndigits: int) -> float | None:
    """Rounded, or None for a missing or non-finite number (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), ndigits)


def message_from_record(record: VitalsRecord) -> VitalsMessage:
    """The wire form of a record: rounded, NaN/inf as null.

    Built without validation, as the fields come from fusion's typed readings: publishing never drops a record
    over a value at the edge of a range (the schema test checks the published shape).

    Args:
        record: a numbered record (``seq`` stamped by the dispatcher).

    Returns:
        The message.
    """
    hr, th = record.heart_rate, record.thermal
    return VitalsMessage.model_construct(
        schema_=SCHEMA_VERSION,
        device_id=record.device_id,
        boot_id=record.boot_id,
        seq=record.seq,
        t_wall=round(record.t_wall, 3),
        t_mono_ns=record.t_mono,
        heart_rate=HeartRateMessage.model_construct(
            bpm=_num(hr.bpm, 1),
            confidence=_num(hr.confidence, 3) or 0.0,
            method=hr.method,
            face_box=hr.face_box.as_list() if hr.face_box else None,
            window_end_t_mono_ns=hr.window_end_t_mono,
        ),
        temperature=TemperatureMessage.model_construct(
            face_raw_c=_num(th.face_raw_c, 2),
            face_corrected_c=_num(th.face_corrected_c, 2),
            offset_c=_num(th.offset_c, 3),
            reference=th.reference,
            reference_measured_c=_num(th.reference_measured_c, 2),
            reference_estimated_c=_num(th.reference_estimated_c, 2),
            wristband_c=_num(th.wristband_c, 2),
            registration_ncc=_num(th.registration_ncc, 3),
            quality={k: _num(v, 3) for k, v in sorted(th.quality.items())},
        ),
        degraded=record.degraded,
        flags=list(record.flags),
    )


def json_dict_from_record(record: VitalsRecord) -> dict[str, object]:
    """The wire form as a JSON-ready dict, keys in schema order (``replayed`` is added on replay only).

    Args:
        record: a numbered record.

    Returns:
        The record's message as plain dicts, lists and numbers.
    """
    return message_from_record(record).model_dump(by_alias=True, exclude={"replayed"})


def payload_from_record(record: VitalsRecord) -> bytes:
    """The compact JSON bytes published for a record.

    Args:
        record: a numbered record.

    Returns:
        UTF-8 JSON, no NaN.
    """
    return json.dumps(json_dict_from_record(record), separators=(",", ":"), allow_nan=False).encode()


def published_schema() -> str:
    """The JSON schema file's text, as committed in ``edge/publish/schema/vitals.schema.json``."""
    return json.dumps(VitalsMessage.model_json_schema(by_alias=True), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(published_schema(), end="")
