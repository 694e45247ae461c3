"""Thermal-camera offset correction from a wristband's skin temperature (Yoshikawa et al. 2019, DESIGN §4).

The paper's method, per thermal frame:

1. the wristband's skin temperature, averaged over a window ending at the frame (``WristbandWindow``);
2. a reference region's true temperature estimated from it by linear regression,
   ``T_est = a + b · T_wristband`` (``Regression``; palm −1.4485 + 1.0103x, wrist 15.6850 + 0.5418x);
3. the offset ``C = T_est − T_meas``, with ``T_meas`` the camera's reading of that region (``offset_c``);
4. the corrected face temperature ``T_corr = T_face + C`` (``corrected_c``).

Beyond the paper, ``OffsetCorrector`` in ``fused`` mode combines the palm and wrist offsets of a frame by
inverse variance and tracks the offset over time with a scalar Kalman filter (random-walk offset), reset
on shutter (FFC) events and on persistent innovation jumps; in ``palm`` / ``wrist`` mode it is the paper's
per-frame method. Composition::

    band = WristbandWindow(window_s=60.0)
    band.push(celsius, t_mono)                             # every wristband sample
    corr = OffsetCorrector("fused")
    est = corr.update(t_mono, wristband_c=band.mean(t_mono), palm=palm_meas, wrist=wrist_meas, ffc=frame.ffc)
    if est is not None:
        face_corrected = corrected_c(face_meas.mean_c, est.offset_c)

``palm_meas`` / ``wrist_meas`` are anything with ``mean_c``, ``pixels`` and ``spread_c`` (the
``RegionMeasurement`` of ``fusion.regions``), or None. Times are ``t_mono`` nanoseconds.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "PAPER_PALM",
    "PAPER_PALM_SD_C",
    "PAPER_WRIST",
    "PAPER_WRIST_SD_C",
    "OffsetCorrector",
    "OffsetEstimate",
    "ReferenceOffset",
    "RegionReading",
    "Regression",
    "WristbandWindow",
    "corrected_c",
    "fit_regression",
    "offset_c",
    "reference_offset",
]

Mode = Literal["palm", "wrist", "fused"]


@dataclass(frozen=True, slots=True)
class Regression:
    """``T_ref = a + b · T_wristband`` (°C)."""

    a: float
    b: float

    def estimate(self, wristband_c: float) -> float:
        """The reference region's temperature estimated from the wristband's."""
        return self.a + self.b * wristband_c


PAPER_PALM = Regression(-1.4485, 1.0103)
# The wrist intercept is +15.6850: with −15.6850 (as DESIGN.md and the issue print it) a 33 °C wristband
# would mean a 2.19 °C wrist; +15.6850 gives 33.56 °C, a wrist 0.5 °C warmer than the band sensor.
PAPER_WRIST = Regression(15.6850, 0.5418)
# Spread of each reference's error, from the SDs of the paper's Table II (corrected face vs truth): the
# default per-frame error of an offset taken from that reference, until a calibration measures one.
PAPER_PALM_SD_C = 0.707
PAPER_WRIST_SD_C = 0.484
_UNKNOWN_VAR = 1e6  # variance of an offset nothing has measured yet (°C²)


def offset_c(estimated_c: float, measured_c: float) -> float:
    """The camera's offset ``C = T_est − T_meas`` (°C)."""
    return estimated_c - measured_c


def corrected_c(face_c: float, offset: float) -> float:
    """The corrected face temperature ``T_corr = T_face + C`` (°C)."""
    return face_c + offset


