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

__all__ = [
    "PAPER_TABLE_II",
    "ThermalEvaluation",
    "add_parser",
    "evaluate",
    "format_seeds_table",
    "run",
    "summarise_seeds",
]

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


def _mean_sd(values: list[float]) -> dict[str, float | None]:
    return {
        "mean": round(statistics.fmean(values), 3) if values else None,
        "sd": round(statistics.stdev(values), 3) if len(values) >= 2 else None,
    }


def summarise_seeds(runs: list[ThermalEvaluation]) -> dict[str, Any]:
    """Table II over several seeds: mean ± SD (across seeds) of each row's MAE and SD, and how often
    each of the paper's orderings holds.

    Orderings, as shares of the seeds (0–1): ``fused_beats_both``, the fused reference's MAE below both
    palm's and wrist's; ``palm_best_mae``, palm's MAE the lowest of baseline, palm and wrist (the paper:
    0.653); ``wrist_best_sd``, wrist's SD the lowest of the three (the paper: 0.484). A seed with a row
    left unscored counts as not holding.

    Args:
        runs: one evaluation per seed, all over the same duration.

    Returns:
        ``{"seeds": N, "seed_values": [...], "seconds": s, "<row>": {"mae_c": {"mean", "sd"}, "sd_c": {...}},
        "orderings": {...}}``.
    """
    per_seed = [{row: run.stats(row) for row in ROWS} for run in runs]
    out: dict[str, Any] = {"seeds": len(runs), "seed_values": [r.seed for r in runs]}
    out["seconds"] = runs[0].seconds if runs else None
    for row in ROWS:
        scored = [s[row] for s in per_seed if s[row] is not None]
        out[row] = {
            "mae_c": _mean_sd([v[0] for v in scored if v is not None]),
            "sd_c": _mean_sd([v[1] for v in scored if v is not None]),
        }

    def share(holds: list[bool]) -> float | None:
        return round(sum(holds) / len(holds), 3) if holds else None

    held = [_orderings(s) for s in per_seed]
    out["orderings"] = {
        "fused_beats_both": share([h[0] for h in held]),
        "palm_best_mae": share([h[1] for h in held]),
        "wrist_best_sd": share([h[2] for h in held]),
    }
    return out


def _orderings(stats: dict[str, tuple[float, float] | None]) -> tuple[bool, bool, bool]:
    """(fused beats both, palm best MAE, wrist best SD) for one seed; none holds with a row unscored."""
    base, palm, wrist, fused = (stats[row] for row in ROWS)
    if base is None or palm is None or wrist is None or fused is None:
        return False, False, False
    return (
        fused[0] < palm[0] and fused[0] < wrist[0],
        palm[0] < base[0] and palm[0] < wrist[0],
        wrist[1] < base[1] and wrist[1] < palm[1],
    )


def format_seeds_table(summary: dict[str, Any]) -> str:
    """Table II over seeds: mean ± SD across seeds beside the paper, then how often each ordering holds."""

    def cell(v: dict[str, float | None]) -> str:
        mean, sd = v["mean"], v["sd"]
        if mean is None:
            return f"{'—':>15}"
        return f"{mean:7.3f} ± {sd:5.3f}" if sd is not None else f"{mean:7.3f}        "

    n = summary["seeds"]
    seeds = summary["seed_values"]
    lines = [
        f"Face temperature error vs truth (°C): simulated rig, {summary['seconds']:g} s, "
        f"{n} seeds ({seeds[0]}–{seeds[-1]}); mean ± SD across seeds",
        f"{'':10} {'this run':>33}   {'Yoshikawa et al. Table II':>26}",
        f"{'reference':10} {'MAE':>15} {'SD':>17}   {'MAE':>13} {'SD':>12}",
    ]
    for row in ROWS:
        paper = PAPER_TABLE_II[row]
        lines.append(
            f"{row.capitalize():10} {cell(summary[row]['mae_c'])}   {cell(summary[row]['sd_c'])}   "
            f"{_cell(paper[0] if paper else None):>13} {_cell(paper[1] if paper else None):>12}"
        )
    names = {
        "fused_beats_both": "fused MAE below palm's and wrist's",
        "palm_best_mae": "palm has the lowest MAE (paper)",
        "wrist_best_sd": "wrist has the lowest SD (paper)",
    }
    for key, text in names.items():
        share = summary["orderings"][key]
        held = "—" if share is None else f"{round(share * n)} of {n} seeds"
        lines.append(f"  {text:38} {held}")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("thermal", help="Table II (offset correction) on the simulated rig")
    parser.add_argument("--seconds", type=float, default=600.0, help="rig time to simulate (default 600)")
    parser.add_argument("--seed", type=int, default=1, help="the rig's seed (default 1); with --seeds, the first")
    parser.add_argument(
        "--seeds", type=int, default=None, metavar="N", help="run N seeds from --seed: mean ± SD of each figure"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.seconds > 0:
        print("vitaledge eval thermal: error: --seconds must be positive", file=sys.stderr)
        return 2
    if args.seeds is not None:
        return _run_seeds(args)
    # The `\r` progress line only on a terminal: a redirected stderr would keep every redraw.
    ev = evaluate(args.seconds, args.seed, progress=sys.stderr if sys.stderr.isatty() and not args.json else None)
    if args.json:
        print(json.dumps(ev.as_dict()))
    else:
        print(format_table(ev))
    return 0


def _run_seeds(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        print("vitaledge eval thermal: error: --seeds must be at least 1", file=sys.stderr)
        return 2
    progress = sys.stderr if sys.stderr.isatty() and not args.json else None
    runs = []
    for seed in range(args.seed, args.seed + args.seeds):
        if progress is not None:
            print(f"seed {seed}:", file=progress)
        runs.append(evaluate(args.seconds, seed, progress=progress))
    summary = summarise_seeds(runs)
    print(json.dumps(summary) if args.json else format_seeds_table(summary))
    return 0
