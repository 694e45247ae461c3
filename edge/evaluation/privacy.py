"""``vitaledge eval privacy VIDEO_OR_DIR…``: what each privacy preset hides, and what pulse it keeps.

Per preset (``off``, ``defocus``, ``lowres16``, ``lens``), on frames sampled evenly from each clip:

- ``ssim``: mean SSIM of the lensed frame to the original (skimage, colour);
- ``ssim_face``: the same over the true face's box only (what privacy is about: a plain wall that fills
  most of a frame looks alike under any blur and holds the whole-frame figure up);
- ``face_rate``: share of frames whose true face (Haar, else the CNN, on the raw frame) a detector
  (Haar or dlib's CNN) finds on the lensed frame;
- ``face_rate_after_attack``: the same, a frame counting when *any* attack, setting or detector finds it
  (:mod:`edge.evaluation.privacy_attack`: the attacker's best case per frame, the lensed frame included);
- ``reid_rate_after_attack``: share of frames whose face, in any of those images, is matched to one of
  the same person's other raw frames by dlib's ResNet embedding at the distance that gives 1 % false
  matches between raw frames of different people (the clips are the people), and is nearer to that
  person than to anyone else (``false_match_rate_after_attack``: matched someone else under the threshold);
- ``hr_mae_bpm``: windowed heart-rate MAE of the live pipeline on UBFC clips, on raw video with the
  face detector (``off``) or on lensed video with the face found from the skin-colour region
  (``heart_rate.input: lensed``); ``--held-out-skin-region`` finds each clip's face with the region's
  geometry fitted without that clip (leave-one-out), and ``--noise-seeds`` pools runs over seeds of the
  lens's sensor noise (``hr_mae_bpm_per_noise_seed``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edge.config import HeartRateConfig
from edge.evaluation.rppg_data import EvalDataError
from edge.privacy import PRESETS, Preset, build_lensing, skin_region_detector
from fusion.errors import ConfigError
from fusion.face import Box

if TYPE_CHECKING:  # the attack module loads skimage and OpenCV: only when a run needs it
    from edge.evaluation.privacy_attack import Verdict

__all__ = ["Clip", "add_parser", "face_truth", "find_clips", "run", "sample_frames", "ssim_frame_and_face"]


@dataclass(frozen=True, slots=True)
class Clip:
    """One person's video; ``folder`` is set for a UBFC-form clip with ground truth."""

    name: str
    video: Path
    folder: Path | None


def find_clips(paths: list[Path]) -> list[Clip]:
    """Videos, UBFC clip folders (``vid.*`` + ``ground_truth.txt``), or folders of those.

    Raises:
        EvalDataError: a path holds no video.
    """
    clips: list[Clip] = []
    for path in paths:
        if path.is_file():
            clips.append(Clip(path.stem, path, None))
            continue
        videos = sorted(path.glob("vid.*"))
        if videos:
            folder = path if (path / "ground_truth.txt").is_file() else None
            clips.append(Clip(path.name, videos[0], folder))
            continue
        inner = sorted(p for p in path.iterdir() if p.is_dir() and any(p.glob("vid.*"))) if path.is_dir() else []
        if not inner:
            raise EvalDataError(f"{path}: not a video, a clip folder (vid.*) or a folder of clip folders")
        clips.extend(find_clips(inner))
    return clips


def sample_frames(video: Path, count: int, skip_s: float = 1.0) -> list[npt.NDArray[np.uint8]]:
    """``count`` frames spread evenly over the video after its first ``skip_s`` seconds.

    Raises:
        EvalDataError: the video cannot be read.
    """
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
        if not cap.isOpened() or total <= 0:
            raise EvalDataError(f"{video}: cannot read the video")
        first = min(total - 1, round(skip_s * fps))
        wanted = np.linspace(first, total - 1, count + 2)[1:-1].round().astype(int)
        frames = []
        for index in wanted:
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = cap.read()
            if ok:
                frames.append(np.asarray(frame, dtype=np.uint8))
        return frames
    finally:
        cap.release()


