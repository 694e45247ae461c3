"""What a viewer looks at to trust a heart rate: the newest pulse, its spectrum, the chosen peak and the path.

yarppg and VitalLens show the pulse waveform of the last seconds and its spectrum; a reader trusts the
number when the waveform beats regularly and the marked peak stands out of the spectrum. A
:class:`PulseView` is one immutable snapshot of that, made by the heart-rate estimator once per step
(not per frame) and handed from the fusion thread to the page as it is: every array is read-only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_PULSE_POINTS", "PATH_S", "PulseView", "make_pulse_view"]

_NS_PER_S = 1_000_000_000
# A 10 s window at 30 fps is 300 samples; a faster camera is thinned to this (the pulse is below 3 Hz,
# so 30 points a second still draw every beat).
MAX_PULSE_POINTS = 300
# How much of the tracker's published path the view carries: three windows' worth of seconds.
PATH_S = 30.0

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PulseView:
    """One heart-rate step as a viewer sees it. Ages are seconds before ``t_mono``, oldest first.

    Attributes:
        t_mono: end of the newest window (ns): its last pulse sample.
        pulse_age_s: age of each pulse point.
        pulse: the primary estimator's pulse over the newest window, band-passed as the spectrum sees
            it and scaled to a peak of 1 (arbitrary units).
        bpm_grid: the band's bin centres (bpm).
        power: the newest window's fused band spectrum, scaled to a maximum of 1.
        chosen_power: the spectrum of the window the published rate describes (``chosen_age_s`` old:
            the tracker's look-ahead), scaled to a maximum of 1; ``power`` without a tracker.
        chosen_age_s: age of the end of that window.
        peak_bpm: the published rate: the peak chosen in ``chosen_power``.
        confidence: its confidence, 0..1.
        low_confidence_below: the confidence under which a rate is flagged ``low_confidence``.
        path_age_s: ages of the published rates of the last ``PATH_S`` seconds (this one last).
        path_bpm: those rates.
        path_confidence: their confidences.
        ahead_age_s: ages of the newer windows the tracker has seen but not published yet.
        ahead_bpm: the tracker's provisional path through them (may still change).
    """

    t_mono: int
    pulse_age_s: FloatArray
    pulse: FloatArray
    bpm_grid: FloatArray
    power: FloatArray
    chosen_power: FloatArray
    chosen_age_s: float
    peak_bpm: float
    confidence: float
    low_confidence_below: float
    path_age_s: FloatArray
    path_bpm: FloatArray
    path_confidence: FloatArray
    ahead_age_s: FloatArray
    ahead_bpm: FloatArray

    @property
    def low_confidence(self) -> bool:
        """Whether the published rate is flagged ``low_confidence``."""
        return self.confidence < self.low_confidence_below


def make_pulse_view(
    *,
    t_mono: int,
    pulse: FloatArray,
    fs_hz: float,
    bpm_grid: FloatArray,
    power: FloatArray,
    chosen_power: FloatArray,
    chosen_t_mono: int,
    peak_bpm: float,
    confidence: float,
    low_confidence_below: float,
    path: Sequence[tuple[int, float, float]],
    ahead: Sequence[tuple[int, float]] = (),
    max_points: int = MAX_PULSE_POINTS,
    path_s: float = PATH_S,
) -> PulseView:
    """Build a :class:`PulseView` from one step's arrays (copied; the caller's stay its own).

    Args:
        t_mono: end of the newest window (ns).
        pulse: the newest window's pulse (band-passed by the caller), oldest first, at ``fs_hz``.
        fs_hz: its rate.
        bpm_grid: the band's bin centres (bpm).
        power: the newest window's band spectrum (any scale).
        chosen_power: the spectrum of the window the published rate describes (any scale).
        chosen_t_mono: that window's end (ns).
        peak_bpm: the published rate.
        confidence: its confidence.
        low_confidence_below: the ``low_confidence`` threshold.
        path: published ``(t_mono, bpm, confidence)``, oldest first; those older than ``path_s`` are
            left out.
        ahead: the tracker's provisional ``(t_mono, bpm)`` after the published window, oldest first.
        max_points: most pulse points kept; the newest is always kept.
        path_s: span of the path.

    Raises:
        ValueError: arrays of mismatched shapes, or ``max_points`` < 2.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if bpm_grid.shape != power.shape or power.shape != chosen_power.shape:
        raise ValueError(f"grid and spectra differ: {bpm_grid.shape}, {power.shape}, {chosen_power.shape}")
    stride = math.ceil(len(pulse) / max_points)
    picked = np.arange(len(pulse) - 1, -1, -stride)[::-1]  # counted back from the newest sample
    x = np.asarray(pulse, dtype=np.float64)[picked]
    kept = [(t, b, c) for t, b, c in path if (t_mono - t) / _NS_PER_S <= path_s]
    return PulseView(
        t_mono=t_mono,
        pulse_age_s=_frozen((len(pulse) - 1 - picked) / fs_hz),
        pulse=_frozen(_scaled(x, np.abs(x))),
        bpm_grid=_frozen(bpm_grid),
        power=_frozen(_scaled(power, power)),
        chosen_power=_frozen(_scaled(chosen_power, chosen_power)),
        chosen_age_s=(t_mono - chosen_t_mono) / _NS_PER_S,
        peak_bpm=float(peak_bpm),
        confidence=float(confidence),
        low_confidence_below=float(low_confidence_below),
        path_age_s=_frozen([(t_mono - t) / _NS_PER_S for t, _, _ in kept]),
        path_bpm=_frozen([b for _, b, _ in kept]),
        path_confidence=_frozen([c for _, _, c in kept]),
        ahead_age_s=_frozen([(t_mono - t) / _NS_PER_S for t, _ in ahead]),
        ahead_bpm=_frozen([b for _, b in ahead]),
    )


def _scaled(x: npt.ArrayLike, magnitude: FloatArray) -> FloatArray:
    a = np.asarray(x, dtype=np.float64)
    top = float(np.max(magnitude)) if len(magnitude) else 0.0
    return a / top if top > 0 and math.isfinite(top) else a.copy()


def _frozen(x: npt.ArrayLike) -> FloatArray:
    a = np.array(x, dtype=np.float64)  # a copy: the view shares no buffer with the estimator
    a.flags.writeable = False
    return a
