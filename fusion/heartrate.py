"""Heart rate from a pulse signal: windowed PSD peak, smoothing, confidence and fusion with the median.

Per window (10 s, every 1 s): linear detrend, Hann taper, zero-pad, periodogram (scipy.signal), peak in
40–180 bpm refined by parabolic interpolation of the log-power around the peak bin. The instantaneous
rate is followed over the windows by a spectrogram tracker (:mod:`fusion.hrtrack`, the default) whose
confidence is the window's own support for the chosen rate (:func:`peak_support`); or, in the earlier
median blend, smoothed with a Hamming window over the last few steps, with the spectral SNR turned into
a confidence ``c`` in [0, 1] and ``c·h_inst + (1−c)·h_median`` published (median over the session).

Why a periodogram and not Welch: a 10 s window holds only 7–30 beats; Welch's shorter segments would
widen the main lobe (5 s segments: ±24 bpm with a Hann taper) and merge the pulse with motion and
respiration peaks. The variance Welch would remove is removed instead across windows, by the Hamming
smoothing and the fusion with the session median.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from fusion.hrtrack import SpectrumTracker, TrackerSettings, snap_to_local_peak
from fusion.pulseview import PATH_S, PulseView, make_pulse_view

__all__ = [
    "BAND_BPM",
    "HeartRate",
    "HeartRateEstimator",
    "SpectralPeak",
    "WindowConfidence",
    "band_pass",
    "band_spectra",
    "band_spectrum",
    "fused_spectral_peak",
    "fused_spectrum",
    "peak_of_spectrum",
    "peak_support",
    "refined_peak_hz",
    "spectral_peak",
]

BAND_BPM = (40.0, 180.0)
_NS_PER_S = 1_000_000_000
# Zero-pad so that one FFT bin is at most this wide; parabolic interpolation then refines the peak.
_MAX_BIN_BPM = 0.5
# Median histogram: 0.1 bpm bins over the band (constant memory for sessions of any length).
_MEDIAN_BIN_BPM = 0.1
# Butterworth band-pass order (applied forwards and backwards: zero phase, twice the order).
_BAND_ORDER = 2


@dataclass(frozen=True, slots=True)
class SpectralPeak:
    """The dominant in-band frequency of one window.

    Attributes:
        bpm: peak frequency in beats per minute (interpolated).
        confidence: how far the share of in-band power in the peak's main lobe (and its second
            harmonic's) exceeds what the largest lobe of white noise would hold, as a fraction of the
            possible excess (0: indistinguishable from noise; 1: a pure periodic pulse).
        snr_db: power in those lobes over the rest of the band, in dB.
    """

    bpm: float
    confidence: float
    snr_db: float


def band_pass(
    x: npt.NDArray[np.float64], fs_hz: float, band_bpm: tuple[float, float] = BAND_BPM
) -> npt.NDArray[np.float64]:
    """The window as :func:`band_spectrum` sees it before the taper: linear detrend, then a zero-phase
    Butterworth band-pass over ``band_bpm``."""
    sos = sps.butter(_BAND_ORDER, (band_bpm[0] / 60, band_bpm[1] / 60), btype="bandpass", fs=fs_hz, output="sos")
    filtered: npt.NDArray[np.float64] = sps.sosfiltfilt(sos, sps.detrend(x, type="linear"))
    return filtered


def band_spectrum(
    x: npt.NDArray[np.float64], fs_hz: float, band_bpm: tuple[float, float] = BAND_BPM, *, nfft: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The in-band power spectrum of one window: band-pass, detrend, Hann taper, zero-pad, periodogram.

    Args:
        x: the window's samples at ``fs_hz`` (at least 2 s).
        fs_hz: sample rate.
        band_bpm: search band.
        nfft: transform length at least (signals of several lengths on one grid); 0: from the window.

    Returns:
        (bin frequencies in Hz, power) over the band; the grid depends only on the transform length.

    Raises:
        ValueError: the window is shorter than 2 s or the rate cannot represent the band.
    """
    n = len(x)
    if n < 2 * fs_hz:
        raise ValueError(f"window of {n} samples at {fs_hz} Hz is shorter than 2 s")
    if fs_hz <= 2 * band_bpm[1] / 60:
        raise ValueError(f"fs_hz {fs_hz} cannot represent {band_bpm[1]} bpm")
    nfft = max(n, nfft, 1 << math.ceil(math.log2(fs_hz * 60.0 / _MAX_BIN_BPM)))
    lo, hi = band_bpm[0] / 60, band_bpm[1] / 60
    # Band-pass first: respiration and slow motion (0.1–0.5 Hz) are often far stronger than the
    # pulse, and through the taper's main lobe (±2/T = ±0.2 Hz) would raise a false peak at 40 bpm.
    x = band_pass(x, fs_hz, band_bpm)
    f_hz, p = sps.periodogram(x, fs=fs_hz, window="hann", nfft=nfft, detrend="linear")
    idx = np.flatnonzero((f_hz >= lo) & (f_hz <= hi))
    return f_hz[idx], p[idx]


