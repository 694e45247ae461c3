"""Greyscale frames: how to tell one, how to make one, and how to lift its contrast.

IR webcams at night, the FLIR ONE's visible camera in low light and any mono camera give frames
whose three channels are one. Drivers mark them (``VisibleFrame.greyscale``) with
:func:`is_greyscale`; wherever colour is turned into grey it is Rec. 709 luma (:func:`luma_709`),
the weights of the HD cameras this project reads, not OpenCV's Rec. 601 default.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from fusion.face import Box, FaceDetector

__all__ = [
    "GREY_TOLERANCE",
    "REC709_RGB",
    "GreyscaleFaceDetector",
    "clahe",
    "clahe_bgr",
    "grey_as_bgr",
    "is_greyscale",
    "luma_709",
]

REC709_RGB = (0.2126, 0.7152, 0.0722)  # ITU-R BT.709 luma weights of R, G, B
# A mono sensor through a colour pipeline (MJPEG, YUYV with 4:2:2 chroma) leaves the channels a level
# or two apart; a colour scene in dim light still differs by more than this somewhere.
GREY_TOLERANCE = 3
# Pixels compared per side when deciding: a 64×64 lattice is plenty and costs microseconds.
_PROBE = 64


def luma_709(image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Rec. 709 luma Y = 0.2126 R + 0.7152 G + 0.0722 B of a BGR image (an H×W image is returned as is).

    Raises:
        ValueError: not an H×W or H×W×3 uint8 image.
    """
    if image_bgr.dtype != np.uint8 or not (image_bgr.ndim == 2 or (image_bgr.ndim == 3 and image_bgr.shape[2] == 3)):
        raise ValueError(f"image must be H×W or H×W×3 uint8, got {image_bgr.shape} {image_bgr.dtype}")
    if image_bgr.ndim == 2:
        return image_bgr
    r, g, b = REC709_RGB
    y = cv2.transform(image_bgr, np.array([[b, g, r]], dtype=np.float32))  # rounds and saturates to uint8
    return np.asarray(y.reshape(image_bgr.shape[:2]), dtype=np.uint8)


def is_greyscale(image: npt.NDArray[np.uint8], tolerance: int = GREY_TOLERANCE) -> bool:
    """Whether an image holds no colour: one channel, or three that agree within ``tolerance`` levels.

    Looks at a sparse lattice of pixels, so a driver can ask for every frame.
    """
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return True
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H×W, H×W×1 or H×W×3, got {image.shape}")
    h, w = image.shape[:2]
    probe = image[:: max(1, h // _PROBE), :: max(1, w // _PROBE)].astype(np.int16)
    spread = probe.max(axis=2) - probe.min(axis=2)
    return bool(spread.max(initial=0) <= tolerance)


def grey_as_bgr(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A one-channel image as three equal BGR channels (what every consumer of a VisibleFrame expects)."""
    return np.asarray(cv2.cvtColor(luma_709(grey), cv2.COLOR_GRAY2BGR), dtype=np.uint8)


def clahe(grey: npt.NDArray[np.uint8], clip_limit: float = 2.0, tiles: int = 8) -> npt.NDArray[np.uint8]:
    """Contrast-limited adaptive histogram equalisation of a grey (or BGR, taken as its luma) image.

    Args:
        grey: H×W uint8 (a BGR image is reduced to its Rec. 709 luma first).
        clip_limit: OpenCV's clip limit (contrast amplification cap per tile).
        tiles: tiles per side.

    Returns:
        H×W uint8.
    """
    if not clip_limit > 0 or tiles < 1:
        raise ValueError(f"clip_limit must be positive and tiles at least 1, got {clip_limit}, {tiles}")
    equaliser = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))
    return np.asarray(equaliser.apply(luma_709(grey)), dtype=np.uint8)


class GreyscaleFaceDetector:
    """Finds faces on colour frames with one detector and on greyscale frames through a pipeline of its own.

    Greyscale input hurts face detection (Drozdowski et al.): on a frame :func:`is_greyscale` says has no
    colour, the luma is first prepared (CLAHE, a colourisation model: ``prepare``) and then searched by
    ``grey_detector``, which may be a stronger (slower) one than the colour path's.

    Args:
        colour_detector: used on colour frames.
        grey_detector: used on greyscale frames (the same object as ``colour_detector`` is fine).
        prepare: H×W uint8 luma in, the H×W×3 uint8 BGR image the grey detector sees out; boxes must stay
            in the frame's pixels, so it must keep the size.
    """

    def __init__(
        self,
        colour_detector: FaceDetector,
        grey_detector: FaceDetector,
        prepare: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]] = grey_as_bgr,
    ) -> None:
        self._colour = colour_detector
        self._grey = grey_detector
        self._prepare = prepare
        self.greyscale_frames = 0  # frames that went the greyscale way (for status and tests)

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Box]:
        if not is_greyscale(image_bgr):
            return self._colour.detect(image_bgr)
        self.greyscale_frames += 1
        prepared = self._prepare(luma_709(image_bgr))
        if prepared.shape[:2] != image_bgr.shape[:2]:
            raise ValueError(f"greyscale preparation changed the size {image_bgr.shape[:2]} → {prepared.shape[:2]}")
        return self._grey.detect(prepared)


def clahe_bgr(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """:func:`clahe` with default settings, as three equal BGR channels (a ``prepare`` step)."""
    return grey_as_bgr(clahe(grey))
