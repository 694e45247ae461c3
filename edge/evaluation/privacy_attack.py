"""The attacker of ``vitaledge eval privacy``: deconvolution with the known PSF, and the judges.

The attacker knows the lens exactly and where the face is. Attacks work on the face's neighbourhood
(the face box doubled, plus the PSF's reach), in linear light:

- Wiener deconvolution (``skimage.restoration.wiener``) with balance 1e-4 … 1e-1;
- Richardson–Lucy (20 iterations, as ``skimage.restoration.richardson_lucy`` computes it, with
  OpenCV's filter2D doing the convolutions: the same update, two orders of magnitude faster here);

each with two PSFs: the optical PSF at full resolution, and, for the live lens, the exact model of the
live path at its working resolution (the frame area-averaged down by ``work_scale``, where the blur is
precisely the PSF at that scale); restorations at the working resolution are brought back up bicubically.
Judges: OpenCV's Haar cascade and dlib's CNN face detector (a hit is a box overlapping the true face by
IoU ≥ 0.3), and dlib's ResNet embedding at the true face box for re-identification against a
:class:`Gallery` of raw frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from skimage import restoration

from fusion.face import Box
from fusion.privacy import Lens, Lensing, linear_to_srgb, srgb_to_linear

__all__ = ["ATTACKS", "Attack", "Gallery", "Judges", "Verdict", "iou", "restorations"]

_RL_ITERATIONS = 20
_HIT_IOU = 0.3
_FALSE_MATCH_RATE = 0.01


@dataclass(frozen=True, slots=True)
class Attack:
    """One restoration the attacker tries.

    Attributes:
        kind: ``wiener`` or ``richardson-lucy``.
        balance: Wiener's regularisation weight (unused by Richardson–Lucy).
        scale: ``full``: the optical PSF on the frame; ``work``: the live lens's working resolution.
    """

    kind: Literal["wiener", "richardson-lucy"]
    balance: float
    scale: Literal["full", "work"]

    @property
    def name(self) -> str:
        what = f"wiener {self.balance:g}" if self.kind == "wiener" else f"richardson-lucy {_RL_ITERATIONS}"
        return f"{what} @{self.scale}"


ATTACKS: tuple[Attack, ...] = tuple(
    [Attack("wiener", b, s) for s in ("full", "work") for b in (1e-4, 1e-3, 1e-2, 1e-1)]
    + [Attack("richardson-lucy", 0.0, s) for s in ("full", "work")]
)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    inter = max(0.0, w) * max(0.0, h)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def _richardson_lucy(image: npt.NDArray[np.float32], kernel: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    estimate = np.full_like(image, 0.5)
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])
    for _ in range(_RL_ITERATIONS):
        blurred = cv2.filter2D(estimate, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT)
        ratio = image / np.maximum(blurred, 1e-6)
        estimate = estimate * cv2.filter2D(ratio, cv2.CV_32F, flipped, borderType=cv2.BORDER_REFLECT)
    return np.asarray(estimate, dtype=np.float32)


def _deconvolve(
    linear: npt.NDArray[np.float32], psfs: npt.NDArray[np.float64], attack: Attack
) -> npt.NDArray[np.float32]:
    out = np.empty_like(linear)
    for c in range(3):
        kernel = psfs[c]
        if attack.kind == "wiener":
            restored = restoration.wiener(  # type: ignore[no-untyped-call]  # skimage ships no type hints
                linear[:, :, c].astype(np.float64), kernel, attack.balance, clip=False
            )
            out[:, :, c] = np.asarray(restored, dtype=np.float32)
        else:
            out[:, :, c] = _richardson_lucy(linear[:, :, c], kernel.astype(np.float32))
    return out


def restorations(
    lensed: npt.NDArray[np.uint8], lensing: Lensing, face: Box
) -> Iterator[tuple[str, npt.NDArray[np.uint8], Box]]:
    """The attacker's images of the face's neighbourhood: the lensed crop itself, then each attack.

    Args:
        lensed: the whole lensed frame.
        lensing: the lens (its PSF is known to the attacker).
        face: the true face box in the frame.

    Yields:
        (attack name, restored BGR crop, the true face box in the crop's pixels).
    """
    height, width = lensed.shape[:2]
    full_psf = lensing.psf_bgr(width)
    margin = full_psf.shape[1] // 2 + 1
    x0, y0, x1, y1 = face.enlarged(1.0).clipped(width, height)
    px0, py0 = max(0, x0 - margin), max(0, y0 - margin)
    px1, py1 = min(width, x1 + margin), min(height, y1 + margin)
    crop_face = Box(face.x - x0, face.y - y0, face.w, face.h)
    yield "lensed", np.ascontiguousarray(lensed[y0:y1, x0:x1]), crop_face
    region = srgb_to_linear(lensed[py0:py1, px0:px1])
    cut = (slice(y0 - py0, y1 - py0), slice(x0 - px0, x1 - px0))
    scale = lensing.work_scale if isinstance(lensing, Lens) else 1
    for attack in ATTACKS:
        if attack.scale == "work" and scale == 1:
            continue
        if attack.scale == "full":
            restored = _deconvolve(region, full_psf, attack)
        else:
            h, w = region.shape[:2]
            small = np.asarray(
                cv2.resize(region, (max(1, w // scale), max(1, h // scale)), interpolation=cv2.INTER_AREA), np.float32
            )
            work_psf = lensing.psf_bgr(max(1, width // scale))
            restored = np.asarray(
                cv2.resize(_deconvolve(small, work_psf, attack), (w, h), interpolation=cv2.INTER_CUBIC), np.float32
            )
        yield attack.name, linear_to_srgb(restored[cut]), crop_face


class Judges:
    """The detectors and the face embedding, loaded once.

    Args:
        cnn_max_width: the CNN detector's working width for a crop (the face then spans about 40 % of it).
    """

    def __init__(self, cnn_max_width: int = 160) -> None:
        from models.face_detectors import HaarFaceDetector
        from models.face_recognition import DlibCnnFaceDetector, DlibFaceEmbedder

        self.haar = HaarFaceDetector(max_width=320, min_size_px=24)
        self.cnn = DlibCnnFaceDetector(max_width=cnn_max_width)
        self.embedder = DlibFaceEmbedder()

    def detects(self, image: npt.NDArray[np.uint8], face: Box) -> str | None:
        """Which detector finds the true face (``haar``, ``cnn``), or None."""
        for name, detector in (("haar", self.haar), ("cnn", self.cnn)):
            if any(iou(b, face) >= _HIT_IOU for b in detector.detect(image)):
                return name
        return None

    def embed(self, image: npt.NDArray[np.uint8], face: Box) -> npt.NDArray[np.float64]:
        """The 128-d descriptor of the face at ``face`` in ``image``."""
        return self.embedder.embed(image, face).vector


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the attacker's images of one frame's face gave away.

    Attributes:
        best_distance: the smallest distance of any image to the same person's raw frames.
        reidentified: some image within the threshold of the person and nearer to them than to anyone else.
        false_match: some image within the threshold of another person's raw frame.
    """

    best_distance: float
    reidentified: bool
    false_match: bool


class Gallery:
    """Face embeddings of raw frames, one entry per (person, frame), and the match threshold.

    The threshold is the distance that gives ``false_match_rate`` false matches between raw frames of different
    people (0.6, dlib's usual, when there is only one person).

    Args:
        entries: (person, frame index, 128-d descriptor) per raw frame.
    """

    def __init__(
        self, entries: Sequence[tuple[str, int, npt.NDArray[np.float64]]], false_match_rate: float = _FALSE_MATCH_RATE
    ) -> None:
        self.entries = list(entries)
        impostor: list[float] = []
        genuine: list[float] = []
        for k, (na, _, a) in enumerate(self.entries):
            for nb, _, b in self.entries[k + 1 :]:
                (genuine if na == nb else impostor).append(float(np.linalg.norm(a - b)))
        self.threshold = float(np.quantile(impostor, false_match_rate)) if impostor else 0.6
        # share of raw same-person pairs matched: how well the embedding knows these people unblurred
        self.genuine_rate = float(np.mean(np.asarray(genuine) < self.threshold)) if genuine else None

    def judge(self, probes: Sequence[npt.NDArray[np.float64]], person: str, frame: int) -> Verdict:
        """Whether any of ``probes`` (images of ``person``'s frame ``frame``) re-identifies them; the frame's own
        raw embedding is left out of the comparison. A blur that matches everybody identifies nobody: it shows
        as a false match, not a re-identification."""
        same = [v for n, i, v in self.entries if n == person and i != frame]
        others = [v for n, _, v in self.entries if n != person]
        best_same, hit, false = math.inf, False, False
        for probe in probes:
            d_same = min((float(np.linalg.norm(probe - v)) for v in same), default=math.inf)
            d_other = min((float(np.linalg.norm(probe - v)) for v in others), default=math.inf)
            best_same = min(best_same, d_same)
            hit = hit or (d_same < self.threshold and d_same < d_other)
            false = false or d_other < self.threshold
        return Verdict(best_same, hit, false)
