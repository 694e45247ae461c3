"""``vitaledge eval rppg``: heart-rate accuracy through the live pipeline, on UBFC or skin-patch clips.

Each clip is decoded once through the same :class:`fusion.rppg.HeartRatePipeline` that ``vitaledge
run`` uses (:func:`edge.evaluation.rppg_data.run_clip`); what it published is scored as it is. UBFC
clips: each published rate is paired with the reference of the same window
(:class:`fusion.reference.ReferencePpg`); windowed MAE, RMSE, r, and coverage (share of windows
published without ``low_confidence`` and their MAE). Skin patches: one rate per clip and one per
subject (the median of what the live path published over all its regions; the fused 10 s-segment
spectrum beside it), scored over subjects. ``--folds leave-one-out`` chooses the heart-rate settings
on the other clips for each clip (:mod:`edge.evaluation.folds`), replaying the cached pulse;
``--compare`` runs several methods on the same clips; ``--plot`` draws Bland–Altman plots and traces
(:mod:`edge.evaluation.rppg_plot`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from edge.config import HeartRateConfig
from edge.evaluation.folds import flag_threshold, leave_one_out
from edge.evaluation.rppg_data import (
    ClipRun,
    EvalDataError,
    Published,
    load_ground_truth,
    load_skin_patches,
    run_clip,
)
from fusion.errors import ConfigError
from fusion.face import FullFrameDetector
from fusion.heartrate import HeartRateEstimator, WindowConfidence, fused_spectral_peak
from fusion.hrtrack import DEFAULT_TRACKER, TrackerSettings
from fusion.reference import ReferencePpg, smoothed_reference
from fusion.rppg import low_confidence_threshold

__all__ = [
    "CANDIDATE_SETTINGS",
    "ClipResult",
    "EvalDataError",
    "HrSetting",
    "add_parser",
    "evaluate_clip",
    "load_ground_truth",
    "parse_method",
    "replay",
    "run",
    "score_clip",
    "summarise",
]

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class HrSetting:
    """The heart-rate choices a fold may select, applied by replaying a clip's cached pulse.

    Attributes:
        tracker: the spectrogram tracker's settings; None: the median blend.
        smooth_s: median blend only: Hamming smoothing span.
        low_confidence: confidence below which a reading is flagged; None: the shipped threshold of the
            confidence published (:func:`fusion.rppg.low_confidence_threshold`).
    """

    tracker: TrackerSettings | None = DEFAULT_TRACKER
    smooth_s: float = 5.0
    low_confidence: float | None = None

    @property
    def flag_below(self) -> float:
        return self.low_confidence if self.low_confidence is not None else low_confidence_threshold(self.tracker)

    @property
    def name(self) -> str:
        how = (
            f"tracker σ {self.tracker.sigma_bpm:g} bpm, look-ahead {self.tracker.lag_steps} windows"
            if self.tracker is not None
            else f"median blend, smooth {self.smooth_s:g} s"
        )
        return f"{how}, flag < {self.flag_below:g}"


# Written down before any fold was scored: the tracker's step σ (a resting heart, a changing one, a
# loose one) × look-ahead (causal, 3 s, 6 s), and the median blend of earlier versions as one more.
# The flag threshold a fold chooses on its training clips: the aim of the heart-rate issue, most
# windows published unflagged within 2 bpm.
FLAG_MAX_MAE_BPM = 2.0

CANDIDATE_SETTINGS = (
    *(HrSetting(TrackerSettings(sigma, lag)) for sigma in (3.0, 6.0, 10.0) for lag in (0, 3, 6)),
    HrSetting(None, smooth_s=5.0),
)


def replay(
    run: ClipRun, setting: HrSetting, window_s: float, step_s: float, *, confidence: WindowConfidence | None = None
) -> list[Published]:
    """What the pipeline would have published with ``setting``, from the pulse it recorded.

    One estimator over the whole clip, reset between tracked stretches as the pipeline resets it (the
    session median survives); with the default setting this reproduces ``run.published``. ``confidence``:
    a learned window confidence published (and flagged on) instead of the spectral one.
    """
    channels = run.segments[0][1].shape[1] if run.segments else 1
    est = HeartRateEstimator(
        run.fs_hz,
        window_s=window_s,
        step_s=step_s,
        smooth_s=setting.smooth_s,
        channels=channels,
        tracker=setting.tracker,
        confidence=confidence,
    )
    out: list[Published] = []
    for k, (times, values) in enumerate(run.segments):
        if k:
            est.reset()
        last = None
        for t, v in zip(times.tolist(), values.tolist(), strict=True):
            est.push(v, t)
            hr = est.result()
            if hr is not None and hr.t_mono != last:
                last = hr.t_mono
                flagged = hr.confidence < setting.flag_below
                out.append(Published(hr.t_mono / _NS_PER_S, hr.bpm, hr.raw_bpm, hr.confidence, flagged))
    return out


@dataclass(slots=True)
class ClipResult:
    """Per-clip outcome: one (estimate, reference) pair per published window."""

    name: str
    estimates_bpm: list[float] = field(default_factory=list)
    references_bpm: list[float] = field(default_factory=list)
    smoothed_references_bpm: list[float] = field(default_factory=list)
    raw_bpm: list[float] = field(default_factory=list)  # each window's own spectral peak, before smoothing
    flagged: list[bool] = field(default_factory=list)  # the reading was published as low_confidence
    confidence: list[float] = field(default_factory=list)  # the confidence it was published with
    end_s: list[float] = field(default_factory=list)  # each window's end
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


def score_clip(run: ClipRun, published: Sequence[Published], ref: ReferencePpg, cfg: HeartRateConfig) -> ClipResult:
    """Pairs each published rate with the reference of its window (windows the PPG does not cover are
    left out) and adds the whole-clip rates."""
    smoothed = smoothed_reference(ref, cfg.window_s, cfg.step_s)
    result = ClipResult(name=run.name, frames=run.frames, video_s=run.video_s)
    for p in published:
        reference = ref.window_bpm(p.end_s, cfg.window_s)
        if not math.isfinite(reference):
            continue
        result.estimates_bpm.append(p.bpm)
        result.references_bpm.append(reference)
        result.raw_bpm.append(p.raw_bpm)
        result.flagged.append(p.flagged)
        result.confidence.append(p.confidence)
        result.end_s.append(p.end_s)
        result.smoothed_references_bpm.append(float(smoothed[int(np.argmin(np.abs(smoothed[:, 0] - p.end_s))), 1]))
    expected = max(0, int((run.video_s - cfg.window_s - 3.0) / cfg.step_s))  # ~3 s POS/CHROM start-up
    result.missing_windows = max(0, expected - len(result.estimates_bpm))
    result.whole_clip_bpm = fused_spectral_peak(run.pulse_signals(), run.fs_hz)
    result.whole_clip_reference_bpm = ref.whole_bpm(run.video_s)
    return result


def _ubfc_run(
    folder: Path, cfg: HeartRateConfig, max_s: float | None, progress: bool, greyscale: bool = False
) -> tuple[ClipRun, ReferencePpg]:
    video, ppg, t_ppg = load_ground_truth(folder)
    clip = run_clip(video, cfg, name=folder.name, max_s=max_s, progress=progress, greyscale=greyscale)
    return clip, ReferencePpg(ppg, t_ppg, clip.fs_hz)


def evaluate_clip(
    folder: Path, cfg: HeartRateConfig, *, max_s: float | None = None, progress: bool = False, greyscale: bool = False
) -> ClipResult:
    """Runs one UBFC-form clip through the heart-rate pipeline and scores what it published.

    ``greyscale``: the clip as a mono/IR camera would give it (Rec. 709 luma), scored on the pipeline's
    intensity-only fallback.

    Raises:
        EvalDataError: the folder is incomplete or its video cannot be decoded.
    """
    clip, ref = _ubfc_run(folder, cfg, max_s, progress, greyscale)
    return score_clip(clip, clip.published, ref, cfg)


def _r(x: float) -> float | None:
    return round(x, 3) if math.isfinite(x) else None


def _mae(a: Sequence[float], b: Sequence[float]) -> float | None:
    return _r(float(np.mean(np.abs(np.subtract(a, b))))) if len(a) else None


def _rmse(a: Sequence[float], b: Sequence[float]) -> float | None:
    return _r(float(np.sqrt(np.mean(np.subtract(a, b) ** 2)))) if len(a) else None


def _unflagged(clips: list[ClipResult]) -> dict[str, Any]:
    """Coverage: the windows published without ``low_confidence``, their share and their MAE."""
    pairs = [
        (e, r)
        for c in clips
        for e, r, flagged in zip(c.estimates_bpm, c.references_bpm, c.flagged, strict=True)
        if not flagged
    ]
    total = sum(len(c.estimates_bpm) for c in clips)
    est, ref = [e for e, _ in pairs], [r for _, r in pairs]
    return {
        "unflagged_mae_bpm": _mae(est, ref),
        "unflagged_windows": len(pairs),
        "unflagged_share": _r(len(pairs) / total) if total else None,
    }


def _pearson(a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 4)


def summarise(method: str, clips: list[ClipResult]) -> dict[str, Any]:
    """Overall figures over all windows of all clips, plus per clip.

    Besides MAE, RMSE and Pearson r of the published rate: ``raw_mae_bpm``, each window's own spectral
    peak before smoothing and median fusion (the pulse signal's quality on its own), and
    ``unflagged_mae_bpm`` over the ``unflagged_windows`` (``unflagged_share`` of all) published without
    the ``low_confidence`` flag (what a subscriber that drops flagged readings gets).
    """
    est = [e for c in clips for e in c.estimates_bpm]
    ref = [r for c in clips for r in c.references_bpm]
    whole = [abs(c.whole_clip_bpm - c.whole_clip_reference_bpm) for c in clips]
    whole = [w for w in whole if math.isfinite(w)]
    return {
        "method": method,
        "mae_bpm": _mae(est, ref),
        "rmse_bpm": _rmse(est, ref),
        "pearson_r": _pearson(est, ref),
        "mae_bpm_vs_smoothed_reference": _mae(est, [r for c in clips for r in c.smoothed_references_bpm]),
        "raw_mae_bpm": _mae([b for c in clips for b in c.raw_bpm], ref),
        **_unflagged(clips),
        "windows": len(est),
        "whole_clip_mae_bpm": _r(float(np.mean(whole))) if whole else None,
        "clips": [c.summary() for c in clips],
    }


def leave_one_out_summary(
    method: str,
    runs: Sequence[tuple[ClipRun, ReferencePpg]],
    cfg: HeartRateConfig,
    candidates: Sequence[HrSetting] = CANDIDATE_SETTINGS,
) -> dict[str, Any]:
    """Leave-one-out over clips: each clip scored with the setting chosen (lowest windowed MAE) on the
    others, and flagged by the threshold chosen there too (:func:`_fold_flag_threshold`). The report
    is ``summarise`` over the left-out clips' results, ``mean_fold_mae_bpm`` (the mean of the left-out
    clips' MAE) and each fold's choices."""
    cache: dict[tuple[int, HrSetting], ClipResult] = {}

    def scored(i: int, s: HrSetting) -> ClipResult:
        if (i, s) not in cache:
            clip, ref = runs[i]
            cache[(i, s)] = score_clip(clip, replay(clip, s, cfg.window_s, cfg.step_s), ref, cfg)
        return cache[(i, s)]

    def loss(training: Sequence[int], s: HrSetting) -> float:
        mae = _mae(
            [e for i in training for e in scored(i, s).estimates_bpm],
            [r for i in training for r in scored(i, s).references_bpm],
        )
        return math.nan if mae is None else mae

    folds = leave_one_out(len(runs), candidates, loss)
    thresholds = [_fold_flag_threshold([scored(i, f.chosen) for i in f.training]) for f in folds]
    held_out = [_flagged_below(scored(f.held_out, f.chosen), t) for f, t in zip(folds, thresholds, strict=True)]
    maes = [m for c in held_out if (m := c.summary()["mae_bpm"]) is not None]
    return {
        **summarise(method, held_out),
        "protocol": "leave-one-out",
        "mean_fold_mae_bpm": _r(float(np.mean(maes))) if maes else None,
        "folds": [
            {
                "held_out": runs[f.held_out][0].name,
                "chosen": f.chosen.name,
                "training_mae_bpm": _r(f.training_loss),
                "flag_threshold": _r(t),
            }
            for f, t in zip(folds, thresholds, strict=True)
        ],
    }


def _fold_flag_threshold(training: Sequence[ClipResult]) -> float:
    """The flag threshold chosen on a fold's training clips: the most windows unflagged within
    ``FLAG_MAX_MAE_BPM`` (:func:`edge.evaluation.folds.flag_threshold`)."""
    conf = np.array([c for r in training for c in r.confidence], dtype=np.float64)
    err = np.concatenate([np.abs(r.errors()) for r in training]) if training else np.zeros(0)
    return flag_threshold(conf, err, FLAG_MAX_MAE_BPM)


def _flagged_below(result: ClipResult, threshold: float) -> ClipResult:
    """``result`` with its windows flagged by ``threshold`` instead of the shipped one."""
    return dataclasses.replace(result, flagged=[c < threshold for c in result.confidence])


def _published_median(clips: Sequence[ClipRun]) -> float:
    """The median of every rate the live path published for these clips, NaN when it published none."""
    rates = [p.bpm for c in clips for p in c.published if math.isfinite(p.bpm)]
    return float(np.median(rates)) if rates else math.nan


def skin_patch_summary(method: str, subjects: list[tuple[str, float, list[ClipRun]]]) -> dict[str, Any]:
    """One rate per clip and one per subject (all its regions), scored over subjects.

    The rate is what the product says: the median of the rates the live path published over the clip
    (over all the subject's clips), as eval scores what is published. ``spectrum_bpm`` beside it is the
    peak of all the pulse's 10 s segments fused (:func:`fusion.heartrate.fused_spectral_peak`), the
    estimate when nothing was published.
    """
    rows: list[dict[str, Any]] = []
    est: list[float] = []
    ref: list[float] = []
    for name, reference, clips in subjects:
        if len({c.fs_hz for c in clips}) > 1:
            raise EvalDataError(f"{name}: its clips' rates differ ({sorted({c.fs_hz for c in clips})} Hz)")
        spectrum = fused_spectral_peak([x for c in clips for x in c.pulse_signals()], clips[0].fs_hz)
        published = _published_median(clips)
        bpm = published if math.isfinite(published) else spectrum
        if math.isfinite(bpm):
            est.append(bpm)
            ref.append(reference)
        clip_rows = []
        for c in clips:
            clip_spectrum = fused_spectral_peak(c.pulse_signals(), c.fs_hz)
            clip_published = _published_median([c])
            b = clip_published if math.isfinite(clip_published) else clip_spectrum
            clip_rows.append(
                {
                    "name": c.name,
                    "bpm": _r(b),
                    "error_bpm": _r(b - reference),
                    "spectrum_bpm": _r(clip_spectrum),
                    "published": len(c.published),
                    "video_s": _r(c.video_s),
                }
            )
        rows.append(
            {
                "name": name,
                "bpm": _r(bpm),
                "reference_bpm": _r(reference),
                "error_bpm": _r(bpm - reference),
                "spectrum_bpm": _r(spectrum),
                "spectrum_error_bpm": _r(spectrum - reference),
                "clips": clip_rows,
            }
        )
    spectra = [(r["spectrum_bpm"], r["reference_bpm"]) for r in rows if r["spectrum_bpm"] is not None]
    return {
        "method": method,
        "mae_bpm": _mae(est, ref),
        "rmse_bpm": _rmse(est, ref),
        "pearson_r": _pearson(est, ref),
        "spectrum_mae_bpm": _mae([e for e, _ in spectra], [r for _, r in spectra]),
        "subjects_scored": len(est),
        "subjects": rows,
    }


def parse_method(spec: str) -> tuple[str, HeartRateConfig]:
    """``fused``, ``pos``, ``chrom``, ``onnx:PATH`` or ``fused:PATH`` as a display name and a configuration.

    Raises:
        ConfigError: an unknown method or an onnx method without a model.
    """
    method, _, model = spec.partition(":")
    try:
        return spec, HeartRateConfig(method=method, model=Path(model) if model else None)  # type: ignore[arg-type]  # pydantic checks the literal
    except ValidationError as exc:
        raise ConfigError(f"method {spec!r}: {exc.errors()[0]['msg']}") from exc


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("rppg", help="heart-rate accuracy on UBFC-form clips or a skin-patch set")
    parser.add_argument(
        "dirs", nargs="+", type=Path, metavar="DIR", help="clip folders (ubfc) or one folder (skin-patches)"
    )
    parser.add_argument("--dataset", choices=("ubfc", "skin-patches"), default="ubfc")
    parser.add_argument("--method", choices=("fused", "pos", "chrom", "onnx"), default="fused")
    parser.add_argument("--model", type=Path, help="ONNX pulse model (method onnx; fused adds it to POS and CHROM)")
    parser.add_argument("--compare", help="also run these methods on the same clips: pos,chrom,onnx:PATH,fused:PATH")
    parser.add_argument("--folds", choices=("leave-one-out",), help="choose settings on the other clips (ubfc)")
    parser.add_argument(
        "--learned-confidence",
        action="store_true",
        help="with --folds leave-one-out: train the confidence model on the other clips per fold and compare "
        "its coverage with the estimator's own confidence's (needs the [train] extra)",
    )
    parser.add_argument(
        "--confidence-target",
        choices=("frames", "published", "correct"),
        default="frames",
        help="--learned-confidence: its loss (see models/training/confidence.py; frames: the paper's)",
    )
    parser.add_argument("--plot", type=Path, metavar="DIR", help="write Bland–Altman plots and traces (PNG)")
    parser.add_argument("--max-s", type=float, help="use only the first seconds of each clip")
    parser.add_argument(
        "--greyscale",
        action="store_true",
        help="turn the clips into greyscale (Rec. 709 luma, as an IR/mono camera) and score the intensity fallback",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _evaluate_method(name: str, cfg: HeartRateConfig, args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """One method over the clip set: its summary and what the plots need."""
    t0 = time.perf_counter()
    plot_data: Any
    if args.dataset == "skin-patches":
        if len(args.dirs) != 1:
            raise ConfigError("--dataset skin-patches takes one folder")
        subjects = [
            (s.name, s.reference_bpm, [_skin_run(p, cfg, args) for p in s.clips])
            for s in load_skin_patches(args.dirs[0])
        ]
        summary, plot_data = skin_patch_summary(name, subjects), subjects
    else:
        runs = [_ubfc_run(d, cfg, args.max_s, True, args.greyscale) for d in args.dirs]
        published = summarise(name, [score_clip(c, c.published, ref, cfg) for c, ref in runs])
        if args.folds == "leave-one-out":
            # The live figures ride along (same decode): what the default settings published.
            summary = {**leave_one_out_summary(name, runs, cfg), "as_published": published}
            if args.learned_confidence:
                summary["learned_confidence"] = _confidence_folds(runs, cfg, args.confidence_target)
        else:
            summary = published
        plot_data = runs
    summary["run_s"] = round(time.perf_counter() - t0, 1)
    return summary, plot_data


def _confidence_folds(
    runs: Sequence[tuple[ClipRun, ReferencePpg]],
    cfg: HeartRateConfig,
    target: Literal["frames", "published", "correct"],
) -> dict[str, Any]:
    try:
        import torch
    except ImportError as exc:
        raise ConfigError("--learned-confidence trains models: pip install 'vitaledge[train]'") from exc
    from edge.evaluation.confidence_loo import confidence_leave_one_out

    torch.set_num_threads(1)  # the models are tiny: more threads only contend
    try:
        return confidence_leave_one_out(runs, cfg, target=target, log=lambda m: print(m, file=sys.stderr, flush=True))
    except ValueError as exc:
        raise ConfigError(f"--learned-confidence: {exc}") from exc


def _skin_run(path: Path, cfg: HeartRateConfig, args: argparse.Namespace) -> ClipRun:
    return run_clip(
        path,
        cfg,
        name=path.stem,
        detector=FullFrameDetector(),
        max_s=args.max_s,
        progress=True,
        greyscale=args.greyscale,
    )


def run(args: argparse.Namespace) -> int:
    if args.learned_confidence and args.folds != "leave-one-out":
        raise ConfigError("--learned-confidence is scored by --folds leave-one-out (labels of the other clips only)")
    if args.folds and args.dataset == "skin-patches":
        raise ConfigError("--folds applies to windowed UBFC figures; no setting changes a whole-clip estimate")
    try:
        default_cfg = HeartRateConfig(method=args.method, model=args.model)
    except ValidationError as exc:
        raise ConfigError(f"--method {args.method}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from exc
    _check_clip_length(args.max_s, default_cfg)
    default = args.method if args.model is None else f"{args.method}:{args.model}"
    methods = [(default, default_cfg)]
    for spec in (args.compare or "").split(","):
        if spec.strip() and spec.strip() not in {m for m, _ in methods}:
            methods.append(parse_method(spec.strip()))
    if args.greyscale:  # every colour method falls back to the one intensity method: name what was measured
        if len(methods) > 1:
            raise ConfigError("--greyscale runs the intensity fallback whatever the method: drop --compare")
        methods = [(f"luma (greyscale; {default} configured)", default_cfg)]
        default = methods[0][0]
    results = {}
    for name, cfg in methods:
        print(f"eval rppg: {name} …", file=sys.stderr, flush=True)
        results[name] = _evaluate_method(name, cfg, args)
    if args.plot is not None:
        from edge.evaluation.rppg_plot import write_plots

        for path in write_plots(args.plot, args.dataset, {n: r[1] for n, r in results.items()}, default_cfg):
            print(f"wrote {path}", file=sys.stderr)
    summaries = {n: r[0] for n, r in results.items()}
    out: dict[str, Any] = summaries[default]
    if len(methods) > 1:
        base = summaries[default]["mae_bpm"]
        out = {
            "default": default,
            "methods": summaries,
            "mae_ratio_default_to": {
                n: (round(base / s["mae_bpm"], 3) if base is not None and s["mae_bpm"] else None)
                for n, s in summaries.items()
            },
        }
    if args.json:
        print(json.dumps(out))
        return 0
    for name, s in summaries.items():
        _print_summary(s, args.dataset)
        if len(methods) > 1 and name != default:
            ratio = out["mae_ratio_default_to"][name]
            print(f"MAE ratio {default} / {name}: {_f(ratio, 0, 3)}")
        print()
    return 0


def _print_summary(s: dict[str, Any], dataset: str) -> None:
    if dataset == "skin-patches":
        print(f"{'subject':>10} {'clips':>5} {'bpm':>7} {'ref':>7} {'error':>7} {'spectrum':>8}")
        for row in s["subjects"]:
            print(
                f"{row['name']:>10} {len(row['clips']):>5} {_f(row['bpm'])} {_f(row['reference_bpm'])} "
                f"{_f(row['error_bpm'])} {_f(row['spectrum_bpm'], 8)}"
            )
        print(
            f"method {s['method']}: subject MAE {_f(s['mae_bpm'], 0)}  RMSE {_f(s['rmse_bpm'], 0)}  "
            f"r {_f(s['pearson_r'], 0, 3)}  (spectrum MAE {_f(s['spectrum_mae_bpm'], 0)}; "
            f"{s['subjects_scored']} subjects, {s['run_s']} s)"
        )
        return
    print(
        f"{'clip':>12} {'windows':>7} {'MAE':>7} {'RMSE':>7} {'r':>6} {'raw MAE':>7} "
        f"{'unflagged MAE (n)':>17} {'whole-clip err':>14}"
    )
    for row in [*s["clips"], {**s, "name": "all", "whole_clip_error_bpm": s["whole_clip_mae_bpm"]}]:
        print(
            f"{row['name']:>12} {row['windows']:>7} {_f(row['mae_bpm'])} {_f(row['rmse_bpm'])} "
            f"{_f(row['pearson_r'], 6, 2)} {_f(row['raw_mae_bpm'])} "
            f"{_f(row['unflagged_mae_bpm'], 11)} ({row['unflagged_windows']:>3}) {_f(row['whole_clip_error_bpm'], 14)}"
        )
    share = s["unflagged_share"]
    print(f"(bpm; method {s['method']}; unflagged share {_f(share, 0, 3)}; {s['run_s']} s)")
    for fold in s.get("folds", []):
        print(f"  fold {fold['held_out']}: chose {fold['chosen']} (training MAE {_f(fold['training_mae_bpm'], 0)})")
    if "mean_fold_mae_bpm" in s:
        print(f"leave-one-out: mean over left-out clips {_f(s['mean_fold_mae_bpm'], 0)} bpm")
    if "learned_confidence" in s:
        from edge.evaluation.confidence_loo import print_confidence_summary

        print_confidence_summary(s["learned_confidence"])


def _check_clip_length(max_s: float | None, cfg: HeartRateConfig) -> None:
    """A clip cut shorter than one heart-rate window publishes nothing: say so instead of an empty table."""
    if max_s is not None and max_s < cfg.window_s:
        raise ConfigError(f"--max-s {max_s:g}: heart-rate windows need ≥ {cfg.window_s:g} s of video")


def _f(x: float | None, width: int = 7, digits: int = 2) -> str:
    return f"{'—':>{width}}" if x is None else f"{x:>{width}.{digits}f}"
