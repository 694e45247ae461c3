"""Unlabeled training video: face crops (or whole frames) decoded once, cached, and cut into clips.

Each video is decoded once into crops of the model's size in YUV, as the runtime estimator
(``fusion.pulse_onnx``) prepares them: the buffered face box of ``fusion.tracking`` with the Haar
detector for face video (UBFC), the whole frame for skin patches. The crops are cached as ``.npz`` keyed
by the file's path, size and modification time, so epochs and later runs never decode again.

A clip is sampled straight from the decoded frames at the training rate: the anchor at times
``t0 + k/fs`` and the negative at ``t0 + q·k/fs`` (``q`` = R_f or 1/R_f), by linear interpolation
between frames, so neither is resampled twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from fusion.face import Box
from fusion.tracking import FaceTracker
from models.face_detectors import HaarFaceDetector

__all__ = [
    "DecodedVideo",
    "cache_key",
    "decode_video",
    "find_videos",
    "interpolate_frames",
    "iter_crops",
    "save_npz",
    "temporal_z",
]

_LOG = logging.getLogger(__name__)
_CACHE_VERSION = 1
_VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov")
_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True, eq=False)
class DecodedVideo:
    """One video's crops.

    Attributes:
        name: the video's file name (with its folder for ``vid.mp4``-style names).
        fps: the video's frame rate.
        frames: N×S×S×3 uint8 YUV crops, frame i at ``i / fps`` seconds.
        valid: N booleans: a face was tracked (always True for whole frames).
        teacher: N samples of a teacher model's pulse on the same frames (NaN where it has none), or None.
    """

    name: str
    fps: float
    frames: npt.NDArray[np.uint8]
    valid: npt.NDArray[np.bool_]
    teacher: npt.NDArray[np.float32] | None = None

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps


def find_videos(paths: list[Path]) -> list[Path]:
    """Video files named directly or found under folders (recursively), in sorted order."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.suffix.lower() in _VIDEO_SUFFIXES and q.is_file())
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return found


def _display_name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}" if path.stem in ("vid",) else path.name


def cache_key(path: Path, *parts: object) -> str:
    """A cache file's key: the video's path, size and modification time, and ``parts``."""
    stat = path.stat()
    fields = [_CACHE_VERSION, path.resolve(), stat.st_size, stat.st_mtime_ns, *parts]
    return hashlib.sha1("|".join(map(str, fields)).encode()).hexdigest()[:16]


def iter_crops(path: Path, *, face: bool) -> tuple[float, Iterator[npt.NDArray[np.uint8] | None]]:
    """The video's rate and its full-resolution crops in order: the tracked face's buffered box (the
    runtime's crop), or the whole frame; None where no face is tracked.

    Raises:
        ValueError: the video cannot be opened.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: cannot open the video")
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
    tracker = FaceTracker(HaarFaceDetector(), detect_every=max(1, round(0.2 * fps))) if face else None

    def crops() -> Iterator[npt.NDArray[np.uint8] | None]:
        n = 0
        try:
            while True:
                ok, read = cap.read()
                if not ok:
                    return
                image = np.asarray(read, dtype=np.uint8)
                box: Box | None = Box(0, 0, image.shape[1], image.shape[0])
                if tracker is not None:
                    box = tracker.update(image, round(n / fps * _NS_PER_S)).box
                n += 1
                x0, y0, x1, y1 = box.clipped(image.shape[1], image.shape[0]) if box is not None else (0, 0, 0, 0)
                yield image[y0:y1, x0:x1] if x1 - x0 >= 2 and y1 - y0 >= 2 else None
        finally:
            cap.release()

    return fps, crops()


def decode_video(path: Path, *, size: int, face: bool, cache_dir: Path | None = None) -> DecodedVideo:
    """Decode ``path`` into ``size``×``size`` YUV crops (cached when ``cache_dir`` is given).

    Args:
        path: the video.
        size: crop side in pixels.
        face: crop the tracked face (Haar + buffered box); False: the whole frame.
        cache_dir: where to keep ``.npz`` caches.

    Raises:
        ValueError: the video cannot be read or holds no frames.
    """
    key = cache_key(path, size, face)
    cache = cache_dir / f"{path.stem}-{key}.npz" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            return DecodedVideo(_display_name(path), float(z["fps"]), z["frames"], z["valid"])
    fps, crops = iter_crops(path, face=face)
    frames: list[npt.NDArray[np.uint8]] = []
    valid: list[bool] = []
    blank = np.zeros((size, size, 3), np.uint8)
    for crop in crops:
        if crop is None:
            frames.append(blank)
            valid.append(False)
            continue
        small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        frames.append(np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2YUV), dtype=np.uint8))
        valid.append(True)
    if not frames:
        raise ValueError(f"{path}: no frames")
    decoded = DecodedVideo(_display_name(path), fps, np.stack(frames), np.asarray(valid))
    _LOG.info("%s: %d frames at %.2f fps, %d with a face", path, len(frames), fps, int(decoded.valid.sum()))
    if cache is not None:
        save_npz(cache, fps=fps, frames=decoded.frames, valid=decoded.valid)
    return decoded


def save_npz(path: Path, **arrays: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)


def interpolate_frames(video: DecodedVideo, times_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float32] | None:
    """Frames at ``times_s`` (T×S×S×3 float32, linear between neighbours); None where a face is missing."""
    pos = times_s * video.fps
    i0 = np.floor(pos).astype(np.int64)
    if i0[0] < 0 or i0[-1] + 1 >= len(video.frames):
        return None
    if not (video.valid[i0].all() and video.valid[i0 + 1].all()):
        return None
    u = (pos - i0).astype(np.float32)[:, None, None, None]
    a = video.frames[i0].astype(np.float32)
    b = video.frames[i0 + 1].astype(np.float32)
    out: npt.NDArray[np.float32] = a + (b - a) * u
    return out


def temporal_z(frames_thwc: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each pixel and channel z-normalised over time, as ``fusion.pulse_onnx`` does (``temporal_z``)."""
    mean = frames_thwc.mean(axis=0, keepdims=True)
    std = frames_thwc.std(axis=0, keepdims=True)
    out: npt.NDArray[np.float32] = ((frames_thwc - mean) / (std + 1e-6)).astype(np.float32)
    return out
