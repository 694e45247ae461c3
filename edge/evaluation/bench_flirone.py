"""``vitaledge bench flirone CAPTURE_DIR [--json]``: FLIR ONE frame assembly and decode cost per frame."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "measure", "run"]


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("flirone", help="FLIR ONE assembler + decoders on a USB capture")
    parser.add_argument(
        "capture", type=Path, nargs="?", default=Path("../shared/data/flirone/usb_capture"),
        help="folder of *.bin bulk reads (default: the project's test capture)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is reported")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def measure(reads: list[bytes], repeat: int) -> dict[str, float | int]:
    """Best per-frame time (ms) without and with the visible JPEG decode."""
    from drivers.flirone_frames import FrameAssembler, decode_thermal, decode_visible
    from drivers.flirone_planck import FLIRONE_COUNTS_SCALE, raw_to_celsius
    from edge.config import DEFAULT_FLIRONE_PLANCK

    planck = DEFAULT_FLIRONE_PLANCK.to_constants()
    result: dict[str, float | int] = {}
    for visible in (False, True):
        best_s, frames = float("inf"), 0
        for _ in range(max(1, repeat)):
            start, frames = time.perf_counter(), 0
            assembler = FrameAssembler()
            for data in reads:
                for frame in assembler.feed(data):
                    counts, _ = decode_thermal(frame.thermal)
                    raw_to_celsius(counts, planck, scale=FLIRONE_COUNTS_SCALE)
                    if visible:
                        decode_visible(frame.jpeg)
                    frames += 1
            best_s = min(best_s, (time.perf_counter() - start) / max(frames, 1))
        result["ms_per_frame_with_visible" if visible else "ms_per_frame_thermal_only"] = round(best_s * 1e3, 3)
        result["frames"] = frames
    return result


def run(args: argparse.Namespace) -> int:
    from fusion.errors import VitalEdgeError

    try:
        reads = [p.read_bytes() for p in sorted(args.capture.glob("*.bin")) if p.is_file()]
    except OSError as exc:
        raise VitalEdgeError(f"{exc.filename}: cannot read: {exc.strerror or exc}") from exc
    if not reads:
        raise VitalEdgeError(f"{args.capture}: no *.bin bulk reads")
    result = measure(reads, args.repeat)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0