def refined_peak_hz(f_hz: npt.NDArray[np.float64], p: npt.NDArray[np.float64], k: int) -> float:
    """The frequency of the peak at bin ``k`` of a uniform grid, between bins: the vertex of the parabola
    through the log-power of ``k`` and its neighbours (a Hann main lobe in dB is close to a parabola,
    so this is nearly unbiased); the bin itself at the grid's edges or off a local maximum."""
    f_peak = float(f_hz[k])
    if 0 < k < len(p) - 1:
        a, b, c = np.log(p[k - 1 : k + 2] + 1e-30)
        denom = a - 2 * b + c
        if denom < 0:
            f_peak += float(0.5 * (a - c) / denom) * float(f_hz[1] - f_hz[0])
    return f_peak


def peak_of_spectrum(
    f_hz: npt.NDArray[np.float64], p: npt.NDArray[np.float64], n: int, fs_hz: float, k: int | None = None
) -> SpectralPeak:
    """The peak at bin ``k`` (default: the largest) of a band spectrum, interpolated, with its confidence.

    Args:
        f_hz: the band's bin frequencies (from :func:`band_spectrum`).
        p: power in those bins (any scale: one window's, or several normalised ones summed).
        n: samples in the window (sets the main-lobe width).
        fs_hz: sample rate.
        k: the bin to describe; None: the largest.
    """
    total = float(p.sum())
    if not total > 0 or not np.all(np.isfinite(p)):
        return SpectralPeak(bpm=math.nan, confidence=0.0, snr_db=-math.inf)
    k = int(np.argmax(p)) if k is None else k
    f_peak = refined_peak_hz(f_hz, p, k)
    # Main-lobe half width of a Hann-tapered window of n samples: 2 / T.
    half_hz = 2.0 * fs_hz / n
    in_lobe = np.abs(f_hz - f_peak) <= half_hz
    if 2 * f_peak <= f_hz[-1]:
        in_lobe |= np.abs(f_hz - 2 * f_peak) <= half_hz
    signal_p = float(p[in_lobe].sum())
    noise_p = total - signal_p
    share = signal_p / total
    # What white noise would put in the largest of the band's K lobe-sized cells: each cell's share
    # is about Exp(1)/K, and the expected maximum of K such is H_K / K (H_K the harmonic number).
    k_cells = max(1, round(1.0 / max(float(in_lobe.mean()), 1e-6)))
    share_noise = min(0.99, sum(1.0 / j for j in range(1, k_cells + 1)) / k_cells)
    confidence = max(0.0, (share - share_noise) / (1.0 - share_noise))
    # A chosen bin with no power near it (the tracker held its path through silence) is no signal.
    snr_db = -math.inf if signal_p <= 0 else 10 * math.log10(signal_p / noise_p) if noise_p > 0 else math.inf
    return SpectralPeak(bpm=f_peak * 60.0, confidence=min(1.0, confidence), snr_db=snr_db)


