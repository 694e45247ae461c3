"""The reference heart rate from a contact PPG, computed as the video's rate is (DESIGN §3).

A pulse oximeter's PPG arrives with irregular timestamps: it is resampled onto the video pulse's
uniform grid by its timestamps first, then each window gets the same PSD method
(:func:`fusion.heartrate.spectral_peak`) the published rate comes from, over the same window.
Pure functions: arrays in, numbers out.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from fusion.heartrate import HeartRateEstimator, fused_spectral_peak, spectral_peak

__all__ = ["ReferencePpg", "smoothed_reference"]

_NS_PER_S = 1_000_000_000
# A window with less PPG than this share of its length (the oximeter stopped early) has no reference.
_MIN_COVERAGE = 0.95


class ReferencePpg:
    """A PPG resampled by its timestamps onto the grid ``k / fs_hz`` s.

    Args:
        ppg: PPG samples.
        t_s: their times in seconds from the clip's start (increasing, irregular).
        fs_hz: the grid's rate (the video pulse's).

    Raises:
        ValueError: lengths differ, times do not increase, or fewer than two samples.
    """

    def __init__(self, ppg: npt.NDArray[np.float64], t_s: npt.NDArray[np.float64], fs_hz: float) -> None:
        if len(ppg) != len(t_s) or len(ppg) < 2 or np.any(np.diff(t_s) <= 0) or not fs_hz > 0:
            raise ValueError("PPG and times must be equally long (≥ 2), times increasing, fs_hz positive")
        self.fs_hz = fs_hz
        self.grid_s = np.arange(0.0, float(t_s[-1]), 1.0 / fs_hz)
        self.values = np.interp(self.grid_s, t_s, ppg)

    def window_bpm(self, end_s: float, window_s: float) -> float:
        """The reference rate of the window ``(end_s - window_s, end_s]``; NaN where the PPG is short."""
        window = self.values[(self.grid_s > end_s - window_s) & (self.grid_s <= end_s)]
        if len(window) < _MIN_COVERAGE * window_s * self.fs_hz:
            return math.nan
        return spectral_peak(window, self.fs_hz).bpm

    def whole_bpm(self, until_s: float) -> float:
        """The reference rate of everything up to ``until_s`` by the method the whole-clip estimate uses
        (:func:`fusion.heartrate.fused_spectral_peak`: 10 s segments' spectra averaged); NaN under 2 s.

        Why not one periodogram of the whole PPG: the estimate is a segment average, and over a minute
        in which the rate drifts the two pick different peaks (11 bpm apart on one UBFC clip), which
        would score the method difference, not the camera."""
        x = self.values[self.grid_s <= until_s]
        return fused_spectral_peak([x], self.fs_hz) if len(x) >= 2 * self.fs_hz else math.nan


def smoothed_reference(ref: ReferencePpg, window_s: float, step_s: float) -> npt.NDArray[np.float64]:
    """(window end s, smoothed instantaneous bpm) of the heart-rate estimator run on the PPG itself.

    The published rate is Hamming-smoothed over a few windows, so it lags a raw window's peak by half
    the smoothing span; this second reference has the same lag (the median fusion is left out: it is
    a prior for unreliable video, not part of the truth).
    """
    est = HeartRateEstimator(ref.fs_hz, window_s=window_s, step_s=step_s)
    out = [(math.inf, math.nan)]
    for i, v in enumerate(ref.values):
        est.push(float(v), round(i * _NS_PER_S / ref.fs_hz))
        r = est.result()
        if r is not None and r.t_mono / _NS_PER_S != out[-1][0]:
            out.append((r.t_mono / _NS_PER_S, r.instant_bpm))
    return np.array(out[1:] or out)