def fit_regression(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares fit of ``y = a + b · x``.

    Args:
        x: wristband temperatures (°C).
        y: reference-region temperatures (°C), paired with ``x``.

    Returns:
        ``(a, b, mae)``: intercept, slope and the mean absolute residual (°C).

    Raises:
        ValueError: when the lengths differ, there are fewer than two pairs, a value is not finite, or all
            ``x`` are equal (the slope is undefined).
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-D and the same length, got {xs.shape} and {ys.shape}")
    if xs.size < 2:
        raise ValueError(f"need at least 2 pairs to fit a line, got {xs.size}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError("x and y must be finite")
    dx = xs - xs.mean()
    sxx = float(dx @ dx)
    if sxx == 0.0:
        raise ValueError("all wristband values are equal: the slope is undefined")
    b = float(dx @ (ys - ys.mean())) / sxx
    a = float(ys.mean()) - b * float(xs.mean())
    mae = float(np.abs(ys - (a + b * xs)).mean())
    return a, b, mae


class WristbandWindow:
    """Wristband samples, averaged over a window ending at a given time.

    Samples may arrive slightly out of order; they are kept sorted. Memory is bounded: samples older than
    ``keep_s`` before the newest one are dropped. Non-finite values are not stored and are counted in
    ``rejected``.
    """

    def __init__(self, window_s: float = 60.0, keep_s: float | None = None) -> None:
        """Args:
        window_s: averaging window (s), ending at the queried time (the paper: one minute).
        keep_s: history kept (s); default twice the window, so queries lagging the newest sample work.
        """
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self._window_ns = int(window_s * 1e9)
        self._keep_ns = int((keep_s if keep_s is not None else 2 * window_s) * 1e9)
        if self._keep_ns < self._window_ns:
            raise ValueError("keep_s must be at least window_s")
        self._t: list[int] = []
        self._c: list[float] = []
        self.rejected = 0

    def push(self, celsius: float, t_mono: int) -> None:
        """Add one sample taken at ``t_mono`` (ns)."""
        if not math.isfinite(celsius):
            self.rejected += 1
            return
        i = bisect.bisect_right(self._t, t_mono)
        self._t.insert(i, t_mono)
        self._c.insert(i, float(celsius))
        cut = bisect.bisect_left(self._t, self._t[-1] - self._keep_ns)
        if cut:
            del self._t[:cut], self._c[:cut]

    def _span(self, t_end: int) -> tuple[int, int]:
        return bisect.bisect_right(self._t, t_end - self._window_ns), bisect.bisect_right(self._t, t_end)

    def mean(self, t_end: int) -> float | None:
        """Mean of the samples in ``(t_end − window, t_end]``; None when there are none."""
        i, j = self._span(t_end)
        return math.fsum(self._c[i:j]) / (j - i) if j > i else None

    def count(self, t_end: int) -> int:
        """Number of samples in ``(t_end − window, t_end]``."""
        i, j = self._span(t_end)
        return j - i


class RegionReading(Protocol):
    """What the corrector needs from a region measurement (``fusion.regions.RegionMeasurement`` fits)."""

    @property
    def mean_c(self) -> float: ...
    @property
    def pixels(self) -> int: ...
    @property
    def spread_c(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ReferenceOffset:
    """One reference region's offset on one frame, with its variance (°C²)."""

    reference: Literal["palm", "wrist"]
    measured_c: float  # the camera's reading of the region
    estimated_c: float  # T_est from the wristband
    offset_c: float  # estimated_c − measured_c
    variance_c2: float


def reference_offset(
    reference: Literal["palm", "wrist"],
    region: RegionReading,
    wristband_c: float,
    regression: Regression,
    residual_sd_c: float,
    pixel_noise_sd_c: float = 0.1,
) -> ReferenceOffset:
    """The offset a region gives, and its variance.

    The variance adds the regression's residual spread (how far the region's true temperature strays from
    ``a + b · T_wristband``) and the error of the region's camera mean: per-pixel noise plus the region's
    spatial spread (pixels entering or leaving it move the mean), over the pixel count.
    """
    est = regression.estimate(wristband_c)
    meas_var = (pixel_noise_sd_c**2 + region.spread_c**2) / max(region.pixels, 1)
    return ReferenceOffset(reference, region.mean_c, est, offset_c(est, region.mean_c),
                           residual_sd_c**2 + meas_var)


@dataclass(frozen=True, slots=True)
class OffsetEstimate:
    """The offset to apply to one frame, and how it was obtained."""

    offset_c: float
    variance_c2: float  # of offset_c
    reference: Mode  # which reference(s) produced it
    wristband_c: float | None  # wristband mean used (None when the estimate is held)
    palm: ReferenceOffset | None  # this frame's palm offset, when there was one
    wrist: ReferenceOffset | None
    flags: tuple[str, ...] = ()  # "held", "outlier", "reset_jump", "reset_ffc"


class OffsetCorrector:
    """Per-frame offset from palm, wrist, or both fused and tracked over time.

    Modes: ``palm`` / ``wrist`` are the paper's per-frame method (the offset of this frame's region).
    ``fused`` is a Kalman filter over three states: the camera offset ``C`` (a random walk between
    shutter events), the wrist reference's bias ``β`` (a slow random walk: the band sits on the wrist, so
    the wrist's departure from its regression lasts a session) and the palm reference's residual ``ρ``
    (mean-reverting with ``palm_correlation_s``: vasomotion moves the palm within a minute). Each frame the
    palm offset measures ``C + ρ`` and the wrist offset ``C + β``, each with its region's noise. So the
    steady wrist carries the offset from frame to frame, the palm (unbiased over minutes) measures and
    removes the wrist's bias, and either alone still tracks the camera. With both, each update is the
    inverse-variance fusion of the palm offset and the bias-corrected wrist offset with the prediction.

    A shutter (FFC) frame gives no estimate and forgets ``C`` (the camera's offset steps at each
    flat-field correction) but keeps ``β`` and ``ρ`` (properties of the skin, not the camera).
    ``jump_frames`` consecutive frames whose every reference lies beyond ``jump_sigma`` standard deviations
    also forget ``C`` (a step the random walk cannot explain); fewer are skipped as outliers. A frame
    without a usable reference holds the last offset (flag ``held``) for up to ``hold_s``.
    """

    def __init__(
        self,
        mode: Mode = "fused",
        *,
        palm: Regression = PAPER_PALM,
        wrist: Regression = PAPER_WRIST,
        palm_residual_sd_c: float = PAPER_PALM_SD_C,
        wrist_residual_sd_c: float = PAPER_WRIST_SD_C,
        pixel_noise_sd_c: float = 0.1,
        palm_correlation_s: float = 80.0,
        palm_noise_sd_c: float = 0.1,
        wrist_noise_sd_c: float = 0.15,
        drift_sd_c_per_sqrt_s: float = 0.15,
        bias_drift_sd_c_per_sqrt_s: float = 0.002,
        jump_sigma: float = 4.0,
        jump_frames: int = 3,
        hold_s: float = 5.0,
    ) -> None:
        """Args:
        mode: ``palm``, ``wrist`` or ``fused``.
        palm: palm regression on the wristband.
        wrist: wrist regression on the wristband.
        palm_residual_sd_c: SD of a palm offset's error (the regression residual); in ``fused`` mode the
            stationary SD of ``ρ``.
        wrist_residual_sd_c: SD of a wrist offset's error; in ``fused`` mode the prior SD of ``β``.
        pixel_noise_sd_c: per-pixel temporal noise of the camera (NETD).
        palm_correlation_s: correlation time of the palm's residual ``ρ`` (``fused``). Vasomotion moves
            the palm within about a minute; the default is on the long side, so the palm is trusted to
            correct the wrist's bias only over minutes (chosen on replays of the simulated rig).
        palm_noise_sd_c: frame-to-frame SD of the palm offset around ``C + ρ`` (``fused``).
        wrist_noise_sd_c: frame-to-frame SD of the wrist offset around ``C + β`` (``fused``).
        drift_sd_c_per_sqrt_s: random walk of the camera offset between shutter events (``fused``); large
            enough to follow the offset's jitter of a few seconds.
        bias_drift_sd_c_per_sqrt_s: random walk of the wrist bias (``fused``).
        jump_sigma: innovation beyond this many SDs is an outlier (``fused``).
        jump_frames: this many outlier frames in a row is a jump: ``C`` restarts (``fused``).
        hold_s: how long the last offset is held when a frame has no reference.
        """
        if mode not in ("palm", "wrist", "fused"):
            raise ValueError(f"mode must be palm, wrist or fused, got {mode!r}")
        if min(palm_residual_sd_c, wrist_residual_sd_c, palm_correlation_s) <= 0 or jump_frames < 1:
            raise ValueError("residual SDs and palm_correlation_s must be positive and jump_frames at least 1")
        self.mode: Mode = mode
        self._palm, self._wrist = palm, wrist
        self._palm_sd, self._wrist_sd = palm_residual_sd_c, wrist_residual_sd_c
        self._pixel_sd = pixel_noise_sd_c
        self._palm_tau_ns = palm_correlation_s * 1e9
        self._palm_noise_var, self._wrist_noise_var = palm_noise_sd_c**2, wrist_noise_sd_c**2
        self._q_c_per_ns = drift_sd_c_per_sqrt_s**2 / 1e9
        self._q_b_per_ns = bias_drift_sd_c_per_sqrt_s**2 / 1e9
        self._jump_sigma, self._jump_frames = jump_sigma, jump_frames
        self._hold_ns = int(hold_s * 1e9)
        self.resets = 0
        self._last: OffsetEstimate | None = None
        self._x = np.zeros(3)  # [C, β, ρ] (°C)
        self._p = np.diag([_UNKNOWN_VAR, wrist_residual_sd_c**2, palm_residual_sd_c**2])
        self._t: int | None = None  # time of the state
        self._restart()

    @property
    def estimate(self) -> OffsetEstimate | None:
        """The result of the latest ``update``."""
        return self._last

    @property
    def wrist_bias_c(self) -> float:
        """The fused filter's estimate of the wrist reference's bias β (°C)."""
        return float(self._x[1])

    def reset(self) -> None:
        """Forget the camera offset (the next measurement starts it afresh); the skin's states are kept."""
        self._restart()
        self.resets += 1

    def _restart(self) -> None:
        self._x[0] = 0.0
        self._p[0, :] = 0.0
        self._p[:, 0] = 0.0
        self._p[0, 0] = _UNKNOWN_VAR
        self._known = False  # has any measurement informed C since the restart?
        self._t_measured: int | None = None
        self._outliers = 0

    def update(
        self,
        t_mono: int,
        *,
        wristband_c: float | None,
        palm: RegionReading | None,
        wrist: RegionReading | None,
        ffc: bool = False,
    ) -> OffsetEstimate | None:
        """Feed one thermal frame's measurements; returns the offset for this frame, or None.

        Args:
            t_mono: the frame's time (ns).
            wristband_c: the wristband mean over the window ending at ``t_mono`` (None: no wristband).
            palm: the palm region's measurement, or None.
            wrist: the wrist region's measurement, or None.
            ffc: the frame was taken during a shutter/flat-field event (not used; restarts the offset).
        """
        if ffc:
            self.reset()
            self._last = None
            return None
        refs: list[ReferenceOffset] = []
        if wristband_c is not None and math.isfinite(wristband_c):
            if palm is not None and self.mode in ("palm", "fused"):
                refs.append(reference_offset("palm", palm, wristband_c, self._palm, self._palm_sd, self._pixel_sd))
            if wrist is not None and self.mode in ("wrist", "fused"):
                refs.append(reference_offset("wrist", wrist, wristband_c, self._wrist, self._wrist_sd,
                                             self._pixel_sd))
        refs = [r for r in refs if math.isfinite(r.offset_c)]
        palm_ref = next((r for r in refs if r.reference == "palm"), None)
        wrist_ref = next((r for r in refs if r.reference == "wrist"), None)
        if not refs:
            self._last = self._held(t_mono)
        elif self.mode != "fused":  # the paper: this frame's offset as it is
            ref = refs[0]
            self._x[0], self._p[0, 0] = ref.offset_c, ref.variance_c2
            self._known, self._t, self._t_measured = True, t_mono, t_mono
            self._last = OffsetEstimate(ref.offset_c, ref.variance_c2, self.mode, wristband_c, palm_ref, wrist_ref)
        else:
            self._last = self._filter(t_mono, wristband_c, palm_ref, wrist_ref)
        return self._last

    def _predict(self, t: int) -> None:
        if self._t is not None and t > self._t:
            dt = t - self._t
            phi = math.exp(-dt / self._palm_tau_ns)
            f = np.diag([1.0, 1.0, phi])
            q = np.diag([self._q_c_per_ns * dt, self._q_b_per_ns * dt, self._palm_sd**2 * (1.0 - phi * phi)])
            self._x = f @ self._x
            self._p = f @ self._p @ f + q
        self._t = t if self._t is None else max(self._t, t)

    def _filter(self, t: int, band_c: float | None, palm_ref: ReferenceOffset | None,
                wrist_ref: ReferenceOffset | None) -> OffsetEstimate:
        self._predict(t)
        obs: list[tuple[npt.NDArray[np.float64], float, float]] = []  # (observation row, value, noise var)
        if palm_ref is not None:  # C + ρ, plus the region's own noise
            obs.append((np.array([1.0, 0.0, 1.0]), palm_ref.offset_c,
                        self._palm_noise_var + palm_ref.variance_c2 - self._palm_sd**2))
        if wrist_ref is not None:  # C + β, plus the region's own noise
            obs.append((np.array([1.0, 1.0, 0.0]), wrist_ref.offset_c,
                        self._wrist_noise_var + wrist_ref.variance_c2 - self._wrist_sd**2))
        flags: tuple[str, ...] = ()
        if self._known:
            far = [abs(z - float(h @ self._x)) > self._jump_sigma * math.sqrt(float(h @ self._p @ h) + var)
                   for h, z, var in obs]
            if all(far):
                self._outliers += 1
                if self._outliers < self._jump_frames:
                    return OffsetEstimate(float(self._x[0]), float(self._p[0, 0]), "fused", band_c, palm_ref,
                                          wrist_ref, ("outlier",))
                self.reset()
                flags = ("reset_jump",)
            else:
                obs = [o for o, is_far in zip(obs, far, strict=True) if not is_far]
                self._outliers = 0
        for h, z, var in obs:
            ph = self._p @ h
            k = ph / (float(h @ ph) + var)
            self._x = self._x + k * (z - float(h @ self._x))
            self._p = self._p - np.outer(k, ph)
            self._p = 0.5 * (self._p + self._p.T)
        self._known, self._t_measured = True, t
        return OffsetEstimate(float(self._x[0]), float(self._p[0, 0]), "fused", band_c, palm_ref, wrist_ref, flags)

    def _held(self, t: int) -> OffsetEstimate | None:
        if not self._known or self._t_measured is None or t - self._t_measured > self._hold_ns:
            return None
        if self.mode == "fused":
            self._predict(t)
        return OffsetEstimate(float(self._x[0]), float(self._p[0, 0]), self.mode, None, None, None, ("held",))
