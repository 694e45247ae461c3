"""Clip sets for ``vitaledge eval rppg`` and the one pass over each clip's frames.

Two layouts:

- **UBFC-rPPG**: one folder per clip with ``vid.mp4`` or ``vid.avi`` and ``ground_truth.txt`` (row 1
  the pulse oximeter's PPG, row 2 its heart rate, row 3 timestamps in seconds, irregular).
- **skin patches** (Dasari et al. 2021): one folder with ``videoN_{region}.avi`` (each clip is one skin
  region, the whole frame) and ``ground_truth.csv`` (``Subject,Heart_Rate(BPM)``, UTF-8 with a BOM,
  one mean rate per subject ``videoN``).

:func:`run_clip` decodes a clip once through the live :class:`fusion.rppg.HeartRatePipeline` and keeps
what every later step needs (the published readings and the pulse signal the pipeline fed its
heart-rate estimator), so that scoring, fold selection and plots never decode again.
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge.config import HeartRateConfig
from fusion.errors import VitalEdgeError
from fusion.face import FaceDetector
from fusion.greyscale import grey_as_bgr, luma_709
from fusion.privacy import Lensing

__all__ = [
    "ClipRun",
    "EvalDataError",
    "Published",
    "SkinSubject",
    "load_ground_truth",
    "load_skin_patches",
    "run_clip",
]

_NS_PER_S = 1_000_000_000
_CLIP_NAME = re.compile(r"^(video\d+)_([A-Za-z]+)\.avi$")


class EvalDataError(VitalEdgeError):
    """A clip folder is missing a file or holds malformed ground truth."""


@dataclass(frozen=True, slots=True)
class Published:
    """One heart rate as the pipeline published it (or as a replay would have).

    Attributes:
        end_s: end of the window it describes, seconds from the clip's start.
        bpm: the published rate.
        raw_bpm: the window's own spectral peak.
        confidence: its confidence.
        flagged: published with ``low_confidence``.
    """

    end_s: float
    bpm: float
    raw_bpm: float
    confidence: float
    flagged: bool


@dataclass(slots=True)
class ClipRun:
    """One clip, decoded once: the pipeline's published readings and the pulse they came from.

    Attributes:
        name: clip name.
        fs_hz: the pulse signal's rate.
        frames: frames decoded.
        video_s: video length used (s).
        published: the live pipeline's readings, one per window.
        segments: the pulse fed to the heart-rate estimator, one ``(t_ns, values)`` per tracked stretch;
            ``values`` is samples × estimators.
    """

    name: str
    fs_hz: float
    frames: int = 0
    video_s: float = 0.0
    published: list[Published] = field(default_factory=list)
    segments: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = field(default_factory=list)

    def pulse_signals(self) -> list[npt.NDArray[np.float64]]:
        """Every estimator's pulse of every tracked stretch (what a whole-clip rate fuses)."""
        return [v[:, c] for _, v in self.segments for c in range(v.shape[1])]


