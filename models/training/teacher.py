"""A teacher's pulse on unlabeled training video: a pretrained streaming model (ME-rPPG) run once per video.

The teacher sees each frame as it would live (``fusion.pulse_stream``: the tracked face's buffered box, or
the whole frame, its margin removed, RGB, its recurrent states fed back), and its per-frame output is the
student's target. It is computed once per video and teacher file and cached beside the decoded crops.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fusion.pulse_stream import StreamingOnnxPulseEstimator
from models.training.data import cache_key, iter_crops, save_npz

__all__ = ["file_digest", "teacher_pulse"]

_LOG = logging.getLogger(__name__)
_NS_PER_S = 1_000_000_000


@cache
def file_digest(path: Path) -> str:
    """SHA-256 of a file (the teacher's identity in caches and in the student's provenance)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def teacher_pulse(path: Path, teacher: Path, *, face: bool, cache_dir: Path | None = None) -> npt.NDArray[np.float32]:
    """The teacher's pulse sample for every frame of ``path`` (NaN where no face is tracked).

    The teacher's states restart wherever the face is lost, as live.

    Raises:
        ValueError: the video cannot be read, or the teacher is not a streaming model.
    """
    key = cache_key(path, face, "teacher", file_digest(teacher))
    cached = cache_dir / f"{path.stem}-{key}.teacher.npz" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        with np.load(cached) as z:
            return np.asarray(z["pulse"], dtype=np.float32)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(teacher), options, providers=["CPUExecutionProvider"])
    fps, crops = iter_crops(path, face=face)
    estimator = StreamingOnnxPulseEstimator(session, fs_hz=fps)
    out: list[float] = []
    lost = True
    for crop in crops:
        if crop is None:
            out.append(float("nan"))
            lost = True
            continue
        if lost:
            estimator.reset()
            lost = False
        out.append(estimator.sample(np.ascontiguousarray(crop), round(len(out) / fps * _NS_PER_S)))
    if not out:
        raise ValueError(f"{path}: no frames")
    pulse = np.asarray(out, dtype=np.float32)
    _LOG.info("%s: teacher pulse on %d frames", path, int(np.isfinite(pulse).sum()))
    if cached is not None:
        save_npz(cached, pulse=pulse)
    return pulse
