"""``vitaledge eval rppg``: heart-rate accuracy on clips in UBFC-rPPG form, through the live pipeline.

Each folder holds ``vid.mp4`` or ``vid.avi`` and ``ground_truth.txt`` (row 1 the pulse oximeter's PPG,
row 2 its heart rate, row 3 timestamps in seconds, irregular). The frames go through the same
:class:`fusion.rppg.HeartRatePipeline` that ``vitaledge run`` uses, built by the same builder. The
reference for each published heart rate is the same PSD method (:func:`fusion.heartrate.spectral_peak`)
on the PPG, resampled by its timestamps, over the same window.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from edge.config import HeartRateConfig
from fusion.errors import ConfigError, VitalEdgeError

__all__ = ["ClipResult", "add_parser", "evaluate_clip", "load_ground_truth", "run"]

_NS_PER_S = 1_000_000_000


class EvalDataError(VitalEdgeError):
    """A clip folder is missing a file or holds malformed ground truth."""


@dataclass(slots=True)
class ClipResult:
    """Per-clip outcome: one (estimate, reference) pair per published window."""

    name: str
    estimates_bpm: list[float] = field(default_factory=list)
    references_bpm: list[float] = field(default_factory=list)
    smoothed_references_bpm: list[float] = field(default_factory=list)
    raw_bpm: list[float] = field(default_factory=list)  # each window's own spectral peak, before smoothing
    flagged: list[bool] = field(default_factory=list)  # the reading was published as low_confidence
    missing_windows: int = 0  # reference windows with no published estimate (face lost)
    whole_clip_bpm: float = math.nan
    whole_clip_reference_bpm: float = math.nan
    frames: int = 0
    video_s: float = 0.0

    def errors(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.estimates_bpm, dtype=np.float64) - np.asarray(self.references_bpm, dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        e = self.errors()
        return {
            "name": self.name,
            "mae_bpm": _r(float(np.mean(np.abs(e)))) if len(e) else None,
            "rmse_bpm": _r(float(np.sqrt(np.mean(e**2)))) if len(e) else None,
            "pearson_r": _pearson(self.estimates_bpm, self.references_bpm),
            "mae_bpm_vs_smoothed_reference": _mae(self.estimates_bpm, self.smoothed_references_bpm),
            "raw_mae_bpm": _mae(self.raw_bpm, self.references_bpm),
            **_unflagged([self]),
            "windows": len(e),
            "missing_windows": self.missing_windows,
            "whole_clip_bpm": _r(self.whole_clip_bpm),
            "whole_clip_reference_bpm": _r(self.whole_clip_reference_bpm),
            "whole_clip_error_bpm": _r(abs(self.whole_clip_bpm - self.whole_clip_reference_bpm)),
            "video_s": _r(self.video_s),
        }


def _r(x: float) -> float | None:
    return round(x, 3) if math.isfinite(x) else None


def _mae(a: list[float], b: list[float]) -> float | None:
    return _r(float(np.mean(np.abs(np.subtract(a, b))))) if a else None


def _unflagged(clips: list[ClipResult]) -> dict[str, Any]:
    """MAE over the windows published without the ``low_confidence`` flag, and how many they are."""
    pairs = [
        (e, r)
        for c in clips
        for e, r, flagged in zip(c.estimates_bpm, c.references_bpm, c.flagged, strict=True)
        if not flagged
    ]
    est, ref = [e for e, _ in pairs], [r for _, r in pairs]
    return {"unflagged_mae_bpm": _mae(est, ref), "unflagged_windows": len(pairs)}


def _pearson(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 4)


def load_ground_truth(folder: Path) -> tuple[Path, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The video path, PPG samples and their times (s, from 0) of one UBFC-form folder.

    Raises:
        EvalDataError: no video, no ground truth, or rows that do not make a PPG with increasing times.
    """
    if not folder.is_dir():
        raise EvalDataError(f"{folder}: no such folder")
    video = next((folder / n for n in ("vid.mp4", "vid.avi") if (folder / n).is_file()), None)
    if video is None:
        raise EvalDataError(f"{folder}: no vid.mp4 or vid.avi")
    gt_path = folder / "ground_truth.txt"
    try:
        rows = np.loadtxt(gt_path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise EvalDataError(f"{gt_path}: cannot read: {exc}") from exc
    if rows.shape[0] < 3 or rows.shape[1] < 10:
        raise EvalDataError(f"{gt_path}: expected 3 rows (PPG, HR, time), got shape {rows.shape}")
    ppg, t_s = rows[0], rows[2] - rows[2][0]
    if np.any(np.diff(t_s) < 0) or not np.all(np.isfinite(ppg)):
        raise EvalDataError(f"{gt_path}: timestamps decrease or the PPG holds non-numbers")
    keep = np.concatenate([[True], np.diff(t_s) > 0])  # repeated timestamps: keep the first
    return video, ppg[keep], t_s[keep]


def evaluate_clip(
    folder: Path, cfg: HeartRateConfig, *, max_s: float | None = None, progress: bool = False
) -> ClipResult:
    """Runs one clip through the heart-rate pipeline and pairs each published rate with its reference.

    Args:
        folder: a UBFC-form folder.
        cfg: the heart-rate configuration (method, model, window, step) as ``vitaledge run`` takes it.
        max_s: use only the first seconds of the clip.
        progress: draw a progress bar on stderr, when stderr is a terminal (never into a redirected file).

    Raises:
        EvalDataError: the folder is incomplete or its video cannot be decoded.
    """
    import cv2

    from edge.build import build_heart_rate_pipeline
    from fusion.heartrate import spectral_peak

    progress = progress and sys.stderr.isatty()  # `\r` redraws only make sense on a terminal
    video, ppg, t_ppg = load_ground_truth(folder)
    cap = cv2.VideoCapture(str(video))
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    if not cap.isOpened() or not fps > 0:
        raise EvalDataError(f"{video}: cannot open the video")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    if max_s is not None:
        total = min(total, int(max_s * fps))
    pipeline = build_heart_rate_pipeline(cfg, fs_hz=fps)
    fs = pipeline.estimator.fs_hz
    grid_s = np.arange(0.0, t_ppg[-1], 1.0 / fs)
    ppg_grid = np.interp(grid_s, t_ppg, ppg)  # resampled by timestamp before any spectral analysis
    result = ClipResult(name=folder.name)
    smoothed = _smoothed_reference(ppg_grid, fs, cfg)
    pulse_parts: list[npt.NDArray[np.float64]] = []
    consumed, last_t, i = 0, None, 0
    try:
        while i < total:
            ok, frame = cap.read()
            if not ok:
                break
            t_mono = round(i * _NS_PER_S / fps)  # frame times as the video-file source gives them
            pipeline.push(np.asarray(frame, dtype=np.uint8), t_mono)
            i += 1
            pulse = pipeline.estimator.pulse()
            if pulse is not None and pulse.count != consumed:
                if pulse.count < consumed:  # the face was lost and the estimator started afresh
                    consumed = 0
                new = min(pulse.count - consumed, len(pulse.signal))
                pulse_parts.append(np.array(pulse.signal[len(pulse.signal) - new :]))
                consumed = pulse.count
            hr = pipeline.heart_rate()
            if hr is not None and hr.t_mono != last_t:
                last_t = hr.t_mono
                end_s = hr.t_mono / _NS_PER_S
                window = ppg_grid[(grid_s > end_s - cfg.window_s) & (grid_s <= end_s)]
                if len(window) >= 0.95 * cfg.window_s * fs:
                    result.estimates_bpm.append(hr.bpm)
                    result.references_bpm.append(spectral_peak(window, fs).bpm)
                    result.raw_bpm.append(hr.raw_bpm)
                    result.flagged.append("low_confidence" in pipeline.reading().flags)
                    k = int(np.argmin(np.abs(smoothed[:, 0] - end_s)))
                    result.smoothed_references_bpm.append(float(smoothed[k, 1]))
            if progress and i % 30 == 0:
                _bar(folder.name, i, total)
    finally:
        cap.release()
    if progress:
        _bar(folder.name, total, total)
        print(file=sys.stderr)
    result.frames = i
    result.video_s = i / fps
    expected = max(0, int((result.video_s - cfg.window_s - 3.0) / cfg.step_s))  # ~3 s POS/CHROM start-up
    result.missing_windows = max(0, expected - len(result.estimates_bpm))
    if pulse_parts:
        whole = np.concatenate(pulse_parts)
        if len(whole) >= 2 * fs:
            result.whole_clip_bpm = spectral_peak(whole, fs).bpm
            ref = ppg_grid[grid_s <= result.video_s]
            result.whole_clip_reference_bpm = spectral_peak(ref, fs).bpm
    return result


def _smoothed_reference(ppg: npt.NDArray[np.float64], fs: float, cfg: HeartRateConfig) -> npt.NDArray[np.float64]:
    """(window end s, smoothed instantaneous bpm) of the same estimator run on the PPG itself.

    The published rate is Hamming-smoothed over a few windows, so it lags a raw window's peak by half
    the smoothing span; this second reference has the same lag (the median fusion is left out: it is a
    prior for unreliable video, not part of the truth).
    """
    from fusion.heartrate import HeartRateEstimator

    est = HeartRateEstimator(fs, window_s=cfg.window_s, step_s=cfg.step_s)
    out = [(math.inf, math.nan)]
    for i, v in enumerate(ppg):
        est.push(float(v), round(i * _NS_PER_S / fs))
        r = est.result()
        if r is not None and r.t_mono / _NS_PER_S != out[-1][0]:
            out.append((r.t_mono / _NS_PER_S, r.instant_bpm))
    return np.array(out[1:] or out)


def _bar(name: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    print(
        f"\r{name:>12} [{'#' * filled}{' ' * (width - filled)}] {100 * done // max(total, 1):3d}%",
        end="",
        file=sys.stderr,
        flush=True,
    )


def summarise(method: str, clips: list[ClipResult]) -> dict[str, Any]:
    """Overall figures over all windows of all clips, plus per clip.

    Besides MAE, RMSE and Pearson r of the published rate: ``raw_mae_bpm``, each window's own spectral
    peak before smoothing and median fusion (the pulse signal's quality on its own), and
    ``unflagged_mae_bpm`` over the ``unflagged_windows`` published without the ``low_confidence``
    flag (what a subscriber that drops flagged readings gets).
    """
    est = [e for c in clips for e in c.estimates_bpm]
    ref = [r for c in clips for r in c.references_bpm]
    err = np.asarray(est) - np.asarray(ref)
    whole = [abs(c.whole_clip_bpm - c.whole_clip_reference_bpm) for c in clips]
    whole = [w for w in whole if math.isfinite(w)]
    return {
        "method": method,
        "mae_bpm": _r(float(np.mean(np.abs(err)))) if len(err) else None,
        "rmse_bpm": _r(float(np.sqrt(np.mean(err**2)))) if len(err) else None,
        "pearson_r": _pearson(est, ref),
        "mae_bpm_vs_smoothed_reference": _mae(est, [r for c in clips for r in c.smoothed_references_bpm]),
        "raw_mae_bpm": _mae([b for c in clips for b in c.raw_bpm], ref),
        **_unflagged(clips),
        "windows": len(err),
        "whole_clip_mae_bpm": _r(float(np.mean(whole))) if whole else None,
        "clips": [c.summary() for c in clips],
    }


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("rppg", help="heart-rate accuracy on UBFC-form clips (video + ground_truth.txt)")
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="clip folders")
    parser.add_argument("--method", choices=("pos", "chrom", "onnx"), default="pos")
    parser.add_argument("--model", type=Path, help="ONNX pulse model (method onnx)")
    parser.add_argument("--max-s", type=float, help="use only the first seconds of each clip")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = HeartRateConfig(method=args.method, model=args.model)
    except ValidationError as exc:
        raise ConfigError(f"--method {args.method}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from exc
    _check_clip_length(args.max_s, cfg)
    clips = [evaluate_clip(d, cfg, max_s=args.max_s, progress=True) for d in args.dirs]
    summary = summarise(args.method, clips)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"{'clip':>12} {'windows':>7} {'MAE':>7} {'RMSE':>7} {'r':>6} {'raw MAE':>7} "
        f"{'unflagged MAE (n)':>17} {'whole-clip err':>14}"
    )
    for row in [*summary["clips"], {**summary, "name": "all", "whole_clip_error_bpm": summary["whole_clip_mae_bpm"]}]:
        print(
            f"{row['name']:>12} {row['windows']:>7} {_f(row['mae_bpm'])} {_f(row['rmse_bpm'])} "
            f"{_f(row['pearson_r'], 6, 2)} {_f(row['raw_mae_bpm'])} "
            f"{_f(row['unflagged_mae_bpm'], 11)} ({row['unflagged_windows']:>3}) {_f(row['whole_clip_error_bpm'], 14)}"
        )
    print(f"(bpm; method {args.method})")
    return 0


def _check_clip_length(max_s: float | None, cfg: HeartRateConfig) -> None:
    """A clip cut shorter than one heart-rate window publishes nothing: say so instead of an empty table."""
    if max_s is not None and max_s < cfg.window_s:
        raise ConfigError(f"--max-s {max_s:g}: heart-rate windows need ≥ {cfg.window_s:g} s of video")


def _f(x: float | None, width: int = 7, digits: int = 2) -> str:
    return f"{'—':>{width}}" if x is None else f"{x:>{width}.{digits}f}"
