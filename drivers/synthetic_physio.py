"""The simulated rig's hidden truth: physiology and the thermal camera's error, as functions of time.

No images here (``drivers/synthetic_scene.py`` draws them). Every process is driven by its own
``numpy.random.Generator`` so one stream's draws never shift another's, and every process is read
at non-decreasing times (the rig emits samples in ``t_mono`` order).

The thermal camera's error follows the physics of an uncooled microbolometer on a phone sled:

- a **warm-up** error after power-on: the lens and shutter lag the focal-plane array (FPA) as the
  electronics heat it, and the radiometric compensation, which reads one thermistor, is wrong by a
  few degrees until the gradient settles (decays over about a minute);
- a **level** redrawn at every shutter (flat-field, FFC) event: the shutter's temperature is known
  only to a few tenths of a degree;
- a **drift** between shutter events, proportional to how far the FPA temperature has moved since
  the last one; the camera closes its shutter when that exceeds a threshold or after a maximum time;
- a small common **jitter** (1/f-like, seconds) and per-pixel temporal noise (NETD), plus a weak
  fixed-pattern non-uniformity that grows with the drift (drawn in the scene module).

The offset is common to the whole frame, which is what makes a reference-based correction work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fusion.offset import PAPER_PALM, PAPER_WRIST

__all__ = [
    "CameraErrorState",
    "HeartRateTrack",
    "OuTrack",
    "Physiology",
    "SkinTruth",
    "TemperatureTruth",
    "ThermalCameraErrors",
    "ThermalCameraModel",
    "ppg_waveform",
]



@dataclass(frozen=True, slots=True, kw_only=True)
class Physiology:
    """The simulated subject.

    Args:
        hr_bpm: a fixed heart rate, or a (low, high) range the rate wanders in (slow sinusoid plus
            a random walk, plus respiratory sinus arrhythmia).
        respiration_hz: breathing rate (modulates pulse amplitude, heart rate and head height).
        face_c: mean facial skin temperature; wanders ±0.3 °C over minutes.
        wristband_c: mean skin temperature under the wristband's sensor; wanders ±0.25 °C.
        palm_residual_sd_c / palm_residual_tau_s: palm minus its regression estimate: vasomotion
            in glabrous skin (arteriovenous anastomoses) makes it vary within a minute.
        wrist_residual_sd_c / wrist_residual_tau_s: wrist skin minus its regression estimate: the
            band sits on the wrist, so it changes only over tens of minutes (a per-session bias).
        ambient_c: room temperature (background, clothing and hair follow it).
    """

    hr_bpm: float | tuple[float, float] = (55.0, 100.0)
    respiration_hz: float = 0.25
    face_c: float = 35.0
    wristband_c: float = 33.0
    palm_residual_sd_c: float = 0.8
    palm_residual_tau_s: float = 40.0
    wrist_residual_sd_c: float = 0.39
    wrist_residual_tau_s: float = 180.0
    ambient_c: float = 23.5

    def __post_init__(self) -> None:
        lo, hi = (self.hr_bpm, self.hr_bpm) if isinstance(self.hr_bpm, int | float) else self.hr_bpm
        if not 30.0 <= lo <= hi <= 220.0:
            raise ValueError(f"hr_bpm must lie in 30..220 bpm with low <= high, got {self.hr_bpm!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ThermalCameraErrors:
    """The thermal camera's error model (see the module docstring); defaults give a FLIR ONE-like
    baseline over a 10-minute session (face error MAE ≈ 0.9 °C, SD ≈ 1.6 °C, as in the paper).

    Args:
        warmup_c / warmup_tau_s: error at power-on and its decay time.
        ffc_level_sd_c: spread of the level each shutter event leaves; ``unit_bias_c`` its mean.
        fpa_warmup_c / fpa_tau_s: FPA self-heating after power-on and its time constant.
        fpa_wander_c: slow FPA wander with the room and the phone's load (SD; 5-minute scale).
        drift_c_per_fpa_c: scene error per °C of FPA change since the last shutter event.
        ffc_fpa_threshold_c / ffc_max_interval_s / ffc_min_interval_s: when the shutter closes.
        ffc_duration_s: how long frames are flagged ``ffc`` (the shutter covers the sensor).
        jitter_sd_c / jitter_tau_s: common temporal noise of the whole frame.
        netd_c: per-pixel temporal noise (noise-equivalent temperature difference).
        nonuniformity_c: fixed-pattern amplitude per °C of FPA drift since the shutter (plus 0.05).
    """

    warmup_c: float = -9.0
    warmup_tau_s: float = 35.0
    ffc_level_sd_c: float = 0.45
    unit_bias_c: float = 0.1
    fpa_warmup_c: float = 6.0
    fpa_tau_s: float = 150.0
    fpa_wander_c: float = 0.3
    drift_c_per_fpa_c: float = -0.8
    ffc_fpa_threshold_c: float = 0.6
    ffc_max_interval_s: float = 120.0
    ffc_min_interval_s: float = 15.0
    ffc_duration_s: float = 0.6
    jitter_sd_c: float = 0.08
    jitter_tau_s: float = 2.0
    netd_c: float = 0.15
    nonuniformity_c: float = 0.15


class OuTrack:
    """An Ornstein–Uhlenbeck process on a fixed grid, stepped lazily, read by linear interpolation.

    Reads must come at non-decreasing times (the grid is not kept).
    """

    def __init__(self, rng: np.random.Generator, *, mean: float, sd: float, tau_s: float, dt_s: float = 0.5):
        self._rng = rng
        self._mean = mean
        self._dt_s = dt_s
        self._phi = math.exp(-dt_s / tau_s)
        self._innovation = sd * math.sqrt(1.0 - self._phi**2)
        self._k = 0
        self._x0 = mean + sd * float(rng.standard_normal())
        self._x1 = self._next(self._x0)

    def _next(self, x: float) -> float:
        return self._mean + (x - self._mean) * self._phi + self._innovation * float(self._rng.standard_normal())

    def at(self, t_s: float) -> float:
        """The value at ``t_s`` seconds (>= every earlier read)."""
        pos = t_s / self._dt_s
        while pos >= self._k + 1:
            self._k += 1
            self._x0, self._x1 = self._x1, self._next(self._x1)
        frac = min(max(pos - self._k, 0.0), 1.0)
        return self._x0 + (self._x1 - self._x0) * frac


class HeartRateTrack:
    """Heart rate over time and the pulse phase (cycles) it integrates to."""

    def __init__(self, rng: np.random.Generator, physiology: Physiology) -> None:
        hr = physiology.hr_bpm
        self._fixed = float(hr) if isinstance(hr, int | float) else None
        lo, hi = (hr, hr) if isinstance(hr, int | float) else hr
        self._mid, self._half = (lo + hi) / 2, (hi - lo) / 2
        self._walk = OuTrack(rng, mean=0.0, sd=0.5, tau_s=90.0)
        self._period_s = 300.0
        self._phase0 = float(rng.uniform(0, 2 * math.pi))
        self._resp_hz = physiology.respiration_hz
        self._phase = float(rng.uniform())  # cycles
        self._t_s = 0.0

    def bpm(self, t_s: float) -> float:
        """Instantaneous heart rate; a fixed rate stays exactly fixed."""
        if self._fixed is not None:
            return self._fixed
        swing = 0.6 * math.sin(2 * math.pi * t_s / self._period_s + self._phase0) + 0.4 * math.tanh(self._walk.at(t_s))
        rsa = 0.03 * self._half * math.sin(2 * math.pi * self._resp_hz * t_s)
        return self._mid + self._half * 0.95 * swing + rsa

    def phase(self, t_s: float) -> float:
        """Pulse phase in cycles at ``t_s`` (integrated from the rate; reads non-decreasing)."""
        dt = t_s - self._t_s
        if dt > 0:
            self._phase += self.bpm(self._t_s + dt / 2) / 60.0 * dt
            self._t_s = t_s
        return self._phase


def ppg_waveform(n: int = 512) -> np.ndarray:
    """One blood-volume pulse cycle (zero mean, peak-to-peak 1): systolic peak, dicrotic notch and wave."""
    phi = np.arange(n) / n

    def bump(centre: float, width: float) -> np.ndarray:
        d = (phi - centre + 0.5) % 1.0 - 0.5
        return np.exp(-0.5 * (d / width) ** 2)

    wave = bump(0.18, 0.065) + 0.45 * bump(0.42, 0.09) + 0.12 * bump(0.30, 0.04)
    wave -= wave.mean()
    return (wave / np.ptp(wave)).astype(np.float32)


@dataclass(frozen=True, slots=True)
class TemperatureTruth:
    """True temperatures at one instant (°C)."""

    face_c: float
    palm_c: float
    wrist_c: float
    wristband_skin_c: float
    ambient_c: float


class SkinTruth:
    """True skin temperatures: the wristband site wanders slowly; palm and wrist follow it through
    the paper's regressions plus their residuals; the face wanders on its own."""

    def __init__(self, rng: np.random.Generator, physiology: Physiology) -> None:
        p = physiology
        self._band = OuTrack(rng, mean=p.wristband_c, sd=0.25, tau_s=900.0)
        self._face = OuTrack(rng, mean=p.face_c, sd=0.3, tau_s=600.0)
        self._palm_r = OuTrack(rng, mean=0.0, sd=p.palm_residual_sd_c, tau_s=p.palm_residual_tau_s)
        self._wrist_r = OuTrack(rng, mean=0.0, sd=p.wrist_residual_sd_c, tau_s=p.wrist_residual_tau_s)
        self._room = OuTrack(rng, mean=p.ambient_c, sd=0.3, tau_s=1200.0)

    def at(self, t_s: float) -> TemperatureTruth:
        x = self._band.at(t_s)
        return TemperatureTruth(
            face_c=self._face.at(t_s),
            palm_c=PAPER_PALM.estimate(x) + self._palm_r.at(t_s),  # the paper regressions (Yoshikawa et al.)
            wrist_c=PAPER_WRIST.estimate(x) + self._wrist_r.at(t_s),
            wristband_skin_c=x,
            ambient_c=self._room.at(t_s),
        )


