"""``vitaledge inspect PATH [--json]``: what a capture, photo, E4 CSV or recorded session holds.

Recognised: a FLIR ONE USB capture (a folder of bulk reads ``*.bin`` in name order, or one file of
them concatenated), a FLIR radiometric JPEG, an E4 export CSV (row 1 start unix time, row 2 rate in Hz,
then one sample a row), a session folder written by ``vitaledge record``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from fusion.errors import VitalEdgeError

__all__ = ["add_parser", "inspect_path", "run"]


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "inspect", help="say what a FLIR ONE capture, radiometric photo, E4 CSV or recorded session holds"
    )
    parser.add_argument("path", type=Path, help="capture folder or file, radiometric JPEG, E4 CSV, or session folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _planck_dict(p: Any) -> dict[str, object]:
    return {k: getattr(p, k) for k in ("r1", "r2", "b", "f", "o", "emissivity", "reflected_c", "provenance")}


def _range(values: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    finite = [v for v in values if math.isfinite(v[0]) and math.isfinite(v[1])]
    if not finite:
        return None, None
    return round(min(v[0] for v in finite), 3), round(max(v[1] for v in finite), 3)


def inspect_capture(reads: list[bytes]) -> dict[str, object]:
    """Summary of a FLIR ONE USB capture given as its bulk reads, in order.

    °C use the default constants (another unit's; see ``planck.provenance``), so they are indicative.
    """
    import numpy as np

    from drivers.flirone_frames import FrameAssembler, decode_thermal, decode_visible
    from drivers.flirone_planck import FLIRONE_COUNTS_SCALE, raw_to_celsius
    from edge.config import DEFAULT_FLIRONE_PLANCK

    planck = DEFAULT_FLIRONE_PLANCK.to_constants()
    errors: dict[str, int] = {}

    def count(kind: str, _message: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    assembler = FrameAssembler(count)
    frames = [frame for data in reads for frame in assembler.feed(data)]
    thermal_shape: list[int] | None = None
    visible_shape: list[int] | None = None
    ranges: list[tuple[float, float]] = []
    for frame in frames:
        counts, _ = decode_thermal(frame.thermal)
        celsius = raw_to_celsius(counts, planck, scale=FLIRONE_COUNTS_SCALE)
        thermal_shape = list(counts.shape)
        if np.isfinite(celsius).any():
            ranges.append((float(np.nanmin(celsius)), float(np.nanmax(celsius))))
    if frames:
        visible = decode_visible(frames[0].jpeg)
        visible_shape = None if visible is None else list(visible.shape)
    low, high = _range(ranges)
    return {
        "kind": "flirone-capture",
        "reads": len(reads),
        "bytes": sum(len(r) for r in reads),
        "frames": assembler.frames,
        "unique_frames": len(frames),
        "duplicates": assembler.duplicates,
        "ffc_frames": assembler.ffc_frames,
        "decode_errors": errors,
        "thermal_shape": thermal_shape,
        "visible_shape": visible_shape,
        "celsius_min": low,
        "celsius_max": high,
        "planck": _planck_dict(planck),
        "status": dict(frames[0].status) if frames else None,
    }


def inspect_jpeg(path: Path) -> dict[str, object]:
    """Summary of a FLIR radiometric JPEG (raises DecodeError for any other JPEG)."""
    import numpy as np

    from drivers.flir_jpeg import read_radiometric_jpeg

    image = read_radiometric_jpeg(path)
    low, high = _range([(float(np.nanmin(image.celsius)), float(np.nanmax(image.celsius)))])
    return {
        "kind": "flir-jpeg",
        "thermal_shape": list(image.celsius.shape),
        "photo_shape": None if image.photo is None else list(image.photo.shape),
        "celsius_min": low,
        "celsius_max": high,
        "planck": _planck_dict(image.planck),
    }


def inspect_e4_csv(path: Path) -> dict[str, object]:
    """Summary of an E4 export CSV: start time and rate from the two header rows, samples after them."""
    from drivers.e4_csv import read_e4_header

    with path.open(encoding="utf-8") as stream:
        header = read_e4_header(stream, "inspect", path)
        first = next(stream, "")
        samples = (1 if first.strip() else 0) + sum(1 for line in stream if line.strip())
    return {
        "kind": "e4-csv",
        "signal": path.stem,
        "columns": len(first.split(",")) if first.strip() else None,
        "samples": samples,
        "rate_hz": header.rate_hz,
        "start_unix": header.start_unix,
        "duration_s": samples / header.rate_hz,
    }


def inspect_session(folder: Path) -> dict[str, object]:
    """Summary of a session written by ``vitaledge record``: each stream (source and sample type), how much.

    One source may deliver several streams (the simulated rig: thermal, visible and skin), so streams are
    keyed by both, as ``record`` counted them.
    """
    from drivers.replay import read_manifest

    header, entries, bad = read_manifest(folder, "inspect")
    per_stream: dict[tuple[str, str], dict[str, Any]] = {}
    for e in entries:
        stream = per_stream.setdefault(
            (str(e.get("source")), str(e.get("type"))), {"samples": 0, "first": e["t_mono"], "last": e["t_mono"]}
        )
        stream["samples"] += 1
        stream["first"], stream["last"] = min(stream["first"], e["t_mono"]), max(stream["last"], e["t_mono"])
    streams: list[dict[str, object]] = []
    for (source, kind), stream in per_stream.items():
        span_s = (int(stream["last"]) - int(stream["first"])) / 1e9
        rate = (stream["samples"] - 1) / span_s if span_s > 0 else None
        streams.append(
            {"source": source, "type": kind, "samples": stream["samples"], "rate_hz": rate and round(rate, 3)}
        )
    span = (int(entries[-1]["t_mono"]) - int(entries[0]["t_mono"])) / 1e9 if entries else 0.0
    return {
        "kind": "session",
        "schema": header.get("schema"),
        "video_codec": header.get("video_codec"),
        "started_wall": header.get("started_wall"),
        "ended_wall": header.get("ended_wall"),  # null: the recording did not close cleanly
        "samples": len(entries),
        "duration_s": round(span, 3),
        "streams": streams,
        "bad_lines": len(bad),
        "dropped": header.get("dropped", {}),
    }


def inspect_path(path: Path) -> dict[str, object]:
    """What ``path`` holds, as a JSON-ready dict whose ``kind`` names the format.

    Raises:
        VitalEdgeError: the path does not exist or is no format this command knows.
        DecodeError: a radiometric JPEG that is broken.
    """
    from drivers.flirone_frames import MAGIC

    if path.is_dir():
        from drivers.replay import SESSION

        if (path / SESSION).is_file():
            return inspect_session(path)
        bins = sorted(p for p in path.glob("*.bin") if p.is_file())  # not a folder or a broken link named *.bin
        if bins:
            try:
                reads = [p.read_bytes() for p in bins]
            except OSError as exc:
                raise VitalEdgeError(f"{exc.filename}: cannot read: {exc.strerror or exc}") from exc
            return inspect_capture(reads)
        raise VitalEdgeError(f"{path}: a folder, but holds no recorded session or FLIR ONE capture (*.bin)")
    if not path.is_file():
        raise VitalEdgeError(f"{path}: no such file or folder")
    with path.open("rb") as f:
        head = f.read(4)
    if head[:2] == b"\xff\xd8":
        return inspect_jpeg(path)
    if head == MAGIC:
        return inspect_capture([path.read_bytes()])
    if path.suffix.lower() == ".csv":
        return inspect_e4_csv(path)
    raise VitalEdgeError(f"{path}: not a FLIR ONE capture, radiometric JPEG, E4 CSV or recorded session")


def _plain(value: object) -> str:
    """A value as a person reads it: no Python dict reprs."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)


def _human(summary: dict[str, object]) -> str:
    lines = []
    for key, value in summary.items():
        if key == "streams" and isinstance(value, list):
            lines.append("streams:")
            for s in value:
                rate = "" if s["rate_hz"] is None else f" at {s['rate_hz']:g} Hz"
                lines.append(f"  {s['source']} {s['type']}: {s['samples']} samples{rate}")
        elif isinstance(value, dict):
            lines.append(f"{key}:" + ("" if value else " -"))
            lines.extend(f"  {k}: {_plain(v)}" for k, v in value.items())
        else:
            lines.append(f"{key}: {_plain(value)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    summary = inspect_path(args.path)
    print(json.dumps(summary, indent=2) if args.json else _human(summary))
    return 0
