"""Pairs thermal frames with the webcam frame nearest in time (DESIGN §1: default tolerance 60 ms)."""

from __future__ import annotations

import collections

import numpy as np
import numpy.typing as npt

__all__ = ["FramePairer"]


class FramePairer:
    """Keeps the last few webcam frames and returns the one nearest a thermal frame's time.

    Samples arrive in time order, so a thermal frame is paired with webcam frames up to its own
    time; the nearest later frame would arrive after it and is not waited for (a ±tolerance window
    with 30 fps video always holds an earlier frame within 17 ms).

    Args:
        tolerance_ns: the largest time difference accepted as a pair.
        history: how many recent webcam frames to keep.
    """

    def __init__(self, tolerance_ns: int, history: int = 8) -> None:
        if tolerance_ns <= 0:
            raise ValueError("tolerance_ns must be positive")
        self._tolerance_ns = tolerance_ns
        self._frames: collections.deque[tuple[int, npt.NDArray[np.uint8]]] = collections.deque(maxlen=history)

    def add_visible(self, image: npt.NDArray[np.uint8], t_mono: int) -> None:
        self._frames.append((t_mono, image))

    def nearest(self, t_mono: int) -> npt.NDArray[np.uint8] | None:
        """The kept webcam frame nearest ``t_mono`` within the tolerance, or None."""
        best: tuple[int, npt.NDArray[np.uint8]] | None = None
        for t, image in self._frames:
            gap = abs(t - t_mono)
            if gap <= self._tolerance_ns and (best is None or gap < best[0]):
                best = (gap, image)
        return None if best is None else best[1]