def run_clip(
    video: Path,
    cfg: HeartRateConfig,
    *,
    name: str,
    detector: FaceDetector | None = None,
    max_s: float | None = None,
    progress: bool = False,
    lensing: Lensing | None = None,
    greyscale: bool = False,
) -> ClipRun:
    """Runs one video through the heart-rate pipeline ``vitaledge run`` builds, frame by frame.

    Frame times are ``i / fps`` as the video-file source gives them; every new heart rate is recorded
    with the ``low_confidence`` flag the reading carries.

    Args:
        video: the video file.
        cfg: heart-rate configuration (method, model, window, step).
        name: the clip's name in reports.
        detector: replaces the configured face detector (skin patches: the whole frame).
        max_s: use only the first seconds.
        progress: draw a progress bar on stderr.
        lensing: the privacy lens for ``cfg.input == "lensed"``.
        greyscale: turn every frame into its Rec. 709 luma (three equal channels), as a mono or IR camera
            would give it, and mark it greyscale: the pipeline then runs its intensity-only estimator.

    Raises:
        EvalDataError: the video cannot be opened.
    """
    import cv2

    from edge.build import build_heart_rate_pipeline

    progress = progress and sys.stderr.isatty()  # `\r` redraws only make sense on a terminal
    cap = cv2.VideoCapture(str(video))
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    if not cap.isOpened() or not fps > 0:
        cap.release()
        raise EvalDataError(f"{video}: cannot open the video")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    if max_s is not None:
        total = min(total, int(max_s * fps))
    pipeline = build_heart_rate_pipeline(cfg, fps, detector=detector, record_pulse=True, lensing=lensing)
    run = ClipRun(name=name, fs_hz=pipeline.estimator.fs_hz)
    last_t, i = None, 0
    try:
        while i < total:
            ok, frame = cap.read()
            if not ok:
                break
            image = np.asarray(frame, dtype=np.uint8)
            if greyscale:
                image = grey_as_bgr(luma_709(image))
            pipeline.push(image, round(i * _NS_PER_S / fps), greyscale=greyscale)
            i += 1
            hr = pipeline.heart_rate()
            if hr is not None and hr.t_mono != last_t:
                last_t = hr.t_mono
                flagged = "low_confidence" in pipeline.reading().flags
                run.published.append(Published(hr.t_mono / _NS_PER_S, hr.bpm, hr.raw_bpm, hr.confidence, flagged))
            if progress and i % 60 == 0:
                _bar(name, i, total)
    finally:
        cap.release()
    if progress:
        _bar(name, total, total)
        print(file=sys.stderr)
    run.frames = i
    run.video_s = i / fps
    run.segments = [
        (np.array([t for t, _ in s], dtype=np.int64), np.array([v for _, v in s], dtype=np.float64).reshape(len(s), -1))
        for s in pipeline.pulse_segments
        if s
    ]
    return run


def _bar(name: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    print(
        f"\r{name:>20} [{'#' * filled}{' ' * (width - filled)}] {100 * done // max(total, 1):3d}%",
        end="",
        file=sys.stderr,
        flush=True,
    )


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


@dataclass(frozen=True, slots=True)
class SkinSubject:
    """One subject of a skin-patch set: the reference mean rate and the clips (one region each)."""

    name: str
    reference_bpm: float
    clips: tuple[Path, ...]


def load_skin_patches(folder: Path) -> list[SkinSubject]:
    """The subjects of a skin-patch folder that have both clips and a reference, in subject order.

    Raises:
        EvalDataError: no ``ground_truth.csv``, a malformed row, no clips, or a clip whose subject has
            no reference.
    """
    gt_path = folder / "ground_truth.csv"
    try:
        with gt_path.open(encoding="utf-8-sig", newline="") as f:  # utf-8-sig: the file starts with a BOM
            rows = list(csv.reader(f))
    except OSError as exc:
        raise EvalDataError(f"{gt_path}: cannot read: {exc}") from exc
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if header[:2] != ["subject", "heart_rate(bpm)"]:
        raise EvalDataError(f"{gt_path}: expected the header 'Subject,Heart_Rate(BPM)', got {rows[:1]}")
    reference: dict[str, float] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            reference[row[0].strip()] = float(row[1])
        except (IndexError, ValueError) as exc:
            raise EvalDataError(f"{gt_path}:{line}: expected 'videoN,bpm', got {row}") from exc
    clips: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if m := _CLIP_NAME.match(path.name):
            clips.setdefault(m.group(1), []).append(path)
    if not clips:
        raise EvalDataError(f"{folder}: no videoN_region.avi clips")
    missing = sorted(set(clips) - set(reference))
    if missing:
        raise EvalDataError(f"{gt_path}: no reference for {', '.join(missing)}")
    return [
        SkinSubject(name, reference[name], tuple(clips[name]))
        for name in sorted(clips, key=lambda s: int(s.removeprefix("video")))
    ]
