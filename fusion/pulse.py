"""Pulse-signal estimators: face crops in, a blood-volume-pulse signal on a uniform time grid out.

Every estimator has the same two calls (STYLE: fusion/): ``push(crop, t_mono)`` feeds one face crop
(BGR, any size) taken at ``t_mono`` (ns), and ``pulse()`` returns the pulse signal produced so far as
a :class:`Pulse` (signal, fs) or ``None`` before the first sample. Frames may arrive at any rate; each
estimator resamples on ``t_mono`` to its own uniform rate ``fs_hz``, so a camera that delivers 29.6
or 15 fps still gives a signal whose sample times are exact.

POS (Wang et al. 2017) and CHROM (de Haan & Jeanne 2013) work on the spatial mean colour of the crop
over sliding 1.6 s windows, overlap-added; the learned estimator is in :mod:`fusion.pulse_onnx`.
Both need chrominance, which a greyscale (IR, mono) frame does not have: there the intensity-only
:class:`LumaEstimator` takes over (:class:`fusion.rppg.HeartRatePipeline` switches and flags it).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from fusion.greyscale import REC709_RGB

__all__ = [
    "ChromEstimator",
    "LumaEstimator",
    "OverlapAdd",
    "PosEstimator",
    "Pulse",
    "PulseEstimator",
    "PulseHistory",
    "UniformResampler",
    "mean_luma",
    "mean_rgb",
]

_NS_PER_S = 1_000_000_000
# Band of physiological heart rates searched downstream (40–180 bpm); CHROM band-passes to it.
BAND_HZ = (40.0 / 60.0, 180.0 / 60.0)
# POS and CHROM: about one cardiac cycle at the slowest rate, as both papers choose (l = 1.6 s at
# 20 fps in Wang et al., 32 frames in de Haan & Jeanne).
WINDOW_S = 1.6
_EPS = 1e-9


@dataclass(frozen=True, slots=True, eq=False)
class Pulse:
    """The pulse signal produced so far (at most the estimator's history).

    Attributes:
        signal: samples, oldest first, at ``fs_hz``; read-only.
        fs_hz: the uniform sample rate.
        t_end: t_mono (ns) of the last sample; sample ``i`` lies at ``t_end - (len-1-i)/fs_hz``.
        count: samples produced since the start (or the last reset); ``count - len(signal)`` were
            dropped from the history, so a consumer can take exactly the new ones.
    """

    signal: npt.NDArray[np.float64]
    fs_hz: float
    t_end: int
    count: int


class PulseEstimator(Protocol):
    """Face crops in, pulse signal out (POS, CHROM, ONNX)."""

    name: str
    fs_hz: float

    def push(self, crop_bgr: npt.NDArray[np.uint8], t_mono: int) -> None: ...

    def pulse(self) -> Pulse | None: ...

    def reset(self) -> None: ...  # forget everything (face lost: the signal is discontinuous)


class UniformResampler:
    """Linear interpolation of irregularly timed vectors onto the grid ``t0 + n / fs_hz``.

    Args:
        fs_hz: output rate.
    """

    def __init__(self, fs_hz: float) -> None:
        if not fs_hz > 0:
            raise ValueError(f"fs_hz must be positive, got {fs_hz}")
        self.fs_hz = fs_hz
        self.reset()

    def reset(self) -> None:
        self._t0: int | None = None
        self._n = 0  # next grid index to emit
        self._prev_t = 0
        self._prev: npt.NDArray[np.float64] | None = None

    def grid_time(self, n: int) -> int:
        """t_mono (ns) of grid sample ``n``."""
        assert self._t0 is not None
        return self._t0 + round(n * _NS_PER_S / self.fs_hz)

    def push(self, value: npt.NDArray[np.float64], t_mono: int) -> list[tuple[int, npt.NDArray[np.float64]]]:
        """Feed one sample; returns the grid samples ``(t_mono, value)`` that became known.

        Raises:
            ValueError: ``t_mono`` is earlier than the previous sample's.
        """
        if self._prev is None or self._t0 is None:
            self._t0, self._prev_t, self._prev, self._n = t_mono, t_mono, value, 1
            return [(t_mono, value)]
        if t_mono < self._prev_t:
            raise ValueError(f"t_mono went backwards: {t_mono} < {self._prev_t}")
        out = []
        while (t_n := self.grid_time(self._n)) <= t_mono:
            if t_mono == self._prev_t:
                v = value
            else:
                a = (t_n - self._prev_t) / (t_mono - self._prev_t)
                v = self._prev + a * (value - self._prev)
            out.append((t_n, v))
            self._n += 1
        self._prev_t, self._prev = t_mono, value
        return out


# Skin chrominance in YCrCb (Chai & Ngan 1999): Cr 133–173, Cb 77–127, any luma.
_SKIN_LO = np.array((0, 133, 77), dtype=np.uint8)
_SKIN_HI = np.array((255, 173, 127), dtype=np.uint8)
# Central part of the buffered box used for colour: the buffer adds 25 % around the face, so dropping
# 20 % on each side keeps forehead, cheeks and nose and leaves out hair, ears, jaw line and background.
_MARGIN = 0.2
# Below this share of skin pixels the mask is not trusted (greyscale/IR image, odd light): plain mean.
_MIN_SKIN_SHARE = 0.05


def mean_rgb(crop_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """Mean (R, G, B) of the skin pixels in the centre of a BGR face crop.

    Non-skin pixels (background, hair, eyes) carry no pulse and, in compressed video, most of the
    noise; POS and CHROM also assume a skin-tone mean.

    Raises:
        ValueError: not an H×W×3 uint8 image, or empty.
    """
    if crop_bgr.ndim != 3 or crop_bgr.shape[2] != 3 or crop_bgr.dtype != np.uint8:
        raise ValueError(f"crop must be H×W×3 uint8 BGR, got {crop_bgr.shape} {crop_bgr.dtype}")
    h, w = crop_bgr.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("crop is empty")
    dy, dx = int(h * _MARGIN), int(w * _MARGIN)
    centre = crop_bgr[dy : h - dy, dx : w - dx] if h - 2 * dy > 0 and w - 2 * dx > 0 else crop_bgr
    mask = cv2.inRange(cv2.cvtColor(centre, cv2.COLOR_BGR2YCrCb), _SKIN_LO, _SKIN_HI)
    if cv2.countNonZero(mask) >= _MIN_SKIN_SHARE * mask.size:
        b, g, r, _ = cv2.mean(centre, mask=mask)
    else:
        b, g, r, _ = cv2.mean(centre)
    return np.array([r, g, b], dtype=np.float64)


def mean_luma(crop_bgr: npt.NDArray[np.uint8]) -> float:
    """Rec. 709 luma of :func:`mean_rgb` (on a greyscale crop: the mean of the centre's intensity)."""
    r, g, b = mean_rgb(crop_bgr)
    wr, wg, wb = REC709_RGB
    return float(wr * r + wg * g + wb * b)


class PulseHistory:
    """The output side shared by the estimators: a bounded history of finished samples."""

    def __init__(self, fs_hz: float, history_s: float) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=max(1, round(history_s * fs_hz)))
        self._t_end = 0
        self._count = 0

    def clear(self) -> None:
        self._values.clear()
        self._count = 0

    def add(self, value: float, t_mono: int) -> None:
        self._values.append(value)
        self._t_end = t_mono
        self._count += 1

    def pulse(self, fs_hz: float) -> Pulse | None:
        if not self._values:
            return None
        sig = np.fromiter(self._values, dtype=np.float64, count=len(self._values))
        sig.flags.writeable = False
        return Pulse(signal=sig, fs_hz=fs_hz, t_end=self._t_end, count=self._count)


class OverlapAdd:
    """Overlap-add of windows of length ``n`` every ``hop`` samples; emits samples once complete.

    A sample is complete when every window that covers it has been added; samples before the first
    full coverage (the start-up ramp) are never emitted.
    """

    def __init__(self, n: int, hop: int) -> None:
        self._n, self._hop = n, hop
        self._acc = np.zeros(n)
        self._times: collections.deque[int] = collections.deque(maxlen=n)
        self._added = 0  # windows added so far

    def add(self, window: npt.NDArray[np.float64], times: list[int]) -> list[tuple[int, float]]:
        """Add a window (its samples' times given); returns the finished ``(t_mono, value)``."""
        self._acc += window
        self._added += 1
        done = [(times[i], float(self._acc[i])) for i in range(self._hop)]
        self._acc = np.concatenate([self._acc[self._hop :], np.zeros(self._hop)])
        # The first n/hop - 1 windows leave partly covered samples behind: drop those.
        if self._added < self._n // self._hop:
            return []
        return done


class _WindowedEstimator:
    """What POS and CHROM share: mean RGB resampled to ``fs_hz``, the last ``n`` samples as a window, and the
    windows each method makes from them overlap-added (every ``hop`` samples) into the pulse history."""

    name: str

    def __init__(self, fs_hz: float, history_s: float, n: int, hop: int) -> None:
        self.fs_hz = fs_hz
        self._n, self._hop = n, hop
        self._resampler = UniformResampler(fs_hz)
        self._history = PulseHistory(fs_hz, history_s)
        self.reset()

    def reset(self) -> None:
        self._resampler.reset()
        self._history.clear()
        self._rgb: collections.deque[npt.NDArray[np.float64]] = collections.deque(maxlen=self._n)
        self._times: collections.deque[int] = collections.deque(maxlen=self._n)
        self._ola = OverlapAdd(self._n, self._hop)

    def push(self, crop_bgr: npt.NDArray[np.uint8], t_mono: int) -> None:
        for t, rgb in self._resampler.push(mean_rgb(crop_bgr), t_mono):
            self._rgb.append(rgb)
            self._times.append(t)
            window = self._window(rgb)
            if window is not None:
                for t_done, v in self._ola.add(window, list(self._times)):
                    self._history.add(v, t_done)

    def _window(self, rgb: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
        """Take the newest sample (already in ``_rgb``); return a finished window when one is due."""
        raise NotImplementedError

    def pulse(self) -> Pulse | None:
        return self._history.pulse(self.fs_hz)


class PosEstimator(_WindowedEstimator):
    """Plane-Orthogonal-to-Skin (Wang et al. 2017): windows of 1.6 s, hop one sample.

    Args:
        fs_hz: output (and processing) rate.
        history_s: how much finished signal ``pulse()`` returns.
    """

    name = "pos"

    def __init__(self, fs_hz: float, history_s: float = 20.0) -> None:
        super().__init__(fs_hz, history_s, max(2, round(WINDOW_S * fs_hz)), 1)

    def _window(self, rgb: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
        return _pos_window(np.array(self._rgb)) if len(self._rgb) == self._n else None


_POS_P = np.array([[0.0, 1.0, -1.0], [-2.0, 1.0, 1.0]])


def _pos_window(rgb: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """One POS window: temporal normalisation, projection, alpha-tuning, zero mean."""
    cn = rgb / (rgb.mean(axis=0) + _EPS)
    s = cn @ _POS_P.T  # (n, 2)
    h = s[:, 0] + (s[:, 0].std() / (s[:, 1].std() + _EPS)) * s[:, 1]
    return h - h.mean()  # type: ignore[no-any-return]


class ChromEstimator(_WindowedEstimator):
    """Chrominance-based (de Haan & Jeanne 2013): windows of 1.6 s, Hann-weighted, 50 % overlap.

    The chrominance signals are band-passed to 40–180 bpm by a causal Butterworth filter (streaming;
    the paper band-passes before windowing too), then alpha-tuned per window.

    Args:
        fs_hz: output (and processing) rate.
        history_s: how much finished signal ``pulse()`` returns.
    """

    name = "chrom"

    def __init__(self, fs_hz: float, history_s: float = 20.0) -> None:
        if fs_hz <= 2 * BAND_HZ[1]:
            raise ValueError(f"fs_hz {fs_hz} is too low for a {BAND_HZ[1] * 60:.0f} bpm band edge")
        n = max(4, round(WINDOW_S * fs_hz))
        n += n % 2  # even, so a 50 % hop tiles exactly
        self._hann = sps.get_window("hann", n)  # periodic: sums to 1 at 50 % overlap
        self._sos = sps.butter(3, BAND_HZ, btype="bandpass", fs=fs_hz, output="sos")
        super().__init__(fs_hz, history_s, n, n // 2)

    def reset(self) -> None:
        super().reset()
        self._xy: collections.deque[npt.NDArray[np.float64]] = collections.deque(maxlen=self._n)
        self._zi: npt.NDArray[np.float64] | None = None
        self._since = 0

    def _window(self, rgb: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
        r, g, b = rgb / (np.mean(self._rgb, axis=0) + _EPS)  # normalised by the window's mean
        xy = np.array([[3 * r - 2 * g], [1.5 * r + g - 1.5 * b]])
        if self._zi is None:  # start in steady state at the first value: no step transient
            self._zi = sps.sosfilt_zi(self._sos)[:, None, :] * xy[None, :, :]
        filtered, self._zi = sps.sosfilt(self._sos, xy, axis=1, zi=self._zi)
        self._xy.append(filtered[:, 0])
        self._since += 1
        if len(self._xy) < self._n or self._since < self._n // 2:
            return None
        self._since = 0
        xf, yf = np.array(self._xy).T
        return (xf - (xf.std() / (yf.std() + _EPS)) * yf) * self._hann  # type: ignore[no-any-return]


class LumaEstimator(ChromEstimator):
    """Intensity only, for greyscale (IR, mono) frames that carry no chrominance.

    Blood absorbs light, so the face's reflected intensity dips with each pulse; the mean luma of the
    crop's centre is normalised by its 1.6 s window's mean, band-passed to 40–180 bpm by the same causal
    filter as CHROM, negated (so the pulse peaks at systole, as POS's and CHROM's do), differenced twice
    and overlap-added in Hann windows. Without a second channel nothing cancels motion or light changes
    common to all colours, and those fall off about as 1/f² into the band: the second difference (gain
    ∝ f²) whitens them, so a slow drift at 50 bpm no longer outweighs a pulse at 110. Expect a lower
    confidence than on colour all the same, which is why the pipeline flags its use.

    Args:
        fs_hz: output (and processing) rate.
        history_s: how much finished signal ``pulse()`` returns.
    """

    name = "luma"

    def reset(self) -> None:
        super().reset()
        self._last: collections.deque[float] = collections.deque(maxlen=2)  # the previous filtered values

    def _window(self, rgb: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
        wr, wg, wb = REC709_RGB
        luma = np.asarray(self._rgb) @ np.array([wr, wg, wb])
        y = -(float(rgb @ np.array([wr, wg, wb])) / (float(luma.mean()) + _EPS) - 1.0)
        if self._zi is None:  # steady state at the first value: no step transient
            self._zi = sps.sosfilt_zi(self._sos)[:, None, :] * np.array([[y]])[None, :, :]
        filtered, self._zi = sps.sosfilt(self._sos, np.array([[y]]), axis=1, zi=self._zi)
        value = float(filtered[0, 0])
        second_difference = value - 2 * self._last[-1] + self._last[0] if len(self._last) == 2 else 0.0
        self._last.append(value)
        self._xy.append(np.array([second_difference]))
        self._since += 1
        if len(self._xy) < self._n or self._since < self._n // 2:
            return None
        self._since = 0
        return np.asarray(self._xy, dtype=np.float64)[:, 0] * self._hann  # type: ignore[no-any-return]
