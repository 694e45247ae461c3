"""dlib's CNN face detector and ResNet face embedding, with weights from the ``face-recognition-models`` package.

Both run offline: the weights ship inside that package (installed from the package registry, extra
``[faces]``) and are found on disk without importing it (its ``__init__`` needs ``pkg_resources``, which
newer setuptools dropped). The privacy and acquisition evaluations use these as the attacker's and the
standard's tools: a CNN detector that a blur or a grey frame has to defeat, and a 128-d embedding whose
Euclidean distance between two faces says "same person" below about 0.6.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fusion.face import Box

__all__ = [
    "DlibCnnFaceDetector",
    "DlibFaceEmbedder",
    "FaceModelsMissing",
    "face_models_dir",
    "faces_available",
]

_CNN_DETECTOR = "mmod_human_face_detector.dat"
_EMBEDDING = "dlib_face_recognition_resnet_model_v1.dat"
_LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"


class FaceModelsMissing(RuntimeError):
    """dlib or the face-recognition-models weights are not installed (``pip install -e '.[faces]'``)."""


def face_models_dir() -> Path:
    """The folder holding the ``face-recognition-models`` weights.

    Raises:
        FaceModelsMissing: the package or dlib is not installed.
    """
    if importlib.util.find_spec("dlib") is None:
        raise FaceModelsMissing("dlib is not installed: pip install -e '.[faces]' (the dlib-bin wheel)")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelsMissing("face-recognition-models is not installed: pip install -e '.[faces]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    for name in (_CNN_DETECTOR, _EMBEDDING, _LANDMARKS_5):
        if not (folder / name).is_file():
            raise FaceModelsMissing(f"face-recognition-models lacks {name} in {folder}")
    return folder


def faces_available() -> bool:
    """Whether :func:`face_models_dir` would succeed (tests skip with a reason when it would not)."""
    try:
        face_models_dir()
    except FaceModelsMissing:
        return False
    return True


def _rgb(image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """dlib wants contiguous RGB (or one grey channel, which it takes as is)."""
    if image_bgr.ndim == 2:
        return np.ascontiguousarray(image_bgr)
    return np.ascontiguousarray(image_bgr[:, :, ::-1])


class DlibCnnFaceDetector:
    """dlib's max-margin CNN face detector (``mmod_human_face_detector``), run on a downscaled copy.

    Slow on a CPU (hundreds of ms a VGA frame): for evaluation, not the live loop.

    Args:
        max_width: images wider than this are downscaled before detection; boxes come back in the
            original image's pixels.
        upsample: dlib's pyramid upsampling (1 finds faces down to about 40 px at ``max_width``).
        min_confidence: lowest detector score kept.
    """

    def __init__(self, max_width: int = 480, upsample: int = 0, min_confidence: float = 0.0) -> None:
        import dlib

        self._net: Any = dlib.cnn_face_detection_model_v1(str(face_models_dir() / _CNN_DETECTOR))
        self._max_width = max_width
        self._upsample = upsample
        self._min_confidence = min_confidence

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Box]:
        import cv2

        scale = min(1.0, self._max_width / image_bgr.shape[1])
        small = image_bgr
        if scale < 1:
            small = np.asarray(cv2.resize(image_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8)
        rects = [d.rect for d in self._net(_rgb(small), self._upsample) if d.confidence >= self._min_confidence]
        boxes = [Box(r.left(), r.top(), r.width(), r.height()).scaled(1 / scale) for r in rects]
        return sorted((b for b in boxes if b.w > 0 and b.h > 0), key=lambda b: b.w * b.h, reverse=True)


@dataclass(frozen=True, slots=True)
class FaceEmbedding:
    """One face's 128-d descriptor; Euclidean distance < ~0.6 means the same person (dlib's LFW threshold)."""

    vector: npt.NDArray[np.float64]
    box: Box


class DlibFaceEmbedder:
    """dlib's ResNet face embedding (99.38 % on LFW) after 5-point alignment.

    Args:
        jitter: dlib's ``num_jitters`` (random re-crops averaged; 0 is plain and fastest).
    """

    def __init__(self, jitter: int = 0) -> None:
        import dlib

        folder = face_models_dir()
        self._dlib: Any = dlib
        self._landmarks: Any = dlib.shape_predictor(str(folder / _LANDMARKS_5))
        self._net: Any = dlib.face_recognition_model_v1(str(folder / _EMBEDDING))
        self._jitter = jitter

    def embed(self, image_bgr: npt.NDArray[np.uint8], box: Box) -> FaceEmbedding:
        """The descriptor of the face in ``box`` (found by any detector) of ``image_bgr``."""
        rgb = _rgb(image_bgr)
        if rgb.ndim == 2:  # the ResNet takes colour; a grey face is three equal channels
            rgb = np.ascontiguousarray(np.repeat(rgb[:, :, None], 3, axis=2))
        rect = self._dlib.rectangle(int(box.x), int(box.y), int(box.x + box.w), int(box.y + box.h))
        shape = self._landmarks(rgb, rect)
        vector = np.asarray(self._net.compute_face_descriptor(rgb, shape, self._jitter), dtype=np.float64)
        return FaceEmbedding(vector=vector, box=box)


def embedding_distance(a: FaceEmbedding, b: FaceEmbedding) -> float:
    """Euclidean distance between two descriptors (smaller = more alike)."""
    return float(np.linalg.norm(a.vector - b.vector))


__all__ += ["FaceEmbedding", "embedding_distance"]