@dataclass(slots=True)
class _Tally:
    """One preset's per-frame outcomes."""

    clip: list[str] = field(default_factory=list)  # each frame's clip
    ssim: list[float] = field(default_factory=list)
    ssim_face: list[float] = field(default_factory=list)
    detected: list[bool] = field(default_factory=list)
    detected_after_attack: list[bool] = field(default_factory=list)
    best_distance: list[float] = field(default_factory=list)  # smallest distance to the same person's raw frames
    reidentified: list[bool] = field(default_factory=list)  # some image matched, and nearest to the right person
    false_match: list[bool] = field(default_factory=list)  # some image matched another person's raw frame
    winning_attacks: Counter[str] = field(default_factory=Counter)

    def add(self, verdict: Verdict) -> None:
        self.best_distance.append(verdict.best_distance)
        self.reidentified.append(verdict.reidentified)
        self.false_match.append(verdict.false_match)


def ssim_frame_and_face(
    frame: npt.NDArray[np.uint8], lensed: npt.NDArray[np.uint8], face: Box
) -> tuple[float, float]:
    """SSIM of ``lensed`` to ``frame`` (colour, 8-bit range) over the whole frame and over ``face``'s box.

    Raises:
        ValueError: the images differ in shape, or the face's box is under 7 px a side inside the frame.
    """
    from skimage.metrics import structural_similarity

    if frame.shape != lensed.shape:
        raise ValueError(f"frame {frame.shape} and lensed {lensed.shape} differ in shape")
    x0, y0, x1, y1 = face.clipped(frame.shape[1], frame.shape[0])
    if min(x1 - x0, y1 - y0) < 7:  # skimage's default 7×7 window must fit
        raise ValueError(f"face box {face} is under 7 px a side inside a {frame.shape[1]}×{frame.shape[0]} frame")

    def ssim(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
        # skimage ships no type hints
        return float(structural_similarity(a, b, channel_axis=2, data_range=255))  # type: ignore[no-untyped-call]

    return ssim(frame, lensed), ssim(frame[y0:y1, x0:x1], lensed[y0:y1, x0:x1])


def face_truth(judges: Any, frame: npt.NDArray[np.uint8]) -> Box | None:
    """The true face of a raw frame: Haar's first, else the CNN's; None when neither finds one."""
    found = judges.haar.detect(frame) or judges.cnn.detect(frame)
    return found[0] if found else None


def _privacy_figures(
    clips: list[Clip], presets: list[Preset], frames_per_clip: int, progress: bool
) -> tuple[dict[str, _Tally], dict[str, Any]]:
    from edge.evaluation.privacy_attack import Gallery, Judges, restorations

    judges = Judges()
    samples: list[tuple[str, int, npt.NDArray[np.uint8], Box]] = []
    for clip in clips:
        for i, frame in enumerate(sample_frames(clip.video, frames_per_clip)):
            face = face_truth(judges, frame)
            if face is not None:
                samples.append((clip.name, i, frame, face))
    if not samples:
        raise EvalDataError("no face found on any raw frame: nothing to hide")
    gallery = Gallery([(name, i, judges.embed(frame, face)) for name, i, frame, face in samples])
    tallies: dict[str, _Tally] = {}
    for preset in presets:
        tally = tallies.setdefault(preset, _Tally())
        lensing = build_lensing(preset, seed=7)
        t0 = time.perf_counter()
        for n, (name, i, frame, face) in enumerate(samples):
            tally.clip.append(name)
            if lensing is None:  # off: what leaves is the raw frame
                tally.ssim.append(1.0)
                tally.ssim_face.append(1.0)
                hit = judges.detects(frame, face) is not None
                tally.detected.append(hit)
                tally.detected_after_attack.append(hit)
                tally.add(gallery.judge([judges.embed(frame, face)], name, i))
                continue
            lensed = lensing.apply(frame)
            whole, on_face = ssim_frame_and_face(frame, lensed, face)
            tally.ssim.append(whole)
            tally.ssim_face.append(on_face)
            found_any, probes = False, []
            for attack, image, crop_face in restorations(lensed, lensing, face):
                # Once some image gave the face away the frame counts as found: the rest only need embedding.
                found = judges.detects(image, crop_face) if attack == "lensed" or not found_any else None
                if attack == "lensed":
                    tally.detected.append(found is not None)
                if found is not None and not found_any:
                    tally.winning_attacks[f"{attack} / {found}"] += 1
                found_any = found_any or found is not None
                probes.append(judges.embed(image, crop_face))
            tally.detected_after_attack.append(found_any)
            tally.add(gallery.judge(probes, name, i))
            if progress:
                print(f"\r{preset:>9}: {n + 1}/{len(samples)} frames, {time.perf_counter() - t0:.0f} s",
                      end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)
    info = {
        "frames": len(samples),
        "clips": sorted({name for name, _, _, _ in samples}),
        "reid_threshold": round(gallery.threshold, 4),
        "reid_genuine_rate_raw": None if gallery.genuine_rate is None else round(gallery.genuine_rate, 3),
    }
    return tallies, info


def _hr_mae(
    clips: list[Clip],
    preset: Preset,
    max_s: float | None,
    progress: bool,
    held_out: bool = False,
    noise_seeds: tuple[int, ...] = (11,),
) -> dict[str, Any]:
    """Windowed heart-rate MAE, pooled over clips and, through a lens, over the sensor noise's seeds
    (one run a seed: on marginal clips the tracker's lock turns on the noise; raw video runs once)."""
    from edge.evaluation.rppg import score_clip
    from edge.evaluation.rppg_data import load_ground_truth, run_clip
    from fusion.reference import ReferencePpg

    cfg = HeartRateConfig(input="raw" if preset == "off" else "lensed")
    seeds = noise_seeds if preset != "off" else noise_seeds[:1]
    errors: dict[int, list[float]] = {seed: [] for seed in seeds}
    by_clip: dict[str, list[float]] = {}
    for clip in clips:
        if clip.folder is None:
            continue
        video, ppg, t_ppg = load_ground_truth(clip.folder)
        by_clip[clip.name] = []
        for seed in seeds:
            lensing = build_lensing(preset, seed=seed)
            detector = None
            if lensing is not None:
                detector = skin_region_detector(lensing, held_out=clip.name if held_out else None)
            run = run_clip(
                video, cfg, name=clip.name, detector=detector, max_s=max_s, progress=progress, lensing=lensing
            )
            scored = score_clip(run, run.published, ReferencePpg(ppg, t_ppg, run.fs_hz), cfg)
            e = np.abs(scored.errors()).tolist()
            errors[seed].extend(e)
            by_clip[clip.name].extend(e)
    pooled = [e for seed in seeds for e in errors[seed]]
    return {
        "hr_mae_bpm": _mean(pooled),
        "hr_windows": len(pooled),
        "hr_mae_bpm_per_clip": {name: _mean(e) for name, e in by_clip.items()},
        "hr_windows_per_clip": {name: len(e) for name, e in by_clip.items()},
        "hr_mae_bpm_per_noise_seed": {str(seed): _mean(errors[seed]) for seed in seeds},
    }


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 3) if values else None


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("privacy", help="what each privacy preset hides from an attacker and keeps of the pulse")
    parser.add_argument("paths", nargs="+", type=Path, metavar="VIDEO_OR_DIR",
                        help="videos, UBFC clip folders, or folders of clip folders")
    parser.add_argument("--presets", default=",".join(PRESETS), help=f"comma-separated, of {', '.join(PRESETS)}")
    parser.add_argument("--frames", type=int, default=6, help="frames sampled per clip for the privacy figures")
    parser.add_argument("--max-s", type=float, help="heart rate: only the first seconds of each clip")
    parser.add_argument("--no-hr", action="store_true", help="skip the heart-rate figures")
    parser.add_argument("--no-faces", action="store_true", help="heart-rate figures only (no detectors, no SSIM)")
    parser.add_argument("--held-out-skin-region", action="store_true",
                        help="heart rate through a lens: find each clip's face with the skin-region geometry "
                        "fitted without that clip (models/privacy_lens/skin_region.py), for a leave-one-out figure")
    parser.add_argument("--noise-seeds", default="11", metavar="SEEDS",
                        help="heart rate through a lens: comma-separated seeds of the sensor's noise, one run each, "
                        "pooled (default 11)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    presets: list[Preset] = []
    for name in (p.strip() for p in args.presets.split(",") if p.strip()):
        if name not in PRESETS:
            raise ConfigError(f"--presets: unknown preset {name!r} (choose from {', '.join(PRESETS)})")
        presets.append(name)
    try:
        noise_seeds = tuple(int(x) for x in args.noise_seeds.split(",") if x.strip())
    except ValueError as exc:
        raise ConfigError(f"--noise-seeds: {args.noise_seeds!r} is not a comma-separated list of integers") from exc
    if not noise_seeds:
        raise ConfigError("--noise-seeds: give at least one seed")
    if args.frames < 2:
        raise ConfigError("--frames must be at least 2 (re-identification compares frames of one person)")
    from models.face_recognition import FaceModelsMissing, face_models_dir

    if not args.no_faces:
        try:
            face_models_dir()
        except FaceModelsMissing as exc:
            raise ConfigError(f"eval privacy needs the face models: {exc}") from exc
    clips = find_clips(args.paths)
    progress = sys.stderr.isatty()
    t0 = time.perf_counter()
    tallies, info = ({}, {}) if args.no_faces else _privacy_figures(clips, presets, args.frames, progress)
    out: dict[str, Any] = {"presets": {}, **info}
    for preset in presets:
        entry: dict[str, Any] = {"ssim": None, "ssim_face": None, "face_rate": None, "face_rate_after_attack": None,
                                 "reid_rate_after_attack": None, "hr_mae_bpm": None}
        if preset in tallies:
            t = tallies[preset]
            entry.update({
                "ssim": round(float(np.mean(t.ssim)), 3),
                "ssim_face": round(float(np.mean(t.ssim_face)), 3),
                "face_rate": round(float(np.mean(t.detected)), 3),
                "face_rate_after_attack": round(float(np.mean(t.detected_after_attack)), 3),
                "reid_rate_after_attack": round(float(np.mean(t.reidentified)), 3),
                "false_match_rate_after_attack": round(float(np.mean(t.false_match)), 3),
                "median_distance_to_same_person": round(float(np.median(t.best_distance)), 3),
                "attacks_that_found_faces": dict(t.winning_attacks.most_common()),
                "per_clip": _per_clip(t),
            })
        if not args.no_hr:
            held_out = args.held_out_skin_region
            entry.update(_hr_mae(clips, preset, args.max_s, progress, held_out=held_out, noise_seeds=noise_seeds))
        out["presets"][preset] = entry
    out["run_s"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(out))
        return 0
    if info:
        print(f"{info['frames']} frames of {len(info['clips'])} clips; re-identification at distance "
              f"{info['reid_threshold']} (1 % false matches; same-person raw frames matched: "
              f"{info['reid_genuine_rate_raw']})")
    print(f"{'preset':>9} {'SSIM':>6} {'SSIM@f':>6} {'face':>6} {'face*':>6} {'re-id*':>7} {'HR MAE':>7}"
          "   (@f: on the face's box; *: attacker's best)")
    columns = (("ssim", 6), ("ssim_face", 6), ("face_rate", 6), ("face_rate_after_attack", 6),
               ("reid_rate_after_attack", 7), ("hr_mae_bpm", 7))
    for preset, e in out["presets"].items():
        cells = [_cell(e[k], w) for k, w in columns]
        print(f"{preset:>9} {' '.join(cells)}")
    return 0


def _per_clip(t: _Tally) -> dict[str, dict[str, float | int]]:
    """The privacy rates of each clip's frames (a leave-one-out reader scores each clip on its own)."""
    out: dict[str, dict[str, float | int]] = {}
    for name in sorted(set(t.clip)):
        rows = [i for i, c in enumerate(t.clip) if c == name]
        out[name] = {
            "frames": len(rows),
            "ssim_face": round(float(np.mean([t.ssim_face[i] for i in rows])), 3),
            "face_rate": round(float(np.mean([t.detected[i] for i in rows])), 3),
            "face_rate_after_attack": round(float(np.mean([t.detected_after_attack[i] for i in rows])), 3),
            "reid_rate_after_attack": round(float(np.mean([t.reidentified[i] for i in rows])), 3),
        }
    return out


def _cell(value: float | None, width: int) -> str:
    return f"{'—':>{width}}" if value is None else f"{value:{width}.3f}"