@dataclass(frozen=True, slots=True)
class CameraErrorState:
    """The thermal camera's error at one frame."""

    offset_c: float  # common to the whole frame: measured − true
    ffc: bool  # shutter closed: the frame shows the shutter
    fpa_c: float  # focal-plane-array temperature
    drift_fpa_c: float  # FPA change since the last shutter event (drives non-uniformity)


class ThermalCameraModel:
    """Steps the camera's offset error frame by frame (reads at non-decreasing times)."""

    def __init__(self, rng: np.random.Generator, errors: ThermalCameraErrors, ambient_c: float) -> None:
        self._e = errors
        self._rng = rng
        self._ambient_c = ambient_c
        self._fpa_wander = OuTrack(rng, mean=0.0, sd=errors.fpa_wander_c, tau_s=300.0)
        self._jitter = OuTrack(rng, mean=0.0, sd=errors.jitter_sd_c, tau_s=errors.jitter_tau_s, dt_s=0.1)
        self._last_ffc_s = -math.inf
        self._ffc_until_s = -math.inf
        self._fpa_at_ffc = 0.0
        self._level_c = 0.0

    def _fpa(self, t_s: float) -> float:
        e = self._e
        return self._ambient_c + 4.0 + e.fpa_warmup_c * (1 - math.exp(-t_s / e.fpa_tau_s)) + self._fpa_wander.at(t_s)

    def at(self, t_s: float) -> CameraErrorState:
        e = self._e
        fpa = self._fpa(t_s)
        since = t_s - self._last_ffc_s
        due = abs(fpa - self._fpa_at_ffc) > e.ffc_fpa_threshold_c or since > e.ffc_max_interval_s
        if t_s >= self._ffc_until_s and since >= e.ffc_min_interval_s and due:
            self._last_ffc_s = t_s
            self._ffc_until_s = t_s + e.ffc_duration_s
            self._fpa_at_ffc = fpa
            self._level_c = e.unit_bias_c + e.ffc_level_sd_c * float(self._rng.standard_normal())
        drift_fpa = fpa - self._fpa_at_ffc
        offset = (
            e.warmup_c * math.exp(-t_s / e.warmup_tau_s)
            + self._level_c
            + e.drift_c_per_fpa_c * drift_fpa
            + self._jitter.at(t_s)
        )
        return CameraErrorState(offset_c=offset, ffc=t_s < self._ffc_until_s, fpa_c=fpa, drift_fpa_c=drift_fpa)