def spectral_peak(x: npt.NDArray[np.float64], fs_hz: float, band_bpm: tuple[float, float] = BAND_BPM) -> SpectralPeak:
    """Heart rate of one window: :func:`band_spectrum`, then :func:`peak_of_spectrum` at its maximum.

    Raises:
        ValueError: the window is shorter than 2 s or the rate cannot represent the band.
    """
    f_hz, p = band_spectrum(x, fs_hz, band_bpm)
    return peak_of_spectrum(f_hz, p, len(x), fs_hz)


def band_spectra(
    windows: list[npt.NDArray[np.float64]], fs_hz: float, band_bpm: tuple[float, float] = BAND_BPM
) -> tuple[npt.NDArray[np.float64], list[npt.NDArray[np.float64]]]:
    """:func:`band_spectrum` of several windows on one grid (the longest window's).

    Raises:
        ValueError: no window, or a window shorter than 2 s.
    """
    if not windows:
        raise ValueError("no window to fuse")
    nfft = max(len(w) for w in windows)
    spectra = [band_spectrum(w, fs_hz, band_bpm, nfft=nfft) for w in windows]
    return spectra[0][0], [p for _, p in spectra]


def fused_spectrum(
    windows: list[npt.NDArray[np.float64]], fs_hz: float, band_bpm: tuple[float, float] = BAND_BPM
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Several pulse signals of the same heart, one spectrum: their band spectra on one grid, each
    normalised to unit in-band power, summed, so that no signal outweighs the others by its length or
    its model's scale (a signal with a clear pulse has a sharp peak, a noisy one spreads its unit power).

    A single window is returned as it is (no normalisation), so one channel gives exactly
    :func:`band_spectrum`. Windows whose spectrum is flat or not finite add nothing.

    Raises:
        ValueError: no window, or a window shorter than 2 s.
    """
    f_hz, spectra = band_spectra(windows, fs_hz, band_bpm)
    return f_hz, _fuse(spectra)


def _fuse(spectra: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    if len(spectra) == 1:
        return spectra[0]
    total = np.zeros_like(spectra[0])
    for p in spectra:
        power = float(p.sum())
        if power > 0 and np.all(np.isfinite(p)):
            total += p / power
    return total


def peak_support(fused: npt.NDArray[np.float64], opinions: Sequence[npt.NDArray[np.float64]], k: int) -> float:
    """How much the window itself backs bin ``k`` (the tracker's choice), in [0, 1]: the power at ``k``
    as a share of the tallest bin, in the fused spectrum times in the least convinced second opinion's:
    each estimator's own spectrum, or with one estimator each half of its window (:func:`_half_spectra`).

    1 when the window's tallest peak and every opinion's are at the published rate; small when the
    tracker carried the rate through a window whose evidence points elsewhere, or when the estimators
    (the halves) disagree. Why not the spectral share of :func:`peak_of_spectrum`: on compressed webcam video a
    10 s window's pulse peak holds no more of the band's power than the tallest peak of white noise,
    so that share flags most correct windows; the pulse is found by its persistence over windows (the
    tracker), and what is left to judge is whether this window agrees.
    """

    def share(p: npt.NDArray[np.float64]) -> float:
        top = float(p.max()) if len(p) else 0.0
        return float(p[k]) / top if top > 0 and math.isfinite(top) else 0.0

    return share(fused) * min((share(p) for p in opinions), default=0.0)


def _half_spectra(x: npt.NDArray[np.float64], fs_hz: float) -> list[npt.NDArray[np.float64]]:
    """The band spectra of a window's two halves on the whole window's grid: one estimator's second
    opinion on itself. Why: with a single estimator, the tallest peak of pure noise is the tracker's
    bin as often as not (two thirds of noise windows passed the flag on the share alone), while a
    pulse is in both halves and noise rarely puts its peak in the same place twice."""
    half = len(x) // 2
    if half < 2 * fs_hz:  # halves too short for a spectrum (windows under 4 s): the window is its own
        return [band_spectrum(x, fs_hz)[1]]
    return [band_spectrum(x[:half], fs_hz, nfft=len(x))[1], band_spectrum(x[half:], fs_hz, nfft=len(x))[1]]


def fused_spectral_peak(
    signals: list[npt.NDArray[np.float64]],
    fs_hz: float,
    band_bpm: tuple[float, float] = BAND_BPM,
    segment_s: float = 10.0,
) -> float:
    """One rate for several whole pulse signals of the same heart (regions, clips of one subject): the
    interpolated peak of the :func:`fused_spectrum` of all their ``segment_s`` segments (half overlap).

    Why segments (Welch) and not one periodogram per signal: a periodogram's every bin has the variance
    of a χ² with 2 degrees of freedom however long the signal, so over minutes of a weak pulse the
    tallest bin is as often a noise spike as the heart. Averaging the live window's 10 s segments trades
    a resolution the rate's own drift wastes anyway for that variance.

    Args:
        signals: pulse signals at ``fs_hz``; those shorter than 2 s are left out, those shorter than a
            segment are one segment.
        fs_hz: their rate.
        band_bpm: search band.
        segment_s: segment length.

    Returns:
        The fused peak in bpm, or NaN when no signal is usable.
    """
    usable = [np.asarray(x, dtype=np.float64) for x in signals if len(x) >= 2 * fs_hz]
    if not usable:
        return math.nan
    n = max(round(segment_s * fs_hz), 1)
    hop = max(n // 2, 1)
    segments = [x[i : i + n] for x in usable for i in range(0, max(len(x) - n, 0) + 1, hop)]
    f_hz, p = fused_spectrum(segments, fs_hz, band_bpm)
    return peak_of_spectrum(f_hz, p, max(len(x) for x in segments), fs_hz).bpm


class WindowConfidence(Protocol):
    """A confidence for a whole window (e.g. :class:`fusion.confidence.LearnedConfidence`)."""

    def __call__(self, window: npt.NDArray[np.float64]) -> float:
        """The confidence in [0, 1] of ``window`` (samples × channels, as the estimator holds it)."""
        ...


@dataclass(frozen=True, slots=True)
class HeartRate:
    """One published heart rate.

    Attributes:
        bpm: the published rate: the tracker's (default), or ``c·instant_bpm + (1−c)·median_bpm``.
        confidence: ``c`` in [0, 1] of the window described: with the tracker, how much the window backs
            the chosen rate (:func:`peak_support`); with the median blend, the spectral confidence of
            its peak; the learned one when the estimator was given one.
        t_mono: end of the window it describes (ns); with the tracker, ``lag_steps`` steps before the
            newest window.
        instant_bpm: the tracker's rate, or the Hamming-smoothed instantaneous rate (median blend).
        median_bpm: median of the raw window rates over the session so far.
        raw_bpm: the described window's own spectral peak.
    """

    bpm: float
    confidence: float
    t_mono: int
    instant_bpm: float
    median_bpm: float
    raw_bpm: float


class HeartRateEstimator:
    """Feeds on uniformly sampled pulse signals; a new heart rate every ``step_s`` once a window is full.

    Several channels (pulse signals of the same face from different estimators, sampled together) are
    fused by :func:`fused_spectrum`. The rate is then followed by a :class:`SpectrumTracker` over the
    windows (``tracker``; the default), or, with ``tracker=None``, the earlier median blend: Hamming
    smoothing over ``smooth_s`` and ``c·h_inst + (1−c)·h_median``.

    Args:
        fs_hz: the pulse signals' rate.
        window_s: PSD window.
        step_s: time between estimates.
        smooth_s: median blend only: span of the Hamming window over successive estimates.
        channels: pulse signals pushed together.
        tracker: the spectrogram tracker's settings; None: the median blend.
        confidence: replaces the spectral confidence in the published ``confidence`` (not in the rate:
            the tracker and the median blend still weigh the spectral one); None: spectral.
    """

    def __init__(
        self,
        fs_hz: float,
        window_s: float = 10.0,
        step_s: float = 1.0,
        smooth_s: float = 5.0,
        *,
        channels: int = 1,
        tracker: TrackerSettings | None = None,
        confidence: WindowConfidence | None = None,
    ) -> None:
        if window_s < 2.0 or step_s <= 0 or smooth_s < 0 or channels < 1:
            raise ValueError("window_s must be ≥ 2 s and step_s > 0, smooth_s ≥ 0, channels ≥ 1")
        self.fs_hz = fs_hz
        self.window_s = window_s
        self.channels = channels
        self._confidence = confidence
        self._n = round(window_s * fs_hz)
        self._step = max(1, round(step_s * fs_hz))
        self._k_smooth = max(1, round(smooth_s / step_s))
        lo, hi = BAND_BPM
        self._hist = np.zeros(round((hi - lo) / _MEDIAN_BIN_BPM) + 1, dtype=np.int64)
        self._buf = np.zeros((self._n, channels))
        self._tracker: SpectrumTracker | None = None
        if tracker is not None:
            f_hz, _ = band_spectrum(np.zeros(self._n), fs_hz)
            self._tracker = SpectrumTracker(f_hz * 60.0, sigma_bpm=tracker.sigma_bpm, lag_steps=tracker.lag_steps)
        # (window end, fused power, the second opinions on it: each estimator's power, or each half's)
        self._spectra: collections.deque[tuple[int, npt.NDArray[np.float64], list[npt.NDArray[np.float64]]]] = (
            collections.deque(maxlen=(tracker.lag_steps if tracker else 0) + 1)
        )
        self._learned: collections.deque[float] = collections.deque(maxlen=self._spectra.maxlen)  # per window
        # For view(): the published rates of the last PATH_S (t_mono, bpm, confidence), the newest
        # window's primary pulse and spectrum, and the spectrum the published rate was chosen from.
        self._published: collections.deque[tuple[int, float, float]] = collections.deque(
            maxlen=math.ceil(PATH_S / step_s) + 2
        )
        self._newest: tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]] | None
        self._chosen: tuple[int, npt.NDArray[np.float64]] | None
        self.reset()

    def reset(self) -> None:
        """Forget the current signal (face lost); the session median is kept."""
        self._filled = 0
        self._pos = 0
        self._since = 0
        self._recent: list[tuple[float, float]] = []  # (raw bpm, confidence), newest last
        self._result: HeartRate | None = None
        self._spectra.clear()
        self._learned.clear()
        self._published.clear()
        self._newest = None
        self._chosen = None
        self._view: tuple[float, PulseView | None] | None = None  # (threshold, view) of the newest step
        if self._tracker is not None:
            self._tracker.reset()

    def push(self, value: float | Sequence[float], t_mono: int) -> None:
        """Feed one sample of every channel, taken at ``t_mono`` (ns).

        Raises:
            ValueError: the number of values is not the number of channels.
        """
        values = np.atleast_1d(np.asarray(value, dtype=np.float64))
        if values.shape != (self.channels,):
            raise ValueError(f"expected {self.channels} channel value(s), got {values.shape}")
        self._buf[self._pos] = values
        self._pos = (self._pos + 1) % self._n
        self._filled = min(self._filled + 1, self._n)
        self._since += 1
        if self._filled == self._n and self._since >= self._step:
            self._since = 0
            self._estimate(t_mono)

    def result(self) -> HeartRate | None:
        """The latest heart rate, or None until the first window is due since the last reset."""
        return self._result

    def view(self, *, low_confidence_below: float) -> PulseView | None:
        """The newest step as a viewer sees it (see :mod:`fusion.pulseview`), or None without a rate.

        Made at most once per step however often it is asked for, so it may be asked for every frame.

        Args:
            low_confidence_below: the confidence under which the caller flags a rate as low.
        """
        if self._result is None or self._newest is None or self._chosen is None:
            return None
        if self._view is not None and self._view[0] == low_confidence_below:
            return self._view[1]
        t_mono, primary, f_hz, p = self._newest
        ahead: list[tuple[int, float]] = []
        if self._tracker is not None:
            bins = self._tracker.path()[1:]  # after the published window's
            windows = list(self._spectra)[len(self._spectra) - len(bins) :]
            ahead = [
                (t, float(f_hz[snap_to_local_peak(q, k)] * 60.0)) for (t, q, _), k in zip(windows, bins, strict=True)
            ]
        view = make_pulse_view(
            t_mono=t_mono,
            pulse=band_pass(primary, self.fs_hz),
            fs_hz=self.fs_hz,
            bpm_grid=f_hz * 60.0,
            power=p,
            chosen_power=self._chosen[1],
            chosen_t_mono=self._chosen[0],
            peak_bpm=self._result.bpm,
            confidence=self._result.confidence,
            low_confidence_below=low_confidence_below,
            path=list(self._published),
            ahead=ahead,
        )
        self._view = (low_confidence_below, view)
        return view

    def _estimate(self, t_mono: int) -> None:
        window = np.concatenate([self._buf[self._pos :], self._buf[: self._pos]])
        f_hz, channel_spectra = band_spectra([window[:, c] for c in range(self.channels)], self.fs_hz)
        p = _fuse(channel_spectra)
        peak = peak_of_spectrum(f_hz, p, self._n, self.fs_hz)
        if not math.isfinite(peak.bpm):  # a flat window: no number, keep what we had
            return
        self._newest = (t_mono, window[:, 0], f_hz, p)
        self._view = None
        median = self._add_to_median(peak.bpm)
        learned = self._confidence(window) if self._confidence is not None else math.nan
        if self._tracker is None:
            self._blend(peak, median, t_mono, learned)
            return
        # The second opinions only the published support reads (a learned confidence replaces it).
        opinions: list[npt.NDArray[np.float64]] = []
        if self._confidence is None:
            opinions = channel_spectra if self.channels > 1 else _half_spectra(window[:, 0], self.fs_hz)
        self._spectra.append((t_mono, p, opinions))
        self._learned.append(learned)
        answer = self._tracker.push(p)
        if answer is None:
            return
        end_t, described, described_opinions = self._spectra[-1 - answer.lag_steps]
        k = snap_to_local_peak(described, answer.bin)
        chosen = peak_of_spectrum(f_hz, described, self._n, self.fs_hz, k=k)
        raw = peak_of_spectrum(f_hz, described, self._n, self.fs_hz)
        confidence = (
            peak_support(described, described_opinions, k)
            if self._confidence is None
            else self._learned[-1 - answer.lag_steps]
        )
        self._result = HeartRate(
            bpm=chosen.bpm,
            confidence=confidence,
            t_mono=end_t,
            instant_bpm=chosen.bpm,
            median_bpm=median,
            raw_bpm=raw.bpm,
        )
        self._chosen = (end_t, described)
        self._published.append((end_t, chosen.bpm, confidence))

    def _blend(self, peak: SpectralPeak, median: float, t_mono: int, learned: float) -> None:
        self._recent = [*self._recent, (peak.bpm, peak.confidence)][-self._k_smooth :]
        w = np.hamming(len(self._recent)) if len(self._recent) > 2 else np.ones(len(self._recent))
        values = np.array(self._recent)
        conf = float(w @ values[:, 1] / w.sum())
        # Each window's rate also weighted by its own confidence, so that one window in which motion
        # won the spectrum does not pull the smoothed rate (inverse-variance-like weighting).
        wc = w * values[:, 1]
        instant = float(wc @ values[:, 0] / wc.sum()) if wc.sum() > 1e-6 else float(w @ values[:, 0] / w.sum())
        published = conf if math.isnan(learned) else learned
        self._result = HeartRate(
            bpm=conf * instant + (1 - conf) * median,
            confidence=published,
            t_mono=t_mono,
            instant_bpm=instant,
            median_bpm=median,
            raw_bpm=peak.bpm,
        )
        if self._newest is not None:
            self._chosen = (t_mono, self._newest[3])
        self._published.append((t_mono, self._result.bpm, published))

    def _add_to_median(self, bpm: float) -> float:
        lo = BAND_BPM[0]
        self._hist[min(len(self._hist) - 1, max(0, round((bpm - lo) / _MEDIAN_BIN_BPM)))] += 1
        cum = np.cumsum(self._hist)
        return lo + int(np.searchsorted(cum, (cum[-1] + 1) // 2)) * _MEDIAN_BIN_BPM
