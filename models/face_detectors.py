"""Face detectors that edge/ builds and hands to fusion (which never opens files itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from fusion.face import Box
from fusion.greyscale import luma_709

__all__ = ["HaarFaceDetector", "OnnxFaceDetector"]


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade (bundled with opencv-python 4.x), run on a downscaled copy.

    Args:
        max_width: images wider than this are downscaled before detection (speed); boxes are
            returned in the original image's pixels.
        min_size_px: smallest face side to report, in original pixels.
    """

    def __init__(self, max_width: int = 320, min_size_px: int = 40, cascade: Path | None = None) -> None:
        path = cascade or Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]  # cv2 stubs lack cv2.data
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FileNotFoundError(f"cannot load Haar cascade {path}")
        self._max_width = max_width
        self._min_size_px = min_size_px

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Box]:
        grey = luma_709(image_bgr)
        scale = min(1.0, self._max_width / grey.shape[1])
        small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
        small = cv2.equalizeHist(small)
        min_side = max(12, int(self._min_size_px * scale))
        found = self._cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        boxes = [Box(float(x), float(y), float(w), float(h)).scaled(1 / scale) for (x, y, w, h) in found]
        return sorted(boxes, key=lambda b: b.w * b.h, reverse=True)


class OnnxFaceDetector:
    """An SSD-style ONNX face detector (UltraFace ``version-RFB-320`` convention), session from edge/.

    The model takes one NCHW image and gives two outputs: scores ``(1, N, 2)`` (background, face) or
    ``(1, N)``, and boxes ``(1, N, 4)`` as normalised ``x0, y0, x1, y1``. Its metadata may say:
    ``face.size`` (``HxW``; else the input's static dims), ``face.colour`` (``rgb`` default, or
    ``bgr``), ``face.mean`` (127) and ``face.scale`` (1/128): input = (pixel − mean) · scale.

    Args:
        session: an onnxruntime session (or anything with the same calls).
        score_threshold: lowest face score kept.
        nms_iou: overlap above which the weaker of two boxes is dropped.

    Raises:
        ValueError: the model's input or metadata breaks the contract above.
    """

    def __init__(self, session: Any, score_threshold: float = 0.7, nms_iou: float = 0.3) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError("a face detector takes one NCHW image input")
        meta = dict(session.get_modelmeta().custom_metadata_map or {})
        if "face.size" in meta:
            try:
                h, w = (int(v) for v in meta["face.size"].lower().split("x"))
            except ValueError as exc:
                raise ValueError(f"face.size must be HxW, got {meta['face.size']!r}") from exc
        else:
            h, w = inputs[0].shape[2], inputs[0].shape[3]
            if not (isinstance(h, int) and isinstance(w, int)):
                raise ValueError("the input size is dynamic and face.size does not give it")
        self._size_wh = (w, h)
        colour = meta.get("face.colour", "rgb").lower()
        if colour not in ("rgb", "bgr"):
            raise ValueError(f"face.colour must be rgb or bgr, got {colour!r}")
        self._rgb = colour == "rgb"
        self._mean = float(meta.get("face.mean", 127.0))
        self._scale = float(meta.get("face.scale", 1 / 128))
        self._session = session
        self._input = str(inputs[0].name)
        self._threshold = score_threshold
        self._nms_iou = nms_iou

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Box]:
        height, width = image_bgr.shape[:2]
        x = cv2.resize(image_bgr, self._size_wh, interpolation=cv2.INTER_AREA)
        if self._rgb:
            x = cv2.cvtColor(x, cv2.COLOR_BGR2RGB)
        blob = ((x.astype(np.float32) - self._mean) * self._scale).transpose(2, 0, 1)[None]
        scores, boxes = self._session.run(None, {self._input: blob})[:2]
        scores = np.asarray(scores, dtype=np.float32).reshape(-1, np.asarray(scores).shape[-1])
        face = scores[:, -1] if scores.shape[1] <= 2 else scores.reshape(-1)
        corners = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) * [width, height, width, height]
        keep = np.flatnonzero(face >= self._threshold)
        if len(keep) == 0:
            return []
        xywh = [[float(c[0]), float(c[1]), float(c[2] - c[0]), float(c[3] - c[1])] for c in corners[keep]]
        chosen = cv2.dnn.NMSBoxes(xywh, face[keep].tolist(), self._threshold, self._nms_iou)
        found = [Box(*xywh[i]) for i in np.asarray(chosen).reshape(-1)]
        return sorted((b for b in found if b.w > 0 and b.h > 0), key=lambda b: b.w * b.h, reverse=True)
