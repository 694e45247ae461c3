"""A heart-rate tracker over the spectrogram: fixed-lag Viterbi on normalised in-band spectra.

Each step (one 10 s window, every 1 s) brings the band's power spectrum, normalised to unit sum (the
sum of several pulse signals' normalised spectra when several estimators are fused). The heart rate is
the most probable path through the spectrogram, where the rate moves between steps by a Gaussian step
(``sigma_bpm``) and each window's spectrum is the emission. The answer for a window is given
``lag_steps`` windows later, from the best path through everything seen by then (fixed-lag smoothing).

Why not a prior: a session median (or any prior that accumulates) holds a wrong start for the whole
session; the path's memory is a few steps of transition cost, so strong evidence elsewhere moves it
within seconds. Why a lag: a purely causal tracker lags every change of rate and cannot undo a wrong
first window; a few seconds of look-ahead lets later windows vote on earlier ones.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_TRACKER", "SpectrumTracker", "TrackedWindow", "TrackerSettings", "snap_to_local_peak"]

# Emission floor as a share of a flat spectrum: a window with no power near the true rate must not
# make that rate impossible (log 0), only unlikely.
_FLOOR_SHARE = 1e-3
# After backtracking, the answer snaps to the window's own local maximum within this many bins.
_SNAP_BINS = 2


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """How the tracker follows the rate.

    Attributes:
        sigma_bpm: standard deviation of the rate's change from one step (1 s) to the next.
        lag_steps: windows of look-ahead before a window's rate is published (0: causal).
    """

    sigma_bpm: float = 3.0
    lag_steps: int = 3


# Chosen by leave-one-out over the seven UBFC development clips with POS and CHROM fused (each fold,
# fitting on the other six, chose σ = 3 bpm and 3 s of look-ahead from σ ∈ {3, 6, 10}, lag ∈ {0, 3, 6}).
DEFAULT_TRACKER = TrackerSettings()


@dataclass(frozen=True, slots=True)
class TrackedWindow:
    """The tracker's answer for one window.

    Attributes:
        index: the window's number since the last reset (0 = first full window).
        bin: the chosen bin of the band grid.
        lag_steps: how many later windows informed it.
    """

    index: int
    bin: int
    lag_steps: int


class SpectrumTracker:
    """Fixed-lag Viterbi tracking of the pulse peak over successive band spectra.

    Args:
        bpm_grid: the band's bin centres (bpm), ascending, as the spectra are given.
        sigma_bpm: standard deviation of the rate's change from one step to the next.
        lag_steps: windows of look-ahead before a window's answer is given (0: causal).
    """

    def __init__(self, bpm_grid: npt.NDArray[np.float64], *, sigma_bpm: float, lag_steps: int) -> None:
        if sigma_bpm <= 0 or lag_steps < 0:
            raise ValueError(f"sigma_bpm must be > 0 and lag_steps ≥ 0, got {sigma_bpm}, {lag_steps}")
        self.bpm_grid = np.asarray(bpm_grid, dtype=np.float64)
        self.lag_steps = lag_steps
        step = self.bpm_grid[:, None] - self.bpm_grid[None, :]
        transition = np.exp(-0.5 * (step / sigma_bpm) ** 2)
        transition /= transition.sum(axis=1, keepdims=True)
        self._log_transition = np.log(transition + 1e-300)
        self._floor = _FLOOR_SHARE / len(self.bpm_grid)
        self.reset()

    def reset(self) -> None:
        """Start afresh (face lost: the next window has nothing to do with the last)."""
        self._score: npt.NDArray[np.float64] | None = None
        self._back: collections.deque[npt.NDArray[np.intp]] = collections.deque(maxlen=max(1, self.lag_steps))
        self._pushed = 0
        self._answered = 0

    def push(self, spectrum: npt.NDArray[np.float64]) -> TrackedWindow | None:
        """Add the next window's normalised spectrum; returns the answer now due (None while filling).

        Raises:
            ValueError: the spectrum does not match the grid.
        """
        if spectrum.shape != self.bpm_grid.shape:
            raise ValueError(f"spectrum of shape {spectrum.shape} does not match the grid {self.bpm_grid.shape}")
        emission = np.log(spectrum / max(float(spectrum.sum()), 1e-300) + self._floor)
        if self._score is None:
            self._score = emission
        else:
            candidates = self._score[:, None] + self._log_transition
            best_from = np.argmax(candidates, axis=0)
            self._score = candidates[best_from, np.arange(len(best_from))] + emission
            self._score -= self._score.max()
            if self.lag_steps:
                self._back.append(best_from)
        self._pushed += 1
        if self._pushed - 1 - self._answered < self.lag_steps:
            return None
        return self._answer(self.lag_steps)

    def flush(self) -> list[TrackedWindow]:
        """The answers still owed (end of a session or a face lost), each with the look-ahead there is."""
        answers = []
        while self._score is not None and self._answered < self._pushed:
            answers.append(self._answer(self._pushed - 1 - self._answered))
        return answers

    def _answer(self, lag: int) -> TrackedWindow:
        assert self._score is not None
        k = int(np.argmax(self._score))
        for back in list(self._back)[::-1][:lag]:
            k = int(back[k])
        window = TrackedWindow(index=self._answered, bin=k, lag_steps=lag)
        self._answered += 1
        return window


def snap_to_local_peak(spectrum: npt.NDArray[np.float64], k: int) -> int:
    """The largest bin of ``spectrum`` within ``_SNAP_BINS`` of ``k`` (the path's bin is on a coarse
    prior; the window's own peak near it is the measurement)."""
    a, b = max(0, k - _SNAP_BINS), min(len(spectrum), k + _SNAP_BINS + 1)
    return a + int(np.argmax(spectrum[a:b]))
