"""``vitaledge eval thermal``: Table II of Yoshikawa et al. on the simulated rig, through the live pipeline.

The rig runs as fast as it can (simulated clock); every thermal frame and wristband reading goes through
three real :class:`fusion.thermal.ThermalPipeline` objects (``palm``, ``wrist``, ``fused``), built by the
same builder ``vitaledge run`` uses. Each frame's face temperature is compared with the rig's truth
(``meta["true_face_c"]``): *baseline* is the camera's own face reading (the pipeline's uncorrected
``face_raw_c``), the others its corrected reading. Only frames on which all four numbers exist are scored,
so the four rows describe the same frames. The thermal path uses the sled's own visible camera, so the
rig's webcam stream is not rendered; the three pipelines share one measurement stage (registration,
face detection, regions: the same for every mode), so each frame is measured once.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from edge.config import ThermalConfig
from fusion.face import FaceDetector

__all__ = ["PAPER_TABLE_II", "ThermalEvaluation", "add_parser", "evaluate", "run"]

ROWS = ("baseline", "palm", "wrist", "fused")
MODES = ("palm", "wrist", "fused")
# Yoshikawa et al. 2019, Table II: face temperature error (°C) of the raw camera and of each reference.
PAPER_TABLE_II: dict[str, tuple[float, float] | None] = {
    "baseline": (0.884, 1.616),
    "palm": (0.653, 0.707),
    "wrist": (0.723, 0.484),
    "fused": None,  # not in the paper: this project's addition
}


@dataclass(slots=True)
class ThermalEvaluation:
    """Per-row face-temperature errors (°C) over the scored frames, and what was not scored."""

    seconds: float
    seed: int
    errors_c: dict[str, list[float]] = field(default_factory=lambda: {row: [] for row in ROWS})
    thermal_frames: int = 0
    ffc_frames: int = 0
    unscored_frames: int = 0  # no face, no reference yet, ...
    wall_s: float = 0.0

    def stats(self, row: str) -> tuple[float, float] | None:
        """(MAE, SD) of one row's errors; None without at least two scored frames."""
        e = self.errors_c[row]
        if len(e) < 2:
            return None
        return statistics.fmean(abs(x) for x in e), statistics.stdev(e)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for row in ROWS:
            s = self.stats(row)
            mean = statistics.fmean(self.errors_c[row]) if self.errors_c[row] else None
            out[row] = {
                "mae_c": round(s[0], 3) if s else None,
                "sd_c": round(s[1], 3) if s else None,
                "mean_error_c": round(mean, 3) if mean is not None else None,
            }
        out["frames"] = {
            "thermal": self.thermal_frames,
            "scored": len(self.errors_c["baseline"]),
            "ffc": self.ffc_frames,
            "unscored": self.unscored_frames,
        }
        out["seconds"], out["seed"] = self.seconds, self.seed
        out["paper"] = {row: {"mae_c": v[0], "sd_c": v[1]} for row, v in PAPER_TABLE_II.items() if v}
        return out


def evaluate(
    seconds: float,
    seed: int,
    *,
    detector: FaceDetector | None = None,
    config: ThermalConfig | None = None,
    progress: TextIO | None = None,
) -> ThermalEvaluation:
    """Run the rig for ``seconds`` of sample time through one pipeline per mode and score each frame.

    Args:
        seconds: sample time to simulate.
        seed: the rig's seed.
        detector: face detector (default: OpenCV's Haar cascade, as ``vitaledge run`` builds it).
        config: thermal settings (regressions, wristband window); ``reference`` is set per pipeline.
        progress: where to write a one-line progress indicator, or None.
    """
    from drivers.synthetic import SimulatedRig
    from edge.build import build_thermal_pipeline
    from fusion.samples import SkinTemperature, ThermalFrame
    from fusion.thermal import ThermalMeasurer

    if detector is None:
        from models.face_detectors import HaarFaceDetector

        detector = HaarFaceDetector()
    base = config or ThermalConfig()
    # The three pipelines see the same frames: registration, detection and regions run once per frame.
    measurer = ThermalMeasurer(detector)
    pipelines = {m: build_thermal_pipeline(base.model_copy(update={"reference": m}), detector, measurer) for m in MODES}
    result = ThermalEvaluation(seconds=seconds, seed=seed)
    rig = SimulatedRig(seed=seed, realtime=False, webcam=False)
    start = time.monotonic()
    last_shown = -1
    for sample in rig.stream(seconds):
        if isinstance(sample, SkinTemperature):
            for p in pipelines.values():
                p.push_skin(sample.celsius, sample.t_mono)
            continue
        if not isinstance(sample, ThermalFrame):
            continue
        result.thermal_frames += 1
        readings = {}
        for mode, p in pipelines.items():
            p.push_thermal(sample, None)
            readings[mode] = p.reading()
        if sample.ffc:
            result.ffc_frames += 1
            continue
        raw = readings["fused"].face_raw_c
        corrected = {m: r.face_corrected_c for m, r in readings.items()}
        if raw is None or any(c is None for c in corrected.values()):
            result.unscored_frames += 1
            continue
        truth = float(sample.meta["true_face_c"])  # type: ignore[arg-type]
        result.errors_c["baseline"].append(raw - truth)
        for mode, c in corrected.items():
            assert c is not None
            result.errors_c[mode].append(c - truth)
        shown = int(sample.seq / 8.7 / 10)
        if progress is not None and shown != last_shown:
            last_shown = shown
            print(f"\r  {sample.seq / 8.7:6.0f} / {seconds:.0f} s of rig time", end="", file=progress, flush=True)
    if progress is not None:
        print(file=progress)
    result.wall_s = time.monotonic() - start
    return result


def _cell(v: float | None) -> str:
    return f"{v:7.3f}" if v is not None and math.isfinite(v) else "      —"


def format_table(ev: ThermalEvaluation) -> str:
    """Table II: this run beside the paper."""
    d = ev.as_dict()
    lines = [
        f"Face temperature error vs truth (°C): simulated rig, {ev.seconds:g} s, seed {ev.seed}, "
        f"{d['frames']['scored']} of {ev.thermal_frames} thermal frames scored ({ev.ffc_frames} during FFC)",
        f"{'':10} {'this run':>16}   {'Yoshikawa et al. Table II':>26}",
        f"{'reference':10} {'MAE':>7} {'SD':>8}   {'MAE':>13} {'SD':>12}",
    ]
    for row in ROWS:
        paper = PAPER_TABLE_II[row]
        lines.append(
            f"{row.capitalize():10} {_cell(d[row]['mae_c'])} {_cell(d[row]['sd_c']):>8}   "
            f"{_cell(paper[0] if paper else None):>13} {_cell(paper[1] if paper else None):>12}"
        )
    lines.append(f"({ev.wall_s:.0f} s wall time)")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("thermal", help="Table II (offset correction) on the simulated rig")
    parser.add_argument("--seconds", type=float, default=600.0, help="rig time to simulate (default 600)")
    parser.add_argument("--seed", type=int, default=1, help="the rig's seed (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.seconds > 0:
        print("vitaledge eval thermal: error: --seconds must be positive", file=sys.stderr)
        return 2
    # The `\r` progress line only on a terminal: a redirected stderr would keep every redraw.
    ev = evaluate(args.seconds, args.seed, progress=sys.stderr if sys.stderr.isatty() and not args.json else None)
    if args.json:
        print(json.dumps(ev.as_dict()))
    else:
        print(format_table(ev))
    return 0
